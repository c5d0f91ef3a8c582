"""`stargan demo`: data -> classifier -> StarGAN -> evaluation -> picture, within a time budget, no input needed.

The StarGAN settings below were tuned on a 2-core CPU: there 3,000 iterations at 32x32 took 1m54s to 4m00s (the
machine's speed drifts from day to day) and the whole demo 2m02s to 4m17s, with 99.4-99.8% (the default, preserving
recipe) and 100% (`--recipe official`) colour-change accuracy on the held-out images (see README).
"""
from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path

from common.checkpoint import load_checkpoint
from common.config import apply_overrides, from_dict
from common.data.shapes import SHAPE_GROUP, SHAPES_ATTRS, SHAPES_EXCLUSIVE, load_schema, make_dataset
from common.device import resolve_device
from common.errors import UserError
from common.files import link_or_copy, write_json_atomic
from common.runs import new_run_dir
from common.tables import fmt_percent, fmt_seconds
from stargan.config import StarGANConfig
from stargan.evaluation.classify import train_attribute_classifier
from stargan.evaluation.evaluate import evaluate
from stargan.evaluation.table import format_table
from stargan.trainer import train

log = logging.getLogger(__name__)

# A small StarGAN: 32x32 images, narrow nets, LR decay over the last third. Two changes from the official
# recipe fit the CPU budget: n_critic 2 and lr 5e-4 (measured at 1,200 iterations on 1,000 images:
# colour-change accuracy 54% with n_critic 5 / lr 2e-4, 89% with these). WGAN-GP, lambda_cls 1, lambda_rec 10
# and shuffled targets are official.
DEMO_STARGAN = {
    "name": "demo",
    "data": {"image_size": 32, "batch_size": 16},
    "network": {"g_conv_dim": 16, "d_conv_dim": 16, "g_repeat_num": 3, "d_repeat_num": 4},
    "optim": {"g_lr": 0.0005, "d_lr": 0.0005, "n_critic": 2, "num_iters": 3000, "num_iters_decay": 1000},
    "run": {"num_workers": 0},
    "log": {"progress": True, "every_steps": 50, "image_every_steps": 500, "save_every_steps": 1000,
            "keep_last": 2},
}
# What `--recipe` adds to DEMO_STARGAN. "preserving" (the default): the attention mask with its sparsity and
# binarisation penalties, no TV, the mask through a guided filter of radius 2 with the input as guide (its border
# sits on the object's outline instead of leaving a rim of the old colour), and an EMA of G. docs/fidelity.md
# measured it on the same data as the official losses: colour-change accuracy 99.4-99.8% (seeds 0, 1) vs
# 100%, every colour's counterfactual error x0.34-0.45 of doing nothing vs x0.93-1.25 (without the filter
# x0.43-0.51). "official": the official networks and losses.
RECIPES: dict[str, dict] = {
    "preserving": {"network": {"attention_mask": True, "mask_guide_radius": 2},
                   "loss": {"lambda_mask": 0.02, "lambda_mask_tv": 0.0, "lambda_mask_binary": 0.05},
                   "ema": {"decay": 0.999}},
    "official": {},
}
# Inference only, with the preserving recipe from 64x64 up (training is unchanged; `stargan evaluate --mask-soft`
# undoes it): the mask thresholded at 0.5 and snapped to the input's edges by a guided filter of radius 6 px per 64
# of the image side (as configs/stargan/shapes64.yaml; not its network.mask_snap_fill, which was not measured on the
# demo), so a recoloured object takes the new colour to its
# outline instead of a blend with the old one. The same weights, seeds 0 and 1 at 64x64 (docs/fidelity.md,
# 2026-12-06): every colour x0.31-0.46 of doing nothing instead of x0.37-0.52 (seed 0's Yellow x0.46 instead of
# x0.52). At 32x32 (seed 0) it gave the colours nothing (x0.38-0.45 instead of x0.37-0.45) and cost the
# background flip (x0.21 instead of x0.09; all translations 0.078 instead of 0.048), so smaller images stay soft.
THRESHOLD_FROM_SIZE = 64
SNAP_RADIUS_PER_64 = 6


def inference_options(recipe: str, size: int) -> dict:
    """What the demo adds to ``recipe``'s config for translating (the checkpoint carries it to evaluate and
    translate): the thresholded, snapped mask for the preserving recipe at image side ``size`` >= 64."""
    if recipe != "preserving" or size < THRESHOLD_FROM_SIZE:
        return {}
    return {"network": {"mask_hard": True, "mask_snap_radius": math.floor(SNAP_RADIUS_PER_64 * size / 64 + 0.5)}}


DATA = {"n": 3000}
CLASSIFIER = {"epochs": 2, "width": 16, "batch_size": 64}
# The classifier also learns shape, position and size; it needs to see this many images (2 epochs of the default
# 2,700 training images) to judge reliably, so a smaller dataset gets more epochs.
CLASSIFIER_MIN_IMAGES = 5400
EVAL_RESERVE_S = 45.0


def colour_change_accuracy(metrics: dict, group: list[str]) -> tuple[float | None, int]:
    """Accuracy over the exclusive group's targets, weighted by their sample counts."""
    per = (metrics.get("target_accuracy") or {}).get("per_attribute", {})
    rows = [per[a] for a in group if a in per and per[a]["accuracy"] is not None]
    n = sum(r["n"] for r in rows)
    return (sum(r["accuracy"] * r["n"] for r in rows) / n if n else None), n


def _stargan_config(overrides: tuple[str, ...], seed: int, size: int, iterations: int | None,
                    data_dir: Path, schema: dict, device: str, max_seconds: float, recipe: str):
    for text in overrides:
        if text.split("=", 1)[0].strip() in ("data.image_size", "data.datasets"):
            # The demo makes its data at --size: the StarGAN must see it at that size, from that folder.
            raise UserError(f"--set {text!r}: the demo sets this itself; use --size for the image side")
    if recipe not in RECIPES:
        raise UserError(f"--recipe {recipe!r} is not one of {sorted(RECIPES)}")
    config = copy.deepcopy(DEMO_STARGAN)
    for section, values in RECIPES[recipe].items():
        config.setdefault(section, {}).update(values)
    config["seed"] = seed
    config["data"]["image_size"] = size
    if iterations:
        config["optim"].update(num_iters=iterations, num_iters_decay=iterations // 3)
    config["data"]["datasets"] = [{
        "name": "shapes", "format": "celeba", "image_dir": str(data_dir / "images"),
        "attr_path": str(data_dir / "list_attr_celeba.txt"),
        "partition_path": str(data_dir / "list_eval_partition.txt"),
        "selected_attrs": schema["attrs"], "exclusive": schema["exclusive"], "crop_size": None,
    }]
    config["run"].update(device=device, max_seconds=max_seconds)
    config = apply_overrides(config, overrides)
    network = config.setdefault("network", {})
    # After --set, so that `--set network.mask_hard=false` (or no mask at all) drops the snap with the threshold,
    # and an override of either key wins.
    if network.get("attention_mask") and network.get("mask_hard") is not False:
        for key, value in inference_options(recipe, size).get("network", {}).items():
            network.setdefault(key, value)
    return from_dict(StarGANConfig, config, source="stargan demo --set")


def run_demo(out: Path | None = None, budget_minutes: float = 5.0, device: str = "auto", seed: int = 0,
             out_root: Path = Path("runs"), n_images: int | None = None, iterations: int | None = None,
             overrides: tuple[str, ...] = (), size: int = 32, recipe: str = "preserving") -> dict:
    """Run the whole demo, logging its progress and results; returns a summary dict (also written beside the
    results as demo.json).

    ``n_images`` / ``iterations`` shrink the demo (tests); the LR still decays over the last third.
    ``recipe`` picks the StarGAN losses (:data:`RECIPES`); ``overrides`` (``KEY=VALUE``) change the StarGAN config
    after it; ``size`` is the image side."""
    # Checked before any work: a bad --set must not cost the dataset and the classifier first.
    _stargan_config(overrides, seed, size, iterations, Path("data"),
                    {"attrs": list(SHAPES_ATTRS), "exclusive": [list(g) for g in SHAPES_EXCLUSIVE]}, "cpu", 60.0,
                    recipe)
    t0 = time.perf_counter()
    budget_s = budget_minutes * 60.0
    dev = resolve_device(device)
    out = Path(out) if out is not None else new_run_dir(out_root, "demo")
    out.mkdir(parents=True, exist_ok=True)
    log.info(f"[demo] output: {out}   device: {dev}   budget: {fmt_seconds(budget_s)}")

    data_dir = out / "data"
    n_images = n_images or DATA["n"]
    log.info(f"[demo] 1/4 making the shapes dataset ({n_images} images, {size}x{size}) ...")
    made = make_dataset(data_dir, n=n_images, size=size, seed=seed)
    schema = load_schema(data_dir)
    colours = schema["exclusive"][0]

    log.info("[demo] 2/4 training the attribute classifier used for scoring ...")
    clf_path = out / "classifier.pt"
    # Without --attrs: the dataset's attributes and its nuisance ones, so evaluation can check that shape,
    # position and size are kept.
    epochs = max(CLASSIFIER["epochs"], math.ceil(CLASSIFIER_MIN_IMAGES / max(1, made["n_train"])))
    clf_meta = train_attribute_classifier(data_dir, clf_path, image_size=size, seed=seed, device=str(dev),
                                          **{**CLASSIFIER, "epochs": epochs})

    remaining = budget_s - (time.perf_counter() - t0) - EVAL_RESERVE_S
    cfg = _stargan_config(overrides, seed, size, iterations, data_dir, schema, str(dev), max(30.0, remaining),
                          recipe)
    log.info(f"[demo] 3/4 training StarGAN ({recipe} recipe, {cfg.optim.num_iters} iterations, at most "
             f"{fmt_seconds(cfg.run.max_seconds)}) ...")
    t_train = time.perf_counter()
    run_dir = train(cfg, out_root=out / "train")
    train_s = time.perf_counter() - t_train

    log.info("[demo] 4/4 evaluating on the held-out test images ...")
    ckpt = run_dir / "checkpoints" / "latest.pt"
    metrics = evaluate(ckpt, data_dir, out_dir=out / "eval", classifier=clf_path, device=str(dev), progress=False)
    grid = out / "grid.png"
    link_or_copy(metrics["outputs"]["samples"], grid)

    steps = load_checkpoint(ckpt)["counters"]["global_step"]
    acc, acc_n = colour_change_accuracy(metrics, colours)
    cf = (metrics.get("counterfactual") or {}).get("overall") or {}
    nuisance = metrics.get("nuisance") or {}
    summary = {
        "out": str(out), "device": str(dev), "seconds": round(time.perf_counter() - t0, 1),
        "recipe": recipe, "overrides": list(overrides), "train_seconds": round(train_s, 1),
        "iterations": steps, "iterations_planned": cfg.optim.num_iters,
        "colour_change_accuracy": acc, "colour_change_n": acc_n,
        "target_accuracy": (metrics.get("target_accuracy") or {}).get("overall"),
        "counterfactual_l1": cf.get("l1"), "baseline_l1": cf.get("baseline_l1"), "counterfactual_n": cf.get("n"),
        "counterfactual_l1_ratio_per_attribute": {
            attr: row.get("l1_ratio") for attr, row in
            ((metrics.get("counterfactual") or {}).get("per_attribute") or {}).items()},
        "classifier_test_accuracy": (clf_meta.get("test_accuracy") or {}).get("overall", {}).get("accuracy"),
        # Shape, position and size kept over all translations, and the classifier on the real images (the ceiling).
        "nuisance_kept": {g: row["accuracy"] for g, row in (nuisance.get("overall") or {}).items()},
        "nuisance_real": {g: row["accuracy"] for g, row in (nuisance.get("real") or {}).items()},
        "shape_kept_per_attribute": {t: (groups.get(SHAPE_GROUP) or {}).get("accuracy")
                                     for t, groups in (nuisance.get("per_target") or {}).items()},
        "grid": str(grid), "metrics": metrics["outputs"]["metrics"], "run_dir": str(run_dir),
        "dataset_images": made["n"],
    }
    write_json_atomic(out / "demo.json", summary, indent=2)

    log.info("\n" + format_table(metrics) + "\n")
    log.info(f"demo finished in {fmt_seconds(summary['seconds'])} (budget {fmt_seconds(budget_s)}); "
             f"StarGAN trained {steps}/{cfg.optim.num_iters} iterations in {fmt_seconds(train_s)}")
    log.info(f"  colour-change accuracy: {fmt_percent(acc)} of {acc_n} translations judged by the classifier "
             f"(chance: {100 / len(colours):.0f}%)")
    if cf:
        log.info(f"  counterfactual L1: {cf['l1']:.3f} vs do-nothing baseline {cf['baseline_l1']:.3f} "
                 f"(n={cf['n']}, lower is better, images in [-1, 1])")
        # Per attribute, so that one easy attribute cannot hide the others.
        ratios = ", ".join(f"{attr} x{ratio:.2f}" for attr, ratio in
                           summary["counterfactual_l1_ratio_per_attribute"].items() if ratio is not None)
        log.info(f"  L1 / do-nothing per attribute (< 1 helps): {ratios}")
    if nuisance:
        shape = ", ".join(f"{attr} {fmt_percent(kept)}" for attr, kept in summary["shape_kept_per_attribute"].items())
        log.info(f"  shape kept per attribute: {shape}")
        kept = ", ".join(f"{g} {fmt_percent(a)} ({fmt_percent(summary['nuisance_real'].get(g))})"
                         for g, a in summary["nuisance_kept"].items())
        log.info(f"  kept over all translations (the classifier on real images): {kept}")
    log.info(f"  picture:     {grid}  (rows: test inputs; columns: input, then one target attribute each)")
    log.info(f"  metrics:     {metrics['outputs']['metrics']}")
    log.info(f"  model:       {ckpt}")
    log.info(f"  tensorboard: tensorboard --logdir {run_dir / 'tensorboard'}")
    return summary
