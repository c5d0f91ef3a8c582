"""Run statistics: TensorBoard scalars and image grids plus a ``stats.jsonl`` with one JSON object per log."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from common.grids import tile_grid


class RunLogger:
    """Writes to ``run_dir/stats.jsonl`` and ``run_dir/tensorboard``. On non-main ranks every call is a no-op."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._writer = None
        self._jsonl = None
        if enabled:
            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
            self._jsonl = open(self.run_dir / "stats.jsonl", "a", encoding="utf-8")

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
