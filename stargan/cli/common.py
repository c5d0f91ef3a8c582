"""Pieces shared by the CLI command modules."""
from __future__ import annotations

import functools
import sys

import click

from common.errors import UserError

DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N."


def user_errors(fn):
    """Turn UserError (and Ctrl-C) into a one-line message and exit status 2 (130), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(UserError.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; resume with --resume auto", err=True)
            sys.exit(130)

    return wrapper
