"""Convert generators saved by the official pix2pix code (``latest_net_G.pth``, released ``*_pretrained``
generators) into this library's checkpoints.

The official pix2pix and CycleGAN generators share one code base and key layout; pix2pix's are the ones with
batch-norm layers (its default norm), which :func:`common.networks.official.has_batch_norm_stats` recognises.
The architecture (U-Net 128/256 or ResNet 6/9 blocks, ngf, channels) is read from the tensors; the running
statistics come along, so ``translate --eval`` reproduces the official ``test.py --eval`` output.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from common.checkpoint import new_checkpoint
from common.config import from_dict, to_dict
from common.networks.official import has_batch_norm_stats, load_official_generator
from pix2pix.config import Pix2PixConfig


def is_official(keys: Iterable[str]) -> bool:
    """An official generator (``model.1...`` ResNet or ``model.model...`` U-Net keys) with batch norm."""
    keys = frozenset(keys)
    return any(k.startswith("model.") for k in keys) and has_batch_norm_stats(keys)


def convert_to_checkpoint(path: str | os.PathLike) -> tuple[dict, str]:
    """An inference checkpoint of this library from an official pix2pix generator file, plus a one-line
    summary. The file records neither the training direction nor the data, so the config has the defaults
    (direction AtoB, which only ``translate --aligned`` reads)."""
    path = Path(path)
    # A U-Net's dropout leaves no trace in the keys; on is the pix2pix default (it only acts in paper mode).
    sd, arch = load_official_generator(path, unet_dropout=True)
    network = {"netG": arch["arch"], "ngf": arch["ngf"], "norm": arch["norm"], "dropout": arch["dropout"],
               "input_nc": arch["in_channels"], "output_nc": arch["out_channels"]}
    cfg = from_dict(Pix2PixConfig, {"name": path.stem, "network": network}, source=str(path))
    ckpt = new_checkpoint(cfg.model, to_dict(cfg), {"G": sd}, kind="inference", extra={"imported_from": str(path)})
    summary = (f"pix2pix {arch['arch']} ngf={arch['ngf']} norm={arch['norm']} dropout={arch['dropout']} "
               f"channels {arch['in_channels']}->{arch['out_channels']}, stored as G (translate runs it as the "
               "paper does; --eval uses the running statistics)")
    return ckpt, summary
