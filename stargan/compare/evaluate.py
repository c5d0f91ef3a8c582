"""The evaluation stage: every directed translation of both methods (k(k-1) each) on the same test images,
judged by the same domain classifier; counterfactual L1 where the data has ground truth (shapes) and FID
where the Inception weights exist."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from common.checkpoint import load_checkpoint
from common.data.shapes import load_counterfactuals
from common.device import resolve_device
from common.errors import UserError
from common.labels.groups import AccuracyCounter, group_agreement
from common.metrics import (
    AttributeClassifier,
    RunningMean,
    extract_features,
    fid_from_features,
    fid_unavailable_message,
    l1_error,
    load_classifier,
    load_fid_inception,
    predict,
    resolve_fid_weights,
)
from common.networks.factory import count_parameters
from common.runs import latest_run_with_checkpoint
from common.tables import fmt_number
from cyclegan.model import build_networks
from stargan.compare.config import CompareConfig
from stargan.compare.data import load_images, split_files
from stargan.compare.plan import METHODS, ONE_STARGAN, PAIRWISE_CYCLEGAN, Method, ModelPlan

log = logging.getLogger(__name__)

Direction = tuple[str, str]  # (source domain, target domain)
# (source, target, translate, parameters): parameters of the model, given with its first direction only
Translation = tuple[str, str, Callable[[Tensor], Tensor], int]


@dataclass
class EvalImages:
    """The test inputs of every domain and, per direction, which of the source's inputs have a ground-truth
    counterfactual (row indices) and those counterfactuals."""

    inputs: dict[str, Tensor]
    truths: dict[Direction, tuple[list[int], Tensor]]


@dataclass
class Evaluation:
    """``metrics``: method key -> its results.json entries; ``outputs``: method key -> direction -> the
    translations of the first ``eval.grid_inputs`` inputs (for the grids)."""

    metrics: dict[str, dict]
    classifier: dict
    baseline: dict
    fid_skipped: str | None
    fid_weights: str | None
    test: EvalImages
    outputs: dict[str, dict[Direction, Tensor]]


def _counterfactual_paths(manifest: dict) -> dict[str, dict[str, Path]]:
    """Ground-truth counterfactuals (shapes): test stem -> target domain -> image path."""
    if not manifest.get("counterfactuals"):
        return {}
    items = load_counterfactuals(manifest["counterfactuals"])["items"]
    return {stem: {a: t["path"] for a, t in entry["targets"].items()} for stem, entry in items.items()}


def _test_images(cfg: CompareConfig, out: Path, manifest: dict) -> EvalImages:
    domains, size = list(cfg.data.domains), cfg.data.resolved_image_size
    files = split_files(out, manifest, "test", cfg.eval.max_images_per_domain)
    truth_paths = _counterfactual_paths(manifest)
    inputs = {d: load_images(files[d], size) for d in domains}
    truths = {}
    for src in domains:
        stems = [f.stem for f in files[src]]
        for dst in domains:
            rows = [i for i, s in enumerate(stems) if dst in truth_paths.get(s, {})]
            if src != dst and rows:
                truths[(src, dst)] = (rows, load_images([truth_paths[stems[i]][dst] for i in rows], size))
    return EvalImages(inputs, truths)


class _Fid:
    """FID per target domain, when the Inception weights exist (otherwise every score is None)."""

    def __init__(self, weights_option: str | None, device: torch.device, batch_size: int):
        self.weights = resolve_fid_weights(weights_option)
        self.device, self.batch_size = device, batch_size
        self.note = None if self.weights else fid_unavailable_message("eval.fid_weights")
        self.inception = load_fid_inception(self.weights, device) if self.weights else None

    def features(self, images: Tensor) -> Tensor | None:
        if self.inception is None:
            return None
        return extract_features(self.inception, images, self.device, batch_size=self.batch_size)

    def scores(self, real: dict[str, Tensor], fake: dict[str, list[Tensor]]) -> tuple[float | None, dict]:
        """``(mean over the domains, per domain)`` between the translations into a domain and its real images."""
        if self.inception is None:
            return None, {}
        per_domain = {}
        for d, real_d in real.items():
            fake_d = torch.cat(fake[d])
            enough = len(fake_d) >= 2 and len(real_d) >= 2
            per_domain[d] = fid_from_features(real_d, fake_d) if enough else None
        values = [v for v in per_domain.values() if v is not None]
        return (sum(values) / len(values) if values else None), per_domain


def _count_hits(counter: AccuracyCounter, key: str, clf: AttributeClassifier, images: Tensor, domain: int) -> None:
    """Does the classifier recognise ``domain`` (an index) in ``images``."""
    target = torch.zeros(len(images), clf.label_dim)
    target[:, domain] = 1.0
    decided = predict(clf, images)
    for kind, start, stop in clf.groups:
        counter.add(key, *group_agreement(decided, target, kind, start, stop))


def _baseline(test: EvalImages) -> dict:
    """Do-nothing: the input itself against the counterfactual."""
    matrix: dict[str, dict] = {"l1": {}, "n": {}}
    overall = RunningMean()
    for (src, dst), (rows, truth) in test.truths.items():
        err = l1_error(test.inputs[src][rows], truth)
        overall.update(err)
        matrix["l1"].setdefault(src, {})[dst] = float(err.mean())
        matrix["n"].setdefault(src, {})[dst] = len(rows)
    mean, n = overall.result()
    return {"counterfactual_l1": mean if n else None, "n_counterfactual": n, "matrix": matrix}


def _pair_translations(plan: ModelPlan, ckpt: dict, source: str, domains: Sequence[str],
                       device: torch.device) -> Iterator[Translation]:
    loaded = plan.kind.family.load(ckpt, source)
    params = sum(count_parameters(n) for n in build_networks(loaded.config).values())
    a, b = plan.pair
    # G_A translates A -> B, G_B B -> A.
    yield a, b, loaded.nets["G_A"].to(device), params
    yield b, a, loaded.nets["G_B"].to(device), 0


def _stargan_translations(plan: ModelPlan, ckpt: dict, source: str, domains: Sequence[str],
                          device: torch.device) -> Iterator[Translation]:
    loaded = plan.kind.family.load(ckpt, source)
    params = sum(count_parameters(n) for n in loaded.nets.values())
    generator, labels = loaded.nets["G"].to(device), loaded.labels
    names = list(labels.schemas[0].names)
    if sorted(names) != sorted(domains):
        raise UserError(f"{source}: the StarGAN's domains {names} are not the config's {list(domains)}")
    for src in domains:
        for dst in domains:
            if src == dst:
                continue
            onehot = torch.zeros(1, len(names), device=device)
            onehot[0, names.index(dst)] = 1.0
            c = labels.g_label(0, onehot)

            def translate(x, _c=c):
                return generator(x, _c.expand(x.shape[0], -1))

            yield src, dst, translate, params
            params = 0


_TRANSLATIONS = {PAIRWISE_CYCLEGAN: _pair_translations, ONE_STARGAN: _stargan_translations}


def _translations(method: Method, plans: Sequence[ModelPlan], domains: Sequence[str],
                  device: torch.device) -> Iterator[Translation]:
    """Every direction the method's models serve, one model in memory at a time."""
    for plan in plans:
        if plan.kind is not method:
            continue
        run_dir = latest_run_with_checkpoint(plan.out_root, plan.name)
        if run_dir is None:
            raise UserError(f"{plan.out_root}: no checkpoint of {plan.name}; training did not run")
        ckpt = load_checkpoint(run_dir, map_location="cpu")
        yield from _TRANSLATIONS[method](plan, ckpt, str(run_dir), domains, device)
        del ckpt


def _translate(translate: Callable[[Tensor], Tensor], images: Tensor, batch_size: int,
               device: torch.device) -> Tensor:
    outs = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            outs.append(translate(images[i:i + batch_size].to(device)).float().clamp(-1, 1).cpu())
    return torch.cat(outs)


def _evaluate_method(method: Method, plans: Sequence[ModelPlan], cfg: CompareConfig, test: EvalImages,
                     clf: AttributeClassifier, fid: _Fid, real_features: dict[str, Tensor],
                     device: torch.device) -> tuple[dict, dict[Direction, Tensor]]:
    """The method's results.json metrics and its grid samples."""
    t0 = time.perf_counter()
    domains = list(cfg.data.domains)
    hits, l1_all = AccuracyCounter(), RunningMean()
    matrix: dict[str, dict[str, dict]] = {key: {s: {} for s in domains} for key in ("accuracy", "l1", "n")}
    fake_features: dict[str, list[Tensor]] = {d: [] for d in domains}
    samples: dict[Direction, Tensor] = {}
    params = 0
    for src, dst, translate, model_params in _translations(method, plans, domains, device):
        params += model_params
        y = _translate(translate, test.inputs[src], cfg.eval.batch_size, device)
        key = f"{src}->{dst}"
        _count_hits(hits, key, clf, y, domains.index(dst))
        matrix["accuracy"][src][dst], matrix["n"][src][dst] = hits.accuracy(key), len(y)
        matrix["l1"][src][dst] = None
        if (src, dst) in test.truths:
            rows, truth = test.truths[(src, dst)]
            err = l1_error(y[rows], truth)
            l1_all.update(err)
            matrix["l1"][src][dst] = float(err.mean())
        if fid.inception is not None:
            fake_features[dst].append(fid.features(y))
        samples[(src, dst)] = y[:cfg.eval.grid_inputs]
    fid_mean, fid_per_domain = fid.scores(real_features, fake_features)
    l1_mean, l1_n = l1_all.result()
    overall = hits.result()["overall"]
    metrics = {
        "parameters": params, "accuracy": overall["accuracy"], "n": overall["n"],
        "counterfactual_l1": l1_mean if l1_n else None, "n_counterfactual": l1_n,
        "fid": fid_mean, "fid_per_domain": fid_per_domain or None,
        "matrix": matrix,
        "eval_seconds": round(time.perf_counter() - t0, 3),
    }
    log.info("evaluated %s: accuracy %s over %d translations", method.key, fmt_number(overall["accuracy"]),
             overall["n"])
    return metrics, samples


def evaluate_all(cfg: CompareConfig, out: Path, manifest: dict, plans: Sequence[ModelPlan], classifier: Path,
                 device: str) -> Evaluation:
    """Metrics of every directed translation of both methods, with the test images and the grid samples."""
    dev = resolve_device(device)
    domains = list(cfg.data.domains)
    clf, _ = load_classifier(classifier, dev)
    fid = _Fid(cfg.eval.fid_weights, dev, cfg.eval.batch_size)
    if fid.note:
        log.info(fid.note)
    test = _test_images(cfg, out, manifest)
    real = AccuracyCounter()
    for i, d in enumerate(domains):
        _count_hits(real, d, clf, test.inputs[d], i)
    real_features = {d: fid.features(test.inputs[d]) for d in domains} if fid.inception is not None else {}
    metrics, outputs = {}, {}
    for method in METHODS:
        metrics[method.key], outputs[method.key] = _evaluate_method(method, plans, cfg, test, clf, fid,
                                                                    real_features, dev)
    overall = real.result()["overall"]
    return Evaluation(
        metrics=metrics,
        classifier={"path": str(classifier), "real_test_accuracy": overall["accuracy"], "n": overall["n"]},
        baseline=_baseline(test), fid_skipped=fid.note, fid_weights=str(fid.weights) if fid.weights else None,
        test=test, outputs=outputs)
