"""pix2pix declares itself to the application: config, trainer, inference and official import."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from common.family import LoadedModel, ModelFamily, Translator
from pix2pix.config import Pix2PixConfig
from pix2pix.import_official import convert_to_checkpoint, is_official
from pix2pix.model import generator_from_checkpoint, input_sides
from pix2pix.trainer import Pix2PixTrainer
from pix2pix.translate import make_translator

# `translate --eval`: running statistics, no dropout (official test.py --eval); `--aligned`: inputs are A|B files.
TRANSLATE_OPTIONS = ("eval", "aligned")


def _load(ckpt: dict, source: str) -> LoadedModel:
    # Eval mode (running statistics, no dropout): deterministic and independent of the batch, what scores need.
    cfg, generator = generator_from_checkpoint(ckpt, source)
    multiple, min_side = input_sides(cfg.network)
    return LoadedModel(nets={"G": generator}, config=cfg, image_size=cfg.data.crop_size, multiple=multiple,
                       min_side=min_side, image_channels={"G": cfg.network.input_nc})


def _translator(ckpt: dict, source: str, options: Mapping[str, Any], device: torch.device) -> Translator:
    cfg, generator = generator_from_checkpoint(ckpt, source)
    return make_translator(generator.to(device), cfg, eval_mode=bool(options.get("eval")),
                           aligned=bool(options.get("aligned")))


def _import_official(path, options: Mapping[str, Any]) -> tuple[dict, str]:
    return convert_to_checkpoint(path)


FAMILY = ModelFamily(
    name=Pix2PixConfig.model,
    title=Pix2PixConfig.model,  # the paper spells it so too
    config_class=Pix2PixConfig,
    train=Pix2PixTrainer.run_to_end,
    trainer_class=Pix2PixTrainer,
    train_image_size=lambda cfg: cfg.data.crop_size,
    load=_load,
    translator=_translator,
    translate_options=TRANSLATE_OPTIONS,
    is_official=is_official,
    import_official=_import_official,
    official_hint="a generator state_dict with batch norm such as latest_net_G.pth (keys 'model.model.0.weight', "
                  "'model.model.1.model.2.running_mean', ...)",
    paired=True,
)
