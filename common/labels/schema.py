"""StarGAN label schemas: the named groups of a label vector.

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

  A schema cuts its label vector into ``(kind, start, stop)`` triples (:mod:`common.labels.groups`) in two
  ways: :meth:`LabelSchema.slices` by *loss* (``"binary"`` for a ``"bce"`` exclusive group), which is what
  ``common.losses.grouped_cls_loss`` and D's reading of its own logits act on, and
  :meth:`LabelSchema.decision_slices` by *kind*, which is how a translation is judged.

Data labels vs. targets. Real data may violate the exclusivity of a ``"bce"`` group: in CelebA many faces have
*none* of the selected hair colours set (the official code keeps those rows, and so do we), and a few have two.
Such labels are kept as they are, because the original label is what the reconstruction path
``G(G(x, c_trg), c_org)`` needs and because the official training targets are the batch's own (shuffled)
labels. Targets the library *invents* (:func:`common.labels.targets.single_changes` and
:func:`~common.labels.targets.random_targets`) always set exactly one member of each exclusive group, by
:attr:`Group.kind`; ``stargan.translate.parse_target`` copies untouched groups from its base label unchanged.
The multi-dataset mask vector is :mod:`common.labels.space`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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

    def decision_slices(self) -> list[tuple[str, int, int]]:
        """``(kind, start, stop)`` per group by :attr:`Group.kind`, whatever its loss: how logits are decided when
        a translation is judged (evaluation, and the attribute classifier trained for it).

        It differs from :meth:`slices` only for a ``"bce"`` exclusive group: here it is ``"exclusive"`` (the
        one-hot argmax, exactly one member, as every invented target has), there ``"binary"`` (each member its
        own ``logit > 0``, none or several possible, as D learned them). The translate command reads an input's
        labels from D with :meth:`slices`; evaluation judges translations with this.
        """
        return [(g.kind, a, b) for g, a, b in self.spans()]

    def index(self, name: str) -> int:
        """Position of attribute ``name`` in the label vector."""
        try:
            return self.names.index(name)
        except ValueError:
            raise SchemaError(
                f"unknown attribute {name!r}; valid attributes: {', '.join(self.names)}"
            ) from None

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


def check_width(schema: LabelSchema, t: Tensor, what: str) -> None:
    if t.dim() == 0 or t.shape[-1] != schema.dim:
        raise ValueError(
            f"{what} must have last dimension {schema.dim} ({schema.describe()}), got {tuple(t.shape)}"
        )
