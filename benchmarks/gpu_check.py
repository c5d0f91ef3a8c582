"""One command for a GPU machine: run every CUDA test, then measure the training throughput table.

    python benchmarks/gpu_check.py --out gpu_check/            # about 8 minutes on one H200 (estimated)
    python benchmarks/gpu_check.py --out DIR --compile on --skip-tests --skip-loader --budget-s 900  # compiled
    python benchmarks/gpu_check.py --out DIR --peak-tflops bf16=989,fp16=989,fp32=495 --profile 25

Without a CUDA GPU it says so and exits 0. With one it
1. runs ``pytest -m cuda`` (tests/test_cuda.py: fp32/bf16/fp16 steps, fp16 + GradScaler + gradient penalty,
   no host sync in a step, exact resume in deterministic mode, translate CUDA vs CPU, 2-rank NCCL with two GPUs)
   with CUBLAS_WORKSPACE_CONFIG set, writing DIR/cuda_tests.txt and DIR/cuda_tests.xml;
2. times our training step for CycleGAN 256x256 (batch 1 and 8) and StarGAN 128x128 (batch 16) in fp32, bf16
   and fp16, channels_last off/on, torch.compile off/on, beside the re-stated official step (fp32, official
   batch: benchmarks/bench_cyclegan_official.py, benchmarks/bench_stargan_official.py) timed in the same run
   right before and right after each of our cells: seconds per iteration (StarGAN: the 5-iteration n_critic group / 5),
   images/s, the ratio to the official images/s, peak CUDA memory, TFLOP/s and MFU;
3. measures the StarGAN data loader (benchmarks/bench_data.py) beside the step's images/s, if time is left;
and writes DIR/gpu_check.json and DIR/gpu_check.md (with --profile N also DIR/profile.txt: per model, kernel
time against wall time and the N costliest operators). Every cell is timed within a budget and any failure is
recorded in its row; the run goes on. On the H200 each compiled cell compiled for about 50 s, so the default
budget reaches about one compiled cell (best first; time them with --compile on in a run of their own);
docs/gpu.md has that machine's figures.

FLOPs are counted once per model and batch with the per-operator formulas of torch.utils.flop_counter
(FlopCounterMode's registry; its module tracker cannot follow the gradient penalty's autograd.grad on a leaf),
over our eager fp32 step: the same count serves every precision/layout/compile cell, so TFLOP/s compares the
cells' speed on the same work. MFU divides by the GPU's dense peak for the cell's precision (fp32 cells: the
TF32 peak, since cuDNN runs fp32 convolutions on TF32 tensor cores by default) from a small table by device
name, or --peak-tflops.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for folder in (ROOT, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_cyclegan_official import OfficialCycleGANStep  # noqa: E402
from bench_stargan_official import OfficialStep  # noqa: E402
from bench_train import build  # noqa: E402

from common.family import ModelFamily  # noqa: E402
from stargan.families import CYCLEGAN, STARGAN  # noqa: E402

NO_GPU = "no CUDA GPU: nothing to check"
PRECISIONS = ("fp32", "amp_bf16", "amp_fp16")
# Dense (no sparsity) tensor-core peaks in TFLOP/s; "fp32" here is TF32 (see the module doc). Order matters: the
# first name found in torch.cuda.get_device_name() wins.
PEAK_TFLOPS = (
    ("H200", {"amp_bf16": 989.0, "amp_fp16": 989.0, "fp32": 494.7}),
    ("H100 PCIe", {"amp_bf16": 756.0, "amp_fp16": 756.0, "fp32": 378.0}),
    ("H100 NVL", {"amp_bf16": 835.0, "amp_fp16": 835.0, "fp32": 417.5}),
    ("H100", {"amp_bf16": 989.0, "amp_fp16": 989.0, "fp32": 494.7}),
    ("H800", {"amp_bf16": 989.0, "amp_fp16": 989.0, "fp32": 494.7}),
    ("A100", {"amp_bf16": 312.0, "amp_fp16": 312.0, "fp32": 156.0}),
    ("A800", {"amp_bf16": 312.0, "amp_fp16": 312.0, "fp32": 156.0}),
    ("L40S", {"amp_bf16": 362.0, "amp_fp16": 362.0, "fp32": 183.0}),
    ("L4", {"amp_bf16": 121.0, "amp_fp16": 121.0, "fp32": 60.0}),
    ("A10", {"amp_bf16": 125.0, "amp_fp16": 125.0, "fp32": 62.5}),
    ("RTX 4090", {"amp_bf16": 165.2, "amp_fp16": 165.2, "fp32": 82.6}),
)
# (family, config, image side, batch): the official settings, and CycleGAN at batch 8.
MODELS = (
    (CYCLEGAN, ROOT / "configs" / CYCLEGAN.name / "horse2zebra.yaml", 256, 1),
    (CYCLEGAN, ROOT / "configs" / CYCLEGAN.name / "horse2zebra.yaml", 256, 8),
    (STARGAN, ROOT / "configs" / STARGAN.name / "celeba.yaml", 128, 16),
)


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:300]}"


def peak_table(device_name: str, override: str | None) -> tuple[dict[str, float], str]:
    """Peak TFLOP/s per precision for this GPU and where the numbers come from."""
    peaks, source = {}, "unknown GPU: pass --peak-tflops for MFU"
    for name, table in PEAK_TFLOPS:
        if name in device_name:
            peaks, source = dict(table), f"table entry '{name}' (dense; fp32 = TF32)"
            break
    if override:
        for item in override.split(","):
            key, value = item.split("=")
            peaks[{"bf16": "amp_bf16", "fp16": "amp_fp16"}.get(key.strip(), key.strip())] = float(value)
        source = f"--peak-tflops {override}"
    return peaks, source


def run_cuda_tests(out: Path, timeout_s: float) -> dict:
    """``pytest -m cuda`` in a subprocess (a fresh CUDA context, deterministic cuBLAS workspace)."""
    env = dict(os.environ, CUBLAS_WORKSPACE_CONFIG=os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8"))
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rsxX", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", f"--junitxml={out / 'cuda_tests.xml'}", str(ROOT / "tests")]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
        text, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as err:
        text, code = f"{err.stdout or ''}{err.stderr or ''}\nTIMED OUT after {timeout_s:.0f} s", None
    (out / "cuda_tests.txt").write_text(text)
    summary = next((line.strip("= ") for line in reversed(text.splitlines()) if " in " in line and
                    any(w in line for w in ("passed", "failed", "skipped", "error"))), "no summary line")
    return {"command": " ".join(cmd), "exit_code": code, "summary": summary,
            "seconds": round(time.perf_counter() - started, 1)}


def _release() -> None:
    gc.collect()
    torch.cuda.empty_cache()
    torch._dynamo.reset()  # compiled code of one cell must not count against the next one's recompile limit


def _timed(fn, min_seconds: float, max_units: int = 200) -> tuple[float, int]:
    """Seconds per call of ``fn`` over a run of at least ``min_seconds`` (synchronised only at the ends)."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    probe = time.perf_counter() - start
    n = int(max(3, min(max_units, min_seconds / max(probe, 1e-6))))
    start = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n, n


class OpFlops:
    """FLOPs of the operators run inside the block, with FlopCounterMode's formulas (see the module doc)."""

    def __init__(self) -> None:
        registry = FlopCounterMode(display=False).flop_registry
        counter = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                formula = registry.get(func._overloadpacket)
                if formula is not None:
                    counter.total += formula(*args, **kwargs, out_val=out)
                return out

        self.total = 0
        self._mode = _Mode()

    def __enter__(self):
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)


def count_flops(unit) -> float:
    """FLOPs of one call of ``unit``."""
    with OpFlops() as counter:
        unit()
    return counter.total


def official_batch(family: ModelFamily) -> int:
    return 1 if family is CYCLEGAN else 16


def official_unit(family: ModelFamily, size: int):
    """(one official unit, images in it, its iterations): CycleGAN 1 iteration at batch 1, StarGAN the
    5-iteration n_critic group at batch 16."""
    # Both official trainers turn cuDNN's autotuner on (yunjey/stargan main.py; junyanz BaseModel for fixed-size
    # preprocessing); set here so the "before" cells do not inherit torch's default (off).
    torch.backends.cudnn.benchmark = True
    if family is CYCLEGAN:
        step = OfficialCycleGANStep("cuda")
        return (lambda: step.random_iteration(1, size)), 1, 1
    step = OfficialStep(5, size, 5, device="cuda")
    return (lambda: step.amortised(16, size, 5)), 16 * 5, 5


class Table:
    def __init__(self, args, peaks: dict[str, float]):
        self.args, self.peaks = args, peaks
        self.deadline = time.perf_counter() + args.budget_s
        self.rows: list[dict] = []
        self.flops: dict[tuple, float] = {}
        self.official_timings: list[dict] = []
        self.last_timed: str | None = None  # the model whose official step was timed last, if nothing since

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def _measure(self, row: dict, unit, images: int, iterations: int, warmup: int, flops_key=None) -> None:
        for _ in range(warmup):
            unit()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        seconds, n = _timed(unit, self.args.cell_seconds)
        row.update(s_per_iter=seconds / iterations, images_per_s=images / seconds, timed_units=n,
                   peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30)
        if flops_key is not None and flops_key not in self.flops:
            self.flops[flops_key] = count_flops(unit)
        self._add_rates(row, flops_key, iterations)

    def official(self, family: ModelFamily, size: int, when: str) -> dict:
        """Time the official step once; every timing is kept in ``official_timings`` (the table shows the first
        and the last of each model)."""
        row = {"model": family.name, "size": size, "batch": official_batch(family), "precision": "fp32",
               "channels_last": False, "compile": False, "official": True, "when": when}
        try:
            unit, images, iterations = official_unit(family, size)
            self._measure(row, unit, images, iterations, warmup=2, flops_key=("official", family.name, size))
            del unit  # the official networks go before our cells, so their peak memory is their own
        except Exception as err:  # noqa: BLE001 - a failed cell is recorded, the check goes on
            row["error"] = _first_line(err)
        _release()
        self.official_timings.append(row)
        self.last_timed = family.name
        return row

    def skips(self, compile_: bool) -> bool:
        return self.left() < (90 if compile_ else 10)  # a compiled cell compiles for tens of seconds first

    def ours(self, family, config, size, batch, precision, channels_last, compile_) -> dict:
        row = {"model": family.name, "size": size, "batch": batch, "precision": precision,
               "channels_last": channels_last, "compile": compile_, "official": False}
        if self.skips(compile_):
            row["error"] = "skipped: time budget used up"
            self.rows.append(row)
            return row
        bench, count_after = None, False
        try:
            overrides = [f"run.channels_last={str(channels_last).lower()}", f"run.compile={str(compile_).lower()}"]
            bench = build(str(config), overrides, "cuda", precision, size, batch)
            iterations = bench.trainer.cfg.optim.n_critic if family is STARGAN else 1
            plain = precision == "fp32" and not channels_last and not compile_
            self._measure(row, bench.one_iteration, bench.images, iterations, warmup=3 if compile_ else 2,
                          flops_key=("ours", family.name, size, batch) if plain else None)
            bench_iterations = iterations
            if not plain:  # the plain cell, when it ran (--compile off/both), counted this model's work first
                key = ("ours", family.name, size, batch)
                if key in self.flops:
                    self._add_rates(row, key, iterations)
                else:
                    count_after = True
        except Exception as err:  # noqa: BLE001
            row["error"] = _first_line(err)
        finally:
            if bench is not None:
                bench.trainer.close()
            del bench
            _release()
            self.last_timed = None
        if count_after:  # with our compiled networks freed first: two models at once could run out of memory
            key = ("ours", family.name, size, batch)
            try:
                self.flops[key] = self._count_plain(config, size, batch)
            except Exception as err:  # noqa: BLE001 - the timing stands; only TFLOP/s and MFU are missing
                self.flops[key] = 0.0  # counted (and failed) once, not again for every cell of this model
                row["flops_error"] = _first_line(err)
            self._add_rates(row, key, bench_iterations)
        self.rows.append(row)
        return row

    @staticmethod
    def _count_plain(config, size: int, batch: int) -> float:
        """FLOPs of one unit of the eager fp32 step (for runs that time compiled cells only)."""
        bench = build(str(config), ["run.channels_last=false", "run.compile=false"], "cuda", "fp32", size, batch)
        try:
            bench.one_iteration()
            return count_flops(bench.one_iteration)
        finally:
            bench.trainer.close()
            del bench
            _release()

    def _add_rates(self, row: dict, key, iterations: int) -> None:
        """TFLOP/s and MFU of a timed row, from the FLOPs counted under ``key`` (none yet or 0: nothing)."""
        flops = self.flops.get(key)
        if flops and "s_per_iter" in row:
            row["tflop_per_iter"] = flops / iterations / 1e12
            row["tflops"] = row["tflop_per_iter"] / row["s_per_iter"]
            peak = self.peaks.get(row["precision"])
            if peak:
                row["mfu"] = row["tflops"] / peak

    def run(self) -> None:
        cells = []  # eager cells first (fast, and the plain one counts the FLOPs), then compiled ones by priority
        for compile_ in {"off": (False,), "on": (True,), "both": (False, True)}[self.args.compile]:
            order = [(p, cl) for cl in (True, False) for p in ("amp_bf16", "fp32", "amp_fp16")] if compile_ else \
                [(p, cl) for p in PRECISIONS for cl in (False, True)]
            for precision, channels_last in order:
                for model in MODELS:
                    cells.append((*model, precision, channels_last, compile_))
        baselines = list(dict.fromkeys((family, size) for family, _, size, _ in MODELS))
        for family, size in baselines:
            row = self.official(family, size, "before")
            self.rows.append(row)
            print(_row_text(row), flush=True)
        for cell in cells:
            # The machine's speed drifts within minutes (the H200 run: up to 1.5x), so each of our cells is timed
            # between two timings of the official step, right before and right after it.
            family, size = cell[0], cell[2]
            if self.last_timed != family.name and not self.skips(cell[-1]):
                self.official(family, size, "between")
            before = self.official_timings[-1] if self.last_timed == family.name else {}
            row = self.ours(*cell)
            print(_row_text(row), flush=True)
            if "images_per_s" in row:
                after = self.official(family, size, "between")
                row["official_bracket"] = [t["images_per_s"] for t in (before, after) if "images_per_s" in t]
        for family, _size in baselines:  # the last timing of each model closes the table
            last = [t for t in self.official_timings if t["model"] == family.name][-1]
            if last["when"] != "before":
                self.rows.append(dict(last, when="after"))
        add_ratios(self.rows)


def add_ratios(rows: list[dict]) -> None:
    """Each of our timed rows gets its images/s over the official step's of the same model: over the mean of the
    official timings just before and just after the cell (``official_bracket``; rows without one: all official
    rows of that model), and as a range over each of them."""
    for row in rows:
        base = row.get("official_bracket") or [
            r["images_per_s"] for r in rows if r["official"] and r["model"] == row["model"] and "images_per_s" in r]
        if base and "images_per_s" in row and not row["official"]:
            row["vs_official"] = row["images_per_s"] / (sum(base) / len(base))
            row["vs_official_range"] = [row["images_per_s"] / max(base), row["images_per_s"] / min(base)]


def _fmt(row: dict, key: str, spec: str, scale: float = 1.0) -> str:
    return format(row[key] * scale, spec) if key in row else ""


def _vs_official(row: dict) -> str:
    if "vs_official" not in row:
        return ""
    text = f"{row['vs_official']:.2f}x"
    low, high = row.get("vs_official_range", (row["vs_official"],) * 2)
    return text if f"{low:.2f}" == f"{high:.2f}" else f"{text} ({low:.2f}-{high:.2f})"


def _row_text(row: dict) -> str:
    name = "official" if row["official"] else "ours"
    what = (f"{name} {row['model']} {row['size']}px b{row['batch']} {row['precision']} "
            f"cl={int(row['channels_last'])} compile={int(row['compile'])}")
    if "error" in row:
        return f"{what}: {row['error']}"
    return f"{what}: {row['s_per_iter']:.4f} s/iter, {row['images_per_s']:.1f} images/s"


def markdown(meta: dict, tests: dict, rows: list[dict], loader: dict | None) -> str:
    lines = [f"# gpu_check: {meta['device']} ({meta['date']}, commit {meta['commit']})", "",
             f"torch {meta['torch']}, CUDA {meta['cuda']}, cuDNN {meta['cudnn']}, {meta['cpus']} CPUs; peak "
             f"TFLOP/s: {meta['peak_source']}", "",
             f"CUDA tests: {tests.get('summary', 'not run')} (exit {tests.get('exit_code')}); see cuda_tests.txt", "",
             "| model | size | batch | precision | channels_last | compile | s/iter | images/s | vs official | "
             "peak mem GiB | TFLOP/s | MFU | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = f"{r['model']} (official, {r['when']})" if r["official"] else r["model"]
        lines.append(" | ".join([
            f"| {name}", str(r["size"]), str(r["batch"]), r["precision"], "on" if r["channels_last"] else "off",
            "on" if r["compile"] else "off", _fmt(r, "s_per_iter", ".4f"), _fmt(r, "images_per_s", ".1f"),
            "baseline" if r["official"] else _vs_official(r),
            _fmt(r, "peak_mem_gib", ".2f"), _fmt(r, "tflops", ".1f"), _fmt(r, "mfu", ".1%"),
            r.get("error", "") + " |"]))
    lines += ["", "s/iter: StarGAN per iteration averaged over the n_critic group (4 D-only + 1 D+G); vs official: "
              "images/s over the official step's (fp32, its batch: CycleGAN 1, StarGAN 16), timed in this run "
              "right before and right after each cell: over their mean, in brackets over each of them."]
    if loader:
        lines += ["", "## Loader (benchmarks/bench_data.py)", "", loader.get("markdown", loader.get("error", ""))]
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head or "unknown") + ("+local changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_loader(out: Path, step_images_per_s: float | None, seconds: float) -> dict:
    cmd = [sys.executable, str(HERE / "bench_data.py"), "--out", str(out / "bench_data"), "--seconds", "3",
           "--n", "1500", "--workers", "0,4,8,auto"]
    if step_images_per_s:
        cmd += ["--step-images-per-s", f"{step_images_per_s:.1f}"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds)
        md = out / "bench_data" / "bench_data.md"
        if proc.returncode == 0 and md.is_file():
            return {"markdown": md.read_text()}
        return {"error": f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"}
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {seconds:.0f} s"}


def profile_models(top: int, cell_seconds: float) -> str:
    """Per model in bf16 + channels_last (eager): wall seconds per unit beside the summed CUDA kernel time of one
    profiled unit (their ratio: how busy the GPU is; far below 1 = the step waits on the CPU/launches), the number
    of kernels launched, and the ``top`` operators by CUDA time."""
    from torch.profiler import ProfilerActivity, profile

    parts = []
    for family, config, size, batch in MODELS:
        title = f"## {family.name} {size}px batch {batch}, amp_bf16, channels_last, eager"
        bench = None
        try:
            bench = build(str(config), ["run.channels_last=true", "run.compile=false"], "cuda", "amp_bf16", size,
                          batch)
            for _ in range(3):
                bench.one_iteration()
            wall, n = _timed(bench.one_iteration, cell_seconds)
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                bench.one_iteration()
                torch.cuda.synchronize()
            on_gpu = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
            busy = sum(e.device_time for e in on_gpu) / 1e6  # microseconds -> s
            copies = sum(e.name.startswith(("Memcpy", "Memset")) for e in on_gpu)
            averages = prof.key_averages()
            try:
                table = averages.table(sort_by="self_device_time_total", row_limit=top)
            except (KeyError, AttributeError, ValueError):
                table = averages.table(sort_by="self_cuda_time_total", row_limit=top)
            parts.append(f"{title}\n\nwall {wall:.4f} s per unit (n={n}); on the GPU {busy:.4f} s in "
                         f"{len(on_gpu) - copies} kernels and {copies} memory copies/sets: GPU busy "
                         f"{busy / wall:.0%} of the wall time\n\n{table}")
        except Exception as err:  # noqa: BLE001 - a failed profile is recorded, the check goes on
            parts.append(f"{title}\n\n{_first_line(err)}")
        finally:
            if bench is not None:
                bench.trainer.close()
            del bench
            _release()
        print(parts[-1].split("\n\n")[1], flush=True)
    return "\n\n".join(parts) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="folder for the JSON, markdown and test output")
    ap.add_argument("--budget-s", type=float, default=300, help="seconds for the throughput table (default 300)")
    ap.add_argument("--tests-timeout-s", type=float, default=200, help="seconds for the CUDA tests (default 200)")
    ap.add_argument("--cell-seconds", type=float, default=2.0, help="timed seconds per cell (default 2)")
    ap.add_argument("--peak-tflops", default=None, metavar="bf16=X,fp16=Y,fp32=Z",
                    help="this GPU's dense peaks (fp32: the TF32 rate); default: the built-in table by name")
    ap.add_argument("--compile", choices=("off", "on", "both"), default="both",
                    help="which torch.compile cells to time (default both; official cells are timed either way)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also profile one unit of each model in bf16 + channels_last (eager) and write the N "
                         "operators with the most CUDA time to DIR/profile.txt")
    ap.add_argument("--commit", default=None, help="the commit to report (default: git rev-parse; for copies "
                                                      "of a checkout without .git)")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--skip-loader", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(NO_GPU)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name()
    peaks, source = peak_table(name, args.peak_tflops)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "device": name,
            "devices": torch.cuda.device_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "cpus": os.cpu_count(), "commit": args.commit or _commit(),
            "peak_tflops": peaks, "peak_source": source, "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
    print(f"gpu_check on {name} ({meta['date']}, commit {meta['commit']})", flush=True)
    tests = {"summary": "skipped (--skip-tests)"} if args.skip_tests else run_cuda_tests(args.out, args.tests_timeout_s)
    print(f"CUDA tests: {tests['summary']}", flush=True)
    table = Table(args, peaks)
    table.run()
    if args.profile:
        (args.out / "profile.txt").write_text(profile_models(args.profile, args.cell_seconds))
    loader = None
    if not args.skip_loader:
        best = max((r.get("images_per_s", 0) for r in table.rows
                    if r["model"] == STARGAN.name and not r["official"]), default=0)
        loader = run_loader(args.out, best or None, seconds=75)
    result = {"meta": meta, "tests": tests, "rows": table.rows, "official_timings": table.official_timings,
              "loader": loader}
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2))
    text = markdown(meta, tests, table.rows, loader)
    (args.out / "gpu_check.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
