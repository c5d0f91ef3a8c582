"""Unpaired A/B data for CycleGAN: a dataset indexed by explicit keys and a sampler that makes the keys.

Official "unaligned" semantics: an epoch has ``max(|A|, |B|)`` samples; A is visited by index (the official
DataLoader shuffles those indices unless ``--serial_batches``), B is drawn uniformly at random (or
``index % |B|`` with ``--serial_batches``). Here the sampler turns ``(seed, epoch)`` into keys
``(index_a, index_b, sample_seed)`` and the dataset turns a key into tensors without any hidden RNG, so
batches do not depend on the number of workers or on where a run resumed, and DDP ranks share one
epoch-wide sequence.
"""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from common.data.decode import check_decoder, read_picture
from common.data.images import find_images
from common.data.loader import UserErrorLoader
from common.data.transforms import check_mode, preprocess
from common.errors import UserError

ON_BAD_IMAGE = ("error", "skip")

Key = tuple[int, int, int]


class UnpairedDataset(Dataset):
    """Images of ROOT/{phase}A and ROOT/{phase}B (recursive, sorted, optionally cut to the first
    ``max_dataset_size``). ``dataset[(index_a, index_b, seed)]`` returns
    ``{'A', 'B', 'A_path', 'B_path', 'skipped'}``; indices wrap around each domain's length.

    ``on_bad_image='skip'`` replaces an unreadable image by the next readable one of the same domain
    (wrapping) and counts the replaced files in ``'skipped'``; ``'error'`` raises UserError naming it.
    ``decoder``: ``pil`` or ``torchvision`` (:mod:`common.data.decode`)."""

    def __init__(self, root: str | os.PathLike, phase: str = "train", preprocess: str = "resize_and_crop",
                 load_size: int = 286, crop_size: int = 256, flip: bool = True,
                 max_dataset_size: int | None = None, on_bad_image: str = "error", decoder: str = "pil"):
        check_mode(preprocess)
        check_decoder(decoder)
        if on_bad_image not in ON_BAD_IMAGE:
            raise ValueError(f"unknown on_bad_image {on_bad_image!r}; choices: {', '.join(ON_BAD_IMAGE)}")
        if preprocess in ("resize_and_crop", "scale_width_and_crop") and crop_size > load_size:
            raise ValueError(f"crop_size ({crop_size}) must be <= load_size ({load_size}) "
                             f"with preprocess {preprocess!r}")
        if max_dataset_size is not None and max_dataset_size < 1:
            raise ValueError(f"max_dataset_size must be >= 1 or None, got {max_dataset_size}")
        self.root, self.phase = Path(root), phase
        self.dir_a, self.dir_b = self.root / f"{phase}A", self.root / f"{phase}B"
        self.preprocess, self.load_size, self.crop_size, self.flip = preprocess, load_size, crop_size, flip
        self.on_bad_image, self.decoder = on_bad_image, decoder
        # Sorted, then cut: the official code cuts in os.walk order, which is not reproducible across systems.
        self.paths_a = [str(p) for p in find_images(self.dir_a, f"domain A ({phase}A) folder")][:max_dataset_size]
        self.paths_b = [str(p) for p in find_images(self.dir_b, f"domain B ({phase}B) folder")][:max_dataset_size]

    def __len__(self) -> int:
        return max(len(self.paths_a), len(self.paths_b))

    def _load(self, paths: list[str], folder: Path, index: int, seed: int) -> tuple[torch.Tensor, str, int]:
        n = len(paths)
        for offset in range(n):
            path = paths[(index + offset) % n]
            try:
                img = read_picture(path, self.decoder)
            except UserError:
                if self.on_bad_image == "error":
                    raise
                continue
            try:
                # A fresh rng per load: the crop/flip of a substitute image does not depend on the failures.
                tensor = preprocess(img, self.preprocess, self.load_size, self.crop_size, self.flip,
                                    random.Random(seed))
            except ValueError as err:
                raise UserError(f"{path}: {err}") from None
            return tensor, path, offset
        raise UserError(f"{folder}: none of the {n} images could be read (on_bad_image='skip')")

    def __getitem__(self, key: Key) -> dict:
        index_a, index_b, seed = (int(k) for k in key)
        # Separate streams for A and B so neither side's crop/flip depends on the other's.
        a, path_a, skipped_a = self._load(self.paths_a, self.dir_a, index_a, 2 * seed)
        b, path_b, skipped_b = self._load(self.paths_b, self.dir_b, index_b, 2 * seed + 1)
        return {"A": a, "B": b, "A_path": path_a, "B_path": path_b, "skipped": skipped_a + skipped_b}


def epoch_length(len_a: int, len_b: int, world_size: int = 1) -> int:
    """Samples per rank per epoch: ``max(len_a, len_b) // world_size`` (the tail is dropped so all ranks
    run the same number of steps)."""
    return max(len_a, len_b) // world_size


class UnpairedSampler(Sampler):
    """Keys ``(index_a, index_b, sample_seed)`` for one epoch, a pure function of ``(seed, epoch)``.

    The full epoch is generated first and then sharded (rank r takes positions r, r + world_size, ...), so
    the keys at a global position do not depend on ``world_size``. ``start`` skips the first ``start``
    keys of this rank (samples, i.e. ``steps_done * batch_size``) to resume mid-epoch without loading them.
    ``batch_size`` only feeds :attr:`num_batches`; batching is the DataLoader's job."""

    def __init__(self, len_a: int, len_b: int, seed: int, epoch: int, batch_size: int = 1,
                 serial_b: bool = False, shuffle_a: bool = False, start: int = 0, rank: int = 0,
                 world_size: int = 1):
        if len_a < 1 or len_b < 1:
            raise ValueError(f"both domains need at least one image, got len_a={len_a}, len_b={len_b}")
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if batch_size < 1 or start < 0:
            raise ValueError(f"batch_size must be >= 1 and start >= 0, got {batch_size} and {start}")
        per_rank = epoch_length(len_a, len_b, world_size)
        if per_rank == 0:
            raise UserError(f"the dataset has {max(len_a, len_b)} samples per epoch, fewer than the "
                            f"{world_size} processes; use fewer processes or more images")
        n = max(len_a, len_b)
        # Independent child streams, so e.g. toggling shuffle_a does not change B's draws or the seeds.
        order_rng, b_rng, seed_rng = (np.random.default_rng(s)
                                      for s in np.random.SeedSequence([seed % 2**64, epoch]).spawn(3))
        index = order_rng.permutation(n) if shuffle_a else np.arange(n)
        index_a = index % len_a
        # Official serial_batches pairs B with the same dataset index as A.
        index_b = index % len_b if serial_b else b_rng.integers(0, len_b, size=n)
        sample_seeds = _distinct_seeds(seed_rng, n)
        positions = slice(rank, per_rank * world_size, world_size)
        self._keys: list[Key] = [
            (int(a), int(b), int(s))
            for a, b, s in zip(index_a[positions], index_b[positions], sample_seeds[positions])
        ][start:]
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def num_batches(self) -> int:
        return -(-len(self._keys) // self.batch_size)


def _distinct_seeds(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct non-negative 62-bit seeds (2*seed+1 still fits in int64). Collisions are astronomically
    unlikely; redrawing them keeps "distinct per position" a guarantee rather than a probability."""
    seeds = rng.integers(0, 2**62, size=n, dtype=np.int64)
    while len(np.unique(seeds)) < n:
        _, first = np.unique(seeds, return_index=True)
        dup = np.setdiff1d(np.arange(n), first)
        seeds[dup] = rng.integers(0, 2**62, size=len(dup), dtype=np.int64)
    return seeds


def make_loader(dataset: Dataset, sampler: Sampler, batch_size: int, num_workers: int,
                pin_memory: bool = False) -> UserErrorLoader:
    """Batches of ``dataset[key]`` in the sampler's order, one loader per sampler (the trainers instead keep
    one :func:`common.data.loader.training_loader` for the run and swap its sampler each epoch, so persistent
    workers live across epochs); no worker seeding is needed since samples carry their own seeds.

    The loader gets its own generator: otherwise creating its iterator draws a base seed from the global
    torch RNG, and a run resumed mid-epoch (one extra iterator) would diverge from an uninterrupted one. A bad
    image reads as the same one-line UserError with any number of workers."""
    return UserErrorLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                           pin_memory=pin_memory, drop_last=False, persistent_workers=False,
                           generator=torch.Generator().manual_seed(0))
