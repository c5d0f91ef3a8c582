"""StarGAN data-loader throughput (images/s) beside what a training step consumes.

    python benchmarks/bench_data.py                                   # synthetic CelebA-format JPEGs
    python benchmarks/bench_data.py --data datasets/celeba/images --attr datasets/celeba/list_attr_celeba.txt
    python benchmarks/bench_data.py --step-images-per-s 900           # the step's rate, measured elsewhere
    python benchmarks/bench_data.py --step                            # time the StarGAN step here too
    python benchmarks/bench_data.py --sources original,resized        # also a pre-resized copy (resize-dataset)

The loader is built as the trainer builds it (``common.data.loader.training_loader`` with the run options:
workers, pinned memory on CUDA, persistent workers, prefetch) over the official CelebA pipeline (178 centre
crop, bilinear resize to 128, flip), with each ``data.decoder``: PIL (the default, official) and torchvision.io
(``common.data.decode``; same pixels within a level or two). Without ``--data`` it writes ``--n`` synthetic
178x218 JPEGs to a temporary folder. ``--sources ...,resized`` also measures the copy ``stargan resize-dataset``
writes (128x128 PNGs read with crop_size null: the same tensors): ``--resized DIR`` names an existing copy,
otherwise one is written to the temporary folder first and its one-time cost is printed. Each row reports
images/s after the workers' start-up and, given the step's images/s, their ratio: a loader below 1x starves the
GPU, and at 2x it keeps up with room to spare.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for folder in (ROOT, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from common.data.celeba_attrs import attr_file_text  # noqa: E402
from common.data.loader import available_cpus, loader_options, resolve_workers, training_loader  # noqa: E402
from common.train_config import RunConfig  # noqa: E402
from stargan.data import BatchStream  # noqa: E402
from stargan.datasets import CelebADataset  # noqa: E402
from stargan.resized import make_resized  # noqa: E402

ATTRS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def write_synthetic(folder: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """``n`` 178x218 JPEGs (smooth colours plus noise, about a face crop's size on disk) and an attribute file."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:218, 0:178]
    names = []
    for i in range(n):
        colour = rng.uniform(0, 255, 3)
        base = colour * 0.5 + np.stack([xx / 178, yy / 218, (xx + yy) / 396], axis=-1) * 127
        img = np.clip(base + rng.normal(0, 12, (218, 178, 3)), 0, 255).astype(np.uint8)
        name = f"{i:06d}.jpg"
        Image.fromarray(img).save(images / name, quality=95)
        names.append(name)
    labels = rng.integers(0, 2, (n, len(ATTRS)))
    attr = folder / "list_attr_celeba.txt"
    attr.write_text(attr_file_text(ATTRS, names, labels.tolist()))
    return images, attr


def resized_copy(image_dir: Path, attr: Path, tmp: Path, given: Path | None) -> tuple[Path, Path]:
    """The images folder and attribute file of a 178-crop, 128-pixel copy: ``given``, or one written into
    ``tmp`` (its one-time cost printed)."""
    if given is not None:
        return given / "images", given / "list_attr_celeba.txt"
    src = attr.parent
    if image_dir.resolve() != (src / "images").resolve():
        raise SystemExit(f"--sources resized: {image_dir} is not {src / 'images'}; resize-dataset reads a "
                         "CelebA-format folder (images/ beside list_attr_celeba.txt): make the copy with it and pass "
                         "--resized DIR")
    summary = make_resized(src, tmp / "resized", image_size=128, crop_size=178)
    print(f"resized copy: {summary['rows']} images in {summary['seconds']:.1f} s with {summary['workers']} "
          f"processes ({summary['rows'] / summary['seconds']:.1f} images/s, once)", flush=True)
    return Path(summary["images"]), Path(summary["attr_file"])


def loader_rate(dataset, workers: int, batch_size: int, seconds: float, device: torch.device) -> dict:
    """Images/s of the trainer's loader over ``dataset`` with ``workers`` workers, after its first batches."""
    options = loader_options(RunConfig(num_workers=workers), device)
    stream = BatchStream(len(dataset), batch_size, seed=0, stream=0)
    batches = iter(training_loader(dataset, options, seed=0, batch_sampler=stream))
    for _ in range(max(2, 2 * workers)):  # start-up: every worker has delivered
        next(batches)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        x, _ = next(batches)
        n += x.shape[0]
    rate = n / (time.perf_counter() - start)
    del batches
    return {"images_per_s": rate, "images": n, **options}


def step_rate(device: str, precision: str) -> float:
    """Images/s of the StarGAN CelebA step (bench_train.py's amortised unit) on ``device``."""
    from bench_train import build, sync

    bench = build(str(ROOT / "configs" / "stargan" / "celeba.yaml"), [], device, precision, 128, 16)
    dev = bench.trainer.device
    try:
        for _ in range(2):
            bench.one_iteration()
        sync(dev)
        start = time.perf_counter()
        for _ in range(3):
            bench.one_iteration()
        sync(dev)
        return 3 * bench.images / (time.perf_counter() - start)
    finally:
        bench.trainer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="CelebA image folder (default: synthetic JPEGs)")
    ap.add_argument("--attr", type=Path, default=None, help="its list_attr_celeba.txt")
    ap.add_argument("--n", type=int, default=2000, help="synthetic images to write (default 2000)")
    ap.add_argument("--workers", default=None, help="comma-separated worker counts (default: 0, 2, 4, ... up to "
                                                    "the CPUs, and auto)")
    ap.add_argument("--decoders", default="pil,torchvision", help="data.decoder values to measure")
    ap.add_argument("--sources", default="original",
                    help="comma-separated: original (178x218 JPEGs, crop 178, resize 128) and/or resized (the "
                         "resize-dataset copy: 128x128 PNGs, crop null)")
    ap.add_argument("--resized", type=Path, default=None, help="an existing resize-dataset copy (crop 178, size 128) "
                                                                "of the data (default: write one to a temp folder)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0, help="timed seconds per row")
    ap.add_argument("--step-images-per-s", type=float, default=None, help="the training step's images/s")
    ap.add_argument("--step", action="store_true", help="time the StarGAN step on this machine for the ratio")
    ap.add_argument("--step-precision", default=None, help="default: amp_bf16 on CUDA, fp32 on the CPU")
    ap.add_argument("--out", type=Path, default=None, help="folder for bench_data.json and bench_data.md")
    args = ap.parse_args()
    unknown = sorted(set(args.sources.split(",")) - {"original", "resized"})
    if unknown:
        ap.error(f"--sources: unknown {', '.join(unknown)}; expected original and/or resized")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cpus = available_cpus()
    if args.workers:
        counts = [resolve_workers(w.strip() if w.strip() == "auto" else int(w)) for w in args.workers.split(",")]
    else:
        counts = sorted({0, resolve_workers("auto"), *[w for w in (2, 4, 8, 16, 32) if w < cpus]})
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        if args.data is None:
            print(f"writing {args.n} synthetic 178x218 JPEGs to {tmp} ...", flush=True)
            image_dir, attr = write_synthetic(Path(tmp), args.n)
        else:
            image_dir, attr = args.data, args.attr or args.data.parent / "list_attr_celeba.txt"
        sources = {"original": (image_dir, attr, 178)}
        if "resized" in args.sources.split(","):
            sources["resized"] = (*resized_copy(Path(image_dir), Path(attr), Path(tmp), args.resized), None)
        step = args.step_images_per_s
        if step is None and args.step:
            step = step_rate(str(device), args.step_precision or ("amp_bf16" if device.type == "cuda" else "fp32"))
        rows = []
        for source in [s for s in args.sources.split(",") if s in sources]:
            for decoder, workers in [(d, w) for d in args.decoders.split(",") for w in counts]:
                row = {"data": source, "decoder": decoder, "workers": workers}
                try:
                    folder, labels, crop = sources[source]
                    dataset = CelebADataset(folder, labels, ATTRS, mode="train", image_size=128, crop_size=crop,
                                            flip=True, test_count=min(2000, args.n // 10), decoder=decoder)
                    row.update(loader_rate(dataset, workers, args.batch_size, args.seconds, device))
                    if step:
                        row["vs_step"] = row["images_per_s"] / step
                except Exception as err:  # noqa: BLE001 - one failed row is reported, the others still run
                    row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                rows.append(row)
                print(row, flush=True)
    lines = [f"StarGAN CelebA loader, batch {args.batch_size}, {cpus} CPUs, device {device}; step consumes "
             + (f"{step:.1f} images/s" if step else "(not given)"), "",
             "| data | decoder | workers | images/s | loader / step | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        rate = f"{r['images_per_s']:.1f}" if "images_per_s" in r else ""
        ratio = f"{r['vs_step']:.2f}x" if "vs_step" in r else ""
        lines.append(f"| {r['data']} | {r['decoder']} | {r['workers']} | {rate} | {ratio} | {r.get('error', '')} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_data.json").write_text(json.dumps({"cpus": cpus, "os_cpu_count": os.cpu_count(),
                                                              "step_images_per_s": step, "rows": rows}, indent=2))
        (args.out / "bench_data.md").write_text(text)


if __name__ == "__main__":
    main()
