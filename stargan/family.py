"""StarGAN declares itself to the application: config, trainer, inference and official import."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from common.family import LoadedModel, ModelFamily, Translator
from stargan.config import StarGANConfig
from stargan.import_official import convert_to_checkpoint
from stargan.model import networks_from_checkpoint
from stargan.networks import DOWNSAMPLING
from stargan.trainer import StarGANTrainer
from stargan.translate import TargetSpec, make_translator

IMPORT_OPTIONS = ("attrs", "exclusive", "datasets", "dataset_names")
# G halves the side twice and normalises each instance: from 8 up its bottleneck keeps 2x2 values (InstanceNorm
# of a single value per channel fails).
MIN_SIDE = 2 * DOWNSAMPLING


def _load(ckpt: dict, source: str) -> LoadedModel:
    cfg, nets, labels = networks_from_checkpoint(ckpt, source)
    return LoadedModel(nets=nets, config=cfg, image_size=cfg.data.image_size, multiple=DOWNSAMPLING,
                       labels=labels, min_side=MIN_SIDE, classifiers=("D",))


def _translator(ckpt: dict, source: str, options: Mapping[str, Any], device: torch.device) -> Translator:
    strength = options.get("strength")
    spec = TargetSpec(options.get("target"), options.get("target_vector"), bool(options.get("all_targets")),
                      1.0 if strength is None else strength, options.get("dataset"))
    spec.validate()
    loaded = _load(ckpt, source)
    nets = {k: n.to(device) for k, n in loaded.nets.items()}
    return Translator(make_translator(nets, loaded.labels, spec, loaded.image_size), loaded.multiple, MIN_SIDE)


def _is_official(keys: frozenset[str]) -> bool:
    # Official StarGAN G and D are an nn.Sequential called ``main``.
    return "main.0.weight" in keys


def _import_official(path, options: Mapping[str, Any]) -> tuple[dict, str]:
    return convert_to_checkpoint(path, options.get("attrs"), tuple(options.get("exclusive") or ()),
                                 options.get("datasets"), options.get("dataset_names"))


FAMILY = ModelFamily(
    name=StarGANConfig.model,
    title="StarGAN",
    config_class=StarGANConfig,
    train=StarGANTrainer.run_to_end,
    trainer_class=StarGANTrainer,
    train_image_size=lambda cfg: cfg.data.image_size,
    load=_load,
    translator=_translator,
    translate_options=("target", "target_vector", "all_targets", "strength", "dataset"),
    is_official=_is_official,
    import_official=_import_official,
    import_options=IMPORT_OPTIONS,
    official_hint="{iter}-G.ckpt (keys 'main.0.weight', 'main.1.weight', ...)",
    label_conditioned=True,
)
