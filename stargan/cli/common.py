"""Pieces shared by the CLI command modules: error handling and where library log lines go."""
from __future__ import annotations

import functools
import logging
import sys

import click

import common
import cyclegan
import stargan
from common.errors import UserError

DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N."

# The packages whose loggers the CLI shows: library code logs, the CLI decides where it goes.
LIBRARY_LOGGERS = tuple(package.__name__ for package in (common, cyclegan, stargan))


class _EchoHandler(logging.Handler):
    """Log records as plain lines through ``click.echo``: INFO to stdout (progress the user asked for),
    warnings and errors to stderr with their level. ``click.echo`` looks ``sys.stdout`` up on each call, so
    this also works under Click's test runner."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.WARNING:
                click.echo(f"{record.levelname.lower()}: {message}", err=True)
            else:
                click.echo(message)
        except Exception:  # a logging failure must never kill a run
            self.handleError(record)


def configure_logging(level: int = logging.INFO) -> None:
    """Show library INFO lines (and above) on the terminal; idempotent."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
            logger.addHandler(_EchoHandler())


def user_errors(fn):
    """Set up logging, and turn UserError (and Ctrl-C) into a one-line message and exit status 2 (130),
    never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        configure_logging()
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(UserError.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; resume with --resume auto", err=True)
            sys.exit(130)

    return wrapper
