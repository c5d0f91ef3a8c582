"""Finding and reading image files. Every mode PIL knows is converted to 8-bit RGB."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.errors import UserError

IMG_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif",
)


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMG_EXTENSIONS)


def find_images(root: str | os.PathLike, what: str = "image folder") -> list[Path]:
    """All image files under ``root``, recursively, sorted. Missing or empty folder -> UserError naming it."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: {what} not found (expected a directory)")
    files = sorted(
        Path(dirpath) / name
        for dirpath, _, names in os.walk(root, followlinks=True)
        for name in names
        if is_image_file(name)
    )
    if not files:
        raise UserError(
            f"{root}: {what} contains no images (looked recursively for {', '.join(IMG_EXTENSIONS)})"
        )
    return files


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: grayscale, palette (with transparency), RGBA/LA (alpha dropped onto
    black, as PIL's convert does), CMYK, and 16/32-bit integer or float images (scaled to 8 bits)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            arr = arr / 65535.0
        elif img.mode == "I":
            hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
            arr = arr / hi
        else:  # float images are assumed to be in [0, 1]
            arr = arr
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` fully and return an RGB image; corrupt/unreadable files raise UserError naming it."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except FileNotFoundError:
        raise UserError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"{path}: cannot read image ({err.__class__.__name__}: {err})") from None
