"""CycleGAN preprocessing, matching the official ``get_transform`` (bicubic resizes, random crop, h-flip,
[-1, 1] normalisation), except that every random draw comes from a caller-supplied ``random.Random``: the
output is a pure function of the image, the options and the rng's seed, whichever process computes it.

Modes (official ``--preprocess``):

- ``resize_and_crop``: resize to ``load_size x load_size`` (aspect not kept), random crop ``crop_size``.
- ``crop``: random crop ``crop_size`` from the image as loaded.
- ``scale_width``: width -> ``load_size``, height -> ``max(int(load_size * h / w), crop_size)``. The floor at
  ``crop_size`` is official: it keeps very wide images croppable. Skipped when the width already is
  ``load_size`` and the height is at least ``crop_size``.
- ``scale_width_and_crop``: ``scale_width`` then a random ``crop_size`` crop.
- ``none``: only round each side to the nearest multiple of 4 (official ``__make_power_2`` with base 4), so
  the generators' down/up-sampling gives back the input size.
"""
from __future__ import annotations

import random

import torch
from PIL import Image

from common.data.images import to_tensor

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")

_BICUBIC = Image.Resampling.BICUBIC


def check_mode(mode: str) -> None:
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"unknown preprocess mode {mode!r}; valid modes: {', '.join(PREPROCESS_MODES)}")


def scale_width(img: Image.Image, load_size: int, crop_size: int) -> Image.Image:
    w, h = img.size
    if w == load_size and h >= crop_size:
        return img
    # int() truncates, as the official code does; the result must stay identical to it.
    new_h = int(max(load_size * h / w, crop_size))
    return img.resize((load_size, new_h), _BICUBIC)


def make_multiple(img: Image.Image, base: int = 4) -> Image.Image:
    """Round each side to the nearest multiple of ``base`` (Python's round, as official) with a bicubic
    resize. Sides that would round to 0 become ``base`` so tiny images stay valid."""
    w, h = img.size
    new_w, new_h = max(base, round(w / base) * base), max(base, round(h / base) * base)
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), _BICUBIC)


def random_crop(img: Image.Image, size: int, rng: random.Random) -> Image.Image:
    w, h = img.size
    if size > w or size > h:
        raise ValueError(
            f"crop_size {size} is larger than the image ({w}x{h} after resizing); lower crop_size, raise "
            f"load_size, or use preprocess 'resize_and_crop'/'scale_width_and_crop'"
        )
    # Top then left, each uniform over all valid offsets, like torchvision's RandomCrop.get_params.
    top = rng.randint(0, h - size)
    left = rng.randint(0, w - size)
    return img.crop((left, top, left + size, top + size))


def preprocess(img: Image.Image, mode: str, load_size: int, crop_size: int, flip: bool,
               rng: random.Random) -> torch.Tensor:
    """Apply preprocess ``mode`` (see module doc), then a horizontal flip with probability 0.5 when ``flip``.
    Returns float32 (3, H, W) in [-1, 1]. Draw order (crop top, crop left, flip) is fixed so that a given
    rng seed always gives the same result. Raises ValueError for an unknown mode or a too-small image."""
    check_mode(mode)
    if load_size < 1 or crop_size < 1:
        raise ValueError(f"load_size and crop_size must be >= 1, got {load_size} and {crop_size}")
    img = img.convert("RGB")
    if mode == "resize_and_crop":
        img = img.resize((load_size, load_size), _BICUBIC)
    elif mode.startswith("scale_width"):
        img = scale_width(img, load_size, crop_size)
    if mode in ("resize_and_crop", "crop", "scale_width_and_crop"):
        img = random_crop(img, crop_size, rng)
    if mode == "none":
        img = make_multiple(img, 4)
    if flip and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return to_tensor(img)
