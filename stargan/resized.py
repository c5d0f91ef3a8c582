"""A pre-resized copy of a CelebA-format dataset, for machines whose CPUs cannot decode and resize fast enough.

:func:`make_resized` (``stargan resize-dataset``) reads ``SRC/images`` and ``SRC/list_attr_celeba.txt`` (and
``SRC/list_eval_partition.txt`` when present) and writes ``OUT/images`` with every listed image centre-cropped
and resized ONCE by the training transform's own code (:func:`stargan.datasets.crop_resize`, PIL, bilinear), as
lossless PNG (``a/x.jpg`` becomes ``a/x.png``), the two label files with the new names, and ``OUT/resized.json``
recording the source, crop and size. Trained with ``crop_size: null`` (or any crop of at least the size, which
is clamped to the image) and ``data.image_size`` equal to the size, the copy gives exactly the tensors of the
original with the crop and size it was made with: same rows in the same order (hence the same seeded split),
same labels, same flips, same pixels.

Output rules: ``OUT`` may be missing, empty, or an unfinished copy of the same source (same attribute and
partition files, by hash) with the same crop and size, which is resumed (finished PNGs are kept: each was
written atomically); a finished one is left as it is. Anything else is refused before a file is written. The
source is only read. An unreadable or missing image is a one-line error naming it, or with ``skip_bad`` is left
out of the copy and of its label files (then a seeded ``test_count`` split differs from the original's, since it
shuffles fewer rows; a partition file keeps the split).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.data.celeba_attrs import attr_file_text, read_attr_file
from common.data.images import load_rgb, write_png
from common.data.loader import available_cpus
from common.data.shapes import ATTR_FILE, IMAGES_DIR, PARTITION_FILE
from common.errors import UserError
from common.files import read_json_or_none, remove_temp_files, write_json_atomic, write_text_atomic
from stargan.datasets import crop_resize, read_partition

log = logging.getLogger(__name__)

MARKER = "resized.json"
FORMAT = "resized-celeba"
FORMAT_VERSION = 1
# What the marker must match for an unfinished copy to be resumed.
_SETTINGS = ("source", "crop_size", "image_size", "attr_sha256", "partition_sha256")

# One image to write: (source file, destination PNG, crop, size).
Job = tuple[str, str, int | None, int]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _png_name(name: str) -> str:
    return Path(name).with_suffix(".png").as_posix()


def _resize_one(job: Job) -> str | None:
    """Write one PNG; the read error's one line for an unreadable image (write errors raise: they are no
    property of the image, and ``skip_bad`` must not hide a full disk)."""
    src, dst, crop_size, image_size = job
    try:
        image = crop_resize(load_rgb(src), image_size, crop_size)
    except UserError as err:
        return str(err)
    write_png(image, dst)
    return None


def _check_out(out: Path, src: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The marker of an existing copy made with ``settings`` (None: ``out`` is missing or empty); refuses any
    other non-empty folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out must be a folder, but a file with that name exists")
    if out.resolve().is_relative_to((src / IMAGES_DIR).resolve()):
        raise UserError(f"{out}: --out is inside the source image folder {src / IMAGES_DIR}; choose a folder "
                        "outside it")
    if not out.is_dir() or not any(out.iterdir()):
        return None
    marker = read_json_or_none(out / MARKER)
    if not isinstance(marker, dict) or marker.get("format") != FORMAT:
        raise UserError(f"{out}: folder is not empty and is not a resized copy (no {MARKER} with "
                        f'"format": "{FORMAT}"); choose a new or empty folder')
    differ = [f"{key} {marker.get(key)!r} (asked: {settings[key]!r})" for key in _SETTINGS
              if marker.get(key) != settings[key]]
    if differ:
        raise UserError(f"{out}: holds a resized copy made with other settings: {'; '.join(differ)}; choose a new "
                        "or empty folder")
    return marker


def _run_jobs(jobs: Sequence[Job], workers: int, skip_bad: bool) -> list[int]:
    """Write the PNGs of ``jobs`` with ``workers`` processes; the indices of the unreadable images (skipped
    with ``skip_bad``, else the first is raised)."""
    bad: list[int] = []
    bar = tqdm(total=len(jobs), unit="img", desc="resize", disable=None)
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) > 1 else None
    try:
        results = pool.map(_resize_one, jobs, chunksize=max(1, min(64, len(jobs) // (4 * workers)))) if pool \
            else map(_resize_one, jobs)
        for i, error in enumerate(results):
            bar.update()
            if error is None:
                continue
            if not skip_bad:
                raise UserError(f"{error}; fix or remove it and run again to resume, or pass --skip-bad to leave it "
                                "out of the copy")
            log.warning("skipped: %s", error)
            bad.append(i)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return bad


_mismatch_warned: set[tuple[str, int, int | None]] = set()


def check_copy_use(image_dir: str | os.PathLike, image_size: int, crop_size: int | None) -> None:
    """Warn (once per process and setting) when ``image_dir`` is the images folder of a resized copy that a
    dataset would crop or resize again: that gives other pixels than the original read at that size."""
    marker = read_json_or_none(Path(image_dir).parent / MARKER)
    if not isinstance(marker, dict) or marker.get("format") != FORMAT:
        return
    size = marker.get("image_size")
    exact = image_size == size and (crop_size is None or crop_size >= size)
    key = (str(image_dir), image_size, crop_size)
    if exact or key in _mismatch_warned:
        return
    _mismatch_warned.add(key)
    log.warning("%s: is a copy resized to %sx%s (crop %s of %s); read with image_size %s and crop_size %s it is "
                "cropped or resized again, which does not give the original's pixels at that size; use crop_size "
                "null and image_size %s, or make a copy for this size", image_dir, size, size,
                marker.get("crop_size"), marker.get("source"), image_size, crop_size, size)


def make_resized(src: str | os.PathLike, out: str | os.PathLike, image_size: int, crop_size: int | None = None,
                 workers: int | None = None, skip_bad: bool = False) -> dict[str, Any]:
    """Write the resized copy of the CelebA-format folder ``src`` into ``out`` (see the module docstring) with
    ``workers`` processes (None: the CPUs this process may use). Returns a summary: counts, paths (as strings),
    skipped file names, seconds, and ``already_complete`` when ``out`` was a finished copy."""
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    if not isinstance(image_size, int) or image_size < 1:
        raise UserError(f"--size: expected a positive integer, got {image_size!r}")
    if crop_size is not None and (not isinstance(crop_size, int) or crop_size < 1):
        raise UserError(f"--crop: expected a positive integer or none, got {crop_size!r}")
    workers = available_cpus() if workers is None else workers
    if workers < 1:
        raise UserError(f"--workers: expected at least 1, got {workers}")
    if not src.is_dir():
        raise UserError(f"{src}: source folder not found (expected images/ and {ATTR_FILE})")
    image_dir, attr_path, partition_path = src / IMAGES_DIR, src / ATTR_FILE, src / PARTITION_FILE
    if not image_dir.is_dir():
        raise UserError(f"{image_dir}: source image folder not found")
    table = read_attr_file(attr_path)
    partition = read_partition(partition_path) if partition_path.is_file() else None
    renamed = {name: _png_name(name) for name in table.files}  # read_attr_file refuses duplicate names
    owner: dict[str, str] = {}
    for name, png in renamed.items():
        if owner.setdefault(png, name) != name:
            raise UserError(f"{attr_path}: {owner[png]} and {name} would both become {png} in the copy; rename one")
    settings = {"source": str(src.resolve()), "crop_size": crop_size, "image_size": image_size,
                "attr_sha256": _sha256(attr_path),
                "partition_sha256": _sha256(partition_path) if partition is not None else None}
    marker = _check_out(out, src, settings)
    summary = {"src": str(src), "out": str(out), "images": str(out / IMAGES_DIR), "attr_file": str(out / ATTR_FILE),
               "partition_file": str(out / PARTITION_FILE) if partition is not None else None,
               "crop_size": crop_size, "image_size": image_size, "workers": workers}
    if marker is not None and marker.get("complete"):
        return {**summary, "rows": marker.get("rows"), "written": 0, "reused": marker.get("rows"),
                "skipped": marker.get("skipped", []), "already_complete": True,
                "seconds": time.perf_counter() - t0}

    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "complete": False, **settings, "images": IMAGES_DIR,
            "attr_file": ATTR_FILE, "partition_file": PARTITION_FILE if partition is not None else None}
    write_json_atomic(out / MARKER, meta)
    (out / IMAGES_DIR).mkdir(exist_ok=True)
    remove_temp_files(out / IMAGES_DIR, recursive=True)  # a killed run's; the folder is ours (its marker says so)
    todo: list[tuple[str, Job]] = []
    for name, png in renamed.items():
        dst = out / IMAGES_DIR / png
        if dst.is_file():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        todo.append((name, (str(image_dir / name), str(dst), crop_size, image_size)))
    bad = {todo[i][0] for i in _run_jobs([job for _, job in todo], workers, skip_bad)}

    rows = [i for i, name in enumerate(table.files) if name not in bad]
    write_text_atomic(out / ATTR_FILE, attr_file_text(table.names, [renamed[table.files[i]] for i in rows],
                                                      table.labels[rows].tolist()))
    if partition is not None:
        # Only images the copy holds: a partition row for an image the attribute file does not list has no PNG.
        write_text_atomic(out / PARTITION_FILE, "".join(f"{renamed[name]} {part}\n" for name, part in partition.items()
                                                        if name in renamed and name not in bad))
    skipped = sorted(bad)
    write_json_atomic(out / MARKER, {**meta, "complete": True, "rows": len(rows), "skipped": skipped})
    return {**summary, "rows": len(rows), "written": len(todo) - len(bad), "reused": len(renamed) - len(todo),
            "skipped": skipped, "already_complete": False, "seconds": time.perf_counter() - t0}
