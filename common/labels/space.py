"""Label spaces over one or several datasets: the StarGAN mask vector and what G and D see of it."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from common.errors import UserError
from common.labels.groups import has_class
from common.labels.schema import LabelSchema, SchemaError
from common.labels.targets import single_changes


class MultiSchema:
    """Joint training on N >= 2 datasets with the StarGAN mask vector.

    G's label input (width :attr:`dim` = sum of dims + N) is ``[block_0 | ... | block_{N-1} | mask]``: the
    known dataset's labels in its own block, zeros in the others, and a one-hot mask saying which block is
    meaningful. D's classification head has :attr:`label_dim` = sum of dims logits (no mask); for a batch
    from dataset i only :meth:`cls_slices` ``(i)`` of them are trained. ``embed(i, y)[:, :label_dim]`` is the
    matching loss target.
    """

    def __init__(self, schemas: Sequence[LabelSchema], names: Sequence[str]) -> None:
        schemas, names = list(schemas), list(names)
        if len(schemas) < 2:
            raise SchemaError(f"a multi-dataset schema needs at least 2 datasets, got {len(schemas)}")
        if len(names) != len(schemas):
            raise SchemaError(f"{len(schemas)} schemas but {len(names)} dataset names {names}")
        for n in names:
            if not isinstance(n, str) or not n:
                raise SchemaError(f"dataset names must be non-empty strings, got {n!r}")
        if len(set(names)) != len(names):
            raise SchemaError(f"duplicate dataset names in {names}")
        for s in schemas:
            if not isinstance(s, LabelSchema):
                raise SchemaError(f"expected LabelSchema objects, got {s!r}")
        self.schemas: tuple[LabelSchema, ...] = tuple(schemas)
        self.names: tuple[str, ...] = tuple(names)
        self._starts = []
        start = 0
        for s in self.schemas:
            self._starts.append(start)
            start += s.dim

    def __repr__(self) -> str:
        return f"MultiSchema({', '.join(f'{n}: {s.describe()}' for n, s in zip(self.names, self.schemas))})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MultiSchema) and (self.schemas, self.names) == (other.schemas, other.names)

    def __hash__(self) -> int:
        return hash((self.schemas, self.names))

    @property
    def n(self) -> int:
        return len(self.schemas)

    @property
    def label_dim(self) -> int:
        """Width of D's classification output: all blocks, no mask."""
        return sum(s.dim for s in self.schemas)

    @property
    def dim(self) -> int:
        """Width of G's label input: all blocks plus the N-way mask."""
        return self.label_dim + self.n

    def _check(self, i: int) -> int:
        if not isinstance(i, int) or not 0 <= i < self.n:
            raise IndexError(f"dataset index {i!r} out of range for {self.n} datasets")
        return i

    def block_slice(self, i: int) -> slice:
        """Where dataset i's labels sit, both in G's label input and in D's classification logits."""
        i = self._check(i)
        return slice(self._starts[i], self._starts[i] + self.schemas[i].dim)

    def cls_slices(self, i: int) -> list[tuple[str, int, int]]:
        """``(kind, start, stop)`` of dataset i's groups, offset into the ``label_dim``-wide D logits."""
        off = self.block_slice(i).start
        return [(k, a + off, b + off) for k, a, b in self.schemas[i].slices()]

    def embed(self, i: int, labels: Tensor) -> Tensor:
        """``(..., dim_i)`` labels of dataset i -> ``(..., dim)``: zeros elsewhere, one-hot mask i last."""
        i = self._check(i)
        if labels.dim() == 0 or labels.shape[-1] != self.schemas[i].dim:
            raise ValueError(
                f"labels for dataset {self.names[i]!r} must have last dimension {self.schemas[i].dim}, "
                f"got {tuple(labels.shape)}"
            )
        out = labels.new_zeros(*labels.shape[:-1], self.dim, dtype=torch.float32)
        out[..., self.block_slice(i)] = labels.float()
        out[..., self.label_dim + i] = 1.0
        return out

    def extract(self, i: int, embedded: Tensor) -> Tensor:
        """Dataset i's block from ``(..., dim)`` embedded labels (or ``(..., label_dim)`` logits)."""
        return embedded[..., self.block_slice(i)]

    def to_dict(self) -> dict[str, Any]:
        return {"datasets": [{"name": n, "schema": s.to_dict()} for n, s in zip(self.names, self.schemas)]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MultiSchema:
        if not isinstance(data, Mapping) or not isinstance(data.get("datasets"), (list, tuple)):
            raise SchemaError(f"multi-dataset schema must be a mapping with a 'datasets' list, got {data!r}")
        names, schemas = [], []
        for j, d in enumerate(data["datasets"]):
            if not isinstance(d, Mapping) or set(d) != {"name", "schema"}:
                raise SchemaError(f"multi-dataset schema entry {j} must have keys name, schema; got {d!r}")
            names.append(d["name"])
            schemas.append(LabelSchema.from_dict(d["schema"]))
        return cls(schemas, names)


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

    def dataset_index(self, name: str) -> int:
        """Position of dataset ``name`` (the ``--dataset`` of translate and evaluate)."""
        if name not in self.names:
            raise UserError(f"unknown dataset {name!r}; this model's datasets: {', '.join(self.names)}")
        return self.names.index(name)

    def g_label(self, i: int, labels: Tensor) -> Tensor:
        """Dataset ``i``'s labels as G's input (and as the cls-loss target: extra columns are ignored)."""
        return self.multi.embed(i, labels) if self.multi else labels.float()

    def cls_slices(self, i: int) -> list[tuple[str, int, int]]:
        return self.multi.cls_slices(i) if self.multi else self.schemas[0].slices()

    def cls_mask(self, i: int, g_labels: Tensor) -> Tensor:
        """(N, groups) mask for the classification loss: an exclusive group whose block is all zero (a CelebA
        face with none of the hair colours set) has no class to predict, so it is left out of the
        cross-entropy instead of being read as the group's first member."""
        return has_class(g_labels, self.cls_slices(i))

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
