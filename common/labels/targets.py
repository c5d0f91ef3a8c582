"""Targets the library invents or derives from data labels: the official test grid, random valid targets,
single-group edits, the official shuffled-batch rule, a per-row mix of two rules, and continuous strength."""
from __future__ import annotations

import torch
from torch import Tensor

from common.labels.schema import LabelSchema, check_width


def single_changes(schema: LabelSchema, label: Tensor) -> list[tuple[str, Tensor]]:
    """The official test grid: one ``(title, target)`` per attribute, in label order.

    A binary attribute is flipped (0 -> 1, anything else -> 0); an exclusive member is set and the rest of its
    group cleared. ``label`` is ``(dim,)`` or ``(B, dim)``; each target has the same shape.
    """
    check_width(schema, label, "label")
    label = label.detach().float()
    out = []
    for g, start, stop in schema.spans():
        for j, name in enumerate(g.names):
            t = label.clone()
            if g.kind == "binary":
                t[..., start] = (label[..., start] == 0).float()
            else:
                t[..., start:stop] = 0.0
                t[..., start + j] = 1.0
            out.append((name, t))
    return out


def random_targets(
    schema: LabelSchema,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``(batch_size, dim)`` valid targets: binary attributes uniform 0/1, exclusive groups a uniform one-hot.

    Drawn on the CPU (from ``generator``, or torch's global RNG when None) so the values do not depend on
    the device, then moved to ``device``.
    """
    out = torch.zeros(batch_size, schema.dim)
    for g, start, stop in schema.spans():
        if g.kind == "binary":
            out[:, start] = torch.randint(0, 2, (batch_size,), generator=generator).float()
        else:
            idx = torch.randint(0, stop - start, (batch_size,), generator=generator)
            out[torch.arange(batch_size), start + idx] = 1.0
    return out.to(device) if device is not None else out


def single_group_targets(schema: LabelSchema, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each row of ``labels`` ``(B, dim)`` with one attribute group changed, the group drawn uniformly: a
    binary attribute flipped (0 -> 1, anything else -> 0), an exclusive group set to another member drawn
    uniformly (any member where none is set). The edits :func:`single_changes` and evaluation ask for, as
    training targets: with whole label vectors as targets (``shuffle``, ``random``) an edit of one group
    alone is a small share of the draws (on the shapes data a background flip alone is 1 draw in 16, and 1 in 8
    of the draws that change the background).

    Drawn on the CPU from ``generator`` (or the global RNG), three draws per row whatever the labels, so the
    stream does not depend on the data or the device; the result is on ``labels``' device.
    """
    check_width(schema, labels, "labels")
    cpu = labels.detach().float().cpu()
    batch = cpu.shape[0]
    spans = schema.spans()
    group = torch.randint(0, len(spans), (batch,), generator=generator)
    any_draw = torch.rand(batch, generator=generator)
    other_draw = torch.rand(batch, generator=generator)
    out = cpu.clone()
    for g_index, (g, start, stop) in enumerate(spans):
        rows = (group == g_index).nonzero().flatten()
        if len(rows) == 0:
            continue
        if g.kind == "binary":
            out[rows, start] = (cpu[rows, start] == 0).float()
            continue
        k = stop - start
        current = cpu[rows, start:stop]
        is_set = current.max(1).values > 0
        now = current.argmax(1)
        other = (other_draw[rows] * (k - 1)).long().clamp(max=k - 2)
        other = other + (other >= now).long()  # a uniform draw among the k - 1 members that are not set
        anyone = (any_draw[rows] * k).long().clamp(max=k - 1)
        out[rows, start:stop] = 0.0
        out[rows, start + torch.where(is_set, other, anyone)] = 1.0
    return out.to(labels.device)


def shuffle_targets(labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The official target rule: the batch's own label vectors in a random order.

    The permutation is drawn on the CPU (as the official ``torch.randperm(batch)`` is), from ``generator`` or
    the global RNG, so results match across devices.
    """
    perm = torch.randperm(labels.shape[0], generator=generator)
    return labels[perm.to(labels.device)]


def mix_targets(base: Tensor, other: Tensor, share: float, generator: torch.Generator | None = None) -> Tensor:
    """``base`` with each row replaced by ``other``'s with probability ``share`` (both ``(B, dim)``, same device).

    One uniform draw per row on the CPU (from ``generator`` or the global RNG), whatever ``share``, so the
    stream does not depend on the value or the device.
    """
    if base.shape != other.shape:
        raise ValueError(f"mix_targets: shapes differ: {tuple(base.shape)} vs {tuple(other.shape)}")
    pick = torch.rand(base.shape[0], generator=generator) < share
    return torch.where(pick.to(base.device)[:, None], other, base)


def apply_strength(orig: Tensor, target: Tensor, strength: float | Tensor) -> Tensor:
    """Interpolate (or extrapolate, for strength > 1) between the original and target labels."""
    return orig + strength * (target - orig)
