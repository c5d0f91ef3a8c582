"""Evaluation of paired translation models (families with ``paired``): the output against the true target.

Every pair of the test split (``ROOT/test``, or ``--phase``) is read as training reads it, without the random
crop and flip: both sides resized (bicubic) to the model's training side, the input side per the config's
``direction``. The generator's output for the input is scored against the true target, per image, then averaged:

* ``l1``: mean absolute error on [-1, 1] images (the library's units; half of it on [0, 1] images);
* ``psnr``: dB with peak-to-peak range 2 (the same as range 1 on [0, 1] images), capped at 100 dB for
  identical images (:data:`common.metrics.image_error.PSNR_CAP_DB`);
* ``ssim``: Wang et al. 2004, Gaussian window 11x11 / 1.5, on [0, 1] images, channel-averaged
  (:mod:`common.metrics.ssim`);
* ``fid`` / ``kid``: between the true targets and the outputs, only with the TF-Inception FID weights.

Each beside the baselines a model must beat: ``train_mean`` (always output the per-pixel mean target of the
training split) and ``identity`` (output the input unchanged; only when input and target have the same
channels). On a shapes paired view (``stargan make-dataset shapes --paired``) the ``noise_floor`` row is the
best possible score (:mod:`common.data.shapes.paired`). Every row carries its count ``n``.

The model runs as ``translate`` runs it (the family's translator): for pix2pix the paper's test-time mode by
default (each image with its own batch statistics, dropout on, seeded), the official ``--eval`` mode with
``eval_mode``. The metric core, :func:`score_pairs`, takes any ``generate(inputs)`` callable.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from common.checkpoint import load_checkpoint, with_mask_options
from common.data.images import as_rgb, to_channels
from common.data.shapes.paired import load_paired_view
from common.device import resolve_device
from common.errors import UserError
from common.files import write_json_atomic
from common.grids import column_grid, save_grid
from common.metrics import fid_feature_fn, fid_unavailable_message, resolve_fid_weights
from common.metrics.image_error import RunningMean, l1_error, psnr
from common.metrics.ssim import ssim
from common.tables import fmt_number, text_table
from pix2pix.data import paired_files, read_pair
from stargan.evaluation.evaluate import METRICS_FILE, default_out_dir, mask_fields
from stargan.evaluation.measures import fid_block
from stargan.families import FAMILIES, family_of_checkpoint

log = logging.getLogger(__name__)

SCORES = ("l1", "psnr", "ssim")
SAMPLES_FILE = "samples.png"
SAMPLE_ROWS = 8
MEAN_IMAGES_MAX = 5000
"""The train-mean baseline averages at most this many training targets, evenly spaced over the sorted split (a
mean over thousands of images no longer moves in the third decimal)."""
UNITS = ("l1: mean absolute error on [-1, 1] images; psnr: dB, peak-to-peak 2, capped at 100; ssim: Wang et al. "
         "2004, 11x11 Gaussian window (sigma 1.5), on [0, 1] images, channel mean")

ROW_TITLES = {"model": "model", "train_mean": "baseline: train mean", "identity": "baseline: identity (output = input)",
              "noise_floor": "noise floor (best possible)"}

Batch = tuple[Tensor, Tensor, Sequence[str]]
Generate = Callable[[Tensor], Tensor]


class PairScores:
    """Running means of the per-image L1, PSNR and SSIM of outputs against their targets."""

    def __init__(self) -> None:
        self.means = {name: RunningMean() for name in SCORES}

    def add(self, output: Tensor, target: Tensor) -> None:
        for name, fn in (("l1", l1_error), ("psnr", psnr), ("ssim", ssim)):
            self.means[name].update(fn(output, target).cpu())

    def add_values(self, values: dict[str, Sequence[float]]) -> None:
        for name in SCORES:
            self.means[name].update(values[name])

    def result(self) -> dict[str, Any]:
        row: dict[str, Any] = {name: mean.result()[0] for name, mean in self.means.items()}
        row["n"] = self.means["l1"].result()[1]
        return row if row["n"] else {**{name: None for name in SCORES}, "n": 0}


@torch.no_grad()
def score_pairs(generate: Generate, batches: Iterable[Batch], mean_target: Tensor, identity: bool = True,
                features: Callable[[Tensor], Tensor] | None = None, device: str | torch.device = "cpu",
                sample_rows: int = SAMPLE_ROWS, progress: Callable[[int], None] | None = None,
                ) -> tuple[dict[str, Any], Tensor | None]:
    """Score ``generate(inputs) -> outputs`` on ``batches`` of ``(inputs, targets, stems)`` (in [-1, 1], on any
    device; outputs and ``mean_target`` ``(C, H, W)`` shaped like the targets) against the true targets, beside
    the train-mean baseline and, with ``identity``, the do-nothing baseline (inputs shaped like the targets).
    ``features(images) -> (N, d)`` enables FID/KID. Returns ``(metrics, grid)``: the grid's rows are the first
    ``sample_rows`` pairs, its columns input | output | target (None for an empty split)."""
    device = torch.device(device)
    rows = {"model": PairScores(), "train_mean": PairScores()}
    if identity:
        rows["identity"] = PairScores()
    mean = mean_target.to(device, torch.float32)
    feats: dict[str, list[Tensor]] = {name: [] for name in ("real", *rows)}
    mean_features = features(as_rgb(mean[None])).cpu() if features is not None else None
    samples: list[list[Tensor]] = [[], [], []]
    n_images = kept = 0
    for inputs, targets, _stems in batches:
        x, y = inputs.to(device, torch.float32), targets.to(device, torch.float32)
        fake = generate(x).float()
        if fake.shape != y.shape:
            raise ValueError(f"the generator's output {tuple(fake.shape)} differs from the targets {tuple(y.shape)}")
        candidates = {"model": fake, "train_mean": mean.expand_as(y), "identity": x}
        for name, scores in rows.items():
            scores.add(candidates[name], y)
        if features is not None:
            feats["real"].append(features(as_rgb(y)).cpu())
            for name in rows:
                if name == "train_mean":  # one image for all: one feature vector
                    feats[name].append(mean_features.expand(len(y), -1))
                else:
                    feats[name].append(features(as_rgb(candidates[name])).cpu())
        take = max(0, min(sample_rows - kept, len(y)))
        if take:
            for column, images in zip(samples, (x, fake, y)):
                column.append(as_rgb(images[:take]).cpu())
            kept += take
        n_images += len(y)
        if progress is not None:
            progress(len(y))
    metrics: dict[str, Any] = {
        "counts": {"test_images": n_images},
        "scores": {name: scores.result() for name, scores in rows.items()},
        "fid": None,
    }
    if features is not None and n_images:
        real = torch.cat(feats["real"])
        metrics["fid"] = {name: fid_block(real, torch.cat(feats[name]), with_kid=True) for name in rows}
    grid = column_grid([torch.cat(c) for c in samples]) if kept else None
    return metrics, grid


def _batches(pairs: Sequence[tuple[Path, Path | None]], direction: str, size: int, channels: tuple[int, int],
             batch_size: int) -> Iterator[Batch]:
    """``(inputs, targets, stems)`` of ``pairs``: each side resized to ``size``, in the network's channels
    (``channels`` = (input, output)), shown as RGB."""
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        sides = [read_pair(path, partner, direction=direction, size=size) for path, partner in chunk]
        inputs = as_rgb(to_channels(torch.stack([s[0] for s in sides]), channels[0]))
        targets = as_rgb(to_channels(torch.stack([s[1] for s in sides]), channels[1]))
        yield inputs, targets, [path.stem for path, _ in chunk]


def mean_target(pairs: Sequence[tuple[Path, Path | None]], direction: str, size: int, channels: tuple[int, int],
                limit: int = MEAN_IMAGES_MAX, batch_size: int = 32, progress: bool = True) -> tuple[Tensor, int]:
    """The per-pixel mean target ``(3, size, size)`` of at most ``limit`` pairs, evenly spaced over ``pairs``,
    and how many were averaged."""
    if len(pairs) > limit:
        pairs = [pairs[int(i)] for i in np.unique(np.linspace(0, len(pairs) - 1, limit).round())]
    total = torch.zeros(3, size, size, dtype=torch.float64)
    for _, targets, _ in tqdm(_batches(pairs, direction, size, channels, batch_size), disable=not progress,
                              total=-(-len(pairs) // batch_size), unit="batch", desc="train mean"):
        total += targets.double().sum(dim=0)
    return (total / len(pairs)).float(), len(pairs)


def _noise_floor(root: Path, phase: str, direction: str, size: int, stems: Sequence[str]) -> tuple[dict | None, str]:
    """The noise-floor row for ``stems`` when ``root`` is a shapes paired view scored as it was made; else
    ``(None, why not)``."""
    view = load_paired_view(root)
    if view is None:
        return None, f"{root} is not a shapes paired view"
    wanted = {"phase": (phase, "test"), "direction": (direction, view["direction"]), "size": (size, view["size"])}
    for key, (got, made) in wanted.items():
        if got != made:
            return None, f"the view's noise floor is for {key} {made}, the evaluation uses {got}"
    per_image = view["noise_floor_per_image"]["test"]
    missing = [s for s in stems if s not in per_image]
    if missing:
        return None, f"{len(missing)} test image(s) are not in {root}'s view (e.g. {missing[0]})"
    scores = PairScores()
    scores.add_values({name: [per_image[s][k] for s in stems] for k, name in enumerate(SCORES)})
    return scores.result(), ""


def evaluate_paired(checkpoint: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                    out_dir: str | os.PathLike | None = None, phase: str = "test", eval_mode: bool = False,
                    fid_weights: str | os.PathLike | None = None, device: str = "auto", batch_size: int = 32,
                    max_images: int | None = None, progress: bool = True, ckpt: dict | None = None,
                    mask_hard: bool | None = None, mask_snap: int | None = None,
                    mask_fill: bool | None = None) -> dict[str, Any]:
    """Evaluate the paired model of ``checkpoint`` (a file or run folder; ``ckpt``: its contents, when already
    loaded) on ``phase`` of its dataset (``data_dir``, default the config's ``data.root``); see the module
    docstring. Writes ``metrics.json`` and ``samples.png`` into ``out_dir`` (default ``RUN/eval``, with
    ``eval_mode`` ``RUN/eval-evalmode``; ``mask_hard``, ``mask_snap``, ``mask_fill`` as in
    :func:`stargan.evaluation.evaluate.evaluate`, which adds ``-mask-hard``/``-mask-soft``, ``-mask-snapR``,
    ``-mask-fill``/``-no-mask-fill``) and
    returns the metrics."""
    t0 = time.perf_counter()
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise UserError(f"--max-images must be >= 1, got {max_images}")
    if not phase or "/" in phase or "\\" in phase or phase in (".", ".."):
        raise UserError(f"--phase {phase!r}: expected the name of a split folder such as test or val")
    source = str(checkpoint)
    if ckpt is None:
        ckpt = load_checkpoint(checkpoint, map_location="cpu")
    ckpt = with_mask_options(ckpt, mask_hard, source, mask_snap, mask_fill)
    family = family_of_checkpoint(ckpt, source)
    if not family.paired:
        scored = ", ".join(f.title for f in FAMILIES.values() if f.paired)
        raise UserError(f"{source}: is a {family.title} checkpoint; paired evaluation scores models trained on "
                        f"pairs ({scored})")
    dev = resolve_device(device)
    loaded = family.load(ckpt, source)
    cfg = loaded.config
    root = Path(data_dir) if data_dir is not None else Path(cfg.data.root)
    if not root.is_dir():
        where = f"--data {root}" if data_dir is not None else f"{source}: the config's data.root {root}"
        raise UserError(f"{where}: data folder not found" + ("" if data_dir is not None else "; pass --data FOLDER"))
    direction, size = cfg.data.direction, loaded.image_size
    channels = (cfg.network.input_nc, cfg.network.output_nc)
    test_pairs = paired_files(root, phase, cfg.data.format)[:max_images]
    train_pairs = paired_files(root, cfg.data.phase, cfg.data.format)
    translator = family.translator(ckpt, source, {"eval": eval_mode}, dev)
    weights = resolve_fid_weights(fid_weights)
    extractor = fid_feature_fn(weights, dev, batch_size)
    if weights is None:
        log.info(fid_unavailable_message("--fid-weights"))

    mean, n_mean = mean_target(train_pairs, direction, size, channels, batch_size=batch_size, progress=progress)

    def generate(x: Tensor) -> Tensor:
        return as_rgb(translator.fn(x, (size, size)))

    identity = channels[0] == channels[1]
    bar = tqdm(total=len(test_pairs), disable=not progress, unit="img", desc="evaluate")
    try:
        result, grid = score_pairs(generate, _batches(test_pairs, direction, size, channels, batch_size), mean,
                                   identity=identity, features=extractor, device=dev, progress=bar.update)
    finally:
        bar.close()
    floor, no_floor = _noise_floor(root, phase, direction, size, [p.stem for p, _ in test_pairs])
    result["scores"]["noise_floor"] = floor

    out = Path(out_dir) if out_dir is not None else default_out_dir(checkpoint, mask_hard, mask_snap, mask_fill)
    if out_dir is None and eval_mode:  # its own folder: a second mode must not replace the first one's results
        out = out.with_name(out.name + "-evalmode")
    out.mkdir(parents=True, exist_ok=True)
    outputs = {"metrics": str(out / METRICS_FILE)}
    if grid is not None:
        save_grid(grid, out / SAMPLES_FILE)
        outputs["samples"] = str(out / SAMPLES_FILE)
    metrics = {
        "checkpoint": source,
        "model": family.title,
        **mask_fields(cfg, mask_hard, mask_snap, mask_fill),
        "data_dir": str(root),
        "phase": phase,
        "format": cfg.data.format,
        "direction": direction,
        "image_size": size,
        "mode": "eval" if eval_mode else "paper",
        "units": UNITS,
        "counts": {**result["counts"], "train_mean_images": n_mean, "train_images": len(train_pairs)},
        "scores": result["scores"],
        "fid": result["fid"],
        "fid_weights": str(weights) if weights is not None else None,
        "skipped": {
            "identity": None if identity else f"input ({channels[0]} channels) and target ({channels[1]}) differ",
            "noise_floor": no_floor or None,
            "fid": None if weights else "FID Inception weights not found",
        },
        "outputs": outputs,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json_atomic(out / METRICS_FILE, metrics)
    return metrics


def format_paired_table(metrics: dict[str, Any]) -> str:
    """A plain-text summary of :func:`evaluate_paired`'s metrics: one row per scored output, with counts."""
    fid = metrics.get("fid") or {}
    header = ["output", "L1", "PSNR", "SSIM", "n"] + (["FID", "KID"] if fid else [])
    rows = [header]
    for name, title in ROW_TITLES.items():
        row = metrics["scores"].get(name)
        if not row:
            continue
        cells = [title, fmt_number(row["l1"], 4), fmt_number(row["psnr"], 2), fmt_number(row["ssim"], 4),
                 str(row["n"])]
        if fid:
            block = fid.get(name) or {}
            cells += [fmt_number(block.get("fid"), 2), fmt_number(block.get("kid"), 4)]
        rows.append(cells)
    counts = metrics["counts"]
    lines = [f"{metrics['model']} {metrics['direction']}: {counts['test_images']} {metrics['phase']} pairs of "
             f"{metrics['data_dir']} at {metrics['image_size']}px ({metrics['mode']} mode); train mean over "
             f"{counts['train_mean_images']} of {counts['train_images']} training pairs", text_table(rows),
             f"units: {metrics['units']}"]
    lines += [f"{key}: skipped ({reason})" for key, reason in metrics["skipped"].items() if reason]
    return "\n".join(lines)
