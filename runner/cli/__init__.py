"""The command line: one module per command, each a thin click wrapper around a typed function."""
