"""The paired view of a shapes dataset, for paired (pix2pix-style) translation with a known best possible error.

``paired/{train,val,test}/<file>.png`` in the official aligned format (:mod:`common.data.aligned`): each file is
A (left) and B (right) side by side, each ``size x size``; translate AtoB.

* **B** is the dataset's own image of the scene (:func:`~common.data.shapes.render`, byte-identical to
  ``images/<file>``).
* **A** is a label map of the same scene: the object drawn in a flat colour per object-colour class
  (:data:`LABEL_COLOURS`), its stripes (when striped) in that colour halfway to white, the background in a
  flat colour per background class (:data:`BACKGROUND_LABELS`, light or dark) carrying the same +-14-level
  gradient as B's background, with the same antialiased outline and stripe pattern as B. A has no noise.

**What is deterministic.** Every factor B's noise-free image (:func:`~common.data.shapes.clean_render`)
depends on is drawn into A: object colour, striped or not, stripe phase, background class, gradient direction,
shape, position, size and rotation. So A fixes B's noise-free image (to within A's 8-bit rounding).

**What noise remains.** Only B's pixel noise: Gaussian, std :data:`~common.data.shapes.render.NOISE_STD` = 3
levels of 255, independent per pixel and channel, then rounded to 8 bits (clipping at 0/255 never happens: every
noise-free value lies at least 6 std inside). It is independent of A, so no translator can predict it.

**The noise floor** (``view.json``): the noise-free image, predicted from A perfectly, scored against B. It is
the best possible expected MSE and PSNR (the noise-free value is the conditional mean of B, up to rounding), and
within about 0.0001 of the best possible L1 (whose optimum, the conditional median, is the rounded noise-free
value). In the library's [-1, 1] units: L1 about 3 * sqrt(2 / pi) / 127.5 = 0.0188, PSNR about
20 log10(255 / 3) = 38.6 dB. For SSIM it is a reference, not a proven optimum (about 0.9: the noise alone
lowers SSIM's structure term on flat regions). ``view.json`` holds the floor per split and per test image.

**Splits.** ``test`` is the dataset's own test split (``test_files.txt``); ``val`` as many images, drawn with
the seed from the rest; ``train`` the remainder. Everything is a pure function of the dataset's arguments.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from common.data.aligned import PHASES, join_aligned
from common.data.images import to_tensor
from common.data.shapes.layout import PAIRED_DIR, load_params, read_test_files, require_dataset
from common.data.shapes.render import (
    NOISE_STD,
    background_gradient,
    clean_render,
    object_mask,
    render,
    render_files,
    stripe_mask,
)
from common.data.shapes.scene import COLOURS, ShapesParams
from common.files import read_json_or_none, write_json_atomic
from common.metrics.image_error import l1_error, psnr
from common.metrics.ssim import ssim

VIEW_FILE = "view.json"
VIEW_FORMAT = "stargan-shapes-paired"
VIEW_VERSION = 1
DIRECTION = "AtoB"

# Class colours of the label map (segmentation-palette style): one per object colour, two background classes.
LABEL_COLOURS: dict[str, tuple[int, int, int]] = dict(
    zip(COLOURS, ((128, 0, 0), (0, 128, 0), (0, 0, 128), (128, 128, 0)))
)
BACKGROUND_LABELS: dict[bool, tuple[int, int, int]] = {False: (176, 176, 224), True: (80, 48, 112)}  # by dark
STRIPE_LABEL_MIX = 0.5  # stripe class colour = object class colour this far towards white
_FLOOR_BATCH = 64


def label_map(params: ShapesParams, size: int = 64) -> np.ndarray:
    """A of a scene: ``uint8 (size, size, 3)``, the label map described in the module docstring. Pure."""
    cov = object_mask(params, size)[..., None]
    label = np.asarray(LABEL_COLOURS[params.colour], dtype=np.float64)
    if params.striped:
        stripes = stripe_mask(params, size)[..., None]
        obj = label * (1.0 - stripes) + (label + (255.0 - label) * STRIPE_LABEL_MIX) * stripes
    else:
        obj = label
    background = np.asarray(BACKGROUND_LABELS[params.dark_background], dtype=np.float64)
    background = background + background_gradient(params, size)[..., None]
    return np.clip(np.rint(background * (1.0 - cov) + obj * cov), 0, 255).astype(np.uint8)


def aligned_pair(params: ShapesParams, size: int = 64) -> np.ndarray:
    """The aligned file's pixels of a scene: ``uint8 (size, 2 * size, 3)``, A then B."""
    return join_aligned(label_map(params, size), render(params, size))


def noise_floor(params: Sequence[ShapesParams], size: int) -> dict[str, list[float]]:
    """Per scene, the noise-free image scored against B (see the module docstring): ``{"l1": [...], "psnr":
    [...], "ssim": [...]}`` in the library's [-1, 1] units, as evaluation scores a translation."""
    values: dict[str, list[float]] = {"l1": [], "psnr": [], "ssim": []}
    for start in range(0, len(params), _FLOOR_BATCH):
        chunk = params[start:start + _FLOOR_BATCH]
        truth = torch.stack([to_tensor(Image.fromarray(render(p, size))) for p in chunk]).double()
        best = torch.stack([torch.from_numpy(clean_render(p, size)).permute(2, 0, 1) for p in chunk]).double()
        best = best / 127.5 - 1.0
        for name, fn in (("l1", l1_error), ("psnr", psnr), ("ssim", ssim)):
            values[name].extend(float(v) for v in fn(best, truth))
    return values


def _summary(values: dict[str, list[float]]) -> dict[str, Any]:
    n = len(values["l1"])
    return {**{k: (float(np.mean(v)) if n else None) for k, v in values.items()}, "n": n}


def split_indices(n: int, test: set[int], seed: int) -> dict[str, list[int]]:
    """Image indices per phase: ``test`` as given, ``val`` as many drawn from the rest (at least one image is
    left to train), ``train`` the remainder; each sorted."""
    rest = np.array(sorted(set(range(n)) - test), dtype=np.int64)
    k = min(len(test), len(rest) - 1)
    rng = np.random.default_rng([seed, 0xA1])
    val = {int(i) for i in rng.choice(rest, size=k, replace=False)} if k > 0 else set()
    return {"train": [int(i) for i in rest if int(i) not in val], "val": sorted(val), "test": sorted(test)}


def write_paired(out: Path, files: Sequence[str], params: Sequence[ShapesParams], test: set[int], size: int,
                 seed: int) -> dict[str, Any]:
    """Write ``out/paired/`` (replacing an earlier one) for the images ``files`` with scenes ``params`` and test
    indices ``test``; returns its summary (path, counts, test noise floor)."""
    root = out / PAIRED_DIR
    if root.exists():
        shutil.rmtree(root)
    phases = split_indices(len(files), test, seed)
    jobs = []
    for phase in PHASES:
        (root / phase).mkdir(parents=True)
        jobs += [(params[i], root / phase / files[i]) for i in phases[phase]]
    render_files(jobs, size, draw=aligned_pair)

    floors = {phase: noise_floor([params[i] for i in phases[phase]], size) for phase in ("val", "test")}
    view = {
        "format": VIEW_FORMAT,
        "version": VIEW_VERSION,
        "direction": DIRECTION,
        "size": size,
        "seed": seed,
        "counts": {phase: len(phases[phase]) for phase in PHASES},
        "A": "label map: flat class colours (object colour, its stripes, light/dark background) with B's "
             "outline, stripe pattern and background gradient; no noise",
        "B": "the rendered scene (images/<file>)",
        "label_colours": {c: list(rgb) for c, rgb in LABEL_COLOURS.items()},
        "background_labels": {"light": list(BACKGROUND_LABELS[False]), "dark": list(BACKGROUND_LABELS[True])},
        "stripe_label_mix": STRIPE_LABEL_MIX,
        "noise": {"kind": "gaussian, per pixel and channel, rounded to 8 bits", "std_levels": NOISE_STD},
        "noise_floor": {
            "prediction": "the noise-free render of the scene, in [-1, 1] units",
            **{phase: _summary(values) for phase, values in floors.items()},
        },
        "noise_floor_per_image": {
            "test": {Path(files[i]).stem: [floors["test"][k][j] for k in ("l1", "psnr", "ssim")]
                     for j, i in enumerate(phases["test"])},
        },
    }
    write_json_atomic(root / VIEW_FILE, view)
    return {"path": str(root), **view["counts"], "noise_floor_test": view["noise_floor"]["test"]}


def load_paired_view(root: str | os.PathLike) -> dict[str, Any] | None:
    """The ``view.json`` contents of a paired view folder (``DATASET/paired``), or None when ``root`` is not one."""
    view = read_json_or_none(Path(root) / VIEW_FILE)
    ok = isinstance(view, dict) and view.get("format") == VIEW_FORMAT and view.get("version") == VIEW_VERSION
    return view if ok else None


def write_paired_view(out: str | os.PathLike) -> dict[str, Any]:
    """Write ``out/paired/`` from an existing shapes dataset (as ``make_dataset(paired=True)`` does)."""
    out = Path(out)
    meta = require_dataset(out)
    scenes = load_params(out)
    files = sorted(scenes)
    test_names = read_test_files(out, meta)
    test = {i for i, f in enumerate(files) if f in test_names}
    return write_paired(out, files, [scenes[f] for f in files], test, int(meta["size"]), int(meta["seed"]))
