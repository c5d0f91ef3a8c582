"""Writing a shapes dataset folder: :func:`make_dataset` (layout and overwrite rule in the package docstring)."""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from common.data.celeba_attrs import attr_file_text
from common.data.shapes import layout
from common.data.shapes.paired import write_paired
from common.data.shapes.render import render_files
from common.data.shapes.scene import (
    COLOURS,
    NUISANCE_ATTRS,
    NUISANCE_EXCLUSIVE,
    PALETTE,
    SHAPES_ATTRS,
    SHAPES_EXCLUSIVE,
    ShapesParams,
    change_attribute,
    counterfactual_attrs,
    nuisance_label,
    params_label,
    sample_params,
)
from common.data.shapes.views import view_pairs, write_view
from common.errors import UserError
from common.files import write_json_atomic, write_text_atomic

MIN_N = 10
MIN_SIZE = 16
MAX_SIZE = 1024


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out must be a folder, but a file with that name exists")
    if out.is_dir() and any(out.iterdir()):
        if layout.read_marker(out) is None:
            raise UserError(
                f"{out}: folder is not empty and is not a shapes dataset (no {layout.SCHEMA_FILE} with "
                f'"format": "{layout.FORMAT}"); choose a new or empty folder'
            )
        for name in layout.OWNED:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"{name}: expected an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise UserError(f"{name}: expected an integer {rng}, got {value}")
    return int(value)


def _test_split(colours: Sequence[str], fraction: float, seed: int) -> set[int]:
    """Indices of test images, drawn per colour, so every colour (and every CycleGAN test folder) gets its
    share even for tiny datasets."""
    rng = np.random.default_rng([seed, 0x7E57])
    test: set[int] = set()
    for c in COLOURS:
        idx = np.array([i for i, ci in enumerate(colours) if ci == c], dtype=np.int64)
        if len(idx) < 2:
            continue  # one image of a colour goes to train: a colour must be learnable before it is testable
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        test.update(int(i) for i in rng.choice(idx, size=k, replace=False))
    return test


def make_dataset(
    out: str | os.PathLike,
    n: int = 5000,
    size: int = 64,
    seed: int = 0,
    test_fraction: float = 0.1,
    cyclegan_views: list[tuple[str, str]] | None = None,
    paired: bool = False,
) -> dict[str, Any]:
    """Generate the shapes dataset into ``out`` (see the package docstring for the layout and overwrite rule).
    ``paired`` also writes the paired view in the aligned format (:mod:`common.data.shapes.paired`).

    Prints nothing; returns a summary: counts, paths (as strings) and the seconds taken. Bad arguments or an
    unsafe ``out`` raise :class:`UserError` before anything is written.
    """
    t0 = time.perf_counter()
    n = _check_int("n", n, MIN_N)
    size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
    seed = _check_int("seed", seed, 0)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
        0.0 < float(test_fraction) < 1.0
    ):
        raise UserError(f"test_fraction: expected a number strictly between 0 and 1, got {test_fraction!r}")
    test_fraction = float(test_fraction)
    pairs = view_pairs(cyclegan_views)
    if not isinstance(paired, bool):
        raise UserError(f"paired: expected true or false, got {paired!r}")
    out = Path(out)
    _prepare_out(out)

    width = max(6, len(str(n)))
    files = [f"{i:0{width}d}.png" for i in range(1, n + 1)]
    params = [sample_params(np.random.default_rng([seed, i])) for i in range(n)]
    labels = [params_label(p) for p in params]
    nuisance = [nuisance_label(p) for p in params]
    test = _test_split([p.colour for p in params], test_fraction, seed)

    meta: dict[str, Any] = {
        "format": layout.FORMAT,
        "version": layout.FORMAT_VERSION,
        "complete": False,  # rewritten as true at the very end; a crash leaves a folder we may regenerate
        "attrs": list(SHAPES_ATTRS),
        "exclusive": [list(g) for g in SHAPES_EXCLUSIVE],
        # Columns of the attribute file after "attrs": what a translation must keep (never changed by a
        # counterfactual), for the classifier to learn and evaluation to check; no model is conditioned on them.
        "nuisance": list(NUISANCE_ATTRS),
        "nuisance_exclusive": {k: list(v) for k, v in NUISANCE_EXCLUSIVE.items()},
        "n": n,
        "size": size,
        "seed": seed,
        "test_fraction": test_fraction,
        "n_test": len(test),
        "palette": {c: list(rgb) for c, rgb in PALETTE.items()},
        "images": layout.IMAGES_DIR,
        "attr_file": layout.ATTR_FILE,
        "partition_file": layout.PARTITION_FILE,
        "test_files": layout.TEST_FILES,
        "params": layout.PARAMS_FILE,
        "counterfactuals": f"{layout.CF_DIR}/{layout.CF_INDEX}",
        "cyclegan_views": [f"{layout.CYCLEGAN_DIR}/{a}2{b}" for a, b in pairs],
        "paired_view": layout.PAIRED_DIR if paired else None,
    }
    write_json_atomic(out / layout.SCHEMA_FILE, meta)

    img_dir = out / layout.IMAGES_DIR
    img_dir.mkdir()
    render_files([(p, img_dir / f) for f, p in zip(files, params)], size)

    write_text_atomic(out / layout.ATTR_FILE, attr_file_text([*SHAPES_ATTRS, *NUISANCE_ATTRS], files,
                                                             [a + b for a, b in zip(labels, nuisance)]))
    partition = "".join(f"{f} {2 if i in test else 0}\n" for i, f in enumerate(files))
    write_text_atomic(out / layout.PARTITION_FILE, partition)
    write_text_atomic(out / layout.TEST_FILES, "".join(f"{files[i]}\n" for i in sorted(test)))
    write_json_atomic(out / layout.PARAMS_FILE, {f: asdict(p) for f, p in zip(files, params)})

    cf_root = out / layout.CF_DIR
    cf_root.mkdir()
    index: dict[str, Any] = {}
    cf_jobs: list[tuple[ShapesParams, Path]] = []
    for i in sorted(test):
        stem = Path(files[i]).stem
        (cf_root / stem).mkdir()
        targets = {}
        for attr in counterfactual_attrs(params[i]):
            q = change_attribute(params[i], attr)
            rel = f"{layout.CF_DIR}/{stem}/{attr}.png"
            cf_jobs.append((q, out / rel))
            targets[attr] = {"path": rel, "label": params_label(q)}
        index[stem] = {"source": f"{layout.IMAGES_DIR}/{files[i]}", "label": labels[i], "targets": targets}
    render_files(cf_jobs, size)
    write_json_atomic(cf_root / layout.CF_INDEX, {"attrs": list(SHAPES_ATTRS), "items": index})

    views = {f"{a}2{b}": write_view(out, a, b, files, labels, test) for a, b in pairs}
    paired_view = write_paired(out, files, params, test, size, seed) if paired else None

    meta["complete"] = True
    write_json_atomic(out / layout.SCHEMA_FILE, meta)
    return {
        "out": str(out),
        "n": n,
        "n_train": n - len(test),
        "n_test": len(test),
        "size": size,
        "seed": seed,
        "colour_counts": {c: sum(p.colour == c for p in params) for c in COLOURS},
        "attr_counts": {a: int(sum(lab[j] for lab in labels)) for j, a in enumerate(SHAPES_ATTRS)},
        "nuisance_counts": {a: int(sum(lab[j] for lab in nuisance)) for j, a in enumerate(NUISANCE_ATTRS)},
        "schema": str(out / layout.SCHEMA_FILE),
        "images": str(img_dir),
        "attr_file": str(out / layout.ATTR_FILE),
        "test_files": str(out / layout.TEST_FILES),
        "counterfactuals": str(cf_root / layout.CF_INDEX),
        "n_counterfactuals": len(cf_jobs),
        "cyclegan_views": views,
        "paired_view": paired_view,
        "seconds": round(time.perf_counter() - t0, 3),
    }
