"""File chores done one way everywhere: atomic text/JSON writes, tolerant JSON reads, link-or-copy, and one
clear line when a write fails."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from common.errors import UserError

# Less free space than this after a failed write means the disk is full, whatever the error says (torch
# reports a full disk as "unexpected pos").
NEARLY_FULL_BYTES = 16 << 20
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; silently skipped where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


_TEMP_SUFFIX = ".tmp"


def is_temp_file(name: str) -> bool:
    """Whether ``name`` has the form of the temp files :func:`atomic_writer` and :func:`replace_with_link` write
    (``.NAME.XXXX.tmp``): one that still exists was left by a process killed during the write."""
    return name.startswith(".") and name.endswith(_TEMP_SUFFIX) and len(name) > len(_TEMP_SUFFIX) + 1


def remove_temp_files(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the temp files (:func:`is_temp_file`) directly in ``folder`` (``recursive``: in its subfolders
    too); only safe while no other process writes there (a run folder under its lock). Returns what was
    removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if is_temp_file(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def write_failure(path: str | os.PathLike, err: BaseException) -> UserError:
    """The one-line error for a failed write of ``path``: ``no space left on the device writing PATH`` when the
    error or the disk says so (call it before removing the partial file, which frees the space again), else
    ``cannot write PATH: reason`` (the CLI's wording for OS errors that reach it, too)."""
    path = Path(path)
    if getattr(err, "errno", None) in _NO_SPACE_ERRNOS or _nearly_full(path.parent):
        return UserError(f"no space left on the device writing {path}")
    if isinstance(err, OSError) and err.strerror:
        reason = err.strerror.lower() if isinstance(err, PermissionError) else err.strerror
    else:
        reason = (str(err).strip().splitlines() or [err.__class__.__name__])[0][:200]
    return UserError(f"cannot write {path}: {reason}")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, binary: bool = False, fsync: bool = False) -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on success it replaces ``path`` (``os.replace``), on any
    error it is removed. A reader, a crash or a full disk never sees a half-written file under the final name.
    The file gets the permissions a plain ``open`` would give (``mkstemp`` alone would leave it 0600).

    An ``OSError`` while creating, writing or renaming the file (full disk, folder not writable) becomes a
    one-line :class:`UserError` (:func:`write_failure`); other errors pass through unchanged.

    ``fsync=True`` also makes the result survive power loss: the data is fsync-ed before the replace and the
    folder after it. Off by default because it costs a disk flush per file (thousands of PNGs)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX, dir=path.parent)
    except OSError as err:
        raise write_failure(path, err) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        failure = write_failure(path, err)  # while the partial file still takes its space
        Path(tmp).unlink(missing_ok=True)
        raise failure from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int = 1) -> Path:
    """``obj`` as JSON (``indent`` spaces, trailing newline), written atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def read_json_or_none(path: str | os.PathLike) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable (for resumable state files, where either
    means "not done yet")."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Hard-link ``src`` to ``dst`` (no space used), or copy it where links fail (across file systems, on FAT
    or some network file systems)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def replace_with_link(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make ``dst`` the same file as ``src`` (:func:`link_or_copy` to a temp name, then ``os.replace``): ``dst``
    is the old file or the new one at every moment, and the folder entry is fsync-ed. A failed copy is a
    one-line :class:`UserError` (:func:`write_failure`) and leaves ``dst`` as it was."""
    dst = Path(dst)
    tmp = dst.parent / f"{_temp_prefix(dst)}{secrets.token_hex(4)}{_TEMP_SUFFIX}"
    try:
        link_or_copy(src, tmp)
        os.replace(tmp, dst)
    except OSError as err:
        failure = write_failure(dst, err)
        tmp.unlink(missing_ok=True)
        raise failure from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dst.parent)
    return dst
