"""Numbered run folders: ``runs/00003-horse2zebra/``, never overwritten."""
from __future__ import annotations

import re
from pathlib import Path

_RUN_RE = re.compile(r"^(\d{5})-(.+)$")


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


def latest_run_with_checkpoint(out_root: str | Path, name: str) -> Path | None:
    """The highest-numbered run of this name that holds at least one numbered checkpoint."""
    name = _safe_name(name)
    for _, run_name, path in reversed(list_runs(out_root)):
        if run_name == name and any((path / "checkpoints").glob("ckpt-*.pt")):
            return path
    return None
