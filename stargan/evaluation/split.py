"""The test split an evaluation scores: the images the trainer held out, built by the trainer's own dataset code.

A checkpoint's config names each dataset entry's files (``image_dir``, ``attr_path``, ``partition_path``) and its
split (``partition_path``, or ``test_count``/``test_fraction`` with ``split_seed``). :func:`load_test_split`
builds that entry's ``mode="test"`` dataset with :func:`stargan.data.build_dataset`, so evaluation can never
score a split other than the one training left out. ``--data`` moves the entry to another folder: the folder
that held the entry's files is replaced by it, and the files keep their names and places below it (a CelebA
entry ``data/celeba/images`` + ``data/celeba/list_attr_celeba.txt`` becomes ``DATA/images`` +
``DATA/list_attr_celeba.txt``). An entry that held nothing out (``test_fraction: 0``, as RaFD whose test images
live in another folder, or ``test_count: 0``) has no test split in its own files, so it needs ``--data``: the
folder with the test images, used whole.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from common.errors import UserError
from stargan.config import DataConfig, DatasetConfig
from stargan.data import build_dataset

# The entry fields that name files, per format (imagefolder keeps the unused attr_path default).
PATH_FIELDS = {"celeba": ("image_dir", "attr_path", "partition_path"), "imagefolder": ("image_dir",),
               "csv": ("image_dir", "attr_path")}


def entry_root(entry: DatasetConfig) -> Path:
    """The folder that holds every file an entry names (their deepest common folder)."""
    paths = [os.path.abspath(getattr(entry, f)) for f in PATH_FIELDS[entry.format] if getattr(entry, f)]
    if len(paths) == 1:
        return Path(paths[0])
    return Path(os.path.commonpath(paths))


def moved_entry(entry: DatasetConfig, data_dir: Path) -> DatasetConfig:
    """``entry`` with :func:`entry_root` replaced by ``data_dir``."""
    root = entry_root(entry)
    moved = {f: str(data_dir / os.path.relpath(os.path.abspath(getattr(entry, f)), root))
             for f in PATH_FIELDS[entry.format] if getattr(entry, f)}
    return dataclasses.replace(entry, **moved)


def holds_out(entry: DatasetConfig) -> bool:
    """Did the trainer keep a test split out of the entry's own files?"""
    if entry.format == "celeba":
        return bool(entry.partition_path) or entry.test_count > 0
    return entry.test_fraction > 0


def split_description(entry: DatasetConfig) -> str:
    """How the trainer split the entry, for metrics.json and the table header."""
    if entry.format == "celeba":
        if entry.partition_path:
            return Path(entry.partition_path).name
        if entry.test_count == 0:
            return "the whole folder (test_count=0)"
        return f"seeded split (test_count={entry.test_count}, split_seed={entry.split_seed})"
    if entry.test_fraction == 0:
        return "the whole folder (test_fraction=0)"
    return f"seeded split (test_fraction={entry.test_fraction}, split_seed={entry.split_seed})"


@dataclass
class EvalSplit:
    """The first ``size`` test images of a dataset entry (all of them unless ``--max-images``).

    ``dataset`` is the trainer's dataset class in ``mode="test"``; ``root`` the data folder (ground-truth
    counterfactuals live there); ``description`` says how the split was made."""

    dataset: Dataset
    size: int
    description: str
    root: Path
    entry: DatasetConfig

    def __len__(self) -> int:
        return self.size

    @property
    def stems(self) -> list[str]:
        return [Path(f).stem for f in self.dataset.files[:self.size]]


def load_test_split(entry: DatasetConfig, data: DataConfig, data_dir: Path | None = None,
                    max_images: int | None = None) -> EvalSplit:
    """The test split of ``entry`` exactly as the trainer held it out, moved to ``data_dir`` when given. An entry
    that held nothing out needs ``data_dir`` (else its test split would be the training images)."""
    if data_dir is not None:
        entry, root = moved_entry(entry, data_dir), data_dir
    elif not holds_out(entry):
        what = "test_count=0" if entry.format == "celeba" else "test_fraction=0"
        raise UserError(f"dataset '{entry.name}': the checkpoint's config held no test images out of its training "
                        f"images ({what}); pass --data <folder with the test images>")
    else:
        root = entry_root(entry)
    dataset = build_dataset(entry, data, "test")
    description = split_description(entry)
    if len(dataset) == 0:
        raise UserError(f"{root}: the test split ({description}) of dataset '{entry.name}' holds no images")
    size = len(dataset) if max_images is None else min(len(dataset), max_images)
    return EvalSplit(dataset, size, description, root, entry)


class _StemmedImages(Dataset):
    def __init__(self, split: EvalSplit):
        self.split, self.stems = split, split.stems

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, str]:
        image, label = self.split.dataset[i]
        return image, label, self.stems[i]


def split_batches(split: EvalSplit, batch_size: int, num_workers: int = 0) -> DataLoader:
    """Batches ``(images, labels, stems)`` of a test split, in split order."""
    return DataLoader(_StemmedImages(split), batch_size=batch_size, shuffle=False, num_workers=num_workers)
