"""Checkpoints: the complete training state, written atomically, read with ``weights_only=True``.

Layout of a training checkpoint (plain containers of tensors and numbers only, so the safe loader reads it)::

    {"format": "stargan-lib", "format_version": 1, "library_version": str, "model": "cyclegan"|"stargan",
     "kind": "training"|"inference", "config": dict, "nets": {name: state_dict},
     "optimizers": {...}, "schedulers": {...}, "pools": {...}, "scalers": {...},
     "counters": {"epoch", "epoch_step", "global_step", "images_seen"}, "rng": {...}, "extra": {...}}

A run folder keeps ``checkpoints/ckpt-<step>.pt`` (the last N) and ``checkpoints/latest.pt``, a hard link
(or copy) of the newest one. Because every file is first written to a temporary name and then
``os.replace``-d, a crash at any moment leaves either the old or the new file, never a torn one.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from common.errors import UserError
from common.files import atomic_writer, fsync_dir, link_or_copy
from common.version import __version__

FORMAT = "stargan-lib"
FORMAT_VERSION = 1
_CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")

log = logging.getLogger(__name__)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync it, then ``os.replace`` it into place (with the
    permissions a plain ``open`` would give)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, binary=True, fsync=True) as handle:
        torch.save(obj, handle)
    return path


def new_checkpoint(model: str, config: dict, nets: dict, kind: str = "training", **parts: Any) -> dict:
    """Assemble a checkpoint dict with the format header; ``parts`` are the remaining top-level sections."""
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "model": model,
        "kind": kind,
        "config": config,
        "nets": nets,
    }
    ckpt.update(parts)
    return ckpt


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line UserErrors. Never falls back to unsafe unpickling:
    a file that pickles classes (e.g. a whole ``nn.Module``) is refused with the class named."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if match:
            raise UserError(
                f"{path}: refused to load: it pickles {match.group(1)}, not only tensors and plain containers "
                "(loading uses weights_only=True; save a state_dict instead of a whole object)"
            ) from None
        raise UserError(f"{path}: not a readable PyTorch file (corrupt or not a torch.save file)") from None
    except Exception as err:  # torn/garbage files fail in many ways inside the loader
        detail = str(err).splitlines()[0][:160] if str(err).strip() else "truncated or corrupt"
        raise UserError(f"{path}: not a readable PyTorch file ({err.__class__.__name__}: {detail})") from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read one of our checkpoints with ``weights_only=True``; any problem is a one-line UserError."""
    path = Path(path)
    if path.is_dir():
        latest = path / "checkpoints" / "latest.pt"
        if not latest.is_file():
            raise UserError(f"{path}: is a folder without checkpoints/latest.pt; pass a checkpoint file")
        path = latest
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file not found")
    ckpt = safe_torch_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(
            f"{path}: not a checkpoint of this library (expected a dict with format={FORMAT!r}); "
            "for files of the official CycleGAN/StarGAN code use `stargan import-official`"
        )
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(
            f"{path}: checkpoint format {ckpt['format_version']} is newer than this library understands "
            f"({FORMAT_VERSION}); upgrade the library"
        )
    return ckpt


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete numbered checkpoint in ``run_dir/checkpoints``, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = _CKPT_RE.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


class CheckpointManager:
    """Writes ``ckpt-<step>.pt`` + ``latest.pt`` into ``run_dir/checkpoints`` and keeps the last ``keep_last``."""

    def __init__(self, run_dir: str | os.PathLike, keep_last: int = 3):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.folder = Path(run_dir) / "checkpoints"
        self.keep_last = keep_last

    def save(self, ckpt: dict, step: int) -> Path:
        path = atomic_save(ckpt, self.folder / f"ckpt-{step:09d}.pt")
        self._point_latest(path)
        for _, old in list_checkpoints(self.folder.parent)[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def _point_latest(self, path: Path) -> None:
        latest = self.folder / "latest.pt"
        tmp = self.folder / ".latest.pt.tmp"
        tmp.unlink(missing_ok=True)
        link_or_copy(path, tmp)  # a hard link costs no extra disk or I/O
        os.replace(tmp, latest)
        fsync_dir(self.folder)


def newest_loadable(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[Path, dict] | None:
    """The newest numbered checkpoint of a run that loads; older ones are tried if the newest is damaged."""
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path, map_location)
        except UserError as err:
            log.warning("skipping unreadable checkpoint: %s", err)
    return None
