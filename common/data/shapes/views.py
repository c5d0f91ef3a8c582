"""The CycleGAN view of a shapes dataset: ``cyclegan/<A>2<B>/{trainA,trainB,testA,testB}`` holding the images
whose attribute ``A`` (``B``) is set, split by the dataset's fixed test split."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from common.data.celeba_attrs import read_attr_file
from common.data.shapes.layout import CYCLEGAN_DIR, IMAGES_DIR, read_test_files, require_dataset
from common.data.shapes.scene import SHAPES_ATTRS, SHAPES_EXCLUSIVE
from common.errors import UserError
from common.files import link_or_copy


def _check_pair(a: Any, b: Any, exclusive: Sequence[Sequence[str]], where: str) -> tuple[str, str]:
    if not isinstance(a, str) or not isinstance(b, str):
        raise UserError(f"{where}: expected two attribute names, got {a!r}, {b!r}")
    if a == b:
        raise UserError(f"{where}: the two attributes must differ, got {a!r} twice")
    for group in exclusive:
        if a in group and b in group:
            return a, b
    members = [m for g in exclusive for m in g]
    raise UserError(
        f"{where}: a CycleGAN view needs two attributes of the same exclusive group (e.g. {members[0]} and "
        f"{members[1]}), got {a!r} and {b!r}"
    )


def view_pairs(views: Iterable[Any] | None) -> list[tuple[str, str]]:
    """The checked, de-duplicated ``(attr_from, attr_to)`` pairs of ``make_dataset(cyclegan_views=...)``."""
    if views is None:
        return []
    pairs: list[tuple[str, str]] = []
    for v in views:
        if isinstance(v, str) or not isinstance(v, Sequence) or len(v) != 2:
            raise UserError(f"cyclegan_views: each view is a pair (attr_from, attr_to), got {v!r}")
        pair = _check_pair(v[0], v[1], SHAPES_EXCLUSIVE, "cyclegan_views")
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def write_view(
    out: Path, a: str, b: str, files: Sequence[str], labels: Sequence[Sequence[int]], test: set[int]
) -> dict[str, Any]:
    """Write the ``a``-to-``b`` view of the images ``files`` (rows of ``labels``; ``test`` the test indices)."""
    root = out / CYCLEGAN_DIR / f"{a}2{b}"
    if root.exists():
        shutil.rmtree(root)
    ja, jb = SHAPES_ATTRS.index(a), SHAPES_ATTRS.index(b)
    counts = {}
    for side, j in (("A", ja), ("B", jb)):
        for split, in_test in (("train", False), ("test", True)):
            d = root / f"{split}{side}"
            d.mkdir(parents=True)
            k = 0
            for i, f in enumerate(files):
                if labels[i][j] and (i in test) == in_test:
                    link_or_copy(out / IMAGES_DIR / f, d / f)
                    k += 1
            counts[f"{split}{side}"] = k
    return {"path": str(root), **counts}


def write_cyclegan_view(out: str | os.PathLike, attr_a: str, attr_b: str) -> dict[str, Any]:
    """Write ``out/cyclegan/<A>2<B>/{trainA,trainB,testA,testB}`` from an existing shapes dataset: the images
    whose ``attr_a`` (``attr_b``) is set, split by the dataset's fixed test split. Files are hard links, or
    copies where links are impossible. Replaces an existing view of the same name. Returns the counts."""
    out = Path(out)
    meta = require_dataset(out)
    a, b = _check_pair(attr_a, attr_b, meta["exclusive"], "write_cyclegan_view")
    attr_path = out / meta["attr_file"]
    table = read_attr_file(attr_path, count_mismatch="error")
    # The conditioned attributes come first; nuisance columns (format version 2) may follow.
    if table.names[:len(SHAPES_ATTRS)] != list(SHAPES_ATTRS):
        raise UserError(f"{attr_path}: attributes {table.names} do not start with {SHAPES_ATTRS}")
    test_names = read_test_files(out, meta)
    test = {i for i, f in enumerate(table.files) if f in test_names}
    return write_view(out, a, b, table.files, table.labels, test)
