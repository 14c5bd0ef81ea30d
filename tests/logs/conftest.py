"""This folder's fixtures: ``workspace`` (``helpers.run_helpers``)."""

from helpers.run_helpers import workspace

__all__ = ["workspace"]
