"""Rasterising a scene: the pure function :func:`render`, its object and stripe masks, and PNG writing.

Antialiasing uses a per-pixel object coverage (see :func:`object_mask`). A pixel with coverage 0 is exactly the
background and one with coverage 1 exactly the object, so a colour or stripe change alters only pixels with
coverage > 0 and a background change only pixels with coverage < 1.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from common.data.images import write_png
from common.data.shapes.scene import PALETTE, REACH, ShapesParams

_STRIPE_SHADE = 0.5  # stripe colour = object colour * this
_LIGHT_BG = 215.0
_DARK_BG = 40.0
_GRADIENT = 14.0  # background gradient half-amplitude (levels): visible texture, far below the light/dark gap
NOISE_STD = 3.0  # pixel noise of render(), in levels


def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(size, dtype=np.float64) + 0.5  # pixel centres
    return c[None, :], c[:, None]  # x (1, W), y (H, 1): broadcast instead of materialising two grids


def _signed_distance(params: ShapesParams, size: int) -> np.ndarray:
    """Signed distance in pixels to the object outline (negative inside)."""
    x, y = _pixel_grid(size)
    cx, cy, r = params.cx * size, params.cy * size, params.radius * size
    dx, dy = x - cx, y - cy
    if params.shape == "circle":
        return np.hypot(dx, dy) - r
    k = 4 if params.shape == "square" else 3
    reach = r * REACH[params.shape]
    inradius = reach * math.cos(math.pi / k)
    # Inside a convex polygon the distance is the max over edge lines; outside it is the distance to the
    # nearest edge segment (the edge-line max would round off corners and let them bleed a pixel further).
    line = np.full((size, size), -np.inf)
    seg = np.full((size, size), np.inf)
    rot = math.radians(params.rotation)
    angles = [rot + 2 * j * math.pi / k for j in range(k)]
    verts = [(reach * math.cos(v), reach * math.sin(v)) for v in angles]
    for j in range(k):
        a = rot + (2 * j + 1) * math.pi / k  # outward normal of the edge from vertex j to j + 1
        line = np.maximum(line, dx * math.cos(a) + dy * math.sin(a) - inradius)
        (x0, y0), (x1, y1) = verts[j], verts[(j + 1) % k]
        ex, ey = x1 - x0, y1 - y0
        t = np.clip(((dx - x0) * ex + (dy - y0) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        seg = np.minimum(seg, np.hypot(dx - x0 - t * ex, dy - y0 - t * ey))
    return np.where(line > 0, seg, line)


def object_mask(params: ShapesParams, size: int) -> np.ndarray:
    """Per-pixel object coverage in [0, 1], float32 ``(size, size)``: 0 is pure background, 1 pure object."""
    return np.clip(0.5 - _signed_distance(params, size), 0.0, 1.0).astype(np.float32)


def stripe_mask(params: ShapesParams, size: int) -> np.ndarray:
    """Where the darker stripes would be (float coverage, ``(size, size)``), whether or not the scene is
    striped. Stripes are anchored to the object centre, so they move with it."""
    x, y = _pixel_grid(size)
    period = max(4.0, size / 10.0)  # >= 2 px stripes at 32 px, ~5 stripes across a mid-size object at 64 px
    u = ((x - params.cx * size) + (y - params.cy * size)) / math.sqrt(2.0) + params.stripe_phase * period
    # Distance from the nearest dark band centre; the band is half a period wide.
    d = np.abs(np.mod(u - period / 4.0 + period / 2.0, period) - period / 2.0)
    return np.clip(0.5 + period / 4.0 - d, 0.0, 1.0)


def background_gradient(params: ShapesParams, size: int) -> np.ndarray:
    """The background's mild linear gradient in a random direction, in grey levels ``(size, size)``, within
    +-14 levels of its base."""
    x, y = _pixel_grid(size)
    a = math.radians(params.gradient_angle)
    ramp = ((x - size / 2.0) * math.cos(a) + (y - size / 2.0) * math.sin(a)) / (size / 2.0)
    return _GRADIENT * np.clip(ramp, -1.0, 1.0)


def _background(params: ShapesParams, size: int) -> np.ndarray:
    """Grey level ``(size, size)``: light or dark base plus the gradient."""
    base = _DARK_BG if params.dark_background else _LIGHT_BG
    return base + background_gradient(params, size)


def clean_render(params: ShapesParams, size: int = 64) -> np.ndarray:
    """The scene before pixel noise and rounding: ``float32 (size, size, 3)`` in grey levels. :func:`render`
    adds the noise to exactly this image."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    cov = object_mask(params, size)[..., None]
    colour = np.asarray(PALETTE[params.colour], dtype=np.float32)
    if params.striped:
        obj = colour * (1.0 - (1.0 - _STRIPE_SHADE) * stripe_mask(params, size).astype(np.float32)[..., None])
    else:
        obj = colour
    # Written so that coverage 0 gives exactly the background and coverage 1 exactly the object (x * 0 and
    # x * 1 are exact), which is what confines counterfactual differences to the changed region.
    return _background(params, size).astype(np.float32)[..., None] * (1.0 - cov) + obj * cov


def render(params: ShapesParams, size: int = 64) -> np.ndarray:
    """Render a scene: ``uint8 (size, size, 3)``. Pure and deterministic: the noise (Gaussian, std
    :data:`NOISE_STD` levels, independent per pixel and channel) comes from ``params.noise_seed``, so a
    counterfactual re-render shares every nuisance factor with the original."""
    img = clean_render(params, size)
    noise = np.random.default_rng(params.noise_seed).standard_normal((size, size, 3), dtype=np.float32)
    img += noise * np.float32(NOISE_STD)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_files(jobs: Sequence[tuple[ShapesParams, Path]], size: int,
                 draw: Callable[[ShapesParams, int], np.ndarray] | None = None) -> None:
    """Render each ``(params, path)`` job to a PNG file with ``draw(params, size) -> uint8 (H, W, 3)``
    (default :func:`render`)."""
    draw = render if draw is None else draw

    def one(job: tuple[ShapesParams, Path]) -> None:
        # compress_level=1: several times faster than the default, and PNG stays lossless and deterministic.
        # Not atomic: the dataset is marked complete only after every file is written.
        write_png(Image.fromarray(draw(job[0], size)), job[1], compress_level=1, atomic=False)

    # numpy, zlib and file I/O release the GIL, so threads give ~1.5x on 2 cores without a process pool's
    # start-up and pickling cost. Each job writes its own file, so the output does not depend on scheduling.
    workers = min(4, os.cpu_count() or 1)
    if workers <= 1:
        for job in jobs:
            one(job)
        return
    with ThreadPoolExecutor(workers) as ex:
        for _ in ex.map(one, jobs):  # iterating re-raises the first worker exception
            pass
