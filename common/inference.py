"""Translating image files of any size: grouping into batches, padding to what a network accepts, saving."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from tqdm import tqdm

from common.data.images import find_images, is_image_file, load_rgb, save_png, to_tensor
from common.errors import UserError


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


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N,C,H,W) on the bottom/right up to a multiple of ``multiple``. Where the pad exceeds what
    reflection allows (pad >= side), edge replication is used instead. Returns the padded tensor and (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def batches_by_size(paths: list[Path], batch_size: int) -> Iterator[list[tuple[Path, torch.Tensor]]]:
    """Load images and yield batches of equal-size images (sizes differ across a folder in general)."""
    pending: dict[tuple[int, int], list[tuple[Path, torch.Tensor]]] = defaultdict(list)
    for path in paths:
        tensor = to_tensor(load_rgb(path))
        bucket = pending[tuple(tensor.shape[-2:])]
        bucket.append((path, tensor))
        if len(bucket) == batch_size:
            yield list(bucket)
            bucket.clear()
    for bucket in pending.values():
        if bucket:
            yield list(bucket)


def output_path(path: Path, input_root: Path, out_dir: Path, suffix: str = "") -> Path:
    rel = path.relative_to(input_root) if path != input_root and input_root in path.parents else Path(path.name)
    return out_dir / rel.parent / f"{rel.stem}{suffix}.png"


@torch.no_grad()
def translate_paths(paths: list[Path], input_root: Path, out_dir: Path,
                    fn: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor | list[torch.Tensor]],
                    multiple: int, batch_size: int, device: torch.device, progress: bool = True) -> list[Path]:
    """Run ``fn(padded_batch, (h, w))`` over every image at its own resolution and write one PNG per input.

    ``fn`` returns (N,3,H',W') at the padded size, or a list of such tensors; each result is cropped back to
    the input's size, and a list is laid side by side (the StarGAN test grid)."""
    written = []
    with tqdm(total=len(paths), disable=not progress or len(paths) < 2, unit="img", desc="translate") as bar:
        for batch in batches_by_size(paths, batch_size):
            x = torch.stack([t for _, t in batch]).to(device)
            padded, (h, w) = pad_to_multiple(x, multiple)
            result = fn(padded, (h, w))
            parts = result if isinstance(result, list) else [result]
            y = torch.cat([p[..., :h, :w] for p in parts], dim=-1)
            for (path, _), out in zip(batch, y):
                target = output_path(path, input_root, out_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                save_png(out, target)
                written.append(target)
            bar.update(len(batch))
    return written
