"""The data stage: the k domains' images, cropped and resized once into the domain view
``<out>/domains/{train,test}/<domain>/``, the CycleGAN pair views ``<out>/pairs/<A>2<B>/`` (hard links into the
domain view) and ``domains/manifest.json``, written last, which marks them complete."""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

from common.config import to_dict
from common.data.celeba_attrs import read_celeba_attrs
from common.data.images import find_images, tensor_to_image, write_png
from common.data.shapes import ATTR_FILE, IMAGES_DIR, PARTITION_FILE, SCHEMA_FILE, make_dataset
from common.errors import UserError
from common.files import link_or_copy, read_json_or_none, write_json_atomic
from stargan.compare.config import CompareConfig
from stargan.compare.layout import DATA_DIR, DOMAINS_DIR, MANIFEST_FILE, PAIRS_DIR, pair_name
from stargan.datasets import load_test_image, partition_indices, split_indices

log = logging.getLogger(__name__)

# (split, domain, source image, file name in the domain view)
Item = tuple[str, str, Path, str]


def load_images(files: Sequence[Path], image_size: int) -> Tensor:
    """Domain-view images (already cropped and resized) as one ``(N, 3, H, W)`` batch in [-1, 1]."""
    return torch.stack([load_test_image(f, image_size, None) for f in files])


def split_files(out: Path, manifest: dict, split: str, limit: int | None = None) -> dict[str, list[Path]]:
    """Domain -> paths of the domain view's ``split`` images (the first ``limit`` of each)."""
    return {dom: [out / DOMAINS_DIR / split / dom / n for n in names[:limit]]
            for dom, names in manifest["files"][split].items()}


def _ensure_shapes(cfg: CompareConfig, data_dir: Path) -> None:
    d = cfg.data
    want = {"n": d.n, "size": d.size, "seed": d.seed, "test_fraction": d.test_fraction}
    meta = read_json_or_none(data_dir / SCHEMA_FILE)
    if isinstance(meta, dict) and meta.get("complete"):
        if all(meta.get(k) == v for k, v in want.items()):
            return
        have = {k: meta.get(k) for k in want}
        raise UserError(f"{data_dir}: holds a shapes dataset made with {have}, but the config asks for {want}; "
                        "use another --out")
    log.info("data: generating %d shapes images of %dpx into %s", d.n, d.size, data_dir)
    make_dataset(data_dir, n=d.n, size=d.size, seed=d.seed, test_fraction=d.test_fraction)


def _celeba_items(cfg: CompareConfig, attr_path: Path, image_dir: Path) -> list[Item]:
    d = cfg.data
    files, labels, _ = read_celeba_attrs(attr_path, d.domains)
    if d.kind == "shapes":
        test = set(partition_indices(attr_path.parent / PARTITION_FILE, files, "test"))
    elif d.partition_path:
        test = set(partition_indices(d.partition_path, files, "test"))
    else:
        test = set(split_indices(len(files), "test", d.test_count, d.split_seed))
    items = []
    for i, name in enumerate(files):
        row = labels[i]
        # An image with none or several of the domains set belongs to no single domain.
        if int(row.sum()) != 1:
            continue
        domain = d.domains[int(row.argmax())]
        items.append(("test" if i in test else "train", domain, image_dir / name, name))
    return items


def _flat_names(folder: Path, files: Sequence[Path]) -> list[str]:
    """Unique PNG names for images found recursively in ``folder``: sub/dir/x.jpg -> sub__dir__x.png, and
    x.jpg beside x.png keeps its suffix in the name (x_jpg.png) rather than overwriting it."""
    stems = ["__".join(f.relative_to(folder).with_suffix("").parts) for f in files]
    taken: dict[str, int] = {}
    for stem in stems:
        taken[stem] = taken.get(stem, 0) + 1
    return [(f"{stem}_{f.suffix.lstrip('.').lower()}" if taken[stem] > 1 else stem) + ".png"
            for stem, f in zip(stems, files)]


def _imagefolder_items(cfg: CompareConfig) -> list[Item]:
    d = cfg.data
    items = []
    for domain in d.domains:
        roots = [("train", Path(d.root) / domain)] + ([("test", Path(d.test_root) / domain)] if d.test_root else [])
        for split, folder in roots:
            if not folder.is_dir():
                raise UserError(f"{folder}: folder of domain {domain!r} not found (data.domains names the "
                                f"subfolders of data.{'root' if split == 'train' else 'test_root'})")
            files = find_images(folder, what=f"domain folder '{domain}'")
            names = _flat_names(folder, files)
            if d.test_root:
                items += [(split, domain, f, n) for f, n in zip(files, names)]
                continue
            test = set(split_indices(len(files), "test", max(1, round(len(files) * d.test_fraction)),
                                     d.split_seed))
            items += [("test" if i in test else "train", domain, f, n) for i, (f, n) in enumerate(zip(files, names))]
    return items


def _source_items(cfg: CompareConfig, out: Path) -> tuple[list[Item], str | None]:
    """Every image of the k domains, and the folder of ground-truth counterfactuals (shapes only)."""
    d = cfg.data
    if d.kind == "shapes":
        data_dir = out / DATA_DIR
        _ensure_shapes(cfg, data_dir)
        return _celeba_items(cfg, data_dir / ATTR_FILE, data_dir / IMAGES_DIR), str(data_dir)
    if d.kind == "celeba":
        if not Path(d.root).is_dir():
            raise UserError(f"{d.root}: image folder (data.root) not found")
        return _celeba_items(cfg, Path(d.attr_path), Path(d.root)), None
    return _imagefolder_items(cfg), None


def _write_resized(jobs: Sequence[tuple[Path, Path]], size: int, crop: int | None) -> None:
    def one(job: tuple[Path, Path]) -> None:
        # The StarGAN test transform, so these files equal what StarGAN's own loader would make of the source.
        # Not atomic: the manifest, written last, marks the whole view complete.
        write_png(tensor_to_image(load_test_image(job[0], size, crop)), job[1], compress_level=1, atomic=False)

    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as ex:
        for _ in ex.map(one, jobs):
            pass


def _write_domain_view(cfg: CompareConfig, root: Path, items: Sequence[Item]) -> dict[str, dict[str, list[str]]]:
    """Split -> domain -> sorted file names, written into ``root/<split>/<domain>/``."""
    files: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    jobs = []
    for split, domain, src, name in items:
        folder = root / split / domain
        folder.mkdir(parents=True, exist_ok=True)
        files[split].setdefault(domain, []).append(name)
        if cfg.data.kind == "shapes":
            link_or_copy(src, folder / name)  # rendered at the training size already
        else:
            jobs.append((src, folder / name))
    if jobs:
        size = cfg.data.resolved_image_size
        log.info("data: cropping/resizing %d images to %dpx into %s", len(jobs), size, root)
        _write_resized(jobs, size, cfg.data.crop_size)
    for split in files:
        for domain in files[split]:
            files[split][domain].sort()
    return files


def _write_pair_views(cfg: CompareConfig, out: Path, files: dict[str, dict[str, list[str]]]) -> None:
    root = out / DOMAINS_DIR
    for a, b in cfg.pairs:
        for split in ("train", "test"):
            for side, domain in (("A", a), ("B", b)):
                folder = out / PAIRS_DIR / pair_name(a, b) / f"{split}{side}"
                folder.mkdir(parents=True, exist_ok=True)
                for name in files[split][domain]:
                    link_or_copy(root / split / domain / name, folder / name)


def _check_prepared(manifest: dict, key: dict, out: Path) -> None:
    if manifest.get("key") == key:
        return
    old = manifest.get("key") or {}
    diff = ", ".join(f"data.{k}: {old.get(k)!r} there, {v!r} now" for k, v in key.items() if old.get(k) != v)
    raise UserError(f"{out / DOMAINS_DIR / MANIFEST_FILE}: {out} was prepared from other data settings ({diff}); "
                    "use another --out for these")


def read_manifest(out: Path) -> dict | None:
    manifest = read_json_or_none(out / DOMAINS_DIR / MANIFEST_FILE)
    return manifest if isinstance(manifest, dict) else None


def prepare_data(cfg: CompareConfig, out: Path) -> dict:
    """The domain view, the pair views and their manifest (returned). Done once; ``manifest.json`` is written
    last and marks completion."""
    key = to_dict(cfg.data)
    manifest = read_manifest(out)
    if manifest is not None:
        _check_prepared(manifest, key, out)
        return manifest
    d = cfg.data
    items, counterfactuals = _source_items(cfg, out)
    for split in ("train", "test"):
        empty = [dom for dom in d.domains if not any(s == split and x == dom for s, x, _, _ in items)]
        if empty:
            raise UserError(f"data: domain {empty[0]!r} has no {split} images (every domain needs both)")
    for name in (DOMAINS_DIR, PAIRS_DIR):
        if (out / name).exists():
            shutil.rmtree(out / name)  # left half-written by an interrupted run
    files = _write_domain_view(cfg, out / DOMAINS_DIR, items)
    _write_pair_views(cfg, out, files)
    manifest = {"key": key, "domains": list(d.domains), "image_size": d.resolved_image_size, "files": files,
                "counterfactuals": counterfactuals}
    write_json_atomic(out / DOMAINS_DIR / MANIFEST_FILE, manifest)
    counts = ", ".join(f"{dom} {len(files['train'][dom])}/{len(files['test'][dom])}" for dom in d.domains)
    log.info("data: train/test images per domain: %s; %d pair views in %s", counts, len(cfg.pairs), out / PAIRS_DIR)
    return manifest
