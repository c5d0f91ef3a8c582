"""A tiny CelebA-format folder of face-sized photo-like images for the data-path tests (decoder option, resized
copy): ``images/`` (JPEGs, every fourth a PNG), ``list_attr_celeba.txt`` and ``list_eval_partition.txt``."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from test_data_decode import _photo_like

from common.data.celeba_attrs import attr_file_text

# The attributes configs/stargan/tiny.yaml selects, so it trains on this folder as it is.
ATTRS = ["Red", "Green", "Blue", "Yellow", "Striped"]
TINY_STARGAN = Path(__file__).resolve().parents[1] / "configs" / "stargan" / "tiny.yaml"


def make_celeba(root: Path, n: int = 12, size: tuple[int, int] = (40, 50), n_test: int = 2, seed: int = 0) -> Path:
    """``root`` with ``n`` images of ``size`` (width, height); the first ``n_test`` rows are partition 2 (test)."""
    images = Path(root) / "images"
    images.mkdir(parents=True)
    names = []
    for i in range(n):
        name = f"{i:06d}.png" if i % 4 == 3 else f"{i:06d}.jpg"
        _photo_like(seed * 1000 + i, size).save(images / name, **({} if name.endswith(".png") else {"quality": 90}))
        names.append(name)
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 4, n)
    labels = [[int(c == k) for k in range(4)] + [int(rng.integers(0, 2))] for c in colours]
    (Path(root) / "list_attr_celeba.txt").write_text(attr_file_text(ATTRS, names, labels))
    (Path(root) / "list_eval_partition.txt").write_text(
        "".join(f"{name} {2 if i < n_test else 0}\n" for i, name in enumerate(names)))
    return Path(root)


def celeba_overrides(root: Path, image_size: int = 16, crop_size: int | None = 36) -> list[str]:
    """``KEY=VALUE`` overrides pointing configs/stargan/tiny.yaml at a :func:`make_celeba` folder."""
    return [f"data.datasets.0.image_dir={root / 'images'}",
            f"data.datasets.0.attr_path={root / 'list_attr_celeba.txt'}",
            f"data.datasets.0.partition_path={root / 'list_eval_partition.txt'}",
            f"data.datasets.0.crop_size={'null' if crop_size is None else crop_size}",
            f"data.image_size={image_size}"]


def tree_digest(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root``, to show a folder was left untouched."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}
