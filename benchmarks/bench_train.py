"""Seconds per training iteration, images/s and peak memory of a config's real train step.

    python benchmarks/bench_train.py configs/cyclegan/horse2zebra.yaml --size 128 --device cpu
    python benchmarks/bench_train.py configs/stargan/celeba.yaml --device cuda --precision amp_bf16

CycleGAN: one iteration = the G step + the D step of one batch. StarGAN: one *amortised* iteration =
n_critic D steps of which the last also runs the G step (the official schedule), reported per group and
per D step. A few synthetic images are written to a temporary folder so the trainer is built exactly as
`stargan train` builds it; timed steps use in-memory random batches so disk speed does not count.
"""
from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.config import load_config  # noqa: E402
from common.data.celeba_attrs import attr_file_text  # noqa: E402
from common.family import ModelFamily  # noqa: E402
from common.step_meter import StepMeter  # noqa: E402
from stargan.families import CYCLEGAN, STARGAN, config_classes, family_of_config  # noqa: E402


def _write_images(folder: Path, n: int, size: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        name = f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / name)
        names.append(name)
    return names


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Bench:
    trainer: object
    one_iteration: Callable[[], None]
    unit: str
    images: int  # images per timed unit


def _setup_cyclegan(family: ModelFamily, cfg, tmp: Path, size: int, batch_size: int | None) -> Bench:
    cfg.data.crop_size, cfg.data.load_size, cfg.data.preprocess = size, size, "resize_and_crop"
    cfg.data.batch_size = batch_size or cfg.data.batch_size
    for phase in ("trainA", "trainB"):
        _write_images(tmp / "data" / phase, 2, size)
    cfg.data.root = str(tmp / "data")
    trainer = family.trainer_class(cfg, out_root=tmp / "runs")
    bs = cfg.data.batch_size
    meter, steps = StepMeter(), [0]

    def one_iteration():
        a = torch.rand(bs, 3, size, size, device=trainer.device) * 2 - 1
        b = torch.rand(bs, 3, size, size, device=trainer.device) * 2 - 1
        logs, _ = trainer.train_step(a, b)
        steps[0] += 1
        trainer.record_step(meter, steps[0], logs, bs)  # what fit() does with a step's losses

    return Bench(trainer, one_iteration, "iteration (G step + D step)", bs)


def _setup_stargan(family: ModelFamily, cfg, tmp: Path, size: int, batch_size: int | None) -> Bench:
    cfg.data.image_size = size
    cfg.data.batch_size = batch_size or cfg.data.batch_size
    bs = cfg.data.batch_size
    for entry in cfg.data.datasets:
        names = _write_images(tmp / entry.name, bs + 2, size)
        attrs = entry.selected_attrs or ["a0", "a1", "a2", "a3", "a4"]
        labels = [[(i + j) % 3 == 0 for j in range(len(attrs))] for i in range(len(names))]
        (tmp / f"{entry.name}.txt").write_text(attr_file_text(attrs, names, labels))
        entry.format, entry.image_dir = "celeba", str(tmp / entry.name)
        entry.attr_path = str(tmp / f"{entry.name}.txt")
        # The synthetic file has no partition file beside it: split by count instead.
        entry.selected_attrs, entry.crop_size, entry.test_count, entry.partition_path = attrs, None, 1, None
        entry.exclusive = [g for g in entry.exclusive if all(a in attrs for a in g)]
    trainer = family.trainer_class(cfg, out_root=tmp / "runs")
    n_critic = cfg.optim.n_critic
    label_dims = [s.dim for s in trainer.labels.schemas]
    meter, steps = StepMeter(), [0]

    def one_iteration():
        for i in range(n_critic):
            k = i % len(label_dims)
            x = torch.rand(bs, 3, size, size, device=trainer.device) * 2 - 1
            # Labels on the CPU, as the loader gives them: the trainer draws the targets there.
            y = (torch.rand(bs, label_dims[k]) > 0.5).float()
            logs = trainer.train_step(x, y, k, g_step=i == n_critic - 1)
            steps[0] += 1
            trainer.record_step(meter, steps[0], logs, bs)

    return Bench(trainer, one_iteration, f"amortised iteration ({n_critic - 1} D-only steps + 1 D+G step)",
                 bs * n_critic)


# Per family: write a few synthetic images where its config expects data, build its trainer, time one unit.
SETUP: dict[ModelFamily, Callable[..., Bench]] = {CYCLEGAN: _setup_cyclegan, STARGAN: _setup_stargan}


def build(config: str, overrides: list[str], device: str = "auto", precision: str | None = None,
          size: int | None = None, batch_size: int | None = None) -> Bench:
    """The trainer ``stargan train CONFIG`` would build (on a few synthetic images) and one timed unit of it."""
    overrides = list(overrides) + ["run.num_workers=0", "log.progress=false", f"run.device={device}"]
    if precision:
        overrides.append(f"run.precision={precision}")
    cfg = load_config(config, overrides, config_classes())
    family = family_of_config(cfg)
    size = size or family.train_image_size(cfg)
    return SETUP[family](family, cfg, Path(tempfile.mkdtemp(prefix="bench-")), size, batch_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", choices=["fp32", "amp_fp16", "amp_bf16"], default=None)
    ap.add_argument("--size", type=int, default=None, help="image size (CycleGAN crop_size / StarGAN image_size)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--iters", type=int, default=5, help="timed iterations (StarGAN: amortised groups)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after timing, profile one more iteration and print the N most expensive ops")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = build(args.config, args.overrides, args.device, args.precision, args.size, args.batch_size)
    trainer, one_iteration, unit = bench.trainer, bench.one_iteration, bench.unit
    cfg = trainer.cfg
    size = family_of_config(cfg).train_image_size(cfg)
    bs = cfg.data.batch_size

    device = trainer.device
    for _ in range(args.warmup):
        one_iteration()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        one_iteration()
        sync(device)
        times.append(time.perf_counter() - start)
    if args.profile:
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            one_iteration()
            sync(device)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=sort, row_limit=args.profile))
    trainer.ctx.logger.close()
    per = statistics.median(times)
    images = bench.images
    print(f"model={cfg.model} config={args.config} device={device} precision={cfg.run.precision} "
          f"size={size} batch={bs} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"cpu={platform.processor() or platform.machine()}")
    print(f"seconds per {unit}: median {per:.3f} (min {min(times):.3f}, max {max(times):.3f}, n={len(times)})")
    print(f"images/s: {images / per:.2f}")
    print(f"peak memory: {peak_mb(device):.0f} MiB ({'CUDA allocated' if device.type == 'cuda' else 'process RSS'})")


if __name__ == "__main__":
    main()
