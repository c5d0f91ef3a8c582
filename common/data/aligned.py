"""The official pix2pix "aligned" image format: each file holds the pair side by side, A on the left, B on
the right, both halves the same size (junyanz ``data/aligned_dataset.py``; ``datasets/combine_A_and_B.py``
writes it). A dataset is a folder with one sub-folder per phase (``train/``, ``val/``, ``test/``).

The official reader crops at ``int(w / 2)``, so an odd width silently gives halves of different widths; here
an odd width is refused, naming the file. :func:`join_aligned` is the writer's side of the same format.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from common.data.decode import read_picture
from common.data.images import find_images
from common.data.transforms import Picture, crop_box, picture_size
from common.errors import UserError

PHASES = ("train", "val", "test")
Direction = Literal["AtoB", "BtoA"]
DIRECTIONS = ("AtoB", "BtoA")


def split_aligned(image: Picture, where: str | os.PathLike) -> tuple[Picture, Picture]:
    """``(A, B)``: the left and right halves of an aligned image (a PIL image or a uint8 ``(3, H, W)``
    tensor); ``where`` names it in the error for an odd width."""
    w, h = picture_size(image)
    if w % 2:
        raise UserError(f"{where}: an aligned image holds A and B side by side, so its width must be even; "
                        f"got {w}x{h}")
    half = w // 2
    return crop_box(image, 0, 0, half, h), crop_box(image, half, 0, half, h)


def read_aligned(path: str | os.PathLike, decoder: str = "pil") -> tuple[Picture, Picture]:
    """``(A, B)`` of an aligned image file, as 8-bit RGB (PIL images, or uint8 tensors with ``decoder``
    ``torchvision``); unreadable files and odd widths raise UserError."""
    return split_aligned(read_picture(path, decoder), path)


def oriented(a: Image.Image, b: Image.Image, direction: str) -> tuple[Image.Image, Image.Image]:
    """``(input, target)`` of a pair for a translation ``direction`` (``AtoB`` or ``BtoA``)."""
    if direction not in DIRECTIONS:
        raise UserError(f"direction: expected one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return (a, b) if direction == "AtoB" else (b, a)


def aligned_files(root: str | os.PathLike, phase: str) -> list[Path]:
    """The aligned image files of ``root/phase`` (recursively, sorted); a missing or empty folder raises
    UserError naming it."""
    return find_images(Path(root) / phase, what=f"aligned {phase} folder")


def join_aligned(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The aligned image ``(H, 2W, C)`` of two equally sized ``(H, W, C)`` arrays, A on the left."""
    if a.shape != b.shape:
        raise ValueError(f"the halves of an aligned image must have the same shape, got {a.shape} and {b.shape}")
    return np.concatenate([a, b], axis=1)
