"""Config of ``stargan compare``: k(k-1)/2 pairwise CycleGANs against one StarGAN on the same data.

Loaded strictly with :mod:`common.config` (unknown keys, wrong types and invalid choices are one-line
UserErrors). The ``cyclegan`` and ``stargan`` sections are *partial* trainer configs: they are merged onto the
trainers' defaults, and the keys the comparison derives itself (data location, image size, schedule length,
run name, seed) may not be set there, so both methods are guaranteed to see the same data and budget.
See docs/compare.md for every key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from common.config import apply_overrides, from_dict, read_yaml
from common.data.shapes import SHAPES_EXCLUSIVE
from common.errors import UserError

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

# Derived by the comparison; a user value would silently break the equal-data / equal-budget guarantee.
DERIVED_KEYS = {
    "cyclegan": ("model", "name", "seed", "data.root", "data.load_size", "data.crop_size", "data.preprocess",
                 "data.max_dataset_size", "optim.n_epochs", "optim.n_epochs_decay", "run.stop_after_steps",
                 "run.max_seconds", "run.device"),
    "stargan": ("model", "name", "seed", "data.datasets", "data.image_size", "optim.num_iters",
                "optim.num_iters_decay", "run.stop_after_steps", "run.max_seconds", "run.device"),
}


@dataclass
class CompareData:
    """The k domains and where their images come from.

    kind ``shapes``: generated into ``<out>/data`` (``n`` images of ``size`` px from ``seed``; per-colour
    ``test_fraction`` held out with ground-truth counterfactuals); domains are shapes colours.
    kind ``imagefolder`` (RaFD): ``root/<domain>/`` per domain; the test split is ``test_root/<domain>/`` when
    given (the official RaFD train/test folders), else a seeded ``test_fraction`` of each domain folder.
    kind ``celeba``: ``root`` = image folder, ``attr_path`` = list_attr_celeba.txt; the domains are attributes
    of which a kept image has exactly one set (e.g. hair colours); split by ``partition_path`` (2 = test) or
    the official seeded split (``test_count`` rows of all rows, ``split_seed``).
    Real images are centre-cropped to ``crop_size`` (null: the shorter side) and resized to ``image_size``
    once, so both methods train on the same pixels.
    """

    kind: Literal["shapes", "imagefolder", "celeba"] = "shapes"
    domains: list[str] = field(default_factory=list)
    # shapes
    n: int = 2000
    size: int = 32
    seed: int = 0
    test_fraction: float = 0.1
    # imagefolder / celeba
    root: str | None = None
    test_root: str | None = None
    attr_path: str | None = None
    partition_path: str | None = None
    test_count: int = 2000
    split_seed: int = 1234
    image_size: int | None = None
    crop_size: int | None = None

    def validate(self, where: str) -> None:
        if len(self.domains) < 2:
            raise UserError(f"{where}: key 'data.domains' must list at least 2 domains, got {self.domains}")
        if len(set(self.domains)) != len(self.domains):
            raise UserError(f"{where}: key 'data.domains' has duplicates: {self.domains}")
        bad = [d for d in self.domains if not _NAME_RE.match(d)]
        if bad:
            raise UserError(f"{where}: key 'data.domains': {bad[0]!r} is not a valid domain name "
                            "(letters, digits, '_', '.', '-'; it names folders)")
        if not 0.0 < self.test_fraction < 1.0 and not (self.kind == "imagefolder" and self.test_root):
            raise UserError(f"{where}: key 'data.test_fraction' must be strictly between 0 and 1, "
                            f"got {self.test_fraction}")
        if self.kind == "shapes":
            colours = SHAPES_EXCLUSIVE[0]
            unknown = [d for d in self.domains if d not in colours]
            if unknown:
                raise UserError(f"{where}: key 'data.domains': unknown domain {unknown[0]!r} for shapes data; "
                                f"valid domains: {', '.join(colours)}")
            if self.image_size is not None and self.image_size != self.size:
                raise UserError(f"{where}: key 'data.image_size' must be null or equal data.size ({self.size}) "
                                "for shapes data")
            for key in ("root", "test_root", "attr_path", "partition_path"):
                if getattr(self, key) is not None:
                    raise UserError(f"{where}: key 'data.{key}' applies to imagefolder/celeba data, not shapes")
        else:
            if not self.root:
                raise UserError(f"{where}: key 'data.root' is required for {self.kind} data")
            if self.kind == "celeba" and not self.attr_path:
                raise UserError(f"{where}: key 'data.attr_path' is required for celeba data")
            if self.kind == "imagefolder" and (self.attr_path or self.partition_path):
                raise UserError(f"{where}: keys 'data.attr_path'/'data.partition_path' apply to celeba data")
            if self.kind == "celeba" and self.test_root:
                raise UserError(f"{where}: key 'data.test_root' applies to imagefolder data")
        if self.resolved_image_size < 8 or self.resolved_image_size % 4:
            raise UserError(f"{where}: key 'data.image_size' must be a multiple of 4 and >= 8 (the generators "
                            f"down- and up-sample twice), got {self.resolved_image_size}")
        if self.crop_size is not None and self.crop_size < 1:
            raise UserError(f"{where}: key 'data.crop_size' must be >= 1 or null")

    @property
    def resolved_image_size(self) -> int:
        if self.kind == "shapes":
            return self.size
        return self.image_size if self.image_size is not None else 128


@dataclass
class CompareBudget:
    """``images``: every model (each CycleGAN, and the StarGAN) trains on ``images_per_model`` images.
    ``time``: ``total_seconds`` of training wall clock, half for the StarGAN and half for the k(k-1)/2
    CycleGANs together (each gets ``total_seconds / 2 / pairs``); step counts come from a timing probe of
    ``probe_steps`` steps and the seconds are also enforced as a hard cap (run.max_seconds)."""

    mode: Literal["images", "time"] = "images"
    images_per_model: int | None = None
    total_seconds: float | None = None
    probe_steps: int = 5

    def validate(self, where: str) -> None:
        if self.mode == "images" and (self.images_per_model is None or self.images_per_model < 1):
            raise UserError(f"{where}: key 'budget.images_per_model' must be >= 1 with budget.mode images")
        if self.mode == "time" and (self.total_seconds is None or self.total_seconds <= 0):
            raise UserError(f"{where}: key 'budget.total_seconds' must be > 0 with budget.mode time")
        if self.probe_steps < 1:
            raise UserError(f"{where}: key 'budget.probe_steps' must be >= 1")


@dataclass
class CompareClassifier:
    """The domain classifier that judges every translation, trained once on the real training images."""

    epochs: int = 5
    width: int = 32
    batch_size: int = 64
    lr: float = 0.001

    def validate(self, where: str) -> None:
        if self.epochs < 1 or self.width < 1 or self.batch_size < 1 or self.lr <= 0:
            raise UserError(f"{where}: keys 'classifier.epochs/width/batch_size' must be >= 1 and "
                            "'classifier.lr' > 0")


@dataclass
class CompareEval:
    """max_images_per_domain: the first N test images of each domain (null: all). fid_weights: the FID
    Inception weights (null: STARGAN_FID_WEIGHTS or the torch hub cache; FID is skipped when absent).
    grid_inputs: test inputs per source domain shown in the report grids."""

    max_images_per_domain: int | None = 100
    batch_size: int = 32
    fid_weights: str | None = None
    grid_inputs: int = 2

    def validate(self, where: str) -> None:
        if self.max_images_per_domain is not None and self.max_images_per_domain < 1:
            raise UserError(f"{where}: key 'eval.max_images_per_domain' must be >= 1 or null")
        if self.batch_size < 1 or self.grid_inputs < 0:
            raise UserError(f"{where}: keys 'eval.batch_size' (>= 1) / 'eval.grid_inputs' (>= 0) out of range")


@dataclass
class CompareConfig:
    model: Literal["compare"] = "compare"
    name: str = "compare"
    seed: int = 0
    out: str | None = None
    data: CompareData = field(default_factory=CompareData)
    budget: CompareBudget = field(default_factory=CompareBudget)
    cyclegan: dict = field(default_factory=dict)
    stargan: dict = field(default_factory=dict)
    classifier: CompareClassifier = field(default_factory=CompareClassifier)
    eval: CompareEval = field(default_factory=CompareEval)

    def validate(self, where: str) -> None:
        if not _NAME_RE.match(self.name):
            raise UserError(f"{where}: key 'name' must be letters, digits, '_', '.', '-', got {self.name!r}")
        for section in ("cyclegan", "stargan"):
            for key in DERIVED_KEYS[section]:
                if _has_key(getattr(self, section), key.split(".")):
                    raise UserError(f"{where}: key '{section}.{key}' is set by the comparison (data/budget); "
                                    "remove it")

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / f"compare-{self.name}"

    @property
    def pairs(self) -> list[tuple[str, str]]:
        d = self.data.domains
        return [(d[i], d[j]) for i in range(len(d)) for j in range(i + 1, len(d))]


def _has_key(data: Any, path: Sequence[str]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def load_compare_config(path: str | Path, overrides: Sequence[str] = ()) -> CompareConfig:
    """Read a compare YAML, apply ``--set`` overrides and build the strict config (UserError on any problem)."""
    data = apply_overrides(read_yaml(path), overrides)
    if data.get("model", "compare") != "compare":
        raise UserError(f"{path}: key 'model' must be 'compare' for `stargan compare`, got {data.get('model')!r} "
                        "(train single models with `stargan train`)")
    return from_dict(CompareConfig, data, source=str(path))
