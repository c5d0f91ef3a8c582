"""StarGAN label space (one dataset, or N with the mask vector), network building, checkpoint recovery."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from common.errors import UserError
from stargan.labels import LabelSchema, MultiSchema, single_changes
from stargan.networks import Discriminator, Generator


class LabelSpace:
    """The labels of one model: ``g_dim`` = G's label input width, ``d_dim`` = D's classification logits.

    One dataset: both are the schema's width. N >= 2 datasets: G gets ``[block_0 | ... | mask]``
    (:class:`MultiSchema`), D classifies every block and each dataset trains only its own slice.
    """

    def __init__(self, names: Sequence[str], schemas: Sequence[LabelSchema]):
        self.names = tuple(names)
        self.schemas = tuple(schemas)
        self.multi = MultiSchema(self.schemas, self.names) if len(self.schemas) > 1 else None

    @property
    def n(self) -> int:
        return len(self.schemas)

    @property
    def g_dim(self) -> int:
        return self.multi.dim if self.multi else self.schemas[0].dim

    @property
    def d_dim(self) -> int:
        return self.multi.label_dim if self.multi else self.schemas[0].dim

    def g_label(self, i: int, labels: Tensor) -> Tensor:
        """Dataset ``i``'s labels as G's input (and as the cls-loss target: extra columns are ignored)."""
        return self.multi.embed(i, labels) if self.multi else labels.float()

    def cls_slices(self, i: int) -> list[tuple[str, int, int]]:
        return self.multi.cls_slices(i) if self.multi else self.schemas[0].slices()

    def cls_mask(self, i: int, g_labels: Tensor) -> Tensor:
        """(N, groups) mask for the classification loss: an exclusive group whose block is all zero (a CelebA
        face with none of the hair colours set) has no class to predict, so it is left out of the
        cross-entropy instead of being read as the group's first member."""
        columns = []
        for kind, start, stop in self.cls_slices(i):
            if kind == "exclusive":
                columns.append(g_labels[:, start:stop].sum(dim=1) > 0)
            else:
                columns.append(torch.ones(g_labels.shape[0], dtype=torch.bool, device=g_labels.device))
        return torch.stack(columns, dim=1)

    def block(self, i: int, logits_or_labels: Tensor) -> Tensor:
        """Dataset ``i``'s block of D logits or of G labels."""
        return self.multi.extract(i, logits_or_labels) if self.multi else logits_or_labels

    def dataset_for(self, attr_names: Sequence[str]) -> int:
        """The dataset whose schema holds all of ``attr_names`` (for parsing ``--target``)."""
        for i, schema in enumerate(self.schemas):
            if all(name in schema.names for name in attr_names):
                return i
        valid = "; ".join(f"{n}: {', '.join(s.names)}" for n, s in zip(self.names, self.schemas))
        raise UserError(f"--target names {', '.join(attr_names)} are not all attributes of one dataset ({valid})")

    def grid_targets(self, i: int, labels: Tensor) -> list[tuple[str, Tensor]]:
        """The official test grid for images of dataset ``i``: one column per single-attribute change of
        their own dataset, plus (multi-dataset models) every attribute of the other datasets."""
        columns = [(title, self.g_label(i, t)) for title, t in single_changes(self.schemas[i], labels)]
        for j, schema in enumerate(self.schemas):
            if j == i:
                continue
            zeros = labels.new_zeros(labels.shape[0], schema.dim)
            columns += [(f"{self.names[j]}:{title}", self.g_label(j, t)) for title, t in single_changes(schema, zeros)]
        return columns

    def to_dict(self) -> dict[str, Any]:
        return {"datasets": [{"name": n, "schema": s.to_dict()} for n, s in zip(self.names, self.schemas)]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSpace:
        entries = data["datasets"]
        return cls([e["name"] for e in entries], [LabelSchema.from_dict(e["schema"]) for e in entries])


def build_networks(network, image_size: int, labels: LabelSpace) -> dict[str, torch.nn.Module]:
    return {
        "G": Generator(c_dim=labels.g_dim, conv_dim=network.g_conv_dim, repeat_num=network.g_repeat_num),
        "D": Discriminator(image_size=image_size, conv_dim=network.d_conv_dim, c_dim=labels.d_dim,
                           repeat_num=network.d_repeat_num),
    }


def networks_from_checkpoint(ckpt: dict, source: str) -> tuple[dict[str, torch.nn.Module], LabelSpace]:
    """G (and D when present) in eval mode plus the label space, from a StarGAN training/inference checkpoint."""
    from common.config import from_dict
    from stargan.config import StarGANConfig

    try:
        labels = LabelSpace.from_dict(ckpt["extra"]["labels"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{source}: StarGAN checkpoint without a usable label schema ({err})") from None
    cfg = from_dict(StarGANConfig, ckpt["config"], source=f"{source} (embedded config)")
    nets = build_networks(cfg.network, cfg.data.image_size, labels)
    out = {}
    for name, net in nets.items():
        if name not in ckpt["nets"]:
            continue
        try:
            net.load_state_dict(ckpt["nets"][name])
        except RuntimeError as err:
            raise UserError(f"{source}: {name} weights do not match its config ({str(err).splitlines()[0]})") from None
        out[name] = net.eval()
    if "G" not in out:
        raise UserError(f"{source}: holds no StarGAN generator 'G'")
    return out, labels
