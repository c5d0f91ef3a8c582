"""Decoding and resizing training images as tensors with ``torchvision.io`` instead of PIL.

The StarGAN pipeline (centre crop, bilinear resize, optional flip, [-1, 1]) on uint8 tensors: torchvision's
JPEG/PNG decoders and its antialiased uint8 bilinear resize, which follows PIL's algorithm. The pixels match
the PIL path (:func:`stargan.datasets.stargan_transform` on :func:`common.data.images.load_rgb`) within a level
or two (tests/test_data_decode.py); ``benchmarks/bench_data.py`` measures which path loads faster on a machine.
Formats torchvision does not decode (and odd modes such as 16-bit PNGs) go through PIL, so any image the PIL
path reads is read here too.

Training takes this path with ``data.decoder: torchvision`` (StarGAN, CycleGAN and pix2pix configs alike;
the default ``pil`` is the official path): :func:`read_picture` is the one switch. torchvision 0.29 deprecates
its image decoders in favour of TorchCodec's; they still work, and its warning is silenced here.
"""
from __future__ import annotations

import os
import warnings

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as TF

from common.data.images import load_rgb
from common.errors import UserError

# What torchvision's own decoders take; anything else (or a file they refuse) is read through PIL.
TORCHVISION_SUFFIXES = (".jpg", ".jpeg", ".png")
# The values of a config's ``data.decoder``: PIL (the official pipelines) or torchvision.io.
DECODERS = ("pil", "torchvision")


def decode_rgb(path: str | os.PathLike) -> torch.Tensor:
    """``path`` as a uint8 ``(3, H, W)`` RGB tensor; errors are the PIL path's one-line UserError."""
    if str(path).lower().endswith(TORCHVISION_SUFFIXES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
            if image.dtype == torch.uint8 and image.shape[0] == 3:
                return image
        except (RuntimeError, ValueError):
            pass  # PIL decides: it reads what it can and names the file when it cannot
    rgb = load_rgb(path)
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.height, rgb.width, 3).permute(2, 0, 1)


def check_decoder(decoder: str) -> None:
    if decoder not in DECODERS:
        raise UserError(f"data.decoder: expected one of {', '.join(DECODERS)}, got {decoder!r}")


def read_picture(path: str | os.PathLike, decoder: str) -> Image.Image | torch.Tensor:
    """``path`` as an RGB PIL image (``pil``) or a uint8 ``(3, H, W)`` tensor (``torchvision``)."""
    return decode_rgb(path) if decoder == "torchvision" else load_rgb(path)


def uint8_to_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 ``(3, H, W)`` -> float32 in [-1, 1] with the float ops of :func:`common.data.images.to_tensor`, so
    equal pixels give bit-identical tensors on either path."""
    return image.contiguous().float().div(255).sub_(0.5).div_(0.5)


def crop_resize_flip(image: torch.Tensor, image_size: int, crop_size: int | None, flip: bool) -> torch.Tensor:
    """uint8 ``(3, H, W)`` -> float32 ``(3, image_size, image_size)`` in [-1, 1]: the StarGAN transform (centre
    crop of ``crop_size``, or of the shorter side when ``None`` or larger; bilinear resize; flip), with the same
    crop rounding and the same float ops as the PIL path."""
    h, w = image.shape[-2:]
    c = min(w, h) if crop_size is None else min(crop_size, w, h)
    top, left = round((h - c) / 2.0), round((w - c) / 2.0)
    image = image[..., top:top + c, left:left + c]
    if c != image_size:
        image = TF.resize(image, [image_size, image_size], interpolation=TF.InterpolationMode.BILINEAR,
                          antialias=True)
    if flip:
        image = image.flip(-1)
    return uint8_to_float(image)
