"""Shared test fixtures: tiny random-image datasets written to tmp folders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def make_image_folder(root: str | Path, n: int, size: tuple[int, int] = (32, 32), seed: int = 0) -> list[Path]:
    """Write ``n`` random RGB PNGs ``img_000.png, ...`` of ``size`` (width, height) into ``root`` (created if
    needed) and return their paths, sorted. Same arguments -> same pixels."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    paths = []
    for i in range(n):
        path = root / f"img_{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def unpaired_root(tmp_path: Path) -> Path:
    """A CycleGAN-layout dataset of 32x32 PNGs: trainA 5, trainB 3, testA 2, testB 2 images (A and B sizes
    differ on purpose so that ``max(|A|, |B|)`` and B wrapping are exercised)."""
    root = tmp_path / "data"
    for seed, (name, n) in enumerate((("trainA", 5), ("trainB", 3), ("testA", 2), ("testB", 2))):
        make_image_folder(root / name, n, seed=seed)
    return root
