"""runner: a deployment runner with manual intervention steps."""

__version__ = "0.1.0"
