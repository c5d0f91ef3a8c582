"""The CelebA attribute-file format (``list_attr_celeba.txt``): a count line, a header line, then rows::

    202599
    5_o_Clock_Shadow Arched_Eyebrows Attractive ...
    000001.jpg -1  1  1 -1 ...

Line 1 is the number of rows, line 2 the attribute names, then ``<file> <one -1/1 per attribute>`` per row.
Fields are separated by runs of whitespace (the real file right-aligns each value in two characters and ends
the header with a space); blank lines are ignored. File names are relative to the image folder: absolute names
and names that leave it (``../``) are refused, as in CSV label files. CelebA uses it, the shapes generator writes
it, and any attribute-labelled image set can be written in it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from common.data.images import check_listed_name
from common.errors import UserError

log = logging.getLogger(__name__)

_VALID = frozenset(("-1", "1"))
# Header-count warnings already given in this process: a run reads the file once per split (and evaluation
# once more), and one warning says all there is to say.
_count_warned: set[tuple[str, int, int]] = set()


@dataclass(frozen=True)
class AttrTable:
    """A parsed attribute file. ``names``: every attribute of the header, in file order; ``files``: the row
    file names, in file order; ``labels``: bool ``(len(files), len(columns))``, 1 -> True, -1 -> False, with
    the columns in the order they were selected (all of ``names`` when none were)."""

    names: list[str]
    files: list[str]
    columns: list[str]
    labels: np.ndarray


def _select_columns(path: Path, names: list[str], selected: Sequence[str] | None) -> list[str]:
    if selected is None:
        return list(names)
    selected = list(selected)
    if not selected:
        raise UserError(f"{path}: no attributes selected")
    unknown = [a for a in selected if a not in names]
    if unknown:
        raise UserError(f"{path}: unknown attribute(s) {', '.join(unknown)}; valid attributes: {', '.join(names)}")
    if len(set(selected)) != len(selected):
        raise UserError(f"{path}: selected attributes contain duplicates: {selected}")
    return selected


def read_attr_file(
    path: str | os.PathLike,
    selected: Sequence[str] | None = None,
    count_mismatch: Literal["warn", "error"] = "warn",
) -> AttrTable:
    """Parse an attribute file, keeping the ``selected`` columns (None: all) in that order.

    Errors are :class:`UserError` s naming the file and line. A count on line 1 that differs from the number of
    rows is, with ``count_mismatch="warn"``, logged once per file and process and the rows are used: the
    official StarGAN code ignores the count, and hand-made subsets of CelebA often keep the original one. The
    warning says that the seeded split depends on the row count. With ``"error"`` (files this library wrote,
    where a wrong count means a damaged file) it is a UserError.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; expected the CelebA attribute file (e.g. list_attr_celeba.txt)")
    if not path.is_file():
        raise UserError(f"{path}: CelebA attribute file not found")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read attribute file ({err.__class__.__name__}: {err})") from None
    if len(lines) < 2:
        raise UserError(f"{path}: expected an image count on line 1 and attribute names on line 2")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise UserError(f"{path}:1: expected the image count, got {lines[0].strip()!r}") from None
    names = lines[1].split()
    if not names:
        raise UserError(f"{path}:2: expected the attribute names")
    dupes = sorted({a for a in names if names.count(a) > 1})
    if dupes:
        raise UserError(f"{path}:2: duplicate attribute names {', '.join(dupes)}")
    columns = _select_columns(path, names, selected)
    cols = [names.index(a) for a in columns]
    n_attr = len(names)

    files: list[str] = []
    rows: list[list[bool]] = []
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        values = parts[1:]
        if len(values) != n_attr:
            raise UserError(f"{path}:{lineno}: expected a file name and {n_attr} values, got {len(values)} values")
        if not _VALID.issuperset(values):
            j = next(j for j, v in enumerate(values) if v not in _VALID)
            raise UserError(f"{path}:{lineno}: value {values[j]!r} for {names[j]} must be -1 or 1")
        check_listed_name(parts[0], f"{path}:{lineno}")
        files.append(parts[0])
        rows.append([values[c] == "1" for c in cols])
    if count != len(files):
        message = f"{path}:1: header says {count} images but the file has {len(files)} rows"
        if count_mismatch == "error":
            raise UserError(message)
        key = (os.path.abspath(path), count, len(files))
        if key not in _count_warned:
            _count_warned.add(key)
            log.warning("%s; using the rows (the seeded train/test split depends on the row count)", message)
    labels = np.array(rows, dtype=bool).reshape(len(rows), len(cols))
    return AttrTable(names=names, files=files, columns=columns, labels=labels)


def read_celeba_attrs(
    path: str | os.PathLike, selected: Sequence[str]
) -> tuple[list[str], torch.Tensor, list[str]]:
    """``(filenames, labels, all_names)`` of an attribute file (see :func:`read_attr_file`; the count only
    warns), ``labels`` a float ``(n, len(selected))`` tensor of 0/1 in the order of ``selected``."""
    table = read_attr_file(path, selected)
    return table.files, torch.from_numpy(table.labels).float(), table.names


def attr_file_text(names: Sequence[str], files: Sequence[str], labels: Sequence[Sequence[int]]) -> str:
    """The file's text, laid out as the real CelebA file: the names with a trailing space, then each value
    right-aligned in two characters (``"<file> -1  1 ..."``), so readers must split on runs of whitespace."""
    lines = [str(len(files)), " ".join(names) + " "]
    for f, lab in zip(files, labels):
        lines.append(f + " " + " ".join(f"{1 if v else -1:2d}" for v in lab))
    return "\n".join(lines) + "\n"
