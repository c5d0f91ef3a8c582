"""``stargan compare``: k(k-1)/2 pairwise CycleGANs against one StarGAN (the StarGAN paper's comparison).

Pipeline (every stage is skipped when its output is already there, so an interrupted or repeated run
continues where it stopped; see docs/compare.md):

1. data: the k domains' images, centre-cropped and resized once, in ``<out>/domains/{train,test}/<domain>/``
   (shapes: hard links into the generated ``<out>/data``), the CycleGAN pair views
   ``<out>/pairs/<A>2<B>/{trainA,trainB,testA,testB}`` (hard links into the domain view), and a domain
   classifier ``<out>/classifier.pt`` trained once on the real training images;
2. training: one ordinary run folder per model, ``<out>/cyclegan/NNNNN-<A>2<B>/`` and
   ``<out>/stargan/NNNNN-stargan/``, resumed with ``--resume auto`` semantics; ``timing.json`` in each
   accumulates the wall clock and peak memory of every training segment;
3. evaluation of every directed translation (k(k-1) per method) on the same test images with the same
   classifier, counterfactual L1 where the data has ground truth, FID when the Inception weights exist;
4. ``results.json``, ``report.md``, ``report.html`` and ``grids/<source>.png``.

Both methods train on exactly the same images: the StarGAN's training set is the union of the pair views.
"""
from __future__ import annotations

import copy
import html
import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import click

from common.errors import UserError
from stargan.cli.common import DEVICE_HELP, user_errors
from stargan.compare.config import CompareConfig, load_compare_config

DATA_DIR = "data"
DOMAINS_DIR = "domains"
PAIRS_DIR = "pairs"
MANIFEST_FILE = "manifest.json"
CLASSIFIER_FILE = "classifier.pt"
PLAN_FILE = "plan.json"
TIMING_FILE = "timing.json"
RESULTS_FILE = "results.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
GRIDS_DIR = "grids"
METHODS = ("cyclegan", "stargan")
METHOD_TITLES = {"cyclegan": "CycleGAN (pairwise)", "stargan": "StarGAN"}
STARGAN_DATASET = "domain"
PROBE_WARMUP = 2

Echo = Callable[[str], None]


# ================================================================================================== plan
@dataclass
class ModelPlan:
    """One model to train: its trainer config, where its run folder lives and the budget it ends at."""

    method: str
    name: str
    out_root: Path
    config: Any
    steps: int  # global_step at which the run is complete
    images: int  # training images drawn from the data by then
    epochs: int | None = None  # CycleGAN only
    seconds: float | None = None  # time budget: wall-clock cap of the whole run
    pair: tuple[str, str] | None = None  # CycleGAN only: (A, B), G_A translates A -> B


def _deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _cyclegan_config(cfg: CompareConfig, source: str, pair: tuple[str, str], out: Path,
                     epochs: tuple[int, int] = (1, 0), stop: int | None = None, max_seconds: float | None = None):
    from common.config import from_dict
    from cyclegan.config import CycleGANConfig

    a, b = pair
    size = cfg.data.resolved_image_size
    # The images are already cropped and resized (both methods see the same pixels), so CycleGAN's own
    # preprocessing is reduced to the flip: no 286->256 random crop that the StarGAN recipe does not have.
    derived = {
        "model": "cyclegan", "name": f"{a}2{b}", "seed": cfg.seed,
        "data": {"root": str(out / PAIRS_DIR / f"{a}2{b}"), "preprocess": "none", "load_size": size,
                 "crop_size": size},
        "optim": {"n_epochs": epochs[0], "n_epochs_decay": epochs[1]},
        "run": {"stop_after_steps": stop, "max_seconds": max_seconds},
    }
    return from_dict(CycleGANConfig, _deep_merge(cfg.cyclegan, derived), source=source, prefix="cyclegan.")


def _stargan_config(cfg: CompareConfig, source: str, out: Path, iters: int = 1, max_seconds: float | None = None):
    from common.config import from_dict
    from stargan.config import StarGANConfig

    derived = {
        "model": "stargan", "name": "stargan", "seed": cfg.seed,
        "data": {"image_size": cfg.data.resolved_image_size, "datasets": [{
            "name": STARGAN_DATASET, "format": "imagefolder", "image_dir": str(out / DOMAINS_DIR / "train"),
            "attr_path": None, "crop_size": None, "test_fraction": 0.0}]},
        # Half of the iterations decay the LR, the official ratio (200k iterations, 100k decaying).
        "optim": {"num_iters": iters, "num_iters_decay": iters // 2},
        "run": {"max_seconds": max_seconds},
    }
    return from_dict(StarGANConfig, _deep_merge(cfg.stargan, derived), source=source, prefix="stargan.")


def _cyclegan_schedule(target_steps: int, n_a: int, n_b: int, batch_size: int) -> tuple[int, int, int, int | None]:
    """``(epochs, steps, images, stop_after_steps)`` for about ``target_steps`` CycleGAN steps.

    Whole epochs, so the linear LR decay (half the epochs, as the official 100 + 100) runs to its end; a
    budget below one epoch stops inside the first epoch instead. One step draws ``batch_size`` images of A
    and as many of B, an epoch max(|A|, |B|) of each."""
    per_epoch = math.ceil(max(n_a, n_b) / batch_size)
    if target_steps < per_epoch:
        return 1, target_steps, 2 * batch_size * target_steps, target_steps
    epochs = max(1, round(target_steps / per_epoch))
    return epochs, epochs * per_epoch, 2 * epochs * max(n_a, n_b), None


def build_plan(cfg: CompareConfig, source: str, out: Path, counts: dict[str, int] | None,
               probe: dict[str, float] | None = None) -> list[ModelPlan]:
    """The models to train, in training order. ``counts``: training images per domain (None before the data
    exists: a dry run, where CycleGAN epochs are estimated with one image per step). ``probe``: seconds per
    step of each method (time budget)."""
    pairs = cfg.pairs
    budget = cfg.budget
    probe_cg = _cyclegan_config(cfg, source, pairs[0], out)
    probe_sg = _stargan_config(cfg, source, out)
    bs_cg, bs_sg = probe_cg.data.batch_size, probe_sg.data.batch_size
    if budget.mode == "images":
        cg_target = max(1, round(budget.images_per_model / (2 * bs_cg)))
        sg_target = max(1, round(budget.images_per_model / bs_sg))
        cg_seconds = sg_seconds = None
    else:
        cg_seconds = budget.total_seconds / 2 / len(pairs)
        sg_seconds = budget.total_seconds / 2
        probe = probe or {"cyclegan": 1.0, "stargan": 1.0}
        cg_target = max(1, int(cg_seconds / probe["cyclegan"]))
        sg_target = max(1, int(sg_seconds / probe["stargan"]))
    plans = []
    for a, b in pairs:
        n_a, n_b = (counts[a], counts[b]) if counts else (cg_target * bs_cg, cg_target * bs_cg)
        epochs, steps, images, stop = _cyclegan_schedule(cg_target, n_a, n_b, bs_cg)
        n_const = math.ceil(epochs / 2)
        conf = _cyclegan_config(cfg, source, (a, b), out, (n_const, epochs - n_const), stop, cg_seconds)
        plans.append(ModelPlan("cyclegan", conf.name, out / "cyclegan", conf, steps, images, epochs, cg_seconds,
                               (a, b)))
    conf = _stargan_config(cfg, source, out, sg_target, sg_seconds)
    plans.append(ModelPlan("stargan", conf.name, out / "stargan", conf, sg_target, sg_target * bs_sg,
                           None, sg_seconds))
    return plans


def _plan_signature(plans: Sequence[ModelPlan]) -> dict:
    """What makes a trained model what it is: the configs minus logging, loader workers and the data paths
    (those follow --out, which may be spelled differently from one invocation to the next)."""
    from common.config import to_dict

    out = {}
    for p in plans:
        d = to_dict(p.config)
        d.pop("log", None)
        d["run"].pop("num_workers", None)
        d["data"].pop("root", None)
        for entry in d["data"].get("datasets", []):
            entry.pop("image_dir", None)
        out[p.name] = {"config": d, "steps": p.steps, "images": p.images}
    return out


def describe_plan(cfg: CompareConfig, plans: Sequence[ModelPlan], out: Path, data_ready: bool,
                  steps_known: bool = True) -> str:
    """The plan as text. ``data_ready``: CycleGAN epochs are known (they depend on the pair sizes);
    ``steps_known``: False for a time budget whose probe has not run yet."""
    k, pairs = len(cfg.data.domains), cfg.pairs
    b = cfg.budget
    lines = [f"compare {cfg.name}: k={k} domains ({', '.join(cfg.data.domains)}) -> {len(pairs)} pairwise "
             f"CycleGANs + 1 StarGAN, {cfg.data.kind} data at {cfg.data.resolved_image_size}px",
             f"out: {out}"]
    if b.mode == "images":
        lines.append(f"budget: {b.images_per_model} training images per model")
    else:
        lines.append(f"budget: {b.total_seconds:g}s of training in all: {b.total_seconds / 2:g}s for the StarGAN, "
                     f"{b.total_seconds / 2:g}s shared by the CycleGANs ({b.total_seconds / 2 / len(pairs):.1f}s "
                     "each); steps from a timing probe")
    for p in plans:
        if not steps_known:
            lines.append(f"  {p.method} {p.name}: steps from the timing probe, cap {p.seconds:.1f}s")
            continue
        if p.method == "cyclegan":
            bs = p.config.data.batch_size
            when = f"{p.epochs} epoch(s)" if data_ready else "epochs once the data exists"
            lines.append(f"  cyclegan {p.name}: {p.steps} steps x batch {bs} (A+B), {when}, ~{p.images} images")
        else:
            bs = p.config.data.batch_size
            lines.append(f"  stargan: {p.steps} iterations x batch {bs}, {p.images} images")
        if p.seconds is not None:
            lines[-1] += f", cap {p.seconds:.1f}s"
    return "\n".join(lines)


# ================================================================================================== data
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _link_or_copy(src: Path, dst: Path) -> None:
    # Hard links cost no space; they fail across file systems (then copy).
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _ensure_shapes(cfg: CompareConfig, data_dir: Path, echo: Echo) -> None:
    from common.data.shapes import make_dataset

    d = cfg.data
    want = {"n": d.n, "size": d.size, "seed": d.seed, "test_fraction": d.test_fraction}
    meta = _read_json(data_dir / "attributes.json")
    if isinstance(meta, dict) and meta.get("complete"):
        if all(meta.get(k) == v for k, v in want.items()):
            return
        have = {k: meta.get(k) for k in want}
        raise UserError(f"{data_dir}: holds a shapes dataset made with {have}, but the config asks for {want}; "
                        "use another --out")
    echo(f"data: generating {d.n} shapes images of {d.size}px into {data_dir}")
    make_dataset(data_dir, n=d.n, size=d.size, seed=d.seed, test_fraction=d.test_fraction)


def _celeba_items(cfg: CompareConfig, attr_path: Path, image_dir: Path) -> list[tuple[str, str, Path, str]]:
    from stargan.datasets import partition_indices, read_celeba_attrs, split_indices

    d = cfg.data
    files, labels, _ = read_celeba_attrs(attr_path, d.domains)
    if d.kind == "shapes":
        test = set(partition_indices(attr_path.parent / "list_eval_partition.txt", files, "test"))
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


def _imagefolder_items(cfg: CompareConfig) -> list[tuple[str, str, Path, str]]:
    from common.data.images import find_images
    from stargan.datasets import split_indices

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


def _flat_names(folder: Path, files: Sequence[Path]) -> list[str]:
    """Unique PNG names for images found recursively in ``folder``: sub/dir/x.jpg -> sub__dir__x.png, and
    x.jpg beside x.png keeps its suffix in the name (x_jpg.png) rather than overwriting it."""
    stems = ["__".join(f.relative_to(folder).with_suffix("").parts) for f in files]
    taken: dict[str, int] = {}
    for stem in stems:
        taken[stem] = taken.get(stem, 0) + 1
    return [(f"{stem}_{f.suffix.lstrip('.').lower()}" if taken[stem] > 1 else stem) + ".png"
            for stem, f in zip(stems, files)]


def _write_resized(jobs: Sequence[tuple[Path, Path]], size: int, crop: int | None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from common.data.images import tensor_to_image
    from stargan.evaluation.evaluate import load_image

    def one(job: tuple[Path, Path]) -> None:
        # The StarGAN test transform, so these files equal what StarGAN's own loader would make of the source.
        tensor_to_image(load_image(job[0], size, crop)).save(job[1], format="PNG", compress_level=1)

    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as ex:
        for _ in ex.map(one, jobs):
            pass


def prepare_data(cfg: CompareConfig, out: Path, echo: Echo = print) -> dict:
    """The domain view, the pair views and their manifest (returned). Done once; ``manifest.json`` is written
    last and marks completion."""
    from common.config import to_dict

    key = to_dict(cfg.data)
    root = out / DOMAINS_DIR
    manifest = _read_json(root / MANIFEST_FILE)
    if isinstance(manifest, dict):
        if manifest.get("key") == key:
            return manifest
        old = manifest.get("key") or {}
        diff = ", ".join(f"data.{k}: {old.get(k)!r} there, {v!r} now" for k, v in key.items() if old.get(k) != v)
        raise UserError(f"{root / MANIFEST_FILE}: {out} was prepared from other data settings ({diff}); "
                        "use another --out for these")
    size, d = cfg.data.resolved_image_size, cfg.data
    counterfactuals = None
    if d.kind == "shapes":
        data_dir = out / DATA_DIR
        _ensure_shapes(cfg, data_dir, echo)
        items = _celeba_items(cfg, data_dir / "list_attr_celeba.txt", data_dir / "images")
        counterfactuals = str(data_dir)
    elif d.kind == "celeba":
        if not Path(d.root).is_dir():
            raise UserError(f"{d.root}: image folder (data.root) not found")
        items = _celeba_items(cfg, Path(d.attr_path), Path(d.root))
    else:
        items = _imagefolder_items(cfg)
    for split in ("train", "test"):
        empty = [dom for dom in d.domains if not any(s == split and x == dom for s, x, _, _ in items)]
        if empty:
            raise UserError(f"data: domain {empty[0]!r} has no {split} images (every domain needs both)")
    for name in (DOMAINS_DIR, PAIRS_DIR):
        if (out / name).exists():
            shutil.rmtree(out / name)  # left half-written by an interrupted run
    files: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    jobs = []
    for split, domain, src, name in items:
        folder = root / split / domain
        folder.mkdir(parents=True, exist_ok=True)
        files[split].setdefault(domain, []).append(name)
        if d.kind == "shapes":
            _link_or_copy(src, folder / name)  # rendered at the training size already
        else:
            jobs.append((src, folder / name))
    if jobs:
        echo(f"data: cropping/resizing {len(jobs)} images to {size}px into {root}")
        _write_resized(jobs, size, d.crop_size)
    for split in files:
        for domain in files[split]:
            files[split][domain].sort()
    for a, b in cfg.pairs:
        for split in ("train", "test"):
            for side, domain in (("A", a), ("B", b)):
                folder = out / PAIRS_DIR / f"{a}2{b}" / f"{split}{side}"
                folder.mkdir(parents=True, exist_ok=True)
                for name in files[split][domain]:
                    _link_or_copy(root / split / domain / name, folder / name)
    manifest = {"key": key, "domains": list(d.domains), "image_size": size, "files": files,
                "counterfactuals": counterfactuals}
    _write_json(root / MANIFEST_FILE, manifest)
    counts = ", ".join(f"{dom} {len(files['train'][dom])}/{len(files['test'][dom])}" for dom in d.domains)
    echo(f"data: train/test images per domain: {counts}; {len(cfg.pairs)} pair views in {out / PAIRS_DIR}")
    return manifest


# ============================================================================================ classifier
class _DomainImages:
    """(image in [-1, 1], one-hot domain label) of listed files, for the classifier."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], k: int, size: int):
        self.files, self.labels, self.k, self.size = list(files), list(labels), k, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import torch

        from stargan.evaluation.evaluate import load_image

        label = torch.zeros(self.k)
        label[self.labels[i]] = 1.0
        return load_image(self.files[i], self.size, None), label


def _split_files(out: Path, manifest: dict, split: str, limit: int | None = None) -> dict[str, list[Path]]:
    return {dom: [out / DOMAINS_DIR / split / dom / n for n in names[:limit]]
            for dom, names in manifest["files"][split].items()}


def ensure_classifier(cfg: CompareConfig, out: Path, manifest: dict, device, echo: Echo = print) -> Path:
    """Train the domain classifier on the real training images once; reuse it while its settings hold."""
    from common.config import to_dict
    from common.metrics import load_classifier, save_classifier, train_classifier

    path = out / CLASSIFIER_FILE
    settings = {**to_dict(cfg.classifier), "seed": cfg.seed}
    domains = list(cfg.data.domains)
    if path.is_file():
        try:
            _, meta = load_classifier(path)
        except UserError:
            meta = {}
        if meta.get("settings") == settings and meta.get("attribute_names") == domains:
            return path
    train = _split_files(out, manifest, "train")
    files = [f for dom in domains for f in train[dom]]
    labels = [i for i, dom in enumerate(domains) for _ in train[dom]]
    dataset = _DomainImages(files, labels, len(domains), cfg.data.resolved_image_size)
    c = cfg.classifier
    echo(f"classifier: training on {len(files)} real images ({c.epochs} epoch(s), width {c.width})")

    def report(rec: dict) -> None:
        echo(f"  epoch {rec['epoch']}/{c.epochs}: loss {rec['loss']:.4f}, train accuracy {rec['accuracy']:.3f}")

    model, history = train_classifier(dataset, [("exclusive", 0, len(domains))], epochs=c.epochs,
                                      batch_size=c.batch_size, lr=c.lr, seed=cfg.seed, device=device,
                                      progress=report, width=c.width, attribute_names=domains)
    save_classifier(path, model, {"settings": settings, "history": history, "n_train": len(files)})
    return path


# ============================================================================================== training
def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of a block. CUDA: ``torch.cuda.max_memory_allocated`` (reset at the start). CPU: the
    largest rise of this process's resident set size above its value at the start, sampled every 20 ms
    (DataLoader worker processes are not included); ``None`` where /proc is unavailable."""

    def __init__(self, device):
        self.device = device
        self.peak: int | None = None
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_rss_increase"

    def __enter__(self) -> PeakMemory:
        import torch

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
        import torch

        if self.device.type == "cuda":
            self.peak = int(torch.cuda.max_memory_allocated(self.device))
            return
        self._stop.set()
        if self._base is not None:
            self._thread.join()
            now = _rss_bytes() or self._high
            self.peak = max(self._high, now) - self._base


def _checkpoint_counters(run_dir: Path) -> dict:
    from common.checkpoint import load_checkpoint

    return dict(load_checkpoint(run_dir, map_location="cpu").get("counters", {}))


def _is_done(plan: ModelPlan, timing: dict | None) -> bool:
    if not timing:
        return False
    if timing.get("global_step", 0) >= plan.steps:
        return True
    return plan.seconds is not None and timing.get("seconds", 0.0) >= plan.seconds


def train_model(plan: ModelPlan, device: str, echo: Echo = print) -> tuple[dict, bool]:
    """Train (or continue, or skip) one model; returns its ``timing.json`` record (plus ``run_dir``) and
    whether it trained now."""
    from common.runs import latest_run_with_checkpoint

    run_dir = latest_run_with_checkpoint(plan.out_root, plan.name)
    timing = _read_json(run_dir / TIMING_FILE) if run_dir else None
    if run_dir and _is_done(plan, timing):
        return {**timing, "run_dir": str(run_dir)}, False
    cfg = copy.deepcopy(plan.config)
    if plan.seconds is not None:
        cfg.run.max_seconds = max(1e-3, plan.seconds - (timing or {}).get("seconds", 0.0))
    if cfg.model == "cyclegan":
        from cyclegan.trainer import train
    else:
        from stargan.trainer import train
    import torch.utils.tensorboard  # noqa: F401  (imported once here, so it is not counted as a model's memory)

    from common.device import resolve_device

    dev = resolve_device(device)
    state = "continuing" if run_dir else "training"
    echo(f"{plan.method} {plan.name}: {state} to step {plan.steps} (~{plan.images} images)")
    t0 = time.perf_counter()
    with PeakMemory(dev) as mem:
        run_dir = Path(train(cfg, out_root=plan.out_root, resume="auto", device=device))
    seconds = time.perf_counter() - t0
    counters = _checkpoint_counters(run_dir)
    timing = _read_json(run_dir / TIMING_FILE) or {"segments": []}
    timing["segments"].append({"seconds": round(seconds, 3), "peak_memory_bytes": mem.peak,
                               "end_step": counters.get("global_step", 0)})
    peaks = [s["peak_memory_bytes"] for s in timing["segments"] if s["peak_memory_bytes"] is not None]
    timing.update({
        "seconds": round(sum(s["seconds"] for s in timing["segments"]), 3),
        "peak_memory_bytes": max(peaks) if peaks else None,
        "peak_memory_kind": mem.kind,
        "global_step": int(counters.get("global_step", 0)),
        "images_seen": int(counters.get("images_seen", 0)),
        # The trainers count a CycleGAN step's A images only; it draws as many B images besides.
        "training_images": int(counters.get("images_seen", 0)) * (2 if plan.method == "cyclegan" else 1),
        "planned_steps": plan.steps,
    })
    timing["finished"] = _is_done(plan, timing)
    _write_json(run_dir / TIMING_FILE, timing)
    return {**timing, "run_dir": str(run_dir)}, True


def probe_seconds_per_step(cfg: CompareConfig, source: str, out: Path, device: str, echo: Echo = print) -> dict:
    """Seconds per optimisation step of each method (time budget), measured between consecutive steps of a
    short real training run (data loading included), after PROBE_WARMUP warm-up steps."""
    import torch

    from cyclegan.trainer import CycleGANTrainer
    from stargan.trainer import StarGANTrainer

    root = out / "probe"
    result = {}
    for method in METHODS:
        if method == "cyclegan":
            conf, cls = _cyclegan_config(cfg, source, cfg.pairs[0], out, (10**6, 0)), CycleGANTrainer
            n = cfg.budget.probe_steps
        else:
            conf, cls = _stargan_config(cfg, source, out, 10**6), StarGANTrainer
            # G trains every n_critic iterations; whole cycles make the mean cost right.
            nc = conf.optim.n_critic
            n = nc * math.ceil(cfg.budget.probe_steps / nc)
        conf.run.stop_after_steps = PROBE_WARMUP + n
        conf.log.progress = False
        trainer = cls(conf, out_root=root / method, resume=None, device=device)
        stamps: list[float] = []
        inner = trainer.train_step

        def timed(*args, _inner=inner, _dev=trainer.device, _stamps=stamps, **kwargs):
            value = _inner(*args, **kwargs)
            if _dev.type == "cuda":
                torch.cuda.synchronize(_dev)
            _stamps.append(time.perf_counter())
            return value

        trainer.train_step = timed  # instance attribute: fit() looks the method up on the instance
        try:
            trainer.fit()
        finally:
            trainer.close()
        result[method] = (stamps[-1] - stamps[PROBE_WARMUP - 1]) / (len(stamps) - PROBE_WARMUP)
        echo(f"probe: {method} {result[method] * 1000:.1f} ms per step")
    shutil.rmtree(root, ignore_errors=True)
    return result


# ============================================================================================ evaluation
def _load_images(files: Sequence[Path], size: int):
    import torch

    from stargan.evaluation.evaluate import load_image

    return torch.stack([load_image(f, size, None) for f in files])


def _translators(method: str, plans: Sequence[ModelPlan], domains: Sequence[str],
                 device) -> Iterator[tuple[str, str, Callable, int]]:
    """``(source, target, translate, parameters)``, one model in memory at a time. ``parameters``: the
    model's G+D count, reported with the first direction it serves (0 afterwards)."""
    import torch

    from common.checkpoint import load_checkpoint
    from common.config import from_dict
    from common.networks.factory import count_parameters
    from common.runs import latest_run_with_checkpoint

    for plan in plans:
        if plan.method != method:
            continue
        run_dir = latest_run_with_checkpoint(plan.out_root, plan.name)
        if run_dir is None:
            raise UserError(f"{plan.out_root}: no checkpoint of {plan.name}; training did not run")
        ckpt = load_checkpoint(run_dir, map_location="cpu")
        if method == "cyclegan":
            from cyclegan.config import CycleGANConfig
            from cyclegan.model import build_networks, generator_from_checkpoint

            a, b = plan.pair
            params = sum(count_parameters(n) for n in build_networks(
                from_dict(CycleGANConfig, ckpt["config"], source=str(run_dir))).values())
            g_ab = generator_from_checkpoint(ckpt, "AtoB", str(run_dir)).to(device)
            g_ba = generator_from_checkpoint(ckpt, "BtoA", str(run_dir)).to(device)
            yield a, b, g_ab, params
            yield b, a, g_ba, 0
            del g_ab, g_ba
        else:
            from stargan.model import networks_from_checkpoint

            nets, labels = networks_from_checkpoint(ckpt, str(run_dir))
            params = sum(count_parameters(n) for n in nets.values())
            G = nets["G"].to(device)
            names = list(labels.schemas[0].names)
            if sorted(names) != sorted(domains):
                raise UserError(f"{run_dir}: the StarGAN's domains {names} are not the config's {list(domains)}")
            first = True
            for src in domains:
                for dst in domains:
                    if src == dst:
                        continue
                    onehot = torch.zeros(1, len(names), device=device)
                    onehot[0, names.index(dst)] = 1.0
                    c = labels.g_label(0, onehot)

                    def translate(x, _c=c, _g=G):
                        return _g(x, _c.expand(x.shape[0], -1))

                    yield src, dst, translate, params if first else 0
                    first = False
        del ckpt


@dataclass
class _Tally:
    correct: int = 0
    decisions: int = 0

    def add(self, overall: dict) -> None:
        self.correct += overall["correct"]
        self.decisions += overall["decisions"]

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.decisions if self.decisions else None


def evaluate_all(cfg: CompareConfig, out: Path, manifest: dict, plans: Sequence[ModelPlan], classifier: Path,
                 device: str, echo: Echo = print) -> tuple[dict, dict]:
    """Metrics of every directed translation of both methods, and the grids (PNG paths relative to out)."""
    import torch

    from common.device import resolve_device
    from common.metrics import (
        RunningMean,
        attribute_accuracy,
        extract_features,
        fid_from_features,
        fid_unavailable_message,
        l1_error,
        load_classifier,
        load_fid_inception,
        predict,
        resolve_fid_weights,
    )
    from stargan.evaluation.evaluate import load_image

    dev = resolve_device(device)
    domains = list(cfg.data.domains)
    size = cfg.data.resolved_image_size
    e = cfg.eval
    test_files = _split_files(out, manifest, "test", e.max_images_per_domain)
    clf, _ = load_classifier(classifier, dev)
    groups = clf.groups

    def target(dst: str, n: int):
        t = torch.zeros(n, len(domains))
        t[:, domains.index(dst)] = 1.0
        return t

    # Ground-truth counterfactuals (shapes): test stem -> target domain -> image path.
    truth_paths: dict[str, dict[str, Path]] = {}
    if manifest.get("counterfactuals"):
        from common.data.shapes import load_counterfactuals

        items = load_counterfactuals(manifest["counterfactuals"])["items"]
        truth_paths = {stem: {a: t["path"] for a, t in entry["targets"].items()} for stem, entry in items.items()}

    weights = resolve_fid_weights(e.fid_weights)
    inception = None
    if weights is None:
        fid_note = fid_unavailable_message("eval.fid_weights")
        echo(fid_note)
    else:
        fid_note = None
        inception = load_fid_inception(weights, dev)

    def features(x):
        return extract_features(inception, x, dev, batch_size=e.batch_size)

    inputs = {d: _load_images(test_files[d], size) for d in domains}
    stems = {d: [f.stem for f in test_files[d]] for d in domains}
    truths: dict[tuple[str, str], tuple[list[int], Any]] = {}
    for src in domains:
        for dst in domains:
            rows = [i for i, s in enumerate(stems[src]) if dst in truth_paths.get(s, {})]
            if src != dst and rows:
                truths[(src, dst)] = (rows, torch.stack([load_image(truth_paths[stems[src][i]][dst], size, None)
                                                         for i in rows]))

    real_tally = _Tally()
    for d in domains:
        real_tally.add(attribute_accuracy(predict(clf, inputs[d]), target(d, len(inputs[d])), groups)["overall"])
    real_feats = {d: features(inputs[d]) for d in domains} if inception is not None else {}

    baseline = {"l1": {}, "n": {}}
    overall_base = RunningMean()
    for (src, dst), (rows, truth) in truths.items():
        err = l1_error(inputs[src][rows], truth)
        overall_base.update(err)
        baseline["l1"].setdefault(src, {})[dst] = float(err.mean())
        baseline["n"].setdefault(src, {})[dst] = len(rows)

    g = e.grid_inputs
    grid_out: dict[str, dict[tuple[str, str], Any]] = {m: {} for m in METHODS}
    metrics: dict[str, dict] = {}
    for method in METHODS:
        t0 = time.perf_counter()
        tally, l1_all = _Tally(), RunningMean()
        acc_m: dict[str, dict[str, float | None]] = {s: {} for s in domains}
        l1_m: dict[str, dict[str, float | None]] = {s: {} for s in domains}
        n_m: dict[str, dict[str, int]] = {s: {} for s in domains}
        fake_feats: dict[str, list] = {d: [] for d in domains}
        params = 0
        for src, dst, translate, p in _translators(method, plans, domains, dev):
            params += p
            x_all = inputs[src]
            outs = []
            with torch.no_grad():
                for i in range(0, len(x_all), e.batch_size):
                    outs.append(translate(x_all[i:i + e.batch_size].to(dev)).float().clamp(-1, 1).cpu())
            y = torch.cat(outs)
            t = _Tally()
            t.add(attribute_accuracy(predict(clf, y), target(dst, len(y)), groups)["overall"])
            tally.add({"correct": t.correct, "decisions": t.decisions})
            acc_m[src][dst], n_m[src][dst] = t.accuracy, len(y)
            if (src, dst) in truths:
                rows, truth = truths[(src, dst)]
                err = l1_error(y[rows], truth)
                l1_all.update(err)
                l1_m[src][dst] = float(err.mean())
            else:
                l1_m[src][dst] = None
            if inception is not None:
                fake_feats[dst].append(features(y))
            grid_out[method][(src, dst)] = y[:g]
        fid, fid_per = None, {}
        if inception is not None:
            for d in domains:
                fake = torch.cat(fake_feats[d])
                ok = len(fake) >= 2 and len(real_feats[d]) >= 2
                fid_per[d] = fid_from_features(real_feats[d], fake) if ok else None
            values = [v for v in fid_per.values() if v is not None]
            fid = sum(values) / len(values) if values else None
        l1_mean, l1_n = l1_all.result()
        metrics[method] = {
            "parameters": params, "accuracy": tally.accuracy, "n": tally.decisions,
            "counterfactual_l1": l1_mean if l1_n else None, "n_counterfactual": l1_n,
            "fid": fid, "fid_per_domain": fid_per or None,
            "matrix": {"accuracy": acc_m, "l1": l1_m, "n": n_m},
            "eval_seconds": round(time.perf_counter() - t0, 3),
        }
        acc = "-" if tally.accuracy is None else f"{tally.accuracy:.3f}"
        echo(f"evaluated {method}: accuracy {acc} over {tally.decisions} translations")
    base_mean, base_n = overall_base.result()
    extra = {
        "classifier": {"path": str(classifier), "real_test_accuracy": real_tally.accuracy,
                       "n": real_tally.decisions},
        "baseline": {"counterfactual_l1": base_mean if base_n else None, "n_counterfactual": base_n,
                     "matrix": baseline},
        "fid_skipped": fid_note,
        "fid_weights": str(weights) if weights else None,
        "test_images": {d: len(inputs[d]) for d in domains},
    }
    extra["grids"] = _write_grids(out, domains, inputs, grid_out, truths, g) if g else {}
    return metrics, extra


def _write_grids(out: Path, domains: list[str], inputs: dict, grid_out: dict, truths: dict, g: int) -> dict:
    """Per source domain: for each of its first ``g`` test inputs one row per method (and a ground-truth row
    where the data has it), one column per domain; the source's own column shows the input."""
    import torch

    from common.data.images import tensor_to_image

    folder = out / GRIDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for src in domains:
        x = inputs[src][:g]
        if not len(x):
            continue
        blocks = []
        for i in range(len(x)):
            rows = []
            for method in METHODS:
                rows.append([x[i] if dst == src else grid_out[method][(src, dst)][i] for dst in domains])
            if any((src, dst) in truths for dst in domains):
                row = []
                for dst in domains:
                    found = None
                    if dst == src:
                        found = x[i]
                    elif (src, dst) in truths and i in truths[(src, dst)][0]:
                        found = truths[(src, dst)][1][truths[(src, dst)][0].index(i)]
                    row.append(found if found is not None else torch.zeros_like(x[i]))
                rows.append(row)
            block = torch.cat([torch.cat(r, dim=2) for r in rows], dim=1)
            blocks.append(block)
            # A white line between inputs keeps the blocks apart.
            blocks.append(torch.ones(3, 2, block.shape[2]))
        grid = torch.cat(blocks[:-1], dim=1)
        rel = f"{GRIDS_DIR}/{src}.png"
        tensor_to_image(grid).save(out / rel)
        written[src] = rel
    return written


# =============================================================================================== reports
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 2**20:.0f} MiB"


def _fmt_seconds(s: float) -> str:
    m, sec = divmod(int(round(s)), 60)
    return f"{m}m{sec:02d}s" if m else f"{s:.1f}s"


def summary_rows(results: dict) -> list[list[str]]:
    has_cf = results["baseline"]["n_counterfactual"] > 0
    header = ["method", "models", "parameters", "train time", "peak memory", "accuracy"]
    header += ["cf L1"] if has_cf else []
    header += ["FID"]
    rows = [header]
    for method in METHODS:
        r = results["methods"][method]
        row = [METHOD_TITLES[method], str(r["models"]), f"{r['parameters']:,}", _fmt_seconds(r["train_seconds"]),
               _fmt_bytes(r["peak_memory_bytes"]), f"{_fmt(r['accuracy'])} (n={r['n']})"]
        if has_cf:
            row.append(f"{_fmt(r['counterfactual_l1'])} (n={r['n_counterfactual']})")
        row.append(_fmt(r["fid"], 2))
        rows.append(row)
    if has_cf:
        b = results["baseline"]
        rows.append(["do-nothing", "-", "-", "-", "-", "-", f"{_fmt(b['counterfactual_l1'])} "
                     f"(n={b['n_counterfactual']})", "-"])
    return rows


def format_summary(results: dict) -> str:
    rows = summary_rows(results)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    clf = results["classifier"]
    lines.append(f"classifier accuracy on real test images: {_fmt(clf['real_test_accuracy'])} (n={clf['n']})")
    if results.get("fid_skipped"):
        lines.append("FID: skipped (no Inception weights; set eval.fid_weights)")
    return "\n".join(lines)


def _matrix_rows(domains: list[str], matrix: dict, digits: int = 3) -> list[list[str]]:
    rows = [["source \\ target", *domains]]
    for src in domains:
        rows.append([src] + ["" if src == dst else _fmt(matrix.get(src, {}).get(dst), digits) for dst in domains])
    return rows


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _report_sections(results: dict) -> list[tuple[str, str, Any]]:
    """``(kind, title, payload)`` in report order; kinds: text, table, image."""
    domains = results["domains"]
    b = results["budget"]
    k, p = len(domains), len(results["pairs"])
    budget = (f"{b['images_per_model']} training images per model" if b["mode"] == "images" else
              f"{b['total_seconds']:g}s of training wall clock, half for the StarGAN, half shared by the "
              f"{p} CycleGANs")
    out: list[tuple[str, str, Any]] = [
        ("text", "", f"k = {k} domains ({', '.join(domains)}): {p} pairwise CycleGANs (k(k-1)/2) against one "
                     f"StarGAN, {results['data']['kind']} data at {results['data']['image_size']}px. Budget: "
                     f"{budget}. Every directed translation ({k * (k - 1)} per method) is scored on the same test "
                     f"images ({', '.join(f'{d} {n}' for d, n in results['test_images'].items())}) by one domain "
                     f"classifier (accuracy on the real test images: "
                     f"{_fmt(results['classifier']['real_test_accuracy'])})."),
        ("table", "Summary", summary_rows(results)),
        ("text", "", "accuracy: the classifier recognises the target domain in the translation. cf L1: mean "
                     "absolute error (images in [-1, 1]) against the ground-truth counterfactual; do-nothing is "
                     "the input itself. Train time: wall clock summed over the method's models; peak memory: "
                     f"the largest of its models ({results['peak_memory_kind']})."),
    ]
    for method in METHODS:
        m = results["methods"][method]["matrix"]
        out.append(("table", f"{METHOD_TITLES[method]}: accuracy per direction", _matrix_rows(domains, m["accuracy"])))
        if results["baseline"]["n_counterfactual"]:
            out.append(("table", f"{METHOD_TITLES[method]}: counterfactual L1 per direction",
                        _matrix_rows(domains, m["l1"])))
    if results["baseline"]["n_counterfactual"]:
        out.append(("table", "do-nothing: counterfactual L1 per direction",
                    _matrix_rows(domains, results["baseline"]["matrix"]["l1"])))
    truth = " then ground truth" if results["baseline"]["n_counterfactual"] else ""
    out.append(("text", "Samples", f"One grid per source domain. For each test input, rows: CycleGAN (the pair "
                                   f"model of each target), StarGAN{truth}; columns: target domains "
                                   f"({', '.join(domains)}); the source's own column shows the input."))
    for src, rel in results["report"]["grids"].items():
        out.append(("image", src, rel))
    return out


def write_reports(results: dict, out: Path) -> tuple[Path, Path]:
    title = f"stargan compare: {results['name']}"
    md = [f"# {title}", ""]
    body = []
    for kind, head, payload in _report_sections(results):
        if kind == "text":
            md += ([f"## {head}", ""] if head else []) + [payload, ""]
            body.append((f"<h2>{html.escape(head)}</h2>" if head else "") + f"<p>{html.escape(payload)}</p>")
        elif kind == "table":
            md += [f"## {head}", "", _md_table(payload), ""]
            body.append(f"<h2>{html.escape(head)}</h2>{_html_table(payload)}")
        else:
            md += [f"### {head}", "", f"![{head}]({payload})", ""]
            body.append(f"<h3>{html.escape(head)}</h3><img src=\"{html.escape(payload)}\" alt=\"{html.escape(head)}\">")
    md_path, html_path = out / REPORT_MD, out / REPORT_HTML
    md_path.write_text("\n".join(md), encoding="utf-8")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}"
             "img{image-rendering:pixelated;width:min(100%,48em)}")
    html_path.write_text(f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                         f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}"
                         "</body></html>\n", encoding="utf-8")
    return md_path, html_path


# =============================================================================================== driver
def _load(cfg_path: str | Path, overrides: Sequence[str], out: str | Path | None) -> tuple[CompareConfig, Path]:
    cfg = load_compare_config(cfg_path, overrides)
    return cfg, Path(out) if out is not None else cfg.out_dir


def _method_summary(method: str, plans: Sequence[ModelPlan], timings: dict[str, dict]) -> dict:
    mine = [p for p in plans if p.method == method]
    runs = []
    for p in mine:
        t = timings[p.name]
        runs.append({"name": p.name, "run_dir": t.get("run_dir"), "train_seconds": t["seconds"],
                     "peak_memory_bytes": t.get("peak_memory_bytes"), "steps": t["global_step"],
                     "training_images": t["training_images"], "planned_steps": p.steps,
                     "planned_images": p.images})
    peaks = [r["peak_memory_bytes"] for r in runs if r["peak_memory_bytes"] is not None]
    return {"models": len(mine), "train_seconds": round(sum(r["train_seconds"] for r in runs), 3),
            "peak_memory_bytes": max(peaks) if peaks else None,
            "training_images": sum(r["training_images"] for r in runs), "runs": runs}


def run_compare(cfg_path: str | Path, overrides: Sequence[str] = (), out: str | Path | None = None,
                device: str = "auto", echo: Echo = print) -> dict:
    """Run (or continue) the whole comparison; returns the results also written to ``<out>/results.json``."""
    from common.config import to_dict
    from common.device import resolve_device

    t_start = time.perf_counter()
    cfg, out_dir = _load(cfg_path, overrides, out)
    source = str(cfg_path)
    build_plan(cfg, source, out_dir, None)  # validate the partial trainer configs before anything is written
    dev = resolve_device(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = prepare_data(cfg, out_dir, echo)
    counts = {d: len(manifest["files"]["train"][d]) for d in cfg.data.domains}
    classifier = ensure_classifier(cfg, out_dir, manifest, dev, echo)

    stored = _read_json(out_dir / PLAN_FILE)
    probe = stored.get("probe") if isinstance(stored, dict) else None
    if cfg.budget.mode == "time" and probe is None:
        probe = probe_seconds_per_step(cfg, source, out_dir, device, echo)
    plans = build_plan(cfg, source, out_dir, counts, probe)
    signature = _plan_signature(plans)
    if isinstance(stored, dict) and stored.get("models") != signature:
        changed = next((n for n in signature if (stored.get("models") or {}).get(n) != signature[n]), "?")
        raise UserError(f"{out_dir / PLAN_FILE}: the models' settings changed since this comparison started "
                        f"(first: {changed}); use another --out, or delete {out_dir} to start over")
    if not isinstance(stored, dict):
        _write_json(out_dir / PLAN_FILE, {"probe": probe, "models": signature})
    echo(describe_plan(cfg, plans, out_dir, data_ready=True))

    timings: dict[str, dict] = {}
    for plan in plans:
        timing, trained = train_model(plan, device, echo)
        state = "trained" if trained else "already trained"
        echo(f"{plan.method} {plan.name}: {state}: {timing['global_step']} steps, {timing['training_images']} images, "
             f"{_fmt_seconds(timing['seconds'])} in {timing['run_dir']}")
        timings[plan.name] = timing

    fingerprint = {"models": {n: [t["run_dir"], t["global_step"]] for n, t in timings.items()},
                   "classifier": os.stat(classifier).st_mtime_ns, "eval": to_dict(cfg.eval)}
    previous = _read_json(out_dir / RESULTS_FILE)
    if isinstance(previous, dict) and previous.get("fingerprint") == fingerprint and all(
            (out_dir / p).is_file() for p in previous["report"]["grids"].values()):
        echo("evaluation: up to date (models, classifier and eval settings unchanged)")
        results = previous
    else:
        metrics, extra = evaluate_all(cfg, out_dir, manifest, plans, classifier, device, echo)
        methods = {}
        for method in METHODS:
            methods[method] = {**_method_summary(method, plans, timings), **metrics[method]}
        kinds = {t.get("peak_memory_kind") for t in timings.values()} - {None}
        results = {
            "name": cfg.name, "config": str(cfg_path), "out": str(out_dir), "domains": list(cfg.data.domains),
            "k": len(cfg.data.domains), "pairs": [f"{a}2{b}" for a, b in cfg.pairs],
            "budget": to_dict(cfg.budget), "probe_seconds_per_step": probe,
            "data": {"kind": cfg.data.kind, "image_size": cfg.data.resolved_image_size, "train_images": counts},
            "test_images": extra["test_images"], "classifier": extra["classifier"],
            "methods": methods, "baseline": extra["baseline"],
            "fid_skipped": extra["fid_skipped"], "fid_weights": extra["fid_weights"],
            "peak_memory_kind": ", ".join(sorted(kinds)) or None,
            "report": {"md": REPORT_MD, "html": REPORT_HTML, "grids": extra["grids"]},
            "fingerprint": fingerprint,
        }
        write_reports(results, out_dir)
        _write_json(out_dir / RESULTS_FILE, results)
    results["seconds"] = round(time.perf_counter() - t_start, 3)
    return results


# =================================================================================================== CLI
@click.command("compare")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set budget.images_per_model=20000 (repeatable).")
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the whole comparison [default: the config's out, else runs/compare-NAME]. "
                   "Running again with the same folder continues it and skips finished parts.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--dry-run", is_flag=True, help="Print the plan (k, pairs, budget per model); write and train nothing.")
@user_errors
def compare(config: Path, overrides: tuple[str, ...], out: Path | None, device: str, dry_run: bool) -> None:
    """Train k(k-1)/2 pairwise CycleGANs and one StarGAN on the same k domains and budget, evaluate every
    directed translation with one domain classifier, and write results.json, report.md and report.html."""
    from common.device import resolve_device

    cfg, out_dir = _load(config, overrides, out)
    if dry_run:
        manifest = _read_json(out_dir / DOMAINS_DIR / MANIFEST_FILE)
        ready = isinstance(manifest, dict)
        counts = {d: len(manifest["files"]["train"].get(d, [])) for d in cfg.data.domains} if ready else None
        stored = _read_json(out_dir / PLAN_FILE)
        probe = stored.get("probe") if isinstance(stored, dict) else None
        plans = build_plan(cfg, str(config), out_dir, counts, probe)
        known = cfg.budget.mode == "images" or probe is not None
        click.echo(describe_plan(cfg, plans, out_dir, data_ready=ready, steps_known=known))
        click.echo("# dry run: nothing written or trained")
        return
    resolve_device(device)
    results = run_compare(config, overrides, out=out_dir, device=device, echo=click.echo)
    click.echo(format_summary(results))
    click.echo(f"results: {out_dir / RESULTS_FILE}")
    click.echo(f"report: {out_dir / REPORT_MD} and {out_dir / REPORT_HTML}")
