"""Paired data for pix2pix: the official aligned format and a two-folder format.

- ``aligned`` (official ``AlignedDataset``): ROOT/<phase>/ holds images with A as the left half and B as the
  right half (width 2w, each half w wide).
- ``folders``: ROOT/A/<phase>/ and ROOT/B/<phase>/ hold the two sides of each pair as separate files with the
  same relative name (extensions may differ: ``A/train/x.jpg`` pairs with ``B/train/x.png``); both sides of a
  pair must have the same size. This is the input layout of the official ``combine_A_and_B.py``.

Both sides of a pair get the same random resize/crop/flip (one ``random.Random`` seed drawn per sample, as
for unpaired data, so batches do not depend on worker count or resume point). ``direction`` decides which side
is the network's input: the dataset and :func:`read_pair` return ``real_a`` = input and ``real_b`` = target.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import torch
from torch.utils.data import Dataset

from common.data.aligned import DIRECTIONS, aligned_files, oriented, read_aligned
from common.data.decode import check_decoder, read_picture
from common.data.images import find_images, to_tensor
from common.data.transforms import Picture, check_mode, picture_size, preprocess
from common.errors import UserError

FORMATS = ("aligned", "folders")
ON_BAD_IMAGE = ("error", "skip")
# Names shown in an error about unpaired files; the rest are counted.
_SHOWN = 3

# One pair: an aligned file and None, or the A file and the B file.
Pair = tuple[Path, Path | None]


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choices: {', '.join(choices)}")


def _listing(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _by_stem(folder: Path, what: str) -> dict[str, Path]:
    """Images under ``folder`` keyed by their relative path without extension; two files that differ only in
    extension (``x.png``, ``x.jpg``) are refused, since either could be the partner."""
    found: dict[str, Path] = {}
    for path in find_images(folder, what):
        stem = path.relative_to(folder).with_suffix("").as_posix()
        if stem in found:
            raise UserError(f"{found[stem]} and {path}: two images with the name {stem!r} in {what}; a pair's "
                            "sides are matched by name, so keep one of them")
        found[stem] = path
    return found


def paired_files(root: str | os.PathLike, phase: str = "train", format: str = "aligned",
                 max_dataset_size: int | None = None) -> list[Pair]:
    """The pairs of a dataset split, sorted by name (then cut to ``max_dataset_size``): ``(file, None)`` for
    ``aligned``, ``(a_file, b_file)`` for ``folders``. A missing or empty folder, or a file without its
    partner, is a one-line UserError naming them."""
    _check_choice("format", format, FORMATS)
    root = Path(root)
    if format == "aligned":
        return [(path, None) for path in aligned_files(root, phase)][:max_dataset_size]
    dir_a, dir_b = root / "A" / phase, root / "B" / phase
    side_a = _by_stem(dir_a, f"the A side's '{phase}' folder")
    side_b = _by_stem(dir_b, f"the B side's '{phase}' folder")
    only_a, only_b = sorted(set(side_a) - set(side_b)), sorted(set(side_b) - set(side_a))
    if only_a or only_b:
        problems = [f"{len(names)} file(s) in {folder} have no partner in {other} ({_listing(names)})"
                    for names, folder, other in ((only_a, dir_a, dir_b), (only_b, dir_b, dir_a)) if names]
        raise UserError(f"{root}: {'; '.join(problems)}; each pair needs the same name on both sides")
    return [(side_a[stem], side_b[stem]) for stem in sorted(side_a)][:max_dataset_size]


def load_pair(path: str | os.PathLike, partner: str | os.PathLike | None = None,
              decoder: str = "pil") -> tuple[Picture, Picture]:
    """The A and B images of a pair: the halves of the aligned file ``path`` (no ``partner``), or the files
    ``path`` (A) and ``partner`` (B), which must have the same size. PIL images, or uint8 tensors with
    ``decoder`` ``torchvision``."""
    if partner is None:
        return read_aligned(path, decoder)
    image, other = read_picture(path, decoder), read_picture(partner, decoder)
    (w, h), (w_other, h_other) = picture_size(image), picture_size(other)
    if (w, h) != (w_other, h_other):
        raise UserError(f"{path} is {w}x{h} but its partner {partner} is {w_other}x{h_other}; the two sides of "
                        "a pair must have the same size")
    return image, other


def read_pair(path: str | os.PathLike, partner: str | os.PathLike | None = None, *, direction: str = "AtoB",
              size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(real_a, real_b)``, float32 (3, H, W) in [-1, 1], of one aligned file (``partner`` None) or one pair
    of files: ``real_a`` is the network's input and ``real_b`` its target per ``direction``. At full
    resolution, or resized (bicubic) to ``size`` x ``size`` as the official ``test.py`` does (load_size =
    crop_size, no flip). For evaluation: ``for pair in paired_files(...): read_pair(*pair, direction=...)``."""
    sides = load_pair(path, partner)
    if size is None:
        a, b = (to_tensor(image) for image in sides)
    else:
        # resize_and_crop with crop = load size: the official test-time resize, and no random draw.
        a, b = (preprocess(image, "resize_and_crop", size, size, False, random.Random(0)) for image in sides)
    return oriented(a, b, direction)


class PairedDataset(Dataset):
    """Pairs of a split of ROOT, read as ``dataset[(index, _, seed)]`` (the keys of
    :class:`common.data.unpaired.UnpairedSampler` with ``len_a == len_b`` and ``serial_b``; indices wrap) ->
    ``{'A': input, 'B': target, 'A_path', 'B_path', 'skipped'}``, both sides transformed alike.

    ``on_bad_image='skip'`` replaces a pair that cannot be used (unreadable, odd aligned width, sides of
    different sizes) by the next usable one and counts the replaced pairs in ``'skipped'``; ``'error'`` raises
    the UserError naming it. ``decoder``: ``pil`` or ``torchvision`` (:mod:`common.data.decode`)."""

    def __init__(self, root: str | os.PathLike, phase: str = "train", format: str = "aligned",
                 direction: str = "AtoB", preprocess: str = "resize_and_crop", load_size: int = 286,
                 crop_size: int = 256, flip: bool = True, max_dataset_size: int | None = None,
                 on_bad_image: str = "error", decoder: str = "pil"):
        check_mode(preprocess)
        check_decoder(decoder)
        self.decoder = decoder
        _check_choice("direction", direction, DIRECTIONS)
        _check_choice("on_bad_image", on_bad_image, ON_BAD_IMAGE)
        self.root, self.direction, self.on_bad_image = Path(root), direction, on_bad_image
        self.preprocess, self.load_size, self.crop_size, self.flip = preprocess, load_size, crop_size, flip
        self.pairs = paired_files(root, phase, format, max_dataset_size)

    def __len__(self) -> int:
        return len(self.pairs)

    def _transform(self, image: Picture, seed: int) -> torch.Tensor:
        # The same seed for both sides: equal sizes then give the same crop offsets and the same flip.
        return preprocess(image, self.preprocess, self.load_size, self.crop_size, self.flip, random.Random(seed))

    def __getitem__(self, key: tuple[int, int, int]) -> dict:
        index, _, seed = (int(k) for k in key)
        n = len(self.pairs)
        for offset in range(n):
            path, partner = self.pairs[(index + offset) % n]
            try:
                sides = load_pair(path, partner, self.decoder)
                a, b = (self._transform(image, seed) for image in sides)
            except UserError:
                if self.on_bad_image == "error":
                    raise
                continue
            except ValueError as err:  # e.g. a crop larger than the image
                raise UserError(f"{path}: {err}") from None
            real_a, real_b = oriented(a, b, self.direction)
            path_a, path_b = oriented(path, partner or path, self.direction)
            return {"A": real_a, "B": real_b, "A_path": str(path_a), "B_path": str(path_b), "skipped": offset}
        raise UserError(f"{self.root}: none of the {n} pairs could be used (on_bad_image='skip')")
