"""Run statistics: TensorBoard scalars and image grids plus a ``stats.jsonl`` with one JSON object per log."""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from common.files import write_text_atomic
from common.grids import tile_grid

STATS_FILE = "stats.jsonl"

log = logging.getLogger(__name__)


def drop_stats_after(path: str | Path, step: int) -> int:
    """Rewrite the ``stats.jsonl`` at ``path`` (atomically) without its rows of steps after ``step`` and
    without a torn last line (a kill mid-write), so a run resumed at ``step`` never repeats a step. Returns the
    number of lines dropped; the file is only rewritten when that is not 0."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or row["step"] <= step:
            kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        write_text_atomic(path, "".join(line + "\n" for line in kept))
    return dropped


class RunLogger:
    """Writes to ``run_dir/stats.jsonl`` and ``run_dir/tensorboard``. On non-main ranks every call is a no-op.

    ``purge_step`` (a resume at step N passes N + 1): TensorBoard hides the events of an earlier process at
    that step and after, as :func:`drop_stats_after` drops those rows of ``stats.jsonl``."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, purge_step: int | None = None):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._writer = None
        self._jsonl = None
        if enabled:
            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=purge_step)
            self._jsonl = open(self.run_dir / STATS_FILE, "a", encoding="utf-8")

    def scalars(self, step: int, values: dict[str, float], **context) -> None:
        if not self.enabled:
            return
        for key, value in values.items():
            self._writer.add_scalar(key, value, step)
        record = {"step": step, "time": round(time.time(), 3), **context}
        record.update({k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def image_grid(self, step: int, tag: str, rows: list[torch.Tensor], nrow: int) -> None:
        """``rows``: tensors (N,3,H,W) in [-1,1], concatenated and laid out ``nrow`` images per row."""
        if not self.enabled:
            return
        self._writer.add_image(tag, tile_grid(rows, nrow=nrow, padding=2), step)

    def flush(self) -> None:
        if self.enabled:
            self._writer.flush()
            self._jsonl.flush()

    def close(self) -> None:
        if self.enabled:
            self._writer.close()
            self._jsonl.close()
            self.enabled = False
