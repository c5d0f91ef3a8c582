"""``stargan compare`` end to end: k(k-1)/2 pairwise CycleGANs against one StarGAN (the StarGAN paper's
comparison).

Stages, each skipped when its output is already there, so an interrupted or repeated run continues where it
stopped (see docs/compare.md):

1. data (:mod:`.data`): the domain view, the pair views and the domain classifier (:mod:`.classifier`);
2. plan (:mod:`.plan`) and, for a time budget, the timing probe; training (:mod:`.train`): one ordinary run
   folder per model, ``timing.json`` in each;
3. evaluation (:mod:`.evaluate`) of every directed translation on the same test images;
4. ``results.json``, ``report.md``, ``report.html`` and ``grids/<source>.png`` (:mod:`.report`).

Both methods train on exactly the same images: the StarGAN's training set is the union of the pair views.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from common.config import to_dict
from common.device import resolve_device
from common.errors import UserError
from common.files import read_json_or_none, write_json_atomic
from common.tables import fmt_seconds
from stargan.compare.classifier import ensure_classifier
from stargan.compare.config import CompareConfig, load_compare_config
from stargan.compare.data import prepare_data, read_manifest
from stargan.compare.evaluate import Evaluation, evaluate_all
from stargan.compare.layout import PLAN_FILE, REPORT_HTML, REPORT_MD, RESULTS_FILE, pair_name
from stargan.compare.plan import METHODS, Method, ModelPlan, build_plan, describe_plan, plan_signature
from stargan.compare.report import write_grids, write_reports
from stargan.compare.train import probe_seconds_per_step, train_model

log = logging.getLogger(__name__)


def load_config_and_out(cfg_path: str | Path, overrides: Sequence[str],
                        out: str | Path | None) -> tuple[CompareConfig, Path]:
    """The config and the comparison folder (``--out``, else the config's)."""
    cfg = load_compare_config(cfg_path, overrides)
    return cfg, Path(out) if out is not None else cfg.out_dir


def _stored_plan(out_dir: Path) -> tuple[dict | None, dict | None]:
    """``plan.json`` of an earlier invocation (None: none yet) and its probe result."""
    stored = read_json_or_none(out_dir / PLAN_FILE)
    if not isinstance(stored, dict):
        return None, None
    return stored, stored.get("probe")


def dry_run_plan(cfg: CompareConfig, source: str, out_dir: Path) -> str:
    """The plan as far as it is known without writing or training anything."""
    manifest = read_manifest(out_dir)
    counts = {d: len(manifest["files"]["train"].get(d, [])) for d in cfg.data.domains} if manifest else None
    _, probe = _stored_plan(out_dir)
    plans = build_plan(cfg, source, out_dir, counts, probe)
    known = cfg.budget.mode == "images" or probe is not None
    return describe_plan(cfg, plans, out_dir, data_ready=manifest is not None, steps_known=known)


def _plan(cfg: CompareConfig, source: str, out_dir: Path, counts: dict[str, int],
          device: str) -> tuple[list[ModelPlan], dict | None]:
    """The models to train and the probe they were planned with; refuses settings that changed since the
    comparison started (models trained under other settings would be mixed)."""
    stored, probe = _stored_plan(out_dir)
    if cfg.budget.mode == "time" and probe is None:
        probe = probe_seconds_per_step(cfg, source, out_dir, device)
    plans = build_plan(cfg, source, out_dir, counts, probe)
    signature = plan_signature(plans)
    if stored is not None and stored.get("models") != signature:
        changed = next((n for n in signature if (stored.get("models") or {}).get(n) != signature[n]), "?")
        raise UserError(f"{out_dir / PLAN_FILE}: the models' settings changed since this comparison started "
                        f"(first: {changed}); use another --out, or delete {out_dir} to start over")
    if stored is None:
        write_json_atomic(out_dir / PLAN_FILE, {"probe": probe, "models": signature})
    return plans, probe


def _train_all(plans: Sequence[ModelPlan], device: str) -> dict[str, dict]:
    """Model name -> its timing record."""
    timings = {}
    for plan in plans:
        timing, trained = train_model(plan, device)
        log.info("%s %s: %s: %d steps, %d images, %s in %s", plan.method, plan.name,
                 "trained" if trained else "already trained", timing["global_step"], timing["training_images"],
                 fmt_seconds(timing["seconds"]), timing["run_dir"])
        timings[plan.name] = timing
    return timings


def _method_summary(method: Method, plans: Sequence[ModelPlan], timings: dict[str, dict]) -> dict:
    runs = []
    for p in plans:
        if p.kind is not method:
            continue
        t = timings[p.name]
        runs.append({"name": p.name, "run_dir": t.get("run_dir"), "train_seconds": t["seconds"],
                     "peak_memory_bytes": t.get("peak_memory_bytes"), "steps": t["global_step"],
                     "training_images": t["training_images"], "planned_steps": p.steps,
                     "planned_images": p.images})
    peaks = [r["peak_memory_bytes"] for r in runs if r["peak_memory_bytes"] is not None]
    return {"models": len(runs), "train_seconds": round(sum(r["train_seconds"] for r in runs), 3),
            "peak_memory_bytes": max(peaks) if peaks else None,
            "training_images": sum(r["training_images"] for r in runs), "runs": runs}


def _previous_results(out_dir: Path, fingerprint: dict) -> dict | None:
    """``results.json`` when it was made from the same models, classifier and eval settings."""
    previous = read_json_or_none(out_dir / RESULTS_FILE)
    if isinstance(previous, dict) and previous.get("fingerprint") == fingerprint and all(
            (out_dir / p).is_file() for p in previous["report"]["grids"].values()):
        return previous
    return None


def _results(cfg: CompareConfig, cfg_path: str | Path, out_dir: Path, counts: dict[str, int], probe: dict | None,
             plans: Sequence[ModelPlan], timings: dict[str, dict], evaluation: Evaluation, grids: dict[str, str],
             fingerprint: dict) -> dict:
    methods = {m.key: {**_method_summary(m, plans, timings), **evaluation.metrics[m.key]} for m in METHODS}
    kinds = {t.get("peak_memory_kind") for t in timings.values()} - {None}
    return {
        "name": cfg.name, "config": str(cfg_path), "out": str(out_dir), "domains": list(cfg.data.domains),
        "k": len(cfg.data.domains), "pairs": [pair_name(a, b) for a, b in cfg.pairs],
        "budget": to_dict(cfg.budget), "probe_seconds_per_step": probe,
        "data": {"kind": cfg.data.kind, "image_size": cfg.data.resolved_image_size, "train_images": counts},
        "test_images": {d: len(evaluation.test.inputs[d]) for d in cfg.data.domains},
        "classifier": evaluation.classifier,
        "methods": methods, "baseline": evaluation.baseline,
        "fid_skipped": evaluation.fid_skipped, "fid_weights": evaluation.fid_weights,
        "peak_memory_kind": ", ".join(sorted(kinds)) or None,
        "report": {"md": REPORT_MD, "html": REPORT_HTML, "grids": grids},
        "fingerprint": fingerprint,
    }


def run_compare(cfg_path: str | Path, overrides: Sequence[str] = (), out: str | Path | None = None,
                device: str = "auto") -> dict:
    """Run (or continue) the whole comparison; returns the results also written to ``<out>/results.json``."""
    t_start = time.perf_counter()
    cfg, out_dir = load_config_and_out(cfg_path, overrides, out)
    source = str(cfg_path)
    build_plan(cfg, source, out_dir, None)  # validate the partial trainer configs before anything is written
    dev = resolve_device(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = prepare_data(cfg, out_dir)
    counts = {d: len(manifest["files"]["train"][d]) for d in cfg.data.domains}
    classifier = ensure_classifier(cfg, out_dir, manifest, dev)
    plans, probe = _plan(cfg, source, out_dir, counts, device)
    log.info("%s", describe_plan(cfg, plans, out_dir, data_ready=True))
    timings = _train_all(plans, device)

    fingerprint = {"models": {n: [t["run_dir"], t["global_step"]] for n, t in timings.items()},
                   "classifier": os.stat(classifier).st_mtime_ns, "eval": to_dict(cfg.eval)}
    results = _previous_results(out_dir, fingerprint)
    if results is not None:
        log.info("evaluation: up to date (models, classifier and eval settings unchanged)")
    else:
        evaluation = evaluate_all(cfg, out_dir, manifest, plans, classifier, device)
        grids = write_grids(out_dir, list(cfg.data.domains), evaluation, cfg.eval.grid_inputs)
        results = _results(cfg, cfg_path, out_dir, counts, probe, plans, timings, evaluation, grids, fingerprint)
        write_reports(results, out_dir)
        write_json_atomic(out_dir / RESULTS_FILE, results)
    results["seconds"] = round(time.perf_counter() - t_start, 3)
    return results
