"""StarGAN datasets: CelebA attribute files (parsed by :mod:`common.data.celeba_attrs`; ``read_celeba_attrs``
is importable from here too), ImageFolder (RaFD) layouts, and generic CSV label files.

Every dataset yields ``(image, label)``: ``image`` a ``(3, S, S)`` float tensor in [-1, 1], ``label`` a float
``(schema.dim,)`` vector in the order of the dataset's :attr:`schema` (a :class:`~common.labels.schema.LabelSchema`).

Indexing and flips. ``ds[i]`` returns the un-flipped sample (evaluation, or training without augmentation).
``ds[(i, seed)]`` flips horizontally iff ``flip`` is on, the mode is ``'train'``, and a coin drawn from
``seed`` alone comes up heads. A sampler that derives ``seed`` from ``(run seed, epoch, position)`` therefore
gets identical batches for any worker count and after any resume.

Transform (official StarGAN): center-crop ``crop_size`` (clamped to the image's shorter side, where
torchvision would pad with black), resize to ``image_size`` (PIL bilinear, as torchvision's ``Resize`` on
PIL images), optional flip, then ``(x / 255 - 0.5) / 0.5``. :func:`load_test_image` is that transform (no flip)
for one file outside a dataset. ``decoder="torchvision"`` (config ``data.decoder``) decodes and resizes with
torchvision instead (:mod:`common.data.decode`): the same pixels within a level or two, exactly the same when no
resize happens (e.g. a copy written by :func:`stargan.resized.make_resized`, read with ``crop_size=None``).

Train/test split (:func:`split_indices`, shared by all three): the official CelebA rule. The data rows are
shuffled with ``random.Random(seed)`` (the same permutation as the official ``random.seed(1234);
random.shuffle(lines)``), the first ``test_count`` rows are the test set and the rest the training set. A
dataset checks that the image files of its own split exist, not those of the other split.
"""
from __future__ import annotations

import csv
import logging
import operator
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from common.data.celeba_attrs import read_celeba_attrs
from common.data.decode import check_decoder, crop_resize_flip, decode_rgb
from common.data.images import check_listed_name, find_images, load_rgb, to_tensor
from common.errors import UserError
from common.labels.schema import Group, LabelSchema, Loss

log = logging.getLogger(__name__)

Mode = Literal["train", "test"]
MODES = ("train", "test")
# Shrunken-test-split warnings already given in this process: every split of a data set computes the same
# shrink (the trainer builds both), and one warning says all there is to say.
_shrink_warned: set[tuple[str, int, int]] = set()


# -- shared pieces -----------------------------------------------------------------------------------------
def split_indices(n: int, mode: str, test_count: int, seed: int = 1234, where: str = "") -> list[int]:
    """Row indices of the ``mode`` split of ``n`` rows: seeded shuffle, first ``test_count`` rows = test.

    With ``test_count == 0`` there is no split and every mode gets all rows in order (for data that comes
    already split into folders, like the official RaFD train/test layout). If ``test_count >= n`` no training
    row would be left, so the test set shrinks to ``n // 10`` rows (at least 1 when n >= 2): small custom sets
    then still train, and real CelebA (202,599 rows) is unaffected. That is logged as a warning once per
    process for each ``(where, n, test_count)``; ``where`` (the label file) prefixes the message.
    """
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if test_count < 0:
        raise UserError(f"test_count must be >= 0, got {test_count}")
    if test_count == 0:
        return list(range(n))
    if test_count >= n:
        new = max(1, n // 10) if n >= 2 else 0
        key = (where, n, test_count)
        if key not in _shrink_warned:
            _shrink_warned.add(key)
            log.warning("%sonly %d rows for a test split of %d; using %d test rows and %d training rows",
                        f"{where}: " if where else "", n, test_count, new, n - new)
        test_count = new
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order[:test_count] if mode == "test" else order[test_count:]


def _fraction_to_count(n: int, test_fraction: float, where: str) -> int:
    if not 0.0 <= test_fraction < 1.0:
        raise UserError(f"{where}: test_fraction must be in [0, 1), got {test_fraction}")
    return 0 if test_fraction == 0 else max(1, round(n * test_fraction))


def read_partition(path: str | os.PathLike) -> dict[str, int]:
    """``{file: 0|1|2}`` of a CelebA ``list_eval_partition.txt`` (train, val, test), in file order; errors name
    the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: partition file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read partition file ({err.__class__.__name__}: {err})") from None
    part: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise UserError(f"{path}:{lineno}: expected '<file> 0|1|2', got {line.strip()!r}")
        part[fields[0]] = int(fields[1])
    return part


def partition_indices(path: str | os.PathLike, filenames: Sequence[str], mode: str) -> list[int]:
    """Rows of ``filenames`` in ``mode`` per a CelebA ``list_eval_partition.txt`` (``<file> 0|1|2``: train,
    val, test). Train takes 0 and 1 (the official StarGAN code trains on everything but its test split)."""
    part = read_partition(path)
    missing = [f for f in filenames if f not in part]
    if missing:
        raise UserError(f"{path}: has no partition for {len(missing)} image(s) of the attribute file, "
                        f"e.g. {missing[0]}")
    want_test = mode == "test"
    return [i for i, f in enumerate(filenames) if (part[f] == 2) == want_test]


def flip_from_seed(seed: int) -> bool:
    """The horizontal-flip coin of one sample: a pure function of its seed (any Python int)."""
    return random.Random(seed).random() < 0.5


def crop_resize(img: Image.Image, image_size: int, crop_size: int | None) -> Image.Image:
    """The geometric part of :func:`stargan_transform`: centre crop (``None`` or larger than the image: the
    shorter side) and bilinear resize to ``image_size`` x ``image_size``, as an RGB PIL image."""
    w, h = img.size
    c = min(w, h) if crop_size is None else min(crop_size, w, h)
    # Same rounding as torchvision's CenterCrop, so crops match the official pipeline pixel for pixel.
    top, left = round((h - c) / 2.0), round((w - c) / 2.0)
    img = img.crop((left, top, left + c, top + c))
    if c != image_size:
        img = img.resize((image_size, image_size), Image.BILINEAR)
    return img


def stargan_transform(img: Image.Image, image_size: int, crop_size: int | None, flip: bool) -> Tensor:
    """Center-crop (``None`` or larger than the image: the shorter side), resize, flip, map to [-1, 1]."""
    img = crop_resize(img, image_size, crop_size)
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return to_tensor(img)


def load_test_image(path: str | os.PathLike, image_size: int, crop_size: int | None) -> Tensor:
    """One image file as a ``mode="test"`` dataset yields it: :func:`stargan_transform` without a flip (centre
    crop, resize, [-1, 1])."""
    return stargan_transform(load_rgb(path), image_size, crop_size, flip=False)


def _check_sizes(image_size: int, crop_size: int | None) -> None:
    if not isinstance(image_size, int) or image_size < 1:
        raise UserError(f"image_size must be a positive integer, got {image_size!r}")
    if crop_size is not None and (not isinstance(crop_size, int) or crop_size < 1):
        raise UserError(f"crop_size must be a positive integer or null, got {crop_size!r}")


class _LabeledImages(Dataset):
    """Shared indexing/transform: subclasses fill ``files``, ``labels``, ``schema``."""

    files: list[Path]
    labels: Tensor
    schema: LabelSchema

    def __init__(self, image_size: int, crop_size: int | None, mode: str, flip: bool, decoder: str = "pil") -> None:
        if mode not in MODES:
            raise UserError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        _check_sizes(image_size, crop_size)
        check_decoder(decoder)
        self.decoder = decoder
        self.image_size = image_size
        self.crop_size = crop_size
        self.mode = mode
        # The official code only flips training images.
        self.flip = bool(flip) and mode == "train"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Tensor, Tensor]:
        if isinstance(item, (tuple, list)):
            index, seed = operator.index(item[0]), operator.index(item[1])
            flip = self.flip and flip_from_seed(seed)
        else:
            index, flip = operator.index(item), False
        path = self.files[index]
        if self.decoder == "torchvision":
            image = crop_resize_flip(decode_rgb(path), self.image_size, self.crop_size, flip)
        else:
            image = stargan_transform(load_rgb(path), self.image_size, self.crop_size, flip)
        return image, self.labels[index].clone()


def _schema_error(where: str, err: ValueError) -> UserError:
    return UserError(f"{where}: {err}")


def _check_one_hot(schema: LabelSchema, labels: Tensor, origin: Callable[[int], str]) -> None:
    """A cross-entropy group's class is the member set to 1, so a row may not set two. A row that sets none has
    no class; the trainer leaves it out of that group's loss (a per-sample mask), so it is accepted."""
    for g, a, b in schema.spans():
        if g.kind != "exclusive" or g.loss != "ce":
            continue
        bad = (labels[:, a:b].sum(1) > 1).nonzero()
        if len(bad):
            i = int(bad[0])
            raise UserError(
                f"{origin(i)}: at most one of {', '.join(g.names)} may be 1 (exclusive group {g.name!r} with "
                f"cross-entropy loss), got {labels[i, a:b].int().tolist()}; use exclusive_loss='bce' to treat "
                "the members as independent attributes in the classifier"
            )


# -- CelebA ------------------------------------------------------------------------------------------------
def _check_files_exist(files: Sequence[Path], origin: Sequence[str]) -> None:
    missing = [i for i, f in enumerate(files) if not os.path.isfile(f)]
    if missing:
        i = missing[0]
        more = f" ({len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise UserError(f"{files[i]}: image file not found (listed in {origin[i]}){more}")


class CelebADataset(_LabeledImages):
    """CelebA (or any file in its attribute format) with the official split and transform.

    ``selected_attrs`` picks and orders the label columns. The schema is ``schema`` if given (its attribute
    order must equal ``selected_attrs``), else built from ``selected_attrs`` with the ``exclusive`` groups
    (e.g. the hair colours from the config); attributes in no group are binary. Labels are the file's values
    (1 -> 1, -1 -> 0) as they are: a face with none of an exclusive group's attributes set keeps an all-zero
    block. Hence ``exclusive_loss="bce"`` by default: like the official code, D classifies every CelebA
    attribute with BCE and exclusivity only shapes the test targets; with ``"ce"`` no row may set two members
    of a group (rows that set none are accepted; the trainer must mask them out of the cross-entropy).

    Split: :func:`split_indices` over all data rows with ``split_seed``; the first ``test_count`` shuffled
    rows are the test set. Note: the official code tests ``(i + 1) < 2000`` and so keeps 1,999 test rows;
    ``test_count=1999`` reproduces its exact test/train sets.

    Every image of the split the dataset serves (``mode``) must exist: it is checked at construction, so a
    missing image fails at once rather than mid-run. The other split's files are not looked at: evaluation
    needs only the test images on disk, and the trainer, which builds both splits, checks each file once
    (on full CelebA about 200,000 fewer file checks than checking every row per split).
    """

    def __init__(
        self,
        image_dir: str | os.PathLike,
        attr_path: str | os.PathLike,
        selected_attrs: Sequence[str],
        mode: Mode = "train",
        image_size: int = 128,
        crop_size: int | None = 178,
        flip: bool = True,
        test_count: int = 2000,
        split_seed: int = 1234,
        exclusive: Sequence[Sequence[str]] | None = None,
        schema: LabelSchema | None = None,
        partition_path: str | os.PathLike | None = None,
        exclusive_loss: Loss = "bce",
        decoder: str = "pil",
    ) -> None:
        super().__init__(image_size, crop_size, mode, flip, decoder)
        self.image_dir = Path(image_dir)
        self.attr_path = Path(attr_path)
        if not self.image_dir.is_dir():
            raise UserError(f"{self.image_dir}: CelebA image folder not found (expected a directory)")
        filenames, labels, self.all_names = read_celeba_attrs(attr_path, selected_attrs)
        try:
            if schema is None:
                schema = LabelSchema.from_attrs(list(selected_attrs), exclusive, exclusive_loss)
            elif schema.names != tuple(selected_attrs):
                raise ValueError(
                    f"schema attributes {list(schema.names)} differ from selected_attrs {list(selected_attrs)}"
                )
        except ValueError as err:
            raise _schema_error(str(self.attr_path), err) from None
        self.schema = schema
        _check_one_hot(schema, labels, lambda i: f"{self.attr_path}: row {i + 1} ({filenames[i]})")
        if partition_path is not None:
            idx = partition_indices(partition_path, filenames, mode)
        else:
            idx = split_indices(len(filenames), mode, test_count, split_seed, where=str(self.attr_path))
        self.files = [self.image_dir / filenames[i] for i in idx]
        _check_files_exist(self.files, [str(self.attr_path)] * len(self.files))
        self.filenames = [filenames[i] for i in idx]
        self.labels = labels[idx] if idx else labels[:0]


# -- ImageFolder (RaFD) ------------------------------------------------------------------------------------
class ImageFolderDataset(_LabeledImages):
    """One subfolder per class (RaFD layout); classes sorted by name; labels one-hot.

    The schema is a single exclusive group ``group_name`` whose members are the class folder names. Images are
    found recursively inside each class folder; files directly in ``root`` are ignored, as are hidden folders.

    Split: by default (``test_fraction=0``) the folder is used whole, matching the official RaFD layout of
    separate ``train/`` and ``test/`` roots; with ``test_fraction > 0``, :func:`split_indices` over all images
    (sorted by class, then path) with ``round(n * test_fraction)`` test images.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int = 128,
        crop_size: int | None = 256,
        mode: Mode = "train",
        flip: bool = True,
        test_fraction: float = 0.0,
        split_seed: int = 1234,
        group_name: str = "class",
        decoder: str = "pil",
    ) -> None:
        super().__init__(image_size, crop_size, mode, flip, decoder)
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: image folder not found (expected one subfolder per class)")
        self.classes = sorted(
            e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith(".")
        )
        if len(self.classes) < 2:
            raise UserError(
                f"{self.root}: need at least 2 class subfolders, found {len(self.classes)}"
                + (f" ({', '.join(self.classes)})" if self.classes else "")
            )
        try:
            self.schema = LabelSchema((Group.exclusive(group_name, self.classes),))
        except ValueError as err:
            raise _schema_error(str(self.root), err) from None
        files: list[Path] = []
        targets: list[int] = []
        for k, cls in enumerate(self.classes):
            found = find_images(self.root / cls, what=f"class folder '{cls}'")
            files.extend(found)
            targets.extend([k] * len(found))
        test_count = _fraction_to_count(len(files), test_fraction, str(self.root))
        idx = split_indices(len(files), mode, test_count, split_seed, where=str(self.root))
        self.files = [files[i] for i in idx]
        self.targets = [targets[i] for i in idx]
        self.labels = torch.nn.functional.one_hot(
            torch.tensor(self.targets, dtype=torch.long), len(self.classes)
        ).float().reshape(len(idx), len(self.classes))


# -- CSV ---------------------------------------------------------------------------------------------------
class CsvDataset(_LabeledImages):
    """A CSV label file: header ``filename,attr1,attr2,...``, one row per image.

    Values are 0/1 or -1/1 (-1 is read as 0). File names are relative to ``image_dir``; absolute paths and
    paths that leave ``image_dir`` (``../``) are rejected. The check is lexical (normalised path, symlinks not
    followed), so a label file cannot reach outside the folder while users may still symlink images into it.
    ``selected_attrs`` picks and orders the label columns (None or empty: every column, in header order; other
    columns are then not parsed). ``exclusive`` groups are as in :meth:`LabelSchema.from_attrs`, other
    attributes binary; with the default ``exclusive_loss="ce"`` no row may set two members of a group (the
    member set is the cross-entropy class; a row that sets none has no class and must be masked out of that
    group's loss by the trainer); ``"bce"`` accepts any 0/1 combination. ``crop_size=None``
    crops the central square of each image's shorter side. The split works as for :class:`ImageFolderDataset`
    (``test_fraction``).
    """

    def __init__(
        self,
        image_dir: str | os.PathLike,
        csv_path: str | os.PathLike,
        image_size: int = 128,
        crop_size: int | None = None,
        mode: Mode = "train",
        flip: bool = True,
        exclusive: Sequence[Sequence[str]] | None = None,
        test_fraction: float = 0.0,
        split_seed: int = 1234,
        selected_attrs: Sequence[str] | None = None,
        exclusive_loss: Loss = "ce",
        decoder: str = "pil",
    ) -> None:
        super().__init__(image_size, crop_size, mode, flip, decoder)
        self.image_dir = Path(image_dir)
        self.csv_path = Path(csv_path)
        where = str(self.csv_path)
        if not self.csv_path.is_file():
            raise UserError(f"{where}: CSV label file not found")
        if not self.image_dir.is_dir():
            raise UserError(f"{self.image_dir}: image folder not found (expected a directory)")
        try:
            with open(self.csv_path, newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                rows = [(reader.line_num, row) for row in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise UserError(f"{where}: cannot read CSV ({err.__class__.__name__}: {err})") from None
        rows = [(ln, [c.strip() for c in row]) for ln, row in rows if any(c.strip() for c in row)]
        if not rows:
            raise UserError(f"{where}: empty CSV; expected a header 'filename,attr1,attr2,...'")
        header_line, header = rows[0]
        if header[0].lower() != "filename" or len(header) < 2:
            raise UserError(
                f"{where}:{header_line}: expected a header 'filename,attr1,attr2,...', got {','.join(header)!r}"
            )
        columns = header[1:]
        dupes = sorted({a for a in columns if columns.count(a) > 1})
        if dupes:
            raise UserError(f"{where}:{header_line}: duplicate attribute names: {', '.join(dupes)}")
        attrs = list(selected_attrs) if selected_attrs else columns
        unknown = [a for a in attrs if a not in columns]
        if unknown:
            raise UserError(
                f"{where}:{header_line}: unknown attribute(s) {', '.join(unknown)}; valid attributes: "
                + ", ".join(columns)
            )
        cols = [1 + columns.index(a) for a in attrs]
        try:
            self.schema = LabelSchema.from_attrs(attrs, exclusive, exclusive_loss)
        except ValueError as err:
            raise _schema_error(f"{where}:{header_line}", err) from None

        root = os.path.normpath(os.path.abspath(self.image_dir))
        files: list[Path] = []
        origin: list[str] = []
        labels: list[list[float]] = []
        for ln, row in rows[1:]:
            loc = f"{where}:{ln}"
            if len(row) != len(header):
                raise UserError(f"{loc}: expected {len(header)} columns ({','.join(header)}), got {len(row)}")
            name = row[0]
            if not name:
                raise UserError(f"{loc}: empty file name")
            check_listed_name(name, loc, self.image_dir)
            full = os.path.normpath(os.path.join(root, name))
            values = []
            for attr, c in zip(attrs, cols):
                v = row[c]
                try:
                    x = float(v)
                except ValueError:
                    raise UserError(
                        f"{loc}: value {v!r} for {attr} is not a number (expected 0/1 or -1/1)"
                    ) from None
                if x not in (-1.0, 0.0, 1.0):
                    raise UserError(f"{loc}: value {v!r} for {attr} must be 0/1 or -1/1")
                values.append(1.0 if x == 1.0 else 0.0)
            files.append(Path(full))
            origin.append(loc)
            labels.append(values)
        if not files:
            raise UserError(f"{where}: no data rows after the header")
        all_labels = torch.tensor(labels, dtype=torch.float32)
        _check_one_hot(self.schema, all_labels, origin.__getitem__)
        test_count = _fraction_to_count(len(files), test_fraction, where)
        idx = split_indices(len(files), mode, test_count, split_seed, where=where)
        # Like CelebA: only the served split's images need to exist.
        _check_files_exist([files[i] for i in idx], [origin[i] for i in idx])
        self.files = [files[i] for i in idx]
        self.labels = all_labels[idx] if idx else all_labels[:0]
