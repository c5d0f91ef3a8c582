"""``export.json``: what an exported folder holds and what is needed to rebuild and run its networks.

Written by :func:`describe`, checked key by key by :func:`validate` (every problem is a one-line
:class:`UserError` naming the file and the key). The library rebuilds a model from ``model``, ``config``,
``extra`` and the weight files; ``image`` and ``labels`` describe the inputs for code without the library.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.family import LoadedModel
from common.labels.space import LabelSpace
from common.version import __version__

EXPORT_JSON = "export.json"
EXPORT_FORMAT = "stargan-lib-export"
EXPORT_FORMAT_VERSION = 1
WEIGHT_FORMATS = ("safetensors", "onnx")
ROLES = ("generator", "classifier")
# The one image <-> tensor convention of the library (common.data.images.to_tensor): RGB, NCHW, x / 127.5 - 1.
IMAGE_RANGE = [-1.0, 1.0]
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5

_KEYS = ("format", "format_version", "library_version", "model", "title", "weights", "nets", "config", "extra",
         "image", "labels")
_IMAGE_KEYS = ("channels", "layout", "range", "mean", "std", "multiple", "min_side", "train_size")
_LABEL_KEYS = ("width", "datasets", "vector")
_NET_KEYS = {"safetensors": ("role", "file"), "onnx": ("role", "file", "inputs", "outputs")}


def json_entries(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a checkpoint's ``extra`` section that are plain JSON data (the label schema, where a model
    was imported from); tensors such as the training RNG state only matter for resuming a run."""
    kept = {}
    for key, value in extra.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        kept[str(key)] = value
    return kept


def label_layout(labels: LabelSpace) -> dict[str, Any]:
    """G's label vector, position by position: each attribute with its dataset, group and kind, then (for
    several datasets) the one-hot mask that says which dataset's block is meaningful. The schema the library
    reads is the checkpoint's (``extra``); this is its description for readers."""
    entries: list[dict[str, Any]] = []
    for dataset, schema in zip(labels.names, labels.schemas):
        for group, _, _ in schema.spans():
            entries += [{"dataset": dataset, "name": name, "group": group.name, "kind": group.kind}
                        for name in group.names]
    if labels.multi is not None:
        entries += [{"dataset": dataset, "name": f"mask:{dataset}", "group": "mask", "kind": "mask"}
                    for dataset in labels.names]
    assert len(entries) == labels.g_dim, (len(entries), labels.g_dim)
    return {"width": labels.g_dim, "datasets": list(labels.names),
            "vector": [{"index": i, **entry} for i, entry in enumerate(entries)]}


def describe(model: str, title: str, weights: str, nets: dict[str, dict[str, Any]], loaded: LoadedModel,
             config: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The ``export.json`` document for ``nets`` (name -> entry with ``role``, ``file``, ...) of ``loaded``."""
    generators = [name for name, entry in nets.items() if entry["role"] == "generator"]
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "library_version": __version__,
        "model": model,
        "title": title,
        "weights": weights,
        "nets": nets,
        "config": config,
        "extra": json_entries(extra),
        "image": {"channels": {name: loaded.image_channels.get(name, 3) for name in generators},
                  "layout": "NCHW", "range": IMAGE_RANGE, "mean": IMAGE_MEAN, "std": IMAGE_STD,
                  "multiple": loaded.multiple, "min_side": loaded.min_side, "train_size": loaded.image_size},
        "labels": label_layout(loaded.labels) if isinstance(loaded.labels, LabelSpace) else None,
    }


def to_json(doc: Mapping[str, Any], where: str) -> str:
    try:
        return json.dumps(doc, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise UserError(f"{where}: cannot be stored as JSON ({err})") from None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Checker:
    """One-line errors naming ``export.json`` and the dotted key."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str) -> UserError:
        return UserError(f"{self.path}: key {key!r}: {problem}")

    def keys(self, mapping: Any, expected: tuple[str, ...], where: str) -> Mapping[str, Any]:
        if not isinstance(mapping, Mapping):
            raise self.fail(where, f"expected a JSON object, got {_type_name(mapping)}")
        prefix = f"{where}." if where else ""
        missing = [k for k in expected if k not in mapping]
        if missing:
            raise UserError(f"{self.path}: missing key(s) {', '.join(prefix + k for k in missing)} "
                            f"(an export has {', '.join(prefix + k for k in expected)})")
        unknown = [str(k) for k in mapping if k not in expected]
        if unknown:
            raise UserError(f"{self.path}: unknown key(s) {', '.join(prefix + k for k in unknown)} "
                            f"(expected {', '.join(prefix + k for k in expected)})")
        return mapping

    def typed(self, value: Any, kinds: type | tuple[type, ...], key: str, what: str) -> Any:
        # bool is an int to Python, never to a reader of the file.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
            raise self.fail(key, f"expected {what}, got {_type_name(value)} {value!r}"[:300])
        return value

    def side(self, value: Any, key: str) -> int:
        if self.typed(value, int, key, "a positive integer") < 1:
            raise self.fail(key, f"expected a positive integer, got {value!r}")
        return value

    def file_name(self, value: Any, key: str) -> str:
        self.typed(value, str, key, "a file name")
        if not value or Path(value).name != value or value in (".", ".."):
            raise self.fail(key, f"expected a plain file name inside the export folder, got {value!r}")
        return value


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def read_document(path: Path) -> dict[str, Any]:
    """Parse ``path`` (an ``export.json``) and :func:`validate` it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (an export folder holds {EXPORT_JSON} beside its weights)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read ({err.__class__.__name__}: {err})") from None
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    return validate(doc, path)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def validate(doc: Any, path: Path) -> dict[str, Any]:
    """Check every key of an ``export.json`` document; returns it unchanged."""
    check = _Checker(path)
    if not isinstance(doc, Mapping):
        raise UserError(f"{path}: expected a JSON object at the top level, got {_type_name(doc)}")
    if doc.get("format") != EXPORT_FORMAT:
        raise check.fail("format", f"expected {EXPORT_FORMAT!r} (written by `stargan export`), "
                                   f"got {doc.get('format')!r}")
    version = check.typed(doc.get("format_version"), int, "format_version", "an integer")
    if version > EXPORT_FORMAT_VERSION:
        raise check.fail("format_version", f"{version} is newer than this library understands "
                                           f"({EXPORT_FORMAT_VERSION}); upgrade the library")
    if version < 1:
        raise check.fail("format_version", f"expected 1 to {EXPORT_FORMAT_VERSION}, got {version}")
    check.keys(doc, _KEYS, "")
    for key in ("library_version", "model", "title"):
        check.typed(doc[key], str, key, "a string")
    weights = doc["weights"]
    if weights not in WEIGHT_FORMATS:
        raise check.fail("weights", f"expected one of {', '.join(WEIGHT_FORMATS)}, got {weights!r}")
    _validate_nets(check, doc["nets"], weights)
    check.typed(doc["config"], Mapping, "config", "a JSON object (the model's config)")
    check.typed(doc["extra"], Mapping, "extra", "a JSON object")
    _validate_image(check, doc["image"], doc["nets"])
    if doc["labels"] is not None:
        labels = check.keys(doc["labels"], _LABEL_KEYS, "labels")
        width = check.side(labels["width"], "labels.width")
        check.typed(labels["datasets"], list, "labels.datasets", "a list")
        vector = check.typed(labels["vector"], list, "labels.vector", "a list")
        if len(vector) != width:
            raise check.fail("labels.vector", f"has {len(vector)} entries, but labels.width is {width}")
    return dict(doc)


def _validate_nets(check: _Checker, nets: Any, weights: str) -> None:
    check.typed(nets, Mapping, "nets", "a JSON object (network name -> its file)")
    if not nets:
        raise check.fail("nets", "names no network")
    if not any(isinstance(e, Mapping) and e.get("role") == "generator" for e in nets.values()):
        raise check.fail("nets", "names no network with role 'generator'")
    files: dict[str, str] = {}
    for name, entry in nets.items():
        where = f"nets.{name}"
        if not name or "." in name:
            raise check.fail(where, "a network name must be non-empty and without '.' (it prefixes its tensors)")
        check.keys(entry, _NET_KEYS[weights], where)
        if entry["role"] not in ROLES:
            raise check.fail(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {entry['role']!r}")
        file = check.file_name(entry["file"], f"{where}.file")
        if weights == "onnx":
            if file in files:
                raise check.fail(f"{where}.file", f"{file!r} is also the file of {files[file]}")
            for key in ("inputs", "outputs"):
                names = check.typed(entry[key], list, f"{where}.{key}", "a list of names")
                if not names or not all(isinstance(n, str) and n for n in names):
                    raise check.fail(f"{where}.{key}", f"expected a non-empty list of names, got {names!r}")
        files[file] = name


def _validate_image(check: _Checker, image: Any, nets: Mapping[str, Any]) -> None:
    check.keys(image, _IMAGE_KEYS, "image")
    channels = check.typed(image["channels"], Mapping, "image.channels", "a JSON object (generator -> channels)")
    for name, entry in nets.items():
        if entry["role"] == "generator":
            if name not in channels:
                raise check.fail("image.channels", f"has no entry for the generator {name!r}")
            check.side(channels[name], f"image.channels.{name}")
    if image["layout"] != "NCHW":
        raise check.fail("image.layout", f"expected 'NCHW', got {image['layout']!r}")
    for key in ("mean", "std"):
        value = check.typed(image[key], (int, float), f"image.{key}", "a number")
        if not math.isfinite(value):
            raise check.fail(f"image.{key}", f"expected a finite number, got {value!r}")
    value_range = check.typed(image["range"], list, "image.range", "a list [low, high]")
    if len(value_range) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range):
        raise check.fail("image.range", f"expected two numbers [low, high], got {value_range!r}")
    for key in ("multiple", "min_side", "train_size"):
        check.side(image[key], f"image.{key}")
