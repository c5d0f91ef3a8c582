"""Tiny paired datasets for the pix2pix tests: aligned files (A | B side by side) and two-folder pairs.

B is a fixed function of A (colours inverted), so a pair's halves are told apart and a model can learn it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def pair_arrays(n: int, size: int = 32, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (A, B) uint8 arrays of ``size`` x ``size``: A a random colour with a random linear gradient and
    a little noise (mostly smooth, so small generators can reproduce it), B = 255 - A."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-1, 1, size)
    pairs = []
    for _ in range(n):
        base, slope_x, slope_y = rng.integers(40, 216, 3), rng.normal(0, 40, 3), rng.normal(0, 40, 3)
        smooth = base + ramp[None, :, None] * slope_x + ramp[:, None, None] * slope_y
        a = np.clip(smooth + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
        pairs.append((a, 255 - a))
    return pairs


def make_aligned(root: Path, n: int, size: int = 32, phase: str = "train", seed: int = 0) -> list[Path]:
    """ROOT/<phase>/pair_000.png, ...: aligned files ``2 * size`` wide."""
    folder = Path(root) / phase
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (a, b) in enumerate(pair_arrays(n, size, seed)):
        paths.append(folder / f"pair_{i:03d}.png")
        Image.fromarray(np.concatenate([a, b], axis=1)).save(paths[-1])
    return paths


def make_folders(root: Path, n: int, size: int = 32, phase: str = "train", seed: int = 0) -> Path:
    """ROOT/A/<phase>/pair_000.png and ROOT/B/<phase>/pair_000.bmp, ... (extensions differ on purpose)."""
    for i, (a, b) in enumerate(pair_arrays(n, size, seed)):
        for side, array, ext in (("A", a, "png"), ("B", b, "png" if i % 2 else "bmp")):
            folder = Path(root) / side / phase
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(folder / f"pair_{i:03d}.{ext}")
    return Path(root)
