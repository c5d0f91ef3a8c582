"""File chores done one way everywhere: atomic text/JSON writes, tolerant JSON reads, link-or-copy."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


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


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, binary: bool = False, fsync: bool = False) -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on success it replaces ``path`` (``os.replace``), on any
    error it is removed. A reader, a crash or a full disk never sees a half-written file under the final name.
    The file gets the permissions a plain ``open`` would give (``mkstemp`` alone would leave it 0600).

    ``fsync=True`` also makes the result survive power loss: the data is fsync-ed before the replace and the
    folder after it. Off by default because it costs a disk flush per file (thousands of PNGs)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
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
