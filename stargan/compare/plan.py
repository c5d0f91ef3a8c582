"""What a comparison trains: the two methods, each model's trainer config (derived from the compare config, so
both methods see the same data) and the step at which its budget is spent."""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config import from_dict, to_dict
from common.family import ModelFamily
from stargan.compare.config import CompareConfig
from stargan.compare.layout import DOMAINS_DIR, PAIRS_DIR, pair_name
from stargan.families import CYCLEGAN, STARGAN

STARGAN_DATASET = "domain"


@dataclass(frozen=True, eq=False)
class Method:
    """One side of the comparison.

    ``images_per_sample``: training images one batch sample draws (a CycleGAN sample is an A image and a B
    image; its trainer counts the A images only)."""

    family: ModelFamily
    title: str
    images_per_sample: int

    @property
    def key(self) -> str:
        """Its key in plan.json, results.json and the progress lines, and its folder under ``<out>``."""
        return self.family.name


PAIRWISE_CYCLEGAN = Method(CYCLEGAN, "CycleGAN (pairwise)", 2)
ONE_STARGAN = Method(STARGAN, "StarGAN", 1)
METHODS = (PAIRWISE_CYCLEGAN, ONE_STARGAN)


@dataclass
class ModelPlan:
    """One model to train: its trainer config, where its run folder lives and the budget it ends at."""

    kind: Method
    name: str
    out_root: Path
    config: Any
    steps: int  # global_step at which the run is complete
    images: int  # training images drawn from the data by then
    epochs: int | None = None  # CycleGAN only
    seconds: float | None = None  # time budget: wall-clock cap of the whole run
    pair: tuple[str, str] | None = None  # CycleGAN only: (A, B), G_A translates A -> B

    @property
    def method(self) -> str:
        return self.kind.key


def _deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def cyclegan_config(cfg: CompareConfig, source: str, pair: tuple[str, str], out: Path,
                    epochs: tuple[int, int] = (1, 0), stop: int | None = None, max_seconds: float | None = None):
    """The CycleGAN trainer config of ``pair``: the compare config's ``cyclegan`` section plus what the
    comparison derives (data, schedule, name)."""
    name = pair_name(*pair)
    size = cfg.data.resolved_image_size
    # The images are already cropped and resized (both methods see the same pixels), so CycleGAN's own
    # preprocessing is reduced to the flip: no 286->256 random crop that the StarGAN recipe does not have.
    derived = {
        "model": CYCLEGAN.name, "name": name, "seed": cfg.seed,
        "data": {"root": str(out / PAIRS_DIR / name), "preprocess": "none", "load_size": size, "crop_size": size},
        "optim": {"n_epochs": epochs[0], "n_epochs_decay": epochs[1]},
        "run": {"stop_after_steps": stop, "max_seconds": max_seconds},
    }
    conf = from_dict(CYCLEGAN.config_class, _deep_merge(cfg.cyclegan, derived), source=source, prefix="cyclegan.")
    # Checked here, before any data is prepared: the pairs' images come at the comparison's size, not the
    # CycleGAN section's crop, so its own config validation cannot see it.
    size_key = "data.size" if cfg.data.kind == "shapes" else "data.image_size"
    conf.network.check_side(source, size_key, size, section="cyclegan.network")
    return conf


def stargan_config(cfg: CompareConfig, source: str, out: Path, iters: int = 1, max_seconds: float | None = None):
    """The StarGAN trainer config: the ``stargan`` section plus the domain view as its one dataset."""
    derived = {
        "model": STARGAN.name, "name": STARGAN.name, "seed": cfg.seed,
        "data": {"image_size": cfg.data.resolved_image_size, "datasets": [{
            "name": STARGAN_DATASET, "format": "imagefolder", "image_dir": str(out / DOMAINS_DIR / "train"),
            "attr_path": None, "crop_size": None, "test_fraction": 0.0}]},
        # Half of the iterations decay the LR, the official ratio (200k iterations, 100k decaying).
        "optim": {"num_iters": iters, "num_iters_decay": iters // 2},
        "run": {"max_seconds": max_seconds},
    }
    return from_dict(STARGAN.config_class, _deep_merge(cfg.stargan, derived), source=source, prefix="stargan.")


def _cyclegan_schedule(target_steps: int, n_a: int, n_b: int, batch_size: int) -> tuple[int, int, int, int | None]:
    """``(epochs, steps, images, stop_after_steps)`` for about ``target_steps`` CycleGAN steps.

    Whole epochs, so the linear LR decay (half the epochs, as the official 100 + 100) runs to its end; a
    budget below one epoch stops inside the first epoch instead. One step draws ``batch_size`` images of A
    and as many of B, an epoch max(|A|, |B|) of each."""
    per_epoch = math.ceil(max(n_a, n_b) / batch_size)
    images_per_step = PAIRWISE_CYCLEGAN.images_per_sample * batch_size
    if target_steps < per_epoch:
        return 1, target_steps, images_per_step * target_steps, target_steps
    epochs = max(1, round(target_steps / per_epoch))
    return epochs, epochs * per_epoch, PAIRWISE_CYCLEGAN.images_per_sample * epochs * max(n_a, n_b), None


@dataclass
class _Budget:
    """Target steps and time cap of one model of each method."""

    cyclegan_steps: int
    stargan_steps: int
    cyclegan_seconds: float | None = None
    stargan_seconds: float | None = None


def _budget(cfg: CompareConfig, batch_cyclegan: int, batch_stargan: int, probe: dict[str, float] | None) -> _Budget:
    budget = cfg.budget
    if budget.mode == "images":
        def steps(method: Method, batch_size: int) -> int:
            return max(1, round(budget.images_per_model / (method.images_per_sample * batch_size)))

        return _Budget(steps(PAIRWISE_CYCLEGAN, batch_cyclegan), steps(ONE_STARGAN, batch_stargan))
    cyclegan_seconds = budget.total_seconds / 2 / len(cfg.pairs)
    stargan_seconds = budget.total_seconds / 2
    probe = probe or {m.key: 1.0 for m in METHODS}
    return _Budget(max(1, int(cyclegan_seconds / probe[PAIRWISE_CYCLEGAN.key])),
                   max(1, int(stargan_seconds / probe[ONE_STARGAN.key])), cyclegan_seconds, stargan_seconds)


def build_plan(cfg: CompareConfig, source: str, out: Path, counts: dict[str, int] | None,
               probe: dict[str, float] | None = None) -> list[ModelPlan]:
    """The models to train, in training order. ``counts``: training images per domain (None before the data
    exists: a dry run, where CycleGAN epochs are estimated with one image per step). ``probe``: seconds per
    step of each method (time budget)."""
    batch_cyclegan = cyclegan_config(cfg, source, cfg.pairs[0], out).data.batch_size
    batch_stargan = stargan_config(cfg, source, out).data.batch_size
    budget = _budget(cfg, batch_cyclegan, batch_stargan, probe)
    plans = []
    for a, b in cfg.pairs:
        if counts:
            n_a, n_b = counts[a], counts[b]
        else:
            n_a = n_b = budget.cyclegan_steps * batch_cyclegan
        epochs, steps, images, stop = _cyclegan_schedule(budget.cyclegan_steps, n_a, n_b, batch_cyclegan)
        n_const = math.ceil(epochs / 2)
        conf = cyclegan_config(cfg, source, (a, b), out, (n_const, epochs - n_const), stop, budget.cyclegan_seconds)
        plans.append(ModelPlan(PAIRWISE_CYCLEGAN, conf.name, out / PAIRWISE_CYCLEGAN.key, conf, steps, images,
                               epochs, budget.cyclegan_seconds, (a, b)))
    steps = budget.stargan_steps
    conf = stargan_config(cfg, source, out, steps, budget.stargan_seconds)
    plans.append(ModelPlan(ONE_STARGAN, conf.name, out / ONE_STARGAN.key, conf, steps,
                           steps * ONE_STARGAN.images_per_sample * batch_stargan, None, budget.stargan_seconds))
    return plans


def plan_signature(plans: Sequence[ModelPlan]) -> dict:
    """What makes a trained model what it is: the configs minus logging, loader workers and the data paths
    (those follow --out, which may be spelled differently from one invocation to the next)."""
    out = {}
    for p in plans:
        d = to_dict(p.config)
        d.pop("log", None)
        d["run"].pop("num_workers", None)
        d["data"].pop("root", None)
        for entry in d["data"].get("datasets", []):
            entry.pop("image_dir", None)
        out[p.name] = {"config": d, "steps": p.steps, "images": p.images}
    return out


def _describe_model(p: ModelPlan, data_ready: bool) -> str:
    bs = p.config.data.batch_size
    if p.kind is PAIRWISE_CYCLEGAN:
        when = f"{p.epochs} epoch(s)" if data_ready else "epochs once the data exists"
        line = f"  {p.method} {p.name}: {p.steps} steps x batch {bs} (A+B), {when}, ~{p.images} images"
    else:
        line = f"  {p.method}: {p.steps} iterations x batch {bs}, {p.images} images"
    return line if p.seconds is None else f"{line}, cap {p.seconds:.1f}s"


def describe_plan(cfg: CompareConfig, plans: Sequence[ModelPlan], out: Path, data_ready: bool,
                  steps_known: bool = True) -> str:
    """The plan as text. ``data_ready``: CycleGAN epochs are known (they depend on the pair sizes);
    ``steps_known``: False for a time budget whose probe has not run yet."""
    k, pairs = len(cfg.data.domains), cfg.pairs
    b = cfg.budget
    lines = [f"compare {cfg.name}: k={k} domains ({', '.join(cfg.data.domains)}) -> {len(pairs)} pairwise "
             f"CycleGANs + 1 StarGAN, {cfg.data.kind} data at {cfg.data.resolved_image_size}px",
             f"out: {out}"]
    if b.mode == "images":
        lines.append(f"budget: {b.images_per_model} training images per model")
    else:
        lines.append(f"budget: {b.total_seconds:g}s of training in all: {b.total_seconds / 2:g}s for the StarGAN, "
                     f"{b.total_seconds / 2:g}s shared by the CycleGANs ({b.total_seconds / 2 / len(pairs):.1f}s "
                     "each); steps from a timing probe")
    for p in plans:
        if steps_known:
            lines.append(_describe_model(p, data_ready))
        else:
            lines.append(f"  {p.method} {p.name}: steps from the timing probe, cap {p.seconds:.1f}s")
    return "\n".join(lines)
