"""Pieces shared by the CLI command modules: error handling and where library log lines go."""
from __future__ import annotations

import errno
import functools
import logging
import os
import re
import sys

import click

import common
import cyclegan
import stargan
from common.errors import UserError

DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N."


def mask_options(command):
    """``--mask-hard/--mask-soft``, ``--mask-snap`` and ``--mask-fill/--no-mask-fill`` (None when not given) for
    the commands that run a trained generator."""
    command = click.option(
        "--mask-fill/--no-mask-fill", "mask_fill", default=None,
        help="With the mask snapped (the checkpoint's network.mask_snap_radius, or --mask-snap): the pixels the "
             "snap opens show the mean painted colour of their neighbours the threshold opened, instead of what "
             "the generator painted there to be hidden (a rim around an object kept in a background change); "
             "--mask-snap 0 or --mask-soft also turn it off  [default: as the checkpoint]")(command)
    command = click.option(
        "--mask-snap", "mask_snap", default=None, type=click.IntRange(min=0), metavar="RADIUS",
        help="With the mask thresholded (the checkpoint's network.mask_hard, or --mask-hard): pass it through a "
             "guided filter of this radius (pixels of the image translated) with the input as the guide and "
             "threshold it again, so the border of what is kept moves onto the input's edges (kept as it is where "
             "the input has no edge); 0 turns it off, whatever the checkpoint's network.mask_snap_radius says  "
             "[default: as the checkpoint]")(command)
    return click.option(
        "--mask-hard/--mask-soft", "mask_hard", default=None,
        help="Generators with an attention mask: compose with the mask thresholded at 0.5 (each pixel either the "
             "input or the painted colour) or soft, whatever the checkpoint's network.mask_hard says; training "
             "never thresholds, so any such checkpoint takes either; --mask-soft also turns --mask-snap off  "
             "[default: as the checkpoint]")(command)


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


NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
NOT_PERMITTED = {errno.EACCES, errno.EPERM, errno.EROFS}
# ``common.files.atomic_writer`` writes ``.NAME.<random>.tmp`` beside NAME: the user knows NAME.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")


def _file_named(err: OSError) -> str | None:
    """The file a failed write was for: a rename's destination, and a temp file's final name."""
    name = err.filename2 if err.filename2 is not None else err.filename
    if name is None:
        return None
    name = os.fsdecode(name) if isinstance(name, bytes) else str(name)
    head, tail = os.path.split(name)
    match = _TEMP_NAME.match(tail)
    return os.path.join(head, match["name"]) if match else name


def os_error_message(err: OSError) -> str | None:
    """One line for a full disk or an unwritable place; None for other OS errors (those are bugs or need
    their own message where they happen)."""
    name = _file_named(err)
    if err.errno in NO_SPACE:
        return "no space left on the device" + (f" writing {name}" if name else "")
    if err.errno in NOT_PERMITTED:
        return f"cannot write {name or 'a file'}: {err.strerror or os.strerror(err.errno)}"
    return None


def user_errors(fn):
    """Set up logging, and turn UserError, a full disk or an unwritable folder (and Ctrl-C) into a one-line
    message and exit status 2 (130), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        configure_logging()
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(UserError.exit_code)
        except OSError as err:
            message = os_error_message(err)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            sys.exit(UserError.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; resume with --resume auto", err=True)
            sys.exit(130)

    return wrapper
