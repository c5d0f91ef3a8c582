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

Images are PIL images (``data.decoder: pil``, the official path) or uint8 ``(3, H, W)`` tensors from
:func:`common.data.decode.decode_rgb` (``data.decoder: torchvision``). Both go through the same geometry and the
same random draws; tensors are resized with torchvision's antialiased uint8 bicubic resize, which follows
PIL's filter (a = -0.5), so the pixels match the PIL path's within a level or two
(tests/test_data_decoder_option.py).
"""
from __future__ import annotations

import random

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from common.data.decode import uint8_to_float
from common.data.images import to_tensor

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")

_BICUBIC = Image.Resampling.BICUBIC

# A PIL image, or a uint8 (3, H, W) tensor.
Picture = Image.Image | torch.Tensor


def picture_size(img: Picture) -> tuple[int, int]:
    """``(width, height)``, as PIL's ``Image.size``."""
    if isinstance(img, torch.Tensor):
        return int(img.shape[-1]), int(img.shape[-2])
    return img.size


def crop_box(img: Picture, left: int, top: int, width: int, height: int) -> Picture:
    if isinstance(img, torch.Tensor):
        return img[..., top:top + height, left:left + width]
    return img.crop((left, top, left + width, top + height))


def _resize_bicubic(img: Picture, width: int, height: int) -> Picture:
    if isinstance(img, torch.Tensor):
        return TF.resize(img, [height, width], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    return img.resize((width, height), _BICUBIC)


def check_mode(mode: str) -> None:
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"unknown preprocess mode {mode!r}; valid modes: {', '.join(PREPROCESS_MODES)}")


def scale_width(img: Picture, load_size: int, crop_size: int) -> Picture:
    w, h = picture_size(img)
    if w == load_size and h >= crop_size:
        return img
    # int() truncates, as the official code does; the result must stay identical to it.
    new_h = int(max(load_size * h / w, crop_size))
    return _resize_bicubic(img, load_size, new_h)


def make_multiple(img: Picture, base: int = 4) -> Picture:
    """Round each side to the nearest multiple of ``base`` (Python's round, as official) with a bicubic
    resize. Sides that would round to 0 become ``base`` so tiny images stay valid."""
    w, h = picture_size(img)
    new_w, new_h = max(base, round(w / base) * base), max(base, round(h / base) * base)
    if (new_w, new_h) == (w, h):
        return img
    return _resize_bicubic(img, new_w, new_h)


def random_crop(img: Picture, size: int, rng: random.Random) -> Picture:
    w, h = picture_size(img)
    if size > w or size > h:
        raise ValueError(
            f"crop_size {size} is larger than the image ({w}x{h} after resizing); lower crop_size, raise "
            f"load_size, or use preprocess 'resize_and_crop'/'scale_width_and_crop'"
        )
    # Top then left, each uniform over all valid offsets, like torchvision's RandomCrop.get_params.
    top = rng.randint(0, h - size)
    left = rng.randint(0, w - size)
    return crop_box(img, left, top, size, size)


def preprocess(img: Picture, mode: str, load_size: int, crop_size: int, flip: bool,
               rng: random.Random) -> torch.Tensor:
    """Apply preprocess ``mode`` (see module doc), then a horizontal flip with probability 0.5 when ``flip``.
    Returns float32 (3, H, W) in [-1, 1]. Draw order (crop top, crop left, flip) is fixed so that a given
    rng seed always gives the same result, whichever type ``img`` is. Raises ValueError for an unknown mode or
    a too-small image."""
    check_mode(mode)
    if load_size < 1 or crop_size < 1:
        raise ValueError(f"load_size and crop_size must be >= 1, got {load_size} and {crop_size}")
    is_tensor = isinstance(img, torch.Tensor)
    if not is_tensor:
        img = img.convert("RGB")
    if mode == "resize_and_crop":
        img = _resize_bicubic(img, load_size, load_size)
    elif mode.startswith("scale_width"):
        img = scale_width(img, load_size, crop_size)
    if mode in ("resize_and_crop", "crop", "scale_width_and_crop"):
        img = random_crop(img, crop_size, rng)
    if mode == "none":
        img = make_multiple(img, 4)
    if flip and rng.random() < 0.5:
        img = img.flip(-1) if is_tensor else img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return uint8_to_float(img) if is_tensor else to_tensor(img)
