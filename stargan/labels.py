"""StarGAN label schemas, target construction, and the multi-dataset mask vector.

A :class:`LabelSchema` is an ordered list of :class:`Group` s. Its flat attribute order is the order of the
label vector that G is conditioned on and that D's classification head predicts. No attribute name is built
into the library: schemas come from the dataset (CelebA header, CSV header, ImageFolder class folders) plus
the ``exclusive`` groups named in the config.

Group kinds:

* ``binary``: one attribute, value 0 or 1 (classification: BCE-with-logits).
* ``exclusive``: two or more attributes of which one is set, e.g. a hair colour group or the RaFD
  expressions. Its ``loss`` says how D's classifier is trained on it:

  - ``"ce"``: cross-entropy over the group (official RaFD). A data row sets at most one member; a row that
    sets none has no class, and the trainer must mask it out of that group's loss.
  - ``"bce"``: the members are independent BCE attributes (official CelebA: the hair colours are exclusive only
    when test targets are made; the classifier is multi-label, and the data may have none or two set).

  :meth:`LabelSchema.slices` reports the *loss* kind per group (``"binary"`` for a ``"bce"`` exclusive group),
  because that is what ``common.losses.grouped_cls_loss`` acts on; target construction uses
  :attr:`Group.kind`.

Data labels vs. targets. Real data may violate the exclusivity of a ``"bce"`` group: in CelebA many faces have
*none* of the selected hair colours set (the official code keeps those rows, and so do we), and a few have two.
Such labels are kept as they are, because the original label is what the reconstruction path
``G(G(x, c_trg), c_org)`` needs and because the official training targets are the batch's own (shuffled)
labels. Targets that this module *invents* (:func:`single_changes`, :func:`random_targets`) always set exactly
one member of each exclusive group. :func:`parse_target` copies untouched groups from its base label unchanged.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from common.errors import UserError

Kind = Literal["binary", "exclusive"]
KINDS = ("binary", "exclusive")
Loss = Literal["bce", "ce"]
LOSSES = ("bce", "ce")


class SchemaError(UserError, ValueError):
    """An invalid schema definition. A ``ValueError`` for library callers, and a ``UserError`` because schemas
    usually come from config files, CSV headers or checkpoints, so the CLI should print it on one line."""


def _check_attr_name(name: Any, where: str) -> None:
    # ',' and '=' would make the name impossible to address in a target spec such as "Male=0,Young=1".
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(f"{where}: attribute names must be non-empty strings, got {name!r}")
    if name != name.strip() or "," in name or "=" in name:
        raise SchemaError(
            f"{where}: attribute name {name!r} must not contain ',' or '=' or start/end with whitespace"
        )


@dataclass(frozen=True)
class Group:
    """One classification group: a single binary attribute, or an exclusive set of >= 2 attributes.

    ``loss`` defaults to ``"bce"`` for binary groups (the only valid value) and ``"ce"`` for exclusive ones.
    """

    name: str
    kind: Kind
    names: tuple[str, ...]
    loss: Loss | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        if self.loss is None:
            object.__setattr__(self, "loss", "bce" if self.kind == "binary" else "ce")
        if not isinstance(self.name, str) or not self.name:
            raise SchemaError(f"group names must be non-empty strings, got {self.name!r}")
        if self.kind not in KINDS:
            raise SchemaError(f"group {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        for n in self.names:
            _check_attr_name(n, f"group {self.name!r}")
        if self.kind == "binary" and len(self.names) != 1:
            raise SchemaError(
                f"group {self.name!r}: a binary group has exactly one attribute, got {list(self.names)}"
            )
        if self.kind == "exclusive" and len(self.names) < 2:
            raise SchemaError(
                f"group {self.name!r}: an exclusive group needs at least 2 attributes, got {list(self.names)}"
            )
        if len(set(self.names)) != len(self.names):
            raise SchemaError(f"group {self.name!r}: duplicate attribute names in {list(self.names)}")
        if self.loss not in LOSSES or (self.kind == "binary" and self.loss != "bce"):
            raise SchemaError(
                f"group {self.name!r}: loss must be 'bce' for a binary group and 'bce' or 'ce' for an "
                f"exclusive one, got {self.loss!r}"
            )

    @classmethod
    def binary(cls, name: str) -> Group:
        return cls(name, "binary", (name,))

    @classmethod
    def exclusive(cls, name: str, names: Sequence[str], loss: Loss = "ce") -> Group:
        return cls(name, "exclusive", tuple(names), loss)


@dataclass(frozen=True)
class LabelSchema:
    """Ordered groups; the concatenation of their attribute names is the label vector order."""

    groups: tuple[Group, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        if not self.groups:
            raise SchemaError("a label schema needs at least one group")
        for g in self.groups:
            if not isinstance(g, Group):
                raise SchemaError(f"schema groups must be Group objects, got {g!r}")
        seen_groups: set[str] = set()
        seen: dict[str, str] = {}
        for g in self.groups:
            if g.name in seen_groups:
                raise SchemaError(f"duplicate group name {g.name!r}")
            seen_groups.add(g.name)
            for n in g.names:
                if n in seen:
                    raise SchemaError(
                        f"attribute {n!r} appears twice (groups {seen[n]!r} and {g.name!r})"
                    )
                seen[n] = g.name

    # -- shape --------------------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for g in self.groups for n in g.names)

    @property
    def dim(self) -> int:
        return sum(len(g.names) for g in self.groups)

    def spans(self) -> list[tuple[Group, int, int]]:
        """``(group, start, stop)`` per group: where each group sits in the label vector."""
        out, start = [], 0
        for g in self.groups:
            out.append((g, start, start + len(g.names)))
            start += len(g.names)
        return out

    def slices(self) -> list[tuple[str, int, int]]:
        """``(loss kind, start, stop)`` per group, the format ``common.losses.grouped_cls_loss`` takes.

        The kind is ``"exclusive"`` (cross-entropy) only for exclusive groups with ``loss="ce"``; binary
        attributes and ``"bce"`` exclusive groups are ``"binary"`` (summed BCE over the group's columns).
        """
        return [("exclusive" if g.loss == "ce" else "binary", a, b) for g, a, b in self.spans()]

    def index(self, name: str) -> int:
        """Position of attribute ``name`` in the label vector."""
        try:
            return self.names.index(name)
        except ValueError:
            raise SchemaError(
                f"unknown attribute {name!r}; valid attributes: {', '.join(self.names)}"
            ) from None

    def group_of(self, name: str) -> tuple[Group, int, int]:
        """``(group, start, stop)`` of the group that contains attribute ``name``."""
        i = self.index(name)
        for g, start, stop in self.spans():
            if start <= i < stop:
                return g, start, stop
        raise AssertionError("unreachable")

    def describe(self) -> str:
        """One line for logs, e.g. ``Black_Hair|Blond_Hair (exclusive 'hair'), Male, Young``."""
        parts = []
        for g in self.groups:
            if g.kind == "binary":
                parts.append(g.names[0])
            else:
                parts.append(f"{'|'.join(g.names)} (exclusive {g.name!r})")
        return ", ".join(parts)

    # -- (de)serialisation ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists/str), safe for ``torch.save`` + ``weights_only=True`` loading and for YAML."""
        return {
            "groups": [
                {"name": g.name, "kind": g.kind, "names": list(g.names), "loss": g.loss} for g in self.groups
            ]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSchema:
        if not isinstance(data, Mapping) or not isinstance(data.get("groups"), (list, tuple)):
            raise SchemaError(f"label schema must be a mapping with a 'groups' list, got {data!r}")
        groups = []
        for i, g in enumerate(data["groups"]):
            if not isinstance(g, Mapping) or not {"name", "kind", "names"} <= set(g) <= {
                "name", "kind", "names", "loss"
            }:
                raise SchemaError(
                    f"label schema group {i} must be a mapping with keys name, kind, names (and optionally "
                    f"loss); got {g!r}"
                )
            if not isinstance(g["names"], (list, tuple)):
                raise SchemaError(f"label schema group {i}: 'names' must be a list, got {g['names']!r}")
            groups.append(Group(g["name"], g["kind"], tuple(g["names"]), g.get("loss")))
        return cls(tuple(groups))

    @classmethod
    def from_attrs(
        cls,
        attrs: Sequence[str],
        exclusive: Sequence[Sequence[str]] | Mapping[str, Sequence[str]] | None = None,
        exclusive_loss: Loss = "ce",
    ) -> LabelSchema:
        """Build a schema from a flat attribute list and the exclusive groups among them.

        ``exclusive`` is a list of member lists (group named by joining its members with '|') or a mapping
        ``group name -> members``. Every attribute not in an exclusive group is binary. The label vector order
        is exactly ``attrs``: members of a group must therefore be adjacent in ``attrs`` (reordering silently
        would change the meaning of user-written target vectors and of official checkpoints).
        ``exclusive_loss`` is the :attr:`Group.loss` of every exclusive group.
        """
        attrs = list(attrs)
        if not attrs:
            raise SchemaError("no attributes selected")
        for a in attrs:
            _check_attr_name(a, "selected attributes")
        dupes = sorted({a for a in attrs if attrs.count(a) > 1})
        if dupes:
            raise SchemaError(f"duplicate attribute names: {', '.join(dupes)}")
        if exclusive is None:
            named: list[tuple[str, list[str]]] = []
        elif isinstance(exclusive, Mapping):
            named = [(str(k), list(v)) for k, v in exclusive.items()]
        else:
            named = [("|".join(map(str, members)), list(members)) for members in exclusive]

        owner: dict[str, int] = {}
        for gi, (gname, members) in enumerate(named):
            if len(members) < 2:
                raise SchemaError(
                    f"exclusive group {gname!r} needs at least 2 attributes, got {members}"
                )
            for m in members:
                if m not in attrs:
                    raise SchemaError(
                        f"exclusive group {gname!r}: unknown attribute {m!r}; "
                        f"selected attributes: {', '.join(attrs)}"
                    )
                if m in owner:
                    raise SchemaError(f"attribute {m!r} is in more than one exclusive group")
                owner[m] = gi
            pos = sorted(attrs.index(m) for m in members)
            if pos[-1] - pos[0] != len(pos) - 1:
                raise SchemaError(
                    f"exclusive group {gname!r}: members {members} must be adjacent in the selected "
                    f"attribute list {attrs}"
                )

        groups: list[Group] = []
        i = 0
        while i < len(attrs):
            a = attrs[i]
            if a in owner:
                gname, members = named[owner[a]]
                groups.append(Group.exclusive(gname, attrs[i:i + len(members)], exclusive_loss))
                i += len(members)
            else:
                groups.append(Group.binary(a))
                i += 1
        return cls(tuple(groups))


# -- targets -----------------------------------------------------------------------------------------------
def _check_width(schema: LabelSchema, t: Tensor, what: str) -> None:
    if t.dim() == 0 or t.shape[-1] != schema.dim:
        raise ValueError(
            f"{what} must have last dimension {schema.dim} ({schema.describe()}), got {tuple(t.shape)}"
        )


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
    _check_width(schema, base, "base label")
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


def single_changes(schema: LabelSchema, label: Tensor) -> list[tuple[str, Tensor]]:
    """The official test grid: one ``(title, target)`` per attribute, in label order.

    A binary attribute is flipped (0 -> 1, anything else -> 0); an exclusive member is set and the rest of its
    group cleared. ``label`` is ``(dim,)`` or ``(B, dim)``; each target has the same shape.
    """
    _check_width(schema, label, "label")
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


def is_valid_target(schema: LabelSchema, label: Tensor) -> Tensor:
    """Per row of ``(..., dim)``: binary values in {0, 1} and exactly one member set per exclusive group."""
    _check_width(schema, label, "label")
    ok = torch.ones(label.shape[:-1], dtype=torch.bool, device=label.device)
    for g, start, stop in schema.spans():
        block = label[..., start:stop]
        ok &= ((block == 0) | (block == 1)).all(dim=-1)
        if g.kind == "exclusive":
            ok &= block.sum(dim=-1) == 1
    return ok


def shuffle_targets(labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The official target rule: the batch's own label vectors in a random order.

    The permutation is drawn on the CPU (as the official ``torch.randperm(batch)`` is), from ``generator`` or
    the global RNG, so results match across devices.
    """
    perm = torch.randperm(labels.shape[0], generator=generator)
    return labels[perm.to(labels.device)]


def apply_strength(orig: Tensor, target: Tensor, strength: float | Tensor) -> Tensor:
    """Interpolate (or extrapolate, for strength > 1) between the original and target labels."""
    return orig + strength * (target - orig)


# -- several datasets --------------------------------------------------------------------------------------
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

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise UserError(f"unknown dataset {name!r}; datasets: {', '.join(self.names)}") from None

    def _check(self, i: int) -> int:
        if not isinstance(i, int) or not 0 <= i < self.n:
            raise IndexError(f"dataset index {i!r} out of range for {self.n} datasets")
        return i

    def block_slice(self, i: int) -> slice:
        """Where dataset i's labels sit, both in G's label input and in D's classification logits."""
        i = self._check(i)
        return slice(self._starts[i], self._starts[i] + self.schemas[i].dim)

    def mask_slice(self) -> slice:
        return slice(self.label_dim, self.dim)

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
