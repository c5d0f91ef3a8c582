"""Convert generators saved by the official CycleGAN code into this library's checkpoints.

Recognising the official generator layouts (shared with pix2pix) is :mod:`common.networks.official`'s job;
``convert_official_generator`` and ``load_official_generator`` are re-exported here for existing callers.
"""
from __future__ import annotations

import os
from pathlib import Path

from common.checkpoint import new_checkpoint
from common.config import from_dict, to_dict
from common.networks.official import convert_official_generator, load_official_generator
from cyclegan.config import CycleGANConfig

__all__ = ["convert_official_generator", "convert_to_checkpoint", "load_official_generator"]


def convert_to_checkpoint(path: str | os.PathLike, *, unet_dropout: bool = True) -> tuple[dict, str]:
    """An inference checkpoint of this library from an official generator file, plus a one-line summary.

    Official files hold one direction. A file name containing ``G_B`` (``latest_net_G_B.pth``) becomes the
    ``BtoA`` generator ``G_B``; anything else (``latest_net_G_A.pth``, released ``horse2zebra.pth``) ``G_A``.
    """
    path = Path(path)
    sd, arch = load_official_generator(path, unet_dropout=unet_dropout)
    network = {"netG": arch["arch"], "ngf": arch["ngf"], "norm": arch["norm"], "dropout": arch["dropout"],
               "input_nc": arch["in_channels"], "output_nc": arch["out_channels"]}
    cfg = from_dict(CycleGANConfig, {"name": path.stem, "network": network}, source=str(path))
    name, direction = ("G_B", "BtoA") if "G_B" in path.name else ("G_A", "AtoB")
    ckpt = new_checkpoint(cfg.model, to_dict(cfg), {name: sd}, kind="inference",
                          extra={"imported_from": str(path)})
    summary = (f"CycleGAN {arch['arch']} ngf={arch['ngf']} norm={arch['norm']} dropout={arch['dropout']} "
               f"channels {arch['in_channels']}->{arch['out_channels']}, stored as {name} "
               f"(use --direction {direction})")
    return ckpt, summary
