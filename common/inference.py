"""Translating image files of any size without losing anything.

Inputs are never written (an output folder that is, lies inside or holds an input is refused); an output that
exists is kept unless the caller asks to replace it; two inputs that would give one output are refused before
any work, and so are unreadable inputs (or they are skipped and counted). Images are batched by size, padded
to what the network takes and cropped back, and every PNG is written atomically.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from common.data.images import find_images, is_image_file, load_rgb, save_png, tensor_to_image, to_tensor
from common.errors import UserError
from common.family import Translator

log = logging.getLogger(__name__)

# Unreadable inputs named in one message; the rest are counted.
NAMED_BAD_FILES = 3


@dataclass
class TranslationPlan:
    """What a translate run will do, settled before the model is loaded or anything is written.

    jobs: (input, output PNG) pairs to translate. existing: outputs that were already there (left alone, or
    replaced when ``overwrite``). bad: ``"file (reason)"`` for each unreadable input left out (``skip_bad``)."""

    out_dir: Path
    jobs: list[tuple[Path, Path]]
    existing: int = 0
    overwrite: bool = False
    skip_bad: bool = False
    bad: list[str] = field(default_factory=list)


@dataclass
class TranslationResult:
    written: list[Path]
    bad: list[str]  # every unreadable input skipped: found by the scan or only when decoded


def collect_inputs(path: str | Path) -> tuple[list[Path], Path]:
    """Image files named by ``--input`` (one file or a folder, recursively) and the root used for output
    names (an input ``ROOT/sub/x.jpg`` becomes ``OUT/sub/x.png``)."""
    path = Path(path)
    if path.is_file():
        if not is_image_file(path):
            raise UserError(f"{path}: not an image file (expected an image extension such as .png or .jpg)")
        return [path], path.parent
    if path.is_dir():
        return find_images(path, what="input folder"), path
    raise UserError(f"--input {path}: no such file or folder")


def output_path(path: Path, input_root: Path, out_dir: Path, suffix: str = "") -> Path:
    rel = path.relative_to(input_root) if path != input_root and input_root in path.parents else Path(path.name)
    return out_dir / rel.parent / f"{rel.stem}{suffix}.png"


def _locations(path: Path) -> set[Path]:
    """Where a file's bytes can be reached: its own entry (folders resolved) and, for a symlink, its target."""
    return {path.parent.resolve() / path.name, path.resolve()}


def check_output_folder(paths: list[Path], input_path: Path, input_root: Path, out_dir: Path) -> None:
    """Refuse an output folder that is the input folder or one of its sub-folders (symlinks followed, as the
    input search follows them), or that directly holds an input file: writing there could replace an input,
    and a later run would read the results as inputs."""
    out = out_dir.resolve()
    if Path(input_path).is_dir():
        scanned = {input_root}
        for path in paths:
            for folder in path.parents:
                if folder == input_root:
                    break
                scanned.add(folder)
        if out == input_root.resolve():
            raise UserError(f"--output {out_dir}: is the input folder; choose a folder outside it "
                            "(inputs are never overwritten)")
        for folder in {f.resolve() for f in scanned}:
            if out == folder or folder in out.parents:
                raise UserError(f"--output {out_dir}: lies inside the input folder {input_path}; choose a folder "
                                "outside it (a later run would read the results as inputs)")
    for path in paths:
        if any(where.parent == out for where in _locations(path)):
            raise UserError(f"--output {out_dir}: holds the input file {path}; choose another folder "
                            "(inputs are never overwritten)")


def ignores_case(folder: Path) -> bool:
    """Does the file system ``folder`` will be on (that of its nearest existing ancestor) take names that
    differ only in case for one file, as macOS and Windows do by default? Probed with a hidden temp file;
    a folder that cannot be written counts as case-sensitive (writing there fails later with its own error)."""
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".CaseProbe-", dir=probe)
    except OSError:
        return False
    try:
        os.close(fd)
        return os.path.exists(os.path.join(probe, os.path.basename(name).lower()))
    finally:
        os.unlink(name)


def plan_outputs(paths: list[Path], input_root: Path, out_dir: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs. Two inputs with one output (``good.png`` and ``good.jpg``; also ``Good.png``
    and ``good.jpg`` where the output folder's file system ignores case) are refused, naming both; so is an
    output that would land on an input through a symlinked folder."""
    inputs = set().union(*(_locations(p) for p in paths))
    resolved_folders: dict[Path, Path] = {}
    claimed: dict[str, Path] = {}
    same_name = str.casefold if ignores_case(out_dir) else str
    jobs = []
    for path in paths:
        target = output_path(path, input_root, out_dir)
        first = claimed.setdefault(same_name(str(target)), path)
        if first is not path:
            raise UserError(f"{first} and {path} would both be written to {target} (outputs are named "
                            "after the input's stem, as .png); rename one of them or translate them separately")
        folder = resolved_folders.setdefault(target.parent, target.parent.resolve())
        if folder / target.name in inputs:
            raise UserError(f"--output {out_dir}: {target} is an input file; choose another folder "
                            "(inputs are never overwritten)")
        jobs.append((path, target))
    return jobs


def _reason(err: Exception) -> str:
    if isinstance(err, UnidentifiedImageError):
        return "not an image format PIL can read"
    return f"{err.__class__.__name__}: {' '.join(str(err).split())}"


def unreadable(path: Path) -> str | None:
    """Why ``path`` is not a readable image, from its header (and for PNG its chunk checksums), without
    decoding the pixels; None when it looks fine."""
    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return _reason(err)
    return None


def describe_files(entries: list[str]) -> str:
    named = ", ".join(entries[:NAMED_BAD_FILES])
    rest = len(entries) - NAMED_BAD_FILES
    return named + (f" and {rest} more" if rest > 0 else "")


def prepare_translation(input_path: str | Path, out_dir: str | Path, overwrite: bool = False,
                        skip_bad: bool = False) -> TranslationPlan:
    """Every check a translate run can make before loading a model: inputs found, the output folder safe, no
    name collisions, existing outputs set aside (unless ``overwrite``), unreadable inputs refused in one
    UserError naming them (unless ``skip_bad``: then they are left out and listed in ``plan.bad``)."""
    input_path, out_dir = Path(input_path), Path(out_dir)
    paths, root = collect_inputs(input_path)
    check_output_folder(paths, input_path, root, out_dir)
    jobs = plan_outputs(paths, root, out_dir)
    for _, target in jobs:
        if target.is_dir():
            raise UserError(f"{target}: is a folder where an output PNG would go; move it or choose another "
                            "--output")
    present = {target for _, target in jobs if target.exists()}
    if not overwrite:
        jobs = [(path, target) for path, target in jobs if target not in present]
    bad_paths = {path: reason for path, _ in jobs if (reason := unreadable(path)) is not None}
    bad = [f"{path} ({reason})" for path, reason in bad_paths.items()]
    if bad and not skip_bad:
        raise UserError(f"{len(bad)} unreadable input file(s), nothing written: {describe_files(bad)}; fix or "
                        "remove them, or pass --skip-bad to translate the others")
    jobs = [(path, target) for path, target in jobs if path not in bad_paths]
    existing = sum(target in present for _, target in jobs) if overwrite else len(present)
    return TranslationPlan(out_dir, jobs, existing, overwrite, skip_bad, bad)


def padded_side(side: int, multiple: int, min_side: int = 1) -> int:
    """The side a network is given for an image side: at least ``min_side``, rounded up to ``multiple``."""
    return -(-max(side, min_side) // multiple) * multiple


def pad_to_fit(x: torch.Tensor, multiple: int, min_side: int = 1) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (N,C,H,W) on the bottom/right to :func:`padded_side` sides. Each side is reflect-padded where the
    pad is smaller than the side (reflection cannot reach further) and edge-replicated otherwise. Returns the
    padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = padded_side(h, multiple, min_side) - h, padded_side(w, multiple, min_side) - w
    if pw:
        x = F.pad(x, (0, pw, 0, 0), mode="reflect" if pw < w else "replicate")
    if ph:
        x = F.pad(x, (0, 0, 0, ph), mode="reflect" if ph < h else "replicate")
    return x, (h, w)


def run_translator(translator: Translator, x: torch.Tensor) -> torch.Tensor:
    """``translator`` on a batch ``x`` (N,3,H,W) of any size: padded to what its network takes and each output
    cropped back to (H, W); a list of outputs (the StarGAN test grid) is laid side by side."""
    padded, (h, w) = pad_to_fit(x, translator.multiple, translator.min_side)
    result = translator.fn(padded, (h, w))
    parts = result if isinstance(result, list) else [result]
    return torch.cat([p[..., :h, :w] for p in parts], dim=-1)


@torch.no_grad()
def translate_image(path: str | Path, translator: Translator, device: torch.device) -> Image.Image:
    """One image file translated as :func:`translate_jobs` translates it alone (a batch of one): the RGB image
    its output PNG holds. An unreadable file raises :class:`UserError` naming it."""
    x = to_tensor(load_rgb(path)).unsqueeze(0).to(device)
    return tensor_to_image(run_translator(translator, x)[0])


Batch = list[tuple[Path, torch.Tensor]]


def batches_by_size(jobs: list[tuple[Path, Path]], batch_size: int, bad: list[str]) -> Iterator[Batch]:
    """Load inputs and yield batches of (output path, image) of equal size (sizes differ across a folder in
    general). An input that fails to decode is appended to ``bad`` as ``"file (reason)"`` and left out."""
    pending: dict[tuple[int, int], Batch] = defaultdict(list)
    for path, target in jobs:
        try:
            tensor = to_tensor(load_rgb(path))
        except UserError as err:
            bad.append(f"{path} ({str(err).removeprefix(f'{path}: ')})")
            continue
        bucket = pending[tuple(tensor.shape[-2:])]
        bucket.append((target, tensor))
        if len(bucket) == batch_size:
            yield list(bucket)
            bucket.clear()
    for bucket in pending.values():
        if bucket:
            yield list(bucket)


def _write(image: torch.Tensor, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        save_png(image, target)
    except OSError as err:
        # A failed write() names no file, and a failed temp file names the temp: name the output instead.
        raise OSError(err.errno, err.strerror, str(target)) from err


@torch.no_grad()
def translate_jobs(plan: TranslationPlan, translator: Translator, batch_size: int, device: torch.device,
                   progress: bool = True) -> TranslationResult:
    """Run ``translator.fn(padded_batch, (h, w))`` over every job at the input's own resolution and write one
    PNG per input.

    ``fn`` returns (N,3,H',W') at the padded size, or a list of such tensors; each result is cropped back to
    the input's size, and a list is laid side by side (the StarGAN test grid). An input that passed the scan
    but fails to decode does not stop the others; unless ``plan.skip_bad``, the run then ends in a UserError
    naming it (after the others are written)."""
    written: list[Path] = []
    late_bad: list[str] = []
    jobs = plan.jobs
    with tqdm(total=len(jobs), disable=not progress or len(jobs) < 2, unit="img", desc="translate") as bar:
        for batch in batches_by_size(jobs, batch_size, late_bad):
            y = run_translator(translator, torch.stack([t for _, t in batch]).to(device))
            for (target, _), out in zip(batch, y):
                _write(out, target)
                written.append(target)
            bar.update(len(batch))
        bar.update(len(late_bad))
    if late_bad and not plan.skip_bad:
        raise UserError(f"{len(late_bad)} input file(s) could not be decoded: {describe_files(late_bad)}; the "
                        f"other {len(written)} image(s) were written to {plan.out_dir}; fix or remove them, or "
                        "pass --skip-bad")
    return TranslationResult(written, plan.bad + late_bad)
