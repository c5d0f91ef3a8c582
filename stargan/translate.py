"""StarGAN inference: target labels from names, raw vectors or the official test grid; continuous strength."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from common.errors import UserError
from common.labels.groups import logits_to_labels
from common.labels.schema import LabelSchema, check_width
from common.labels.space import LabelSpace, MultiSchema
from common.labels.targets import apply_strength


def parse_target(schema: LabelSchema, text: str, base: Tensor) -> Tensor:
    """Apply an edit spec like ``"Blond_Hair=1,Male=0"`` to ``base`` (shape ``(dim,)`` or ``(..., dim)``).

    * Binary attributes take 0 or 1.
    * Setting an exclusive member to 1 clears the other members of its group.
    * Setting an exclusive member to 0 is only accepted when another member of the same group is set to 1 in
      the same spec (then it is redundant); on its own it would leave the group with no member set or with a
      member whose choice we would have to guess.
    * Each attribute may appear once; at most one member per exclusive group may be set to 1.
    * Groups the spec does not mention keep their values from ``base``.

    Bad specs raise :class:`UserError` naming the offending part and the valid names.
    """
    check_width(schema, base, "base label")
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"empty target spec; expected e.g. '{schema.names[0]}=1'; valid attributes: "
                        f"{', '.join(schema.names)}")
    assigned: dict[str, int] = {}
    for part in text.split(","):
        part = part.strip()
        if part.count("=") != 1:
            raise UserError(f"target spec {text!r}: {part!r} is not of the form name=0 or name=1")
        name, value = (s.strip() for s in part.split("="))
        if name not in schema.names:
            raise UserError(
                f"target spec {text!r}: unknown attribute {name!r}; valid attributes: {', '.join(schema.names)}"
            )
        if value not in ("0", "1"):
            raise UserError(f"target spec {text!r}: value for {name!r} must be 0 or 1, got {value!r}")
        if name in assigned:
            raise UserError(f"target spec {text!r}: attribute {name!r} is given more than once")
        assigned[name] = int(value)

    out = base.detach().clone().float()
    for g, start, stop in schema.spans():
        given = {n: assigned[n] for n in g.names if n in assigned}
        if not given:
            continue
        if g.kind == "binary":
            out[..., start] = float(given[g.names[0]])
            continue
        ones = [n for n, v in given.items() if v == 1]
        if len(ones) > 1:
            raise UserError(
                f"target spec {text!r}: {', '.join(ones)} are exclusive (group {g.name!r}); set only one to 1"
            )
        if not ones:
            zeros = ", ".join(given)
            raise UserError(
                f"target spec {text!r}: {zeros} belong to the exclusive group {g.name!r}; setting a member "
                f"to 0 needs another member set to 1 (one of {', '.join(g.names)})"
            )
        out[..., start:stop] = 0.0
        out[..., start + g.names.index(ones[0])] = 1.0
    return out


def parse_target_vector(schema_or_dim: LabelSchema | MultiSchema | int, text: str) -> Tensor:
    """Parse a raw label vector ``"0,1,0,1,0"`` (float values allowed, for continuous editing).

    The expected length is ``schema.dim`` (for a :class:`MultiSchema`, the full G input width including the
    mask) or the given int. Wrong length or non-numeric values raise :class:`UserError` stating what was
    expected.
    """
    if isinstance(schema_or_dim, int):
        dim, names = schema_or_dim, None
    else:
        dim = schema_or_dim.dim
        names = schema_or_dim.names if isinstance(schema_or_dim, LabelSchema) else None
    expected = f"{dim} comma-separated values" + (f" ({', '.join(names)})" if names else "")
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"empty target vector; expected {expected}")
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != dim:
        raise UserError(f"target vector {text!r} has {len(parts)} values; expected {expected}")
    values = []
    for i, p in enumerate(parts):
        try:
            v = float(p)
        except ValueError:
            raise UserError(f"target vector {text!r}: value {i + 1} ({p!r}) is not a number") from None
        if not math.isfinite(v):
            raise UserError(f"target vector {text!r}: value {i + 1} ({p!r}) is not finite")
        values.append(v)
    return torch.tensor(values, dtype=torch.float32)


@dataclass
class TargetSpec:
    """Exactly one of ``target`` ("Blond_Hair=1,Male=0"), ``vector`` ("0,1,0,1,0") or ``all_targets``."""

    target: str | None = None
    vector: str | None = None
    all_targets: bool = False
    strength: float = 1.0
    dataset: str | None = None

    def validate(self) -> None:
        given = [self.target is not None, self.vector is not None, self.all_targets]
        if sum(given) != 1:
            raise UserError("StarGAN translate needs exactly one of --target, --target-vector, --all-targets")
        if not math.isfinite(self.strength):
            raise UserError(f"--strength {self.strength}: expected a finite number (0 = input labels, 1 = target)")


def _spec_names(text: str) -> list[str]:
    return [part.split("=", 1)[0].strip() for part in text.split(",") if part.strip()]


def predict_labels(D: torch.nn.Module | None, x: torch.Tensor, labels: LabelSpace, dataset: int,
                   image_size: int) -> torch.Tensor:
    """Dataset ``dataset``'s labels of images ``x`` as D's classification head learned them: groups by loss
    (:meth:`~common.labels.schema.LabelSchema.slices`), so a cross-entropy group is its argmax and every BCE
    column, members of a ``"bce"`` exclusive group included, is its own ``logit > 0`` (the data's labels may set
    none or two of those, and G was trained on such labels). Without a D, all zeros: only the attributes the
    user sets are meaningful then."""
    schema = labels.schemas[dataset]
    if D is None:
        return torch.zeros(x.shape[0], schema.dim, device=x.device)
    return logits_to_labels(label_logits(D, x, labels, dataset, image_size), schema.slices())


def label_logits(D: torch.nn.Module, x: torch.Tensor, labels: LabelSpace, dataset: int,
                 image_size: int) -> torch.Tensor:
    """D's classification logits for dataset ``dataset``'s labels of images ``x`` (resized to the side D was
    trained at): what :func:`predict_labels` decides on, and what the editor shows as its confidences."""
    resized = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                            antialias=True)
    return labels.block(dataset, D(resized)[1])


def make_translator(nets: dict, labels: LabelSpace, spec: TargetSpec, image_size: int):
    """``fn(padded_batch, (h, w))`` for :func:`common.inference.translate_jobs`."""
    spec.validate()
    G, D = nets["G"], nets.get("D")
    if spec.dataset is not None:
        dataset = labels.dataset_index(spec.dataset)
    elif spec.target is not None:
        dataset = labels.dataset_for(_spec_names(spec.target))
    else:
        dataset = 0
    schema = labels.schemas[dataset]
    vector = parse_target_vector(labels.g_dim, spec.vector) if spec.vector is not None else None
    if spec.target is not None:
        parse_target(schema, spec.target, torch.zeros(schema.dim))  # validate names before any work

    def fn(x: torch.Tensor, size: tuple[int, int]):
        h, w = size
        base = predict_labels(D, x[..., :h, :w], labels, dataset, image_size)
        c_org = labels.g_label(dataset, base)
        if spec.all_targets:
            return [x] + [G(x, apply_strength(c_org, t, spec.strength)) for _, t in labels.grid_targets(dataset, base)]
        if vector is not None:
            c_trg = vector.to(x.device).expand(x.shape[0], -1)
        else:
            c_trg = labels.g_label(dataset, parse_target(schema, spec.target, base))
        return G(x, apply_strength(c_org, c_trg, spec.strength))

    return fn
