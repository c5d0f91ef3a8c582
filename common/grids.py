"""Image grids (torchvision's ``make_grid``, made here only) and writing them as PNG."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import make_grid

from common.data.images import save_png


def column_grid(columns: Sequence[Tensor], padding: int = 0, pad_value: float = 1.0) -> Tensor:
    """Columns of ``(rows, 3, H, W)`` images -> one ``(3, H', W')`` image: row ``i`` holds image ``i`` of every
    column, left to right. Values stay as given (e.g. [-1, 1])."""
    columns = list(columns)
    images = torch.stack([c.detach().float().cpu() for c in columns], dim=1).flatten(0, 1)
    return make_grid(images, nrow=len(columns), padding=padding, pad_value=pad_value)


def tile_grid(images: Sequence[Tensor], nrow: int, padding: int = 2) -> Tensor:
    """Batches of ``(N, 3, H, W)`` images in [-1, 1], concatenated and laid out ``nrow`` per row, as one
    ``(3, H', W')`` image in [0, 1] (what TensorBoard's ``add_image`` expects)."""
    stacked = torch.cat([b.detach().float().cpu() for b in images])
    return make_grid((stacked.clamp(-1, 1) + 1) / 2, nrow=nrow, padding=padding)


def save_grid(grid: Tensor, path: str | os.PathLike) -> Path:
    """Write a ``(3, H, W)`` image in [-1, 1] as a PNG, atomically."""
    return save_png(grid, path)
