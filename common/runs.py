"""Run folders: numbered ``runs/00003-horse2zebra/``, never overwritten, and locked while a process trains in
one (``RUN/.lock``)."""
from __future__ import annotations

import fcntl
import gc
import logging
import os
import re
from pathlib import Path

from common.errors import UserError

CHECKPOINTS_DIR = "checkpoints"
LATEST = "latest.pt"
LOCK_FILE = ".lock"

_RUN_RE = re.compile(r"^(\d{5})-(.+)$")

log = logging.getLogger(__name__)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"


def list_runs(out_root: str | Path) -> list[tuple[int, str, Path]]:
    root = Path(out_root)
    if not root.is_dir():
        return []
    runs = []
    for entry in root.iterdir():
        match = _RUN_RE.match(entry.name)
        if match and entry.is_dir():
            runs.append((int(match.group(1)), match.group(2), entry))
    return sorted(runs)


def new_run_dir(out_root: str | Path, name: str) -> Path:
    """Create the next numbered folder; ``mkdir(exist_ok=False)`` makes concurrent launches pick distinct ones."""
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    name = _safe_name(name)
    number = max((n for n, _, _ in list_runs(root)), default=-1) + 1
    while True:
        path = root / f"{number:05d}-{name}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            number += 1


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether the run folder holds ``checkpoints/latest.pt`` or a numbered checkpoint to resume from."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    return (folder / LATEST).is_file() or any(folder.glob("ckpt-*.pt"))


def latest_run_with_checkpoint(out_root: str | Path, name: str) -> Path | None:
    """The highest-numbered run of this name that holds a checkpoint."""
    name = _safe_name(name)
    for _, run_name, path in reversed(list_runs(out_root)):
        if run_name == name and has_checkpoint(path):
            return path
    return None


class RunLock:
    """An exclusive lock on a run folder for as long as a process trains in it: ``flock`` on ``RUN/.lock``, a
    file that holds the holder's pid (for the message a second process gets).

    The kernel drops a flock when the process that holds it ends, however it ends (``kill -9`` too), so a lock
    file that exists but is not locked is stale and simply taken over; nothing has to be cleaned up by hand.
    The file itself is never deleted: deleting it would let two processes lock two different files of the same
    name. A fork (e.g. a DataLoader worker) shares the lock until it exits. Local file systems only: ``flock``
    over NFS depends on the server."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @classmethod
    def acquire(cls, run_dir: str | Path) -> RunLock:
        """Lock ``run_dir`` or raise a one-line :class:`UserError` naming the pid that holds it."""
        lock = cls(run_dir)
        if lock._try_lock():
            return lock
        if lock.holder() == os.getpid():
            # This very process holds it through a run context nobody closed (e.g. a trainer whose constructor
            # failed); collecting such garbage closes its file and so drops the lock.
            gc.collect()
            if lock._try_lock():
                return lock
        holder = lock.holder()
        who = f"pid {holder}" if holder is not None else "another process"
        raise UserError(f"{lock.run_dir}: the run folder is locked by a training process ({who}) that is still "
                        "running; wait for it to finish or stop it, then resume")

    def _try_lock(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as err:
            raise UserError(f"{self.path}: cannot create the run folder's lock file ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as err:  # a file system without flock: say so rather than train unprotected silently
            os.close(fd)
            raise UserError(f"{self.path}: cannot lock the run folder ({err.strerror})") from None
        previous = self._read_pid(fd)
        if previous is not None and previous != os.getpid():
            log.info("%s: taking over the lock of pid %d, which ended without releasing it", self.run_dir, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    @staticmethod
    def _read_pid(fd: int) -> int | None:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None

    def holder(self) -> int | None:
        """The pid written in the lock file (the holder, or the last one when nobody holds it), if any."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return self._read_pid(fd)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlock (idempotent). The pid is cleared first, so a pid left in the file means its process died."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def __del__(self) -> None:  # a lock nobody released (its owner was dropped) goes with its object
        try:
            self.release()
        except Exception:  # at interpreter exit; the kernel releases the lock then anyway
            pass
