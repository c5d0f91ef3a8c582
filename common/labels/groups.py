"""The one vocabulary of label groups shared by losses, the attribute classifier, evaluation and compare.

A label vector is cut into groups ``(kind, start, stop)``:

* ``"binary"``: independent 0/1 attributes, trained with BCE-with-logits and decided as ``logit > 0``;
* ``"exclusive"``: a one-hot block, trained with cross-entropy on the index of its 1 and decided as a
  one-hot argmax. A row whose block is all zero (a CelebA face with none of the chosen hair colours) has no
  class: it is left out of that group's loss and of its accuracy.

:meth:`common.labels.schema.LabelSchema.slices` (by loss) and :meth:`~common.labels.schema.LabelSchema.decision_slices`
(by kind) produce these triples from a named schema.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from common.labels.schema import KINDS

GroupSlice = tuple[str, int, int]


def normalize_groups(groups: Sequence[Sequence], label_dim: int) -> list[GroupSlice]:
    """Validate ``groups`` against ``label_dim`` and return them as ``[(kind, start, stop), ...]``."""
    out: list[GroupSlice] = []
    taken = [False] * label_dim
    for g in groups:
        if len(g) != 3:
            raise ValueError(f"a label group is (kind, start, stop), got {g!r}")
        kind, start, stop = str(g[0]), int(g[1]), int(g[2])
        if kind not in KINDS:
            raise ValueError(f"label group kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not 0 <= start < stop <= label_dim:
            raise ValueError(f"label group {kind}[{start}:{stop}] is outside the label vector of size {label_dim}")
        if kind == "exclusive" and stop - start < 2:
            raise ValueError(f"exclusive label group [{start}:{stop}] needs at least 2 classes")
        if any(taken[start:stop]):
            raise ValueError(f"label group {kind}[{start}:{stop}] overlaps another group")
        taken[start:stop] = [True] * (stop - start)
        out.append((kind, start, stop))
    if not out:
        raise ValueError("at least one label group is needed")
    return out


def exclusive_index(block: Tensor) -> Tensor:
    """Class index of each one-hot row of ``block`` ``(N, k)``; -1 for rows without any class."""
    idx = block.argmax(dim=1)
    return torch.where(block.sum(dim=1) > 0, idx, torch.full_like(idx, -1))


def has_class(labels: Tensor, groups: Sequence[GroupSlice]) -> Tensor:
    """``(N, len(groups))`` bool: does the row define the group (always for binary; an exclusive block only
    when one of its members is set). The classification loss's ``sample_mask``."""
    columns = []
    for kind, start, stop in groups:
        if kind == "exclusive":
            columns.append(labels[:, start:stop].sum(dim=1) > 0)
        else:
            columns.append(torch.ones(labels.shape[0], dtype=torch.bool, device=labels.device))
    return torch.stack(columns, dim=1)


def logits_to_labels(logits: Tensor, groups: Sequence[GroupSlice]) -> Tensor:
    """0/1 decisions from logits: ``logit > 0`` for binary groups, one-hot argmax for exclusive ones. Columns
    outside every group stay 0."""
    labels = torch.zeros_like(logits)
    for kind, start, stop in groups:
        block = logits[:, start:stop]
        if kind == "binary":
            labels[:, start:stop] = (block > 0).to(labels.dtype)
        else:
            labels[:, start:stop] = F.one_hot(block.argmax(dim=1), stop - start).to(labels.dtype)
    return labels


def group_agreement(decided: Tensor, reference: Tensor, kind: str, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """Per row: do the 0/1 ``decided`` labels match the 0/1 ``reference`` on group ``[start:stop)``, and does
    the reference define the group at all. Binary groups of several columns count as one decision per
    column: the result is ``(N, stop - start)``; exclusive groups give ``(N,)``."""
    if kind == "binary":
        hits = (decided[:, start:stop] > 0.5) == (reference[:, start:stop] > 0.5)
        return hits, torch.ones_like(hits)
    ref = reference[:, start:stop].float()
    return decided[:, start:stop].float().argmax(dim=1) == ref.argmax(dim=1), ref.sum(dim=1) > 0


def attribute_hits(decided: Tensor, reference: Tensor,
                   groups: Sequence[GroupSlice]) -> Iterator[tuple[int, Tensor, Tensor]]:
    """The per-attribute accuracy rule: ``(column, hits, counted)`` per label column, ``hits`` and ``counted``
    both ``(N,)`` bool.

    A binary column is one decision per image. A member of an exclusive group is judged by the group's
    decision on the images whose ``reference`` class is that member, so its accuracy says how often that class
    is recognised (rows without a class count for no member)."""
    for kind, start, stop in groups:
        hits, valid = group_agreement(decided, reference, kind, start, stop)
        if kind == "binary":
            for j in range(start, stop):
                yield j, hits[:, j - start], valid[:, j - start]
        else:
            cls = exclusive_index(reference[:, start:stop].float())
            for j in range(start, stop):
                yield j, hits, cls == j - start


def ratio(num: float, den: int) -> float | None:
    """``num / den``, or None when there is nothing to count (None, not NaN: the results go to JSON)."""
    return float(num) / den if den else None


class AccuracyCounter:
    """Correct/total decision counts per key (an attribute, a group, a target, a domain pair) plus the overall
    count.

    ``add(key, hits, valid)`` takes boolean hits (any shape) and optionally which of them count."""

    def __init__(self, keys: Sequence[Hashable] = ()):
        self.correct: dict[Hashable, int] = dict.fromkeys(keys, 0)
        self.total: dict[Hashable, int] = dict.fromkeys(keys, 0)

    def add(self, key: Hashable, hits: Tensor, valid: Tensor | None = None) -> None:
        hits = torch.as_tensor(hits)
        if valid is not None:
            hits = hits[torch.as_tensor(valid).bool()]
        self.correct[key] = self.correct.get(key, 0) + int(hits.sum())
        self.total[key] = self.total.get(key, 0) + int(hits.numel())

    def add_groups(self, decided: Tensor, reference: Tensor, groups: Sequence[GroupSlice]) -> None:
        """Every decision of each group (:func:`group_agreement`), under the group's position in ``groups``."""
        for g, (kind, start, stop) in enumerate(groups):
            self.add(g, *group_agreement(decided, reference, kind, start, stop))

    def accuracy(self, key: Hashable | None = None) -> float | None:
        if key is None:
            return ratio(sum(self.correct.values()), sum(self.total.values()))
        return ratio(self.correct.get(key, 0), self.total.get(key, 0))

    def result(self) -> dict[str, Any]:
        """``{"overall": {"accuracy", "n"}, "per_attribute": {key: {"accuracy", "n"}}}`` (n = decisions)."""
        return {
            "overall": {"accuracy": self.accuracy(), "n": sum(self.total.values())},
            "per_attribute": {k: {"accuracy": self.accuracy(k), "n": self.total[k]} for k in self.correct},
        }
