"""The metric core: translate every test image to every single-attribute target and score the translations.

It takes any ``generate(images, target_labels)`` callable, so it can be checked with stub generators; what it
measures is described in :mod:`stargan.evaluation.evaluate`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from common.grids import column_grid
from common.labels.schema import LabelSchema
from common.labels.targets import single_changes
from common.metrics.image_error import l1_error
from stargan.evaluation.measures import (
    COUNTERFACTUAL_METRICS,
    MASK_METRICS,
    ClassifierTally,
    ErrorMeans,
    NuisanceTally,
    counterfactual_errors,
    fid_result,
    real_change,
    truth_columns,
)

SAMPLE_ROWS = 8

Generate = Callable[[Tensor, Tensor], Tensor]
Classify = Callable[[Tensor], Tensor]


@dataclass
class Nuisance:
    """Factors the translation must keep that the model is not conditioned on (e.g. the shapes dataset's shape,
    position and size), read by a classifier: ``classify(images) -> logits`` in ``schema`` order, and their true
    values ``labels[stem]``, a 0/1 vector in ``schema`` order (images without an entry are left out)."""

    schema: LabelSchema
    classify: Classify
    labels: Mapping[str, Tensor]

    def truth(self, stems: Sequence[str], device: torch.device) -> tuple[Tensor, Tensor]:
        """``(labels (N, dim), known (N,) bool)`` of a batch's stems."""
        blank = torch.zeros(self.schema.dim)
        rows = [torch.as_tensor(self.labels.get(s, blank), dtype=torch.float32) for s in stems]
        known = torch.tensor([s in self.labels for s in stems], dtype=torch.bool, device=device)
        return torch.stack(rows).to(device), known


@dataclass
class EvalResult:
    """Metrics (plain data) and the sample grids ``(3, rows*H, (1+targets)*W)`` in [-1, 1]."""

    metrics: dict[str, Any]
    grids: dict[str, Tensor]


class _Samples:
    """The first ``rows`` inputs, their labels and stems, and their translations per target (the grids)."""

    def __init__(self, rows: int, targets: int):
        self.rows = rows
        self.inputs: list[Tensor] = []
        self.labels: list[Tensor] = []
        self.stems: list[str] = []
        self.outputs: list[list[Tensor]] = [[] for _ in range(targets)]

    def take(self, x: Tensor, labels: Tensor, stems: Sequence[str]) -> int:
        """Keep the batch's first images while rows are left; returns how many were kept."""
        take = max(0, min(self.rows - len(self.stems), x.shape[0]))
        if take:
            self.inputs.append(x[:take].cpu())
            self.labels.append(labels[:take].cpu())
            self.stems.extend(stems[:take])
        return take

    def grids(self, schema: LabelSchema, counterfactuals: Mapping[str, Mapping[str, Any]] | None,
              load_counterfactual: Callable[[Any], Tensor] | None) -> dict[str, Tensor]:
        if not self.stems:
            return {}
        inputs, labels = torch.cat(self.inputs), torch.cat(self.labels)
        grids = {"samples": column_grid([inputs, *(torch.cat(o) for o in self.outputs)])}
        if counterfactuals:
            grids["counterfactuals"] = column_grid([inputs, *truth_columns(
                inputs, labels, self.stems, schema, counterfactuals, load_counterfactual)])
        return grids


@torch.no_grad()
def evaluate_generator(
    generate: Generate,
    batches: Iterable[tuple[Tensor, Tensor, Sequence[str]]],
    schema: LabelSchema,
    classify: Classify | None = None,
    counterfactuals: Mapping[str, Mapping[str, Any]] | None = None,
    load_counterfactual: Callable[[Any], Tensor] | None = None,
    features: Callable[[Tensor], Tensor] | None = None,
    device: str | torch.device = "cpu",
    sample_rows: int = SAMPLE_ROWS,
    progress: Callable[[int], None] | None = None,
    nuisance: Nuisance | None = None,
    last_mask: Callable[[], Tensor] | None = None,
) -> EvalResult:
    """Translate every image of ``batches`` to every single-attribute target and score the translations.

    ``generate(images, labels)`` gets the images and the target labels in ``schema`` order (the caller maps
    them to G's label input), both on ``device``. ``batches`` yields ``(images, labels, stems)``; the labels
    are the ground truth, also the ``c_org`` of the cycle reconstruction. ``classify(images) -> logits``
    in schema order enables the accuracies. ``counterfactuals[stem][attr]`` is a ground-truth image (a
    tensor, or anything ``load_counterfactual`` turns into one at the evaluation size). ``features(images)
    -> (N, d)`` enables FID/KID. ``progress(n)`` is called with the number of images after each batch.
    ``nuisance`` enables the preservation of factors outside the schema: per target, how often the reading of
    the translation equals the true value, counting only real changes (as ``target_accuracy``).
    ``last_mask()`` (a generator with an attention mask) returns the mask ``(N, 1, H, W)`` of the last
    ``generate`` call; with counterfactuals it adds the mask's mean where the truth changes and where it
    must stay (``mask_changed``, ``mask_kept``).
    """
    device = torch.device(device)
    names = list(schema.names)
    spans = {n: (g, s, e) for g, s, e in schema.spans() for n in g.names}
    judged = ClassifierTally(schema) if classify is not None else None
    kept = NuisanceTally(nuisance.schema, names) if nuisance is not None else None
    cycle = ErrorMeans(names, ["l1"])
    cf = ErrorMeans(names, COUNTERFACTUAL_METRICS + (MASK_METRICS if last_mask is not None else ()))
    real_feats: list[Tensor] = []
    fake_feats: dict[str, list[Tensor]] = {n: [] for n in names}
    samples = _Samples(sample_rows, len(names))
    n_images = 0

    for images, labels, stems in batches:
        x = images.to(device, torch.float32)
        c_org = labels.to(device, torch.float32)
        stems = list(stems)
        take = samples.take(x, c_org, stems)
        decided_in = None
        if judged is not None:
            decided_in = judged.decide(classify(x))
            judged.add_real(decided_in, c_org)
        if features is not None:
            real_feats.append(features(x).cpu())
        if kept is not None:
            truth_kept, known = nuisance.truth(stems, device)
            kept.add_real(kept.decide(nuisance.classify(x)), truth_kept, known)

        for k, (name, target) in enumerate(single_changes(schema, c_org)):
            y = generate(x, target).float()
            mask = last_mask() if last_mask is not None and counterfactuals else None  # before the cycle's call
            if take:
                samples.outputs[k].append(y[:take].cpu())
            rec = generate(y, c_org).float()
            cycle.add(name, l1=l1_error(rec, x).cpu())
            if judged is not None:
                judged.add_translation(name, spans[name], judged.decide(classify(y)), decided_in, target, c_org)
            if features is not None:
                fake_feats[name].append(features(y).cpu())
            if kept is not None:
                counted = known & real_change(target, c_org, spans[name])
                kept.add_translation(name, kept.decide(nuisance.classify(y)), truth_kept, counted)
            if counterfactuals:
                rows = [i for i, stem in enumerate(stems) if name in counterfactuals.get(stem, {})]
                if rows:
                    truth = [counterfactuals[stems[i]][name] for i in rows]
                    truth = torch.stack([t if isinstance(t, Tensor) else load_counterfactual(t) for t in truth])
                    picked = torch.tensor(rows, device=device)
                    cf.add(name, **counterfactual_errors(
                        x.index_select(0, picked), y.index_select(0, picked), truth.to(device, torch.float32),
                        None if mask is None else mask.float().index_select(0, picked)))
        n_images += x.shape[0]
        if progress is not None:
            progress(x.shape[0])

    metrics: dict[str, Any] = {
        "counts": {"test_images": n_images, "targets_per_image": len(names), "translations": n_images * len(names)},
        "target_accuracy": None, "preserve_accuracy": None, "real_accuracy": None,
        "counterfactual": None, "cycle_reconstruction": cycle.result(), "fid": None, "nuisance": None,
    }
    if judged is not None:
        metrics.update(judged.result())
    if kept is not None:
        metrics["nuisance"] = kept.result()
    if counterfactuals:
        metrics["counterfactual"] = cf.result()
        metrics["counts"]["counterfactual_pairs"] = metrics["counterfactual"]["overall"]["n"]
    if features is not None and n_images:
        metrics["fid"] = fid_result(torch.cat(real_feats), {n: torch.cat(f) for n, f in fake_feats.items()})
    return EvalResult(metrics, samples.grids(schema, counterfactuals, load_counterfactual))
