"""CycleGAN declares itself to the application: config, trainer, inference and official import."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from common.data.images import as_rgb, to_channels
from common.family import LoadedModel, ModelFamily, Translator
from common.networks.official import has_batch_norm_stats
from cyclegan.config import CycleGANConfig
from cyclegan.import_official import convert_to_checkpoint
from cyclegan.model import generator_from_checkpoint, generators_from_checkpoint, required_multiple
from cyclegan.trainer import CycleGANTrainer

# The smallest input side each generator takes. A ResNet halves the side twice; at 8 its bottleneck is 2x2,
# the least its residual blocks' 1-pixel reflection padding and its norm layers accept. A U-Net is built
# for its full multiple (1x1 at the bottom).
MIN_SIDE = {"resnet_9blocks": 8, "resnet_6blocks": 8, "unet_128": 128, "unet_256": 256}


def _translator(ckpt: dict, source: str, options: Mapping[str, Any], device: torch.device) -> Translator:
    direction = options.get("direction") or "AtoB"
    generator = generator_from_checkpoint(ckpt, direction, source).to(device)
    network = ckpt["config"]["network"]
    # Inputs are read as RGB; a one-channel model sees their luminance and its output is written as grey RGB.
    in_channels = network["input_nc"] if direction == "AtoB" else network["output_nc"]
    return Translator(lambda x, _size: as_rgb(generator(to_channels(x, in_channels))),
                      required_multiple(network["netG"]), MIN_SIDE[network["netG"]])


def _load(ckpt: dict, source: str) -> LoadedModel:
    cfg, nets = generators_from_checkpoint(ckpt, source)
    net = cfg.network
    return LoadedModel(nets=nets, config=cfg, image_size=cfg.data.crop_size, multiple=required_multiple(net.netG),
                       min_side=MIN_SIDE[net.netG], image_channels={"G_A": net.input_nc, "G_B": net.output_nc})


def _is_official(keys: frozenset[str]) -> bool:
    # Official ResNet generators are ``model.N...``, U-Nets ``model.model...``: an nn.Sequential called model.
    # Batch-norm statistics mark the official pix2pix generators (its default norm), which its family imports.
    return any(k.startswith("model.") for k in keys) and not has_batch_norm_stats(keys)


def _import_official(path, options: Mapping[str, Any]) -> tuple[dict, str]:
    return convert_to_checkpoint(path)


FAMILY = ModelFamily(
    name=CycleGANConfig.model,
    title="CycleGAN",
    config_class=CycleGANConfig,
    train=CycleGANTrainer.run_to_end,
    trainer_class=CycleGANTrainer,
    train_image_size=lambda cfg: cfg.data.crop_size,
    load=_load,
    translator=_translator,
    translate_options=("direction",),
    is_official=_is_official,
    import_official=_import_official,
    official_hint="a generator state_dict such as latest_net_G_A.pth (keys 'model.1.weight' or 'model.model.0.weight')",
)
