"""The training stage: every planned model in its own ordinary run folder (resumed with ``--resume auto``
semantics), with its wall clock and peak memory accumulated per training segment in ``timing.json``; and,
for a time budget, the probe that measures each method's seconds per step."""
from __future__ import annotations

import copy
import ctypes
import logging
import math
import os
import shutil
import threading
import time
from pathlib import Path

import torch
import torch.utils.tensorboard  # noqa: F401  (loaded here, not inside the first model's memory measurement)

from common.checkpoint import load_checkpoint
from common.device import resolve_device
from common.files import read_json_or_none, write_json_atomic
from common.runs import latest_run_with_checkpoint
from common.training import TrainerBase
from stargan.compare.config import CompareConfig
from stargan.compare.layout import TIMING_FILE
from stargan.compare.plan import METHODS, PAIRWISE_CYCLEGAN, Method, ModelPlan, cyclegan_config, stargan_config

log = logging.getLogger(__name__)

PROBE_WARMUP = 2


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of a block. CUDA: ``torch.cuda.max_memory_allocated`` (reset at the start). CPU: the
    largest rise of this process's resident set size above its value at the start, sampled every 20 ms
    (DataLoader worker processes are not included); ``None`` where /proc is unavailable."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak: int | None = None
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_rss_increase"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        # Without this, memory that an earlier model freed stays in glibc's arenas and the next model reuses
        # it without raising the RSS, so models trained later would look cheaper.
        _malloc_trim()
        self._base = _rss_bytes()
        self._high = self._base
        self._stop = threading.Event()
        if self._base is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            now = _rss_bytes()
            if now is not None and now > self._high:
                self._high = now

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = int(torch.cuda.max_memory_allocated(self.device))
            return
        self._stop.set()
        if self._base is not None:
            self._thread.join()
            now = _rss_bytes() or self._high
            self.peak = max(self._high, now) - self._base


def _is_done(plan: ModelPlan, timing: dict | None) -> bool:
    if not timing:
        return False
    if timing.get("global_step", 0) >= plan.steps:
        return True
    return plan.seconds is not None and timing.get("seconds", 0.0) >= plan.seconds


def _record_segment(plan: ModelPlan, run_dir: Path, seconds: float, mem: PeakMemory) -> dict:
    """Add a training segment to the run's ``timing.json`` and return the updated record."""
    counters = dict(load_checkpoint(run_dir, map_location="cpu").get("counters", {}))
    timing = read_json_or_none(run_dir / TIMING_FILE) or {"segments": []}
    timing["segments"].append({"seconds": round(seconds, 3), "peak_memory_bytes": mem.peak,
                               "end_step": counters.get("global_step", 0)})
    peaks = [s["peak_memory_bytes"] for s in timing["segments"] if s["peak_memory_bytes"] is not None]
    images_seen = int(counters.get("images_seen", 0))
    timing.update({
        "seconds": round(sum(s["seconds"] for s in timing["segments"]), 3),
        "peak_memory_bytes": max(peaks) if peaks else None,
        "peak_memory_kind": mem.kind,
        "global_step": int(counters.get("global_step", 0)),
        "images_seen": images_seen,
        "training_images": images_seen * plan.kind.images_per_sample,
        "planned_steps": plan.steps,
    })
    timing["finished"] = _is_done(plan, timing)
    write_json_atomic(run_dir / TIMING_FILE, timing)
    return timing


def train_model(plan: ModelPlan, device: str) -> tuple[dict, bool]:
    """Train (or continue, or skip) one model; returns its ``timing.json`` record (plus ``run_dir``) and
    whether it trained now."""
    run_dir = latest_run_with_checkpoint(plan.out_root, plan.name)
    timing = read_json_or_none(run_dir / TIMING_FILE) if run_dir else None
    if run_dir and _is_done(plan, timing):
        return {**timing, "run_dir": str(run_dir)}, False
    cfg = copy.deepcopy(plan.config)
    if plan.seconds is not None:
        cfg.run.max_seconds = max(1e-3, plan.seconds - (timing or {}).get("seconds", 0.0))
    dev = resolve_device(device)
    log.info("%s %s: %s to step %d (~%d images)", plan.method, plan.name, "continuing" if run_dir else "training",
             plan.steps, plan.images)
    t0 = time.perf_counter()
    with PeakMemory(dev) as mem:
        run_dir = Path(plan.kind.family.train(cfg, out_root=plan.out_root, resume="auto", device=device))
    timing = _record_segment(plan, run_dir, time.perf_counter() - t0, mem)
    return {**timing, "run_dir": str(run_dir)}, True


def _probe_config(method: Method, cfg: CompareConfig, source: str, out: Path):
    """A config that would train far past the probe, and the steps to time."""
    if method is PAIRWISE_CYCLEGAN:
        return cyclegan_config(cfg, source, cfg.pairs[0], out, (10**6, 0)), cfg.budget.probe_steps
    conf = stargan_config(cfg, source, out, 10**6)
    # G trains every n_critic iterations; whole cycles make the mean cost right.
    n_critic = conf.optim.n_critic
    return conf, n_critic * math.ceil(cfg.budget.probe_steps / n_critic)


def _seconds_per_step(trainer: TrainerBase) -> float:
    """Mean time between consecutive steps of ``trainer.fit()`` after PROBE_WARMUP warm-up steps."""
    stamps: list[float] = []

    def stamp(_step: int) -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        stamps.append(time.perf_counter())

    trainer.add_step_callback(stamp)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return (stamps[-1] - stamps[PROBE_WARMUP - 1]) / (len(stamps) - PROBE_WARMUP)


def probe_seconds_per_step(cfg: CompareConfig, source: str, out: Path, device: str) -> dict[str, float]:
    """Seconds per optimisation step of each method (time budget), measured between consecutive steps of a
    short real training run (data loading included) in a throw-away folder."""
    root = out / "probe"
    result = {}
    for method in METHODS:
        conf, steps = _probe_config(method, cfg, source, out)
        conf.run.stop_after_steps = PROBE_WARMUP + steps
        conf.log.progress = False
        trainer = method.family.trainer_class(conf, out_root=root / method.key, resume=None, device=device)
        result[method.key] = _seconds_per_step(trainer)
        log.info("probe: %s %.1f ms per step", method.key, result[method.key] * 1000)
    shutil.rmtree(root, ignore_errors=True)
    return result
