"""Datasets from config entries, and the deterministic infinite batch stream StarGAN trains on."""
from __future__ import annotations

import torch
from torch.utils.data import Sampler

from common.errors import UserError
from stargan.config import DataConfig, DatasetConfig
from stargan.datasets import CelebADataset, CsvDataset, ImageFolderDataset
from stargan.resized import check_copy_use


def build_dataset(entry: DatasetConfig, data: DataConfig, mode: str):
    """The dataset an entry of ``data.datasets`` describes (train or test split)."""
    flip = data.flip and mode == "train"
    loss_kw = {"exclusive_loss": entry.exclusive_loss} if entry.exclusive_loss else {}
    if entry.format == "celeba":
        check_copy_use(entry.image_dir, data.image_size, entry.crop_size)
        return CelebADataset(entry.image_dir, entry.attr_path, entry.selected_attrs, mode=mode,
                             image_size=data.image_size, crop_size=entry.crop_size, flip=flip,
                             test_count=entry.test_count, split_seed=entry.split_seed,
                             exclusive=entry.exclusive or None, partition_path=entry.partition_path,
                             decoder=data.decoder, **loss_kw)
    if entry.format == "imagefolder":
        return ImageFolderDataset(entry.image_dir, image_size=data.image_size, crop_size=entry.crop_size,
                                  mode=mode, flip=flip, test_fraction=entry.test_fraction,
                                  split_seed=entry.split_seed, group_name=entry.name, decoder=data.decoder)
    return CsvDataset(entry.image_dir, entry.attr_path, image_size=data.image_size, crop_size=entry.crop_size,
                      mode=mode, flip=flip, exclusive=entry.exclusive or None, test_fraction=entry.test_fraction,
                      split_seed=entry.split_seed, selected_attrs=entry.selected_attrs or None,
                      decoder=data.decoder, **loss_kw)


def _mix(*values: int) -> int:
    """A 63-bit seed from several ints (splitmix64 steps), so streams of nearby seeds do not correlate."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return x & 0x7FFFFFFFFFFFFFFF


class BatchStream(Sampler):
    """Endless batches of ``(index, sample_seed)`` keys whose content is a pure function of
    ``(seed, stream, batch number)``: each pass over the data is a fresh seeded permutation (last partial batch
    dropped, so every batch has ``batch_size`` images). ``start`` is the number of batches this rank already
    consumed, so a resumed run sees exactly the batches an uninterrupted one would. Rank r of W takes global
    batches r, r+W, ...
    """

    def __init__(self, n: int, batch_size: int, seed: int, stream: int, start: int = 0, rank: int = 0,
                 world_size: int = 1, what: str = "dataset"):
        if n < batch_size:
            raise UserError(f"{what}: has {n} training images, fewer than data.batch_size={batch_size}")
        self.n, self.batch_size, self.seed, self.stream = n, batch_size, seed, stream
        self.start, self.rank, self.world_size = start, rank, world_size
        self.per_epoch = n // batch_size
        self._perm_epoch, self._perm = -1, None

    def keys(self, global_batch: int) -> list[tuple[int, int]]:
        epoch, j = divmod(global_batch, self.per_epoch)
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(_mix(self.seed, self.stream, epoch))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=gen).tolist(), epoch
        idx = self._perm[j * self.batch_size:(j + 1) * self.batch_size]
        return [(i, _mix(self.seed, self.stream, global_batch, k) & 0x7FFFFFFF) for k, i in enumerate(idx)]

    def __iter__(self):
        b = self.start
        while True:
            yield self.keys(b * self.world_size + self.rank)
            b += 1
