"""The ``stargan`` command line: the application layer that sees every model family."""
from stargan.cli.main import cli, main

__all__ = ["cli", "main"]
