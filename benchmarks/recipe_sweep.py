"""Train and score many StarGAN recipe variants x seeds on the shapes benchmark, in parallel; a table per variant.

Issue 11's targets are about seeds, not a lucky run: a recipe change (say `loss.lambda_cls_fake`) is only worth
committing if more seeds meet `Striped` >= 90%, shape kept >= 95%, colour accuracy >= 99% and every colour at
<= 0.5x the do-nothing counterfactual L1. On the 2-core CPU one run costs 10-12 minutes; on one GPU many should run
side by side (the networks are small, so each process is host-bound; not measured yet). This script:

1. makes the data (``stargan make-dataset shapes``) and the attribute classifier (``stargan train-classifier``)
   unless given existing ones (``--data``, ``--classifier``; a classifier trained on this machine keeps the
   figures comparable with runs scored here);
2. runs ``stargan train CONFIG --set seed=S --set ... --set run.stop_after_steps=N`` then ``stargan evaluate``
   for every (variant, seed), ``--parallel`` at a time, each a process of its own with one CPU thread;
3. appends each run's figures to ``OUT/results.jsonl`` as it ends and writes ``OUT/summary.md``: per run and per
   variant, the figures the targets name and how many seeds meet each target.

A variants file is JSON or YAML: a mapping from a variant's name to its list of ``KEY=VALUE`` overrides, e.g.
``{"committed": [], "cls_fake_0.5": ["loss.lambda_cls_fake=0.5"]}``. Jobs start seed by seed (every variant's
seed 0 first), so a run cut by ``--budget-s`` still has every variant on the first seeds. Runs the budget cuts
are killed and listed as such; nothing is timed (a GPU's step count stands in for the CPU's 10 minutes: pass
``--steps`` near what the CPU reaches, e.g. about 1,700-2,700 for `shapes64.yaml` on 2026-12-04).

    python benchmarks/recipe_sweep.py --variants variants.json --seeds 0-5 --steps 2600 --parallel 12 \\
        --device cuda --out sweep
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stargan  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.files import write_text_atomic  # noqa: E402
from common.tables import fmt_number, fmt_percent, markdown_table  # noqa: E402
from stargan.config import StarGANConfig  # noqa: E402

COLOURS = ("Red", "Green", "Blue", "Yellow")
YAML_SUFFIXES = (".yaml", ".yml")
TARGETS = {  # issue 11's targets, as (what, test on a result row)
    "colour acc >= 99%": lambda r: min(r["acc"][c] for c in COLOURS) >= 0.99,
    "colours <= 0.5x": lambda r: max(r["ratio"][c] for c in COLOURS) <= 0.5,
    "Striped >= 90%": lambda r: r["acc"].get("Striped", 0.0) >= 0.9,
    "shape >= 95%": lambda r: r["shape"] is not None and r["shape"] >= 0.95,
}


def parse_seeds(text: str) -> list[int]:
    """``0-3,7`` -> [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise UserError(f"--seeds: expected numbers and ranges like 0-3,7, got {text!r}") from None
    return seeds


def load_variants(path: Path) -> dict[str, list[str]]:
    try:
        text = path.read_text()
    except OSError as err:
        raise UserError(f"--variants {path}: cannot read it ({err.strerror})") from None
    try:
        if path.suffix in YAML_SUFFIXES:
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # noqa: BLE001 - any parse error is the file's fault
        kind = "YAML" if path.suffix in YAML_SUFFIXES else "JSON"
        raise UserError(f"--variants {path}: not valid {kind} ({err})") from None
    ok = isinstance(data, dict) and data and all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) and "=" in s for s in v)
        for k, v in data.items())
    if not ok:
        raise UserError(f"--variants {path}: expected a mapping from variant name to a list of KEY=VALUE "
                        f"overrides, e.g. {{\"committed\": [], \"cls_fake\": [\"loss.lambda_cls_fake=0.5\"]}}")
    return data


def start_job(line: str, env: dict, log: Path) -> subprocess.Popen:
    """Run a shell line in a process group of its own, its output to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(line, shell=True, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_job(proc: subprocess.Popen) -> None:
    """Kill the shell and what it started (killing the shell alone leaves its training running)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _stargan(*args: str) -> list[str]:
    return [sys.executable, "-m", stargan.__name__, *args]  # the CLI, `python -m stargan`


def prepare(args) -> tuple[Path, Path]:
    """The data folder and the classifier: given, or made here (once; a rerun finds them)."""
    data = args.data or args.out / "data"
    if not (data / "list_attr_celeba.txt").exists():
        subprocess.run(_stargan("make-dataset", "shapes", "--out", str(data), "--n", str(args.n_images),
                                "--size", str(args.size)), check=True, cwd=ROOT)
    classifier = args.classifier or args.out / "classifier.pt"
    if not classifier.exists():
        subprocess.run(_stargan("train-classifier", "--data", str(data), "--out", str(classifier),
                                "--epochs", str(args.classifier_epochs), "--image-size", str(args.size),
                                "--device", args.device), check=True, cwd=ROOT)
    return data, classifier


def job_commands(args, data: Path, classifier: Path, name: str, sets: list[str], seed: int,
                 run_dir: Path) -> list[list[str]]:
    overrides = [f"seed={seed}", f"run.stop_after_steps={args.steps}", "log.progress=false",
                 f"data.datasets.0.image_dir={data / 'images'}",
                 f"data.datasets.0.attr_path={data / 'list_attr_celeba.txt'}",
                 f"data.datasets.0.partition_path={data / 'list_eval_partition.txt'}", *sets]
    train = _stargan("train", str(args.config), "--out", str(run_dir), "--device", args.device,
                     *(a for s in overrides for a in ("--set", s)))
    # `stargan train --out` makes the numbered run folder 00000-NAME in the fresh run_dir.
    name_sets = [s.split("=", 1)[1] for s in overrides if s.startswith("name=")]
    run_name = name_sets[-1] if name_sets else args.run_name
    evaluate = _stargan("evaluate", "--checkpoint", str(run_dir / f"00000-{run_name}"), "--classifier", str(classifier),
                        "--device", args.device, "--out", str(run_dir / "eval"))
    return [train, evaluate]


def result_row(name: str, sets: list[str], seed: int, run_dir: Path, seconds: float, error: str | None) -> dict:
    """The figures the targets name, from the run's evaluate metrics.json and its last logged G/mask."""
    row: dict = {"variant": name, "sets": sets, "seed": seed, "seconds": round(seconds, 1), "error": error}
    if error is None:
        metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
        per = metrics["counterfactual"]["per_attribute"]
        row["acc"] = {k: v["accuracy"] for k, v in metrics["target_accuracy"]["per_attribute"].items()}
        row["ratio"] = {k: v["l1_ratio"] for k, v in per.items()}
        row["kept_l1"] = {k: v["l1_kept"] for k, v in per.items()}
        # An attention G's mask where the truth equals the input (None without a mask): G repainting what stays.
        row["mask_kept"] = {k: v["mask_kept"] for k, v in per.items()} if "mask_kept" in metrics["counterfactual"][
            "overall"] else None
        nuisance = metrics.get("nuisance") or {}
        row["shape"] = (nuisance.get("overall") or {}).get("Shape", {}).get("accuracy")
        row["meets"] = {what: bool(test(row)) for what, test in TARGETS.items()}
    stats = sorted(run_dir.glob("*/stats.jsonl"))
    if stats:
        logged = [json.loads(line) for line in stats[-1].read_text().splitlines() if line.strip()]
        row["steps"] = logged[-1]["step"] if logged else None
        masks = [r["G/mask"] for r in logged if "G/mask" in r]
        row["g_mask"] = masks[-1] if masks else None
    return row


def _max_mask_kept(row: dict) -> str:
    """The largest per-target mask where the truth keeps the input, with its target (``-`` without a mask)."""
    known = {k: v for k, v in (row.get("mask_kept") or {}).items() if v is not None}
    if not known:
        return "-"
    worst = max(known, key=known.get)
    return f"{fmt_number(known[worst])} ({worst})"


def summary(rows: list[dict], killed: list[str], header: str) -> str:
    table = [["variant", "seed", "steps", "colour acc (min)", "colour ratio (max)", "Striped", "Dark_Background",
              "shape kept", "G/mask", "mask where kept (max)", "targets met"]]
    for r in rows:
        if r["error"]:
            table.append([r["variant"], str(r["seed"]), fmt_number(r.get("steps")), f"failed: {r['error']}",
                          *["-"] * 7])
            continue
        table.append([r["variant"], str(r["seed"]), fmt_number(r.get("steps")),
                      fmt_percent(min(r["acc"][c] for c in COLOURS)),
                      f"x{max(r['ratio'][c] for c in COLOURS):.2f}", fmt_percent(r["acc"].get("Striped")),
                      fmt_percent(r["acc"].get("Dark_Background")), fmt_percent(r["shape"]),
                      fmt_number(r.get("g_mask")), _max_mask_kept(r), f"{sum(r['meets'].values())}/{len(TARGETS)}"])
    per_variant = [["variant", "seeds scored", *TARGETS, "all four"]]
    for name in dict.fromkeys(r["variant"] for r in rows):
        done = [r for r in rows if r["variant"] == name and not r["error"]]
        counts = [sum(r["meets"][what] for r in done) for what in TARGETS]
        per_variant.append([name, str(len(done)), *(f"{c}/{len(done)}" for c in counts),
                            f"{sum(all(r['meets'].values()) for r in done)}/{len(done)}"])
    text = f"{header}\n\n{markdown_table(table)}\n\nSeeds meeting each target:\n\n{markdown_table(per_variant)}\n"
    if killed:
        text += f"\nCut by the budget (not scored): {', '.join(killed)}\n"
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", type=Path, required=True, help="JSON or YAML: variant name -> [KEY=VALUE, ...]")
    ap.add_argument("--out", type=Path, required=True, help="folder for the runs, results.jsonl and summary.md")
    ap.add_argument("--config", type=Path, default=ROOT / "configs/stargan/shapes64.yaml")
    ap.add_argument("--seeds", default="0-3", help="e.g. 0-5 or 0,3,7 (default 0-3)")
    ap.add_argument("--steps", type=int, default=2600, help="iterations per run (default 2600)")
    ap.add_argument("--parallel", type=int, default=1,
                    help="runs at once (default 1; on a GPU many can share it: not measured)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    ap.add_argument("--budget-s", type=float, default=None, help="stop starting runs, and kill those running, "
                    "after this many seconds (default: no limit)")
    ap.add_argument("--data", type=Path, default=None, help="an existing shapes dataset (default: OUT/data, made "
                    "with --n-images and --size)")
    ap.add_argument("--classifier", type=Path, default=None,
                    help="an existing `train-classifier` checkpoint (default: OUT/classifier.pt, trained here)")
    ap.add_argument("--n-images", type=int, default=5000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--classifier-epochs", type=int, default=10)
    ap.add_argument("--dry-run", action="store_true", help="print the commands; run nothing")
    args = ap.parse_args(argv)
    try:
        return sweep(args)
    except UserError as err:
        print(f"recipe_sweep: {err}", file=sys.stderr)
        return 2


def sweep(args) -> int:
    started = time.monotonic()
    variants, seeds = load_variants(args.variants), parse_seeds(args.seeds)
    if args.steps < 1 or args.parallel < 1:
        raise UserError("--steps and --parallel must be >= 1")
    if not args.config.exists():
        raise UserError(f"--config {args.config}: no such file")
    args.out = args.out.resolve()
    args.run_name = (yaml.safe_load(args.config.read_text()) or {}).get("name", StarGANConfig().name)
    runs = args.out / "runs"
    jobs = [(name, sets, seed, runs / f"{name}-s{seed}") for seed in seeds for name, sets in variants.items()]
    taken = [str(run_dir) for *_, run_dir in jobs if run_dir.exists()]
    if taken:
        raise UserError(f"--out {args.out}: run folders already there ({taken[0]}, ...); give a new --out")
    if args.dry_run:
        data, classifier = args.data or args.out / "data", args.classifier or args.out / "classifier.pt"
        for name, sets, seed, run_dir in jobs:
            for cmd in job_commands(args, data, classifier, name, sets, seed, run_dir):
                print(" ".join(cmd))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    data, classifier = prepare(args)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    results_path, rows, killed = args.out / "results.jsonl", [], []
    queue, running = list(jobs), []

    def launch(job):
        name, sets, seed, run_dir = job
        run_dir.mkdir(parents=True)
        train, evaluate = job_commands(args, data, classifier, name, sets, seed, run_dir)
        # One shell line per job so the evaluation follows its training without this loop waiting on it.
        line = f"{shlex.join(train)} && {shlex.join(evaluate)}"
        return start_job(line, env, run_dir / "log.txt"), job, time.monotonic()

    def over_budget() -> bool:
        return args.budget_s is not None and time.monotonic() - started > args.budget_s

    while queue or running:
        while queue and len(running) < args.parallel and not over_budget():
            running.append(launch(queue.pop(0)))
        if over_budget():
            break
        time.sleep(1)
        for item in list(running):
            proc, (name, sets, seed, run_dir), t0 = item
            if proc.poll() is None:
                continue
            running.remove(item)
            error = None if proc.returncode == 0 else f"exit {proc.returncode}, see {run_dir / 'log.txt'}"
            row = result_row(name, sets, seed, run_dir, time.monotonic() - t0, error)
            rows.append(row)
            with results_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name} seed {seed}: " + ("failed" if error else ", ".join(
                f"{what} {'yes' if ok else 'no'}" for what, ok in row["meets"].items())), flush=True)
    for proc, (name, _, seed, _), _ in running:
        stop_job(proc)
        killed.append(f"{name} seed {seed}")
    killed += [f"{name} seed {seed} (not started)" for name, _, seed, _ in queue]
    header = (f"# Recipe sweep: {args.config.name}, {args.steps} iterations, device {args.device}, "
              f"{time.monotonic() - started:.0f} s")
    write_text_atomic(args.out / "summary.md", summary(rows, killed, header))
    print(f"summary: {args.out / 'summary.md'}")
    return 0 if rows and not any(r["error"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
