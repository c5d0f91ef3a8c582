"""StarGAN inference: target labels from names, raw vectors or the official test grid; continuous strength."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from common.errors import UserError
from stargan.labels import apply_strength, parse_target, parse_target_vector
from stargan.model import LabelSpace


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


def _spec_names(text: str) -> list[str]:
    return [part.split("=", 1)[0].strip() for part in text.split(",") if part.strip()]


def predict_labels(D: torch.nn.Module | None, x: torch.Tensor, labels: LabelSpace, dataset: int,
                   image_size: int) -> torch.Tensor:
    """Dataset ``dataset``'s labels of images ``x`` as D's classification head sees them (binary: logit > 0;
    exclusive: argmax). Without a D, all zeros: only the attributes the user sets are meaningful then."""
    schema = labels.schemas[dataset]
    if D is None:
        return torch.zeros(x.shape[0], schema.dim, device=x.device)
    resized = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                            antialias=True)
    logits = labels.block(dataset, D(resized)[1])
    out = torch.zeros_like(logits)
    for kind, start, stop in schema.slices():
        if kind == "binary":
            out[:, start:stop] = (logits[:, start:stop] > 0).float()
        else:
            idx = logits[:, start:stop].argmax(dim=1)
            out[torch.arange(len(idx)), start + idx] = 1.0
    return out


def make_translator(nets: dict, labels: LabelSpace, spec: TargetSpec, image_size: int):
    """``fn(padded_batch, (h, w))`` for :func:`common.inference.translate_paths`."""
    spec.validate()
    G, D = nets["G"], nets.get("D")
    if spec.dataset is not None:
        dataset = labels.names.index(spec.dataset) if spec.dataset in labels.names else None
        if dataset is None:
            raise UserError(f"--dataset {spec.dataset!r}: unknown; this model's datasets: {', '.join(labels.names)}")
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
