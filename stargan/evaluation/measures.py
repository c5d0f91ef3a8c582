"""What the evaluation measures per batch, and the tallies that turn the measurements into numbers with counts.

Decisions use the shared label vocabulary (:mod:`common.labels.groups`) with the schema's *kinds*
(:meth:`~common.labels.schema.LabelSchema.decision_slices`): a binary attribute is ``logit > 0``, an exclusive
group is its argmax, whatever loss trained the classifier on it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from common.labels.groups import AccuracyCounter, attribute_hits, group_agreement, logits_to_labels
from common.labels.schema import Group, LabelSchema
from common.labels.targets import single_changes
from common.metrics import fid_from_features, kid_from_features
from common.metrics.image_error import RunningMean, changed_region, l1_error, psnr, region_l1
from common.metrics.texture import matches_frequency, truth_texture

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
COUNTERFACTUAL_METRICS = ("l1", "psnr", "baseline_l1", "baseline_psnr", "l1_changed", "l1_kept", "texture",
                          "baseline_texture")
# With an attention-mask generator: the mean mask where the truth changes and where it equals the input.
MASK_METRICS = ("mask_changed", "mask_kept")


def _finite(value: float) -> float | None:
    # None rather than NaN or inf: neither is valid JSON.
    return None if value is None or not math.isfinite(value) else float(value)


def _group_hits(decided: Tensor, reference: Tensor, group: Group, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """One decision per image for a schema group (a binary group is one column): ``(hits, valid)``, both (N,)."""
    hits, valid = group_agreement(decided, reference, group.kind, start, stop)
    n = decided.shape[0]
    return hits.reshape(n), valid.reshape(n)


def real_change(target: Tensor, c_org: Tensor, span: tuple[Group, int, int]) -> Tensor:
    """(N,) bool: does the target ask for a change of the group ``span``? "Set Red" on a red object asks for
    nothing; counting it would inflate every translation measure."""
    _, s, e = span
    return (target[:, s:e] != c_org[:, s:e]).any(dim=1)


class ErrorMeans:
    """Running means of named per-image errors, per key and overall."""

    def __init__(self, keys: Sequence[str], metrics: Sequence[str]):
        self.per = {k: {m: RunningMean() for m in metrics} for k in keys}
        self.all = {m: RunningMean() for m in metrics}

    def add(self, key: str, **values: Tensor) -> None:
        for m, v in values.items():
            self.per[key][m].update(v)
            self.all[m].update(v)

    @staticmethod
    def _row(means: Mapping[str, RunningMean]) -> dict[str, Any]:
        row: dict[str, Any] = {m: _finite(r.result()[0]) for m, r in means.items()}
        row["n"] = next(iter(means.values())).result()[1]
        for m, r in means.items():
            if (n := r.result()[1]) != row["n"]:
                row[f"{m}_n"] = n  # a metric over a subset of the images says how many
        if row.get("l1") is not None and row.get("baseline_l1"):
            # The translation's error as a fraction of doing nothing: < 1 helps, > 1 harms.
            row["l1_ratio"] = row["l1"] / row["baseline_l1"]
        return row

    def result(self) -> dict[str, Any]:
        return {"overall": self._row(self.all), "per_attribute": {k: self._row(v) for k, v in self.per.items()}}


class ClassifierTally:
    """The classifier's verdicts: on the translations (target reached, other groups preserved) and on the real
    images against the ground truth."""

    def __init__(self, schema: LabelSchema):
        self.schema = schema
        self.groups = schema.decision_slices()
        self.target = AccuracyCounter(schema.names)
        self.preserve = AccuracyCounter(schema.names)
        self.real = AccuracyCounter(schema.names)

    def decide(self, logits: Tensor) -> Tensor:
        return logits_to_labels(logits.float(), self.groups)

    def add_real(self, decided: Tensor, labels: Tensor) -> None:
        """Per attribute by the rule of :func:`common.metrics.attribute_accuracy`
        (:func:`common.labels.groups.attribute_hits`): an exclusive member's accuracy is over the images of that
        class (how often the class is recognised)."""
        for j, hits, counted in attribute_hits(decided, labels, self.groups):
            self.real.add(self.schema.names[j], hits, counted)

    def add_translation(self, name: str, span: tuple[Group, int, int], decided_y: Tensor, decided_in: Tensor,
                        target: Tensor, c_org: Tensor) -> None:
        """``decided_y``: decisions on the translations to ``target`` (a change of ``name`` in group ``span``);
        ``decided_in``: decisions on the inputs."""
        group, s, e = span
        hits, valid = _group_hits(decided_y, target, group, s, e)
        self.target.add(name, hits, valid & real_change(target, c_org, span))
        # Preservation counts one decision per untouched group (the changed group is the target).
        for g2, s2, e2 in self.schema.spans():
            if g2 is not group:
                self.preserve.add(name, _group_hits(decided_y, decided_in, g2, s2, e2)[0])

    def result(self) -> dict[str, Any]:
        return {"target_accuracy": self.target.result(), "preserve_accuracy": self.preserve.result(),
                "real_accuracy": self.real.result()}


class NuisanceTally:
    """The classifier's readings of factors the model is not conditioned on (its ``schema``: e.g. shape and
    position) against their true values, per group: on the real images (how far the classifier can be trusted,
    the ceiling) and on the translations, per target attribute and over all targets."""

    def __init__(self, schema: LabelSchema, targets: Sequence[str]):
        self.schema = schema
        self.groups = schema.decision_slices()
        names = [g.name for g in schema.groups]
        self.real = AccuracyCounter(names)
        self.all = AccuracyCounter(names)
        self.per = {t: AccuracyCounter(names) for t in targets}

    def decide(self, logits: Tensor) -> Tensor:
        return logits_to_labels(logits.float(), self.groups)

    def _add(self, counters: Sequence[AccuracyCounter], decided: Tensor, truth: Tensor, counted: Tensor) -> None:
        for span in self.schema.spans():
            hits, valid = _group_hits(decided, truth, *span)
            for counter in counters:
                counter.add(span[0].name, hits, valid & counted)

    def add_real(self, decided: Tensor, truth: Tensor, known: Tensor) -> None:
        """``known``: (N,) bool, the images whose true values are known."""
        self._add([self.real], decided, truth, known)

    def add_translation(self, target: str, decided: Tensor, truth: Tensor, counted: Tensor) -> None:
        """Decisions on the translations to ``target`` against the inputs' true values; ``counted``: (N,) bool."""
        self._add([self.per[target], self.all], decided, truth, counted)

    def result(self) -> dict[str, Any]:
        """``{"attributes", "groups": {group: members}, "real" | "overall": {group: {"accuracy", "n"}},
        "per_target": {target: {group: {"accuracy", "n"}}}}``."""
        return {"attributes": list(self.schema.names),
                "groups": {g.name: list(g.names) for g in self.schema.groups},
                "real": self.real.result()["per_attribute"], "overall": self.all.result()["per_attribute"],
                "per_target": {t: c.result()["per_attribute"] for t, c in self.per.items()}}


def counterfactual_errors(x: Tensor, y: Tensor, truth: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
    """Translation ``y`` and the do-nothing baseline ``x`` against the ground truth, per image; and ``y``'s
    error split into the region the edit should change (where the truth differs from the input) and the
    region it should keep (the rest; there the do-nothing error is 0, so any error is damage). An image
    without a changed (kept) region is left out of ``l1_changed`` (``l1_kept``). ``texture``: over the images
    whose truth has a dominant periodic texture (stripes), 1 where ``y``'s dominant frequency is the truth's,
    whatever the phase (:mod:`common.metrics.texture`), else 0; ``baseline_texture`` the same for ``x``. With
    ``mask`` (an attention mask (N, 1, H, W) in [0, 1]) also its mean over the same two regions
    (``mask_changed``, ``mask_kept``): where it should keep, an open mask means G repaints what must stay (the
    object under a background flip), whatever the repaint's error."""
    changed = changed_region(x, truth)
    l1_changed, has_changed = region_l1(y, truth, changed)
    l1_kept, has_kept = region_l1(y, truth, ~changed)
    errors = {"l1": l1_error(y, truth).cpu(), "psnr": psnr(y, truth).cpu(),
              "baseline_l1": l1_error(x, truth).cpu(), "baseline_psnr": psnr(x, truth).cpu(),
              "l1_changed": l1_changed[has_changed].cpu(), "l1_kept": l1_kept[has_kept].cpu()}
    f_truth, textured = truth_texture(truth)
    errors["texture"] = matches_frequency(y, f_truth)[textured].to(torch.float64).cpu()
    # Doing nothing already keeps the stripes of a striped object under a colour edit or a background flip.
    errors["baseline_texture"] = matches_frequency(x, f_truth)[textured].to(torch.float64).cpu()
    if mask is not None:
        zero = torch.zeros_like(mask)
        errors["mask_changed"] = region_l1(mask, zero, changed)[0][has_changed].cpu()
        errors["mask_kept"] = region_l1(mask, zero, ~changed)[0][has_kept].cpu()
    return errors


def fid_block(real: Tensor, fake: Tensor, with_kid: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"fid": None, "n_real": int(real.shape[0]), "n_fake": int(fake.shape[0])}
    if real.shape[0] < 2 or fake.shape[0] < 2:
        row["note"] = "needs at least 2 images per side"
        return row
    row["fid"] = fid_from_features(real, fake)
    if with_kid:
        row["kid"], row["kid_std"] = kid_from_features(real, fake, num_subsets=KID_SUBSETS,
                                                       subset_size=KID_SUBSET_SIZE, seed=0)
        row["kid_subset_size"] = min(KID_SUBSET_SIZE, int(real.shape[0]), int(fake.shape[0]))
    return row


def fid_result(real: Tensor, fake: Mapping[str, Tensor]) -> dict[str, Any]:
    """FID/KID of all translations and FID per target attribute, against the real test images' features."""
    return {"overall": fid_block(real, torch.cat(list(fake.values())), with_kid=True),
            "per_attribute": {n: fid_block(real, f, with_kid=False) for n, f in fake.items()}}


def truth_columns(inputs: Tensor, labels: Tensor, stems: Sequence[str], schema: LabelSchema,
                  counterfactuals: Mapping[str, Mapping[str, Any]],
                  load_counterfactual: Callable[[Any], Tensor] | None) -> list[Tensor]:
    """Ground truth in the layout of the samples grid. A target equal to the input's own label has the input
    itself as its truth (the dataset lists no counterfactual for it); other gaps are mid-grey."""
    columns = []
    for name, target in single_changes(schema, labels):
        tiles = []
        for i, stem in enumerate(stems):
            entry = counterfactuals.get(stem, {}).get(name)
            if entry is not None:
                tiles.append(entry if isinstance(entry, Tensor) else load_counterfactual(entry))
            elif torch.equal(target[i], labels[i]):
                tiles.append(inputs[i])
            else:
                tiles.append(torch.zeros_like(inputs[i]))
        columns.append(torch.stack(tiles).float().cpu())
    return columns
