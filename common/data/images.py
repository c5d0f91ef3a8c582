"""Finding, reading and writing image files, and the one conversion between images and tensors.

Every mode PIL knows is read as 8-bit RGB; tensors are float32 ``(3, H, W)`` in [-1, 1]. Training, evaluation and
inference all use :func:`to_tensor`, so a pixel gets the same value whichever path loaded it."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from common.errors import UserError
from common.files import atomic_writer

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


def check_listed_name(name: str, where: str, image_dir: str | os.PathLike | None = None) -> None:
    """Refuse a file name a label file lists (CSV, CelebA attribute file) that is absolute or leaves the image
    folder through ``..``; ``where`` (``file:line``) starts the UserError, ``image_dir`` names the folder in it.

    The check is lexical (normalised name, symlinks not followed): a label file cannot reach outside the
    folder, while users may still symlink images into it. Drive-letter and backslash-rooted names count as
    absolute on every system, so a label file means the same everywhere."""
    folder = "the image folder" if image_dir is None else f"the image folder {image_dir}"
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UserError(f"{where}: file name {name!r} must be relative to {folder}")
    normal = os.path.normpath(name)
    if normal == os.pardir or normal.startswith(os.pardir + os.sep):
        raise UserError(f"{where}: file name {name!r} points outside {folder}")


def _scale_to_uint8(img: Image.Image) -> Image.Image:
    """Wide integer and float images -> 8-bit L. PIL's own convert clips these (a 16-bit image becomes
    almost all white), so we rescale by the range the values were most likely stored in."""
    arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(arr.max(initial=0.0))
    if img.mode.startswith("I;16"):
        scale = 65535.0
    elif img.mode == "F":
        # Float images are usually in [0, 1]; larger values suggest [0, 255].
        scale = 1.0 if peak <= 1.0 else 255.0
    else:  # "I" (32-bit): 8-bit or 16-bit data widened on load, otherwise stretch to the peak.
        scale = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
    arr = np.clip(np.rint(arr * (255.0 / scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, mode="L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: grayscale, bilevel, palette (with or without transparency), CMYK,
    and 16/32-bit integer or float images (rescaled to 8 bits). Alpha is dropped, keeping the colour values
    (as the official ``Image.open(path).convert('RGB')`` does), not composited onto a background."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return _scale_to_uint8(img).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        # Going through RGBA avoids PIL's warning about palette transparency given as bytes.
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` fully and return an RGB image; corrupt/unreadable files raise UserError naming it."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now so truncated files fail here, naming the file
            return to_rgb(img)
    except FileNotFoundError:
        raise UserError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        msg = " ".join(str(err).split())  # one line, whatever the decoder put in the message
        raise UserError(f"{path}: cannot read image ({err.__class__.__name__}: {msg})") from None


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 (3, H, W) in [-1, 1]. Same float ops as ToTensor + Normalize(0.5, 0.5), so
    values are bit-identical to the official pipelines."""
    arr = np.array(img.convert("RGB"), dtype=np.uint8)
    t = torch.from_numpy(arr).permute(2, 0, 1).contiguous().float().div(255)
    return t.sub_(0.5).div_(0.5)


# ITU-R 601-2 luma: the weights of PIL's convert("L"), which the official CycleGAN code applies for --input_nc 1.
_LUMA = (0.299, 0.587, 0.114)


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB batches in [-1, 1] as a network's ``channels``: unchanged for 3, their luminance for 1. The
    weights sum to 1, so mixing the normalised values equals normalising the mixed 8-bit ones (PIL also
    rounds to whole levels)."""
    if channels == images.shape[1]:
        return images
    return (images * images.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    """One-channel batches repeated to three (for PNGs and grids); RGB ones unchanged."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [-1, 1] -> RGB PIL image, rounding to the nearest level (the official ``tensor2im``
    truncates, which darkens by up to one level and does not invert :func:`to_tensor`); values outside
    [-1, 1] are clipped."""
    arr = ((t.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def write_png(img: Image.Image, path: str | os.PathLike, compress_level: int = 6, atomic: bool = True) -> Path:
    """Write ``img`` as a PNG. ``atomic``: through a temp file and ``os.replace``, so a crash or a full disk
    never leaves a truncated PNG under the final name; writers that mark a whole folder complete at the end
    (the shapes generator) skip that per-file cost. The bytes are the same either way."""
    path = Path(path)
    if not atomic:
        img.save(path, format="PNG", compress_level=compress_level)
        return path
    with atomic_writer(path, binary=True) as f:
        img.save(f, format="PNG", compress_level=compress_level)
    return path


def save_png(t: torch.Tensor, path: str | os.PathLike, compress_level: int = 6) -> Path:
    """Write a (3, H, W) tensor in [-1, 1] as a PNG, atomically (see :func:`write_png`)."""
    return write_png(tensor_to_image(t), path, compress_level)
