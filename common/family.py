"""What a model family declares about itself, so the application can drive it without knowing its name.

Each family package (``cyclegan/``, ``stargan/``, ...) builds one :class:`ModelFamily` in its ``family.py``;
the application's registry (``stargan/families.py``) collects them, and the CLI, ``evaluate``, ``compare``
and ``import-official`` dispatch through it. Nothing else compares family names.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.errors import UserError

# ``fn(padded_batch, (h, w))`` -> translated batch at the padded size, or a list of them laid side by side.
TranslateFn = Callable[[torch.Tensor, tuple[int, int]], "torch.Tensor | list[torch.Tensor]"]


@dataclass
class Translator:
    """A ready-to-run generator for ``translate``: the function, the side multiple its input must have and the
    smallest side it takes (inputs are padded up to both and the output cropped back, so any size works).

    ``min_side`` is where a smaller input would break the network: e.g. a generator that downsamples by 4 and
    normalises its bottleneck per instance needs 8, so the bottleneck keeps 2x2 values."""

    fn: TranslateFn
    multiple: int
    min_side: int = 1


@dataclass
class LoadedModel:
    """Networks recovered from a checkpoint for inference/evaluation (eval mode, on the CPU).

    ``labels`` is the label space of a label-conditioned family (None otherwise); ``image_size`` is the side the
    model was trained at; ``multiple`` the input side multiple its generator takes and ``min_side`` the smallest
    side (as :class:`Translator`). ``image_channels`` names the generators that take other than 3 image channels
    (a one-channel CycleGAN direction). ``classifiers`` are the networks in ``nets`` that are not generators but
    read labels off images (StarGAN's D for ``translate --target``); ``export`` leaves them out unless asked."""

    nets: dict[str, nn.Module]
    config: Any
    image_size: int
    multiple: int
    labels: Any = None
    min_side: int = 1
    image_channels: dict[str, int] = field(default_factory=dict)
    classifiers: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)  # identity equality and hash: a family can key a dict
class ModelFamily:
    """One model family, declared once.

    name: the config's ``model:`` value and the checkpoint's ``model`` field.
    title: for humans ("CycleGAN").
    config_class: the typed config dataclass (its ``model`` field is ``Literal[name]``).
    train: ``train(cfg, out_root=..., resume=..., device=...) -> run folder``.
    trainer_class: the trainer (``TrainerBase`` subclass), for benchmarks and step callbacks.
    train_image_size: the side of the training images of a config (benchmarks).
    load: ``load(ckpt, source) -> LoadedModel``.
    translator: ``translator(ckpt, source, options, device) -> Translator``; ``options`` holds only names from
        ``translate_options`` (the CLI refuses the others for this family, naming them).
    translate_options: the ``translate`` options this family understands (CLI parameter names).
    is_official: does a raw official ``state_dict`` (``module.`` prefixes stripped from the keys) belong to
        this family.
    import_official: ``import_official(path, options) -> (checkpoint, one-line summary)``.
    import_options: the ``import-official`` options this family understands.
    official_hint: what an official file of this family looks like, for the error on an unknown file.
    label_conditioned: its generator takes target labels (``evaluate`` and attribute editing need that).
    paired: it trains on aligned (input, target) pairs, so its outputs can be scored against a true target
        (``evaluate``: L1/PSNR/SSIM); unpaired comparisons such as ``compare`` are not for it.
    """

    name: str
    title: str
    config_class: type
    train: Callable[..., Path]
    trainer_class: type
    train_image_size: Callable[[Any], int]
    load: Callable[[dict, str], LoadedModel]
    translator: Callable[[dict, str, Mapping[str, Any], torch.device], Translator]
    is_official: Callable[[Mapping[str, Any]], bool]
    import_official: Callable[[str | os.PathLike, Mapping[str, Any]], tuple[dict, str]]
    translate_options: tuple[str, ...] = ()
    import_options: tuple[str, ...] = ()
    official_hint: str = ""
    label_conditioned: bool = False
    paired: bool = False


def option_flag(name: str) -> str:
    """CLI spelling of an option's parameter name: ``target_vector`` -> ``--target-vector``."""
    return "--" + name.replace("_", "-")


def check_options(family: ModelFamily, given: Mapping[str, Any], allowed: tuple[str, ...], source: str) -> None:
    """Refuse options (those not None/False in ``given``) that ``family`` does not understand, naming them."""
    # Identity checks: `v not in (None, False)` would also pass over a given 0 or 0.0 (0 == False).
    foreign = [k for k, v in given.items() if v is not None and v is not False and v != () and k not in allowed]
    if foreign:
        flags = "/".join(option_flag(k) for k in foreign)
        valid = ", ".join(option_flag(k) for k in allowed) or "none"
        verb = "does" if len(foreign) == 1 else "do"
        raise UserError(f"{source}: is a {family.title} model; {flags} {verb} not apply to it "
                        f"(its options: {valid})")
