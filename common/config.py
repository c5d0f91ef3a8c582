"""Typed configs: dataclasses loaded from YAML with ``--set key.sub=value`` overrides.

Every config is a tree of dataclasses. Unknown keys, wrong types and values outside a ``Literal`` are
:class:`~common.errors.UserError` s that name the file and the dotted key and list what is valid; so is a
non-finite float (``.nan``, ``.inf``) anywhere, since no setting means anything with one. A dataclass
may define ``validate(self, where: str)`` for cross-field checks; it is called after loading.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, Union, get_args, get_origin

import yaml

from common.errors import UserError

T = TypeVar("T")

# Annotation -> the YAML value types it accepts (an int where a float is expected is converted).
_SCALARS: dict[type, tuple[type, ...]] = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (list, tuple, Sequence):
        args = get_args(tp)
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it converted (int -> float, list -> tuple)."""
    origin = get_origin(tp)
    bad = UserError(f"{source}: key '{key}' must be {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise UserError(
                f"{source}: key '{key}' has invalid value {value!r}; valid values: "
                + ", ".join(repr(c) for c in choices)
            )
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise bad
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, source)
            except UserError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise bad
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise bad
        return from_dict(tp, value, source=source, prefix=key + ".")
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise UserError(f"{source}: key '{key}' must have {len(args)} items, got {value!r}")
            items = [_convert(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise bad
        return dict(value)
    accepted = _SCALARS.get(tp) if isinstance(tp, type) else None
    if accepted is not None:
        # bool is a subclass of int, but ``true`` is no number.
        if not isinstance(value, accepted) or (isinstance(value, bool) and tp is not bool):
            raise bad
        if tp is float:
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the float range
                number = math.inf
            # YAML's .nan/.inf (and a --set 1e999) type-check as floats but poison every step that uses them.
            if not math.isfinite(number):
                raise UserError(f"{source}: key '{key}' must be a finite number, got {value!r}")
            return number
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise bad
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "<config>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, strictly. Missing keys take the dataclass defaults."""
    if not isinstance(data, Mapping):
        raise UserError(f"{source}: '{prefix.rstrip('.') or '<top level>'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise UserError(
                f"{source}: unknown key '{prefix}{key}'; valid keys at this level: " + ", ".join(sorted(fields))
            )
        kwargs[key] = _convert(value, hints[key], prefix + key, source)
    missing = [
        name for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"{source}: missing required key(s): " + ", ".join(prefix + m for m in missing))
    obj = cls(**kwargs)
    # A section left out takes its default, which must pass the same checks as a written one (an empty
    # default list of domains is no more usable than a written one).
    for name in fields:
        if name not in kwargs:
            _validate_tree(getattr(obj, name), source)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(source)
    return obj


def _validate_tree(value: Any, source: str) -> None:
    """Call ``validate(source)`` on every dataclass in ``value`` (nested sections first, then their parent)."""
    if isinstance(value, (list, tuple)):
        for item in value:
            _validate_tree(item, source)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _validate_tree(getattr(value, f.name), source)
        validate = getattr(value, "validate", None)
        if callable(validate):
            validate(source)


def check_value(where: str, key: str, value: Any, ok: bool, allowed: str) -> None:
    """For ``validate`` methods: unless ``ok``, a UserError ``WHERE: key 'KEY' must be ALLOWED, got VALUE``."""
    if not ok:
        raise UserError(f"{where}: key '{key}' must be {allowed}, got {value!r}")


def to_dict(cfg: Any) -> dict:
    """Plain-data (YAML/JSON/``weights_only``-safe) view of a config; tuples become lists."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'optim.lr=1e-4'`` -> ``(['optim', 'lr'], 0.0001)``. Values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. --set optim.lr=0.0002")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"--set {text!r}: empty key; expected KEY=VALUE with a dotted key such as data.root")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads '1e-4' as a string; users mean a number.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else value
        except ValueError:
            pass
    return key.split("."), value


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Return a deep copy of ``data`` with every ``--set`` override applied (validation happens later)."""
    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if isinstance(node, list):
                # data.datasets.0.image_dir: a numeric part indexes a list of sections
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError(f"--set {text!r}: '{part}' is not an index of a {len(node)}-item list")
                key = int(part)
            elif isinstance(node, dict):
                key = part
            else:
                raise UserError(f"--set {text!r}: '{path[depth - 1]}' is not a section")
            if last:
                node[key] = value
            else:
                child = node[key] if (isinstance(node, list) or key in node) else None
                if child is None:
                    child = node[key] = {}
                node = child
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a UTF-8 text file (byte {err.start}); expected a YAML config") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise UserError(f"{path}: not valid YAML{line}: {getattr(err, 'problem', err)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: Sequence[str], registry: Mapping[str, type]) -> Any:
    """Load a YAML config, apply ``--set`` overrides, and build the dataclass named by its ``model`` key."""
    data = apply_overrides(read_yaml(path), overrides)
    return config_from_data(data, registry, source=str(path))


def config_from_data(data: Mapping[str, Any], registry: Mapping[str, type], source: str) -> Any:
    family = data.get("model")
    if family not in registry:
        raise UserError(
            f"{source}: key 'model' must be one of {', '.join(repr(k) for k in registry)}, got {family!r}"
        )
    return from_dict(registry[family], data, source=source)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
