"""The dataset folder's layout: the names of what :func:`~common.data.shapes.make_dataset` writes, its marker
file, and reading a finished dataset back (schema, scene parameters, counterfactual index)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from common.data.shapes.scene import ShapesParams
from common.errors import UserError
from common.files import read_json_or_none

FORMAT = "stargan-shapes"
# 2: list_attr_celeba.txt also has the nuisance columns, attributes.json "nuisance" and "nuisance_exclusive".
# Version 1 datasets are still read; they have no nuisance attributes.
FORMAT_VERSION = 2
SCHEMA_FILE = "attributes.json"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
TEST_FILES = "test_files.txt"
PARAMS_FILE = "params.json"
IMAGES_DIR = "images"
CF_DIR = "counterfactuals"
CF_INDEX = "index.json"
CYCLEGAN_DIR = "cyclegan"
PAIRED_DIR = "paired"
# The entries the generator owns: deleted and rewritten when a shapes dataset folder is regenerated.
OWNED = (SCHEMA_FILE, ATTR_FILE, PARTITION_FILE, TEST_FILES, PARAMS_FILE, IMAGES_DIR, CF_DIR, CYCLEGAN_DIR,
         PAIRED_DIR)


def read_marker(out: Path) -> dict[str, Any] | None:
    """The schema file's contents if it marks ``out`` as a shapes dataset (complete or not), else None."""
    meta = read_json_or_none(out / SCHEMA_FILE)
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def require_dataset(out: Path) -> dict[str, Any]:
    """The schema file's contents of a complete shapes dataset; UserError otherwise."""
    meta = read_marker(out)
    if meta is None:
        raise UserError(f"{out}: not a shapes dataset (missing or invalid {SCHEMA_FILE}); run make-dataset first")
    if not meta.get("complete"):
        raise UserError(f"{out}: the shapes dataset is incomplete (generation was interrupted); regenerate it")
    return meta


def read_test_files(out: Path, meta: dict[str, Any]) -> set[str]:
    """The file names of the dataset's fixed test split (``meta``: its schema file's contents)."""
    try:
        return set((out / meta["test_files"]).read_text(encoding="utf-8").split())
    except OSError:
        raise UserError(f"{out / meta['test_files']}: missing test split file") from None


def load_schema(out: str | os.PathLike) -> dict[str, Any]:
    """``{"attrs": [...], "exclusive": [[...]]}`` of a dataset folder, e.g. to build a label schema."""
    meta = require_dataset(Path(out))
    return {"attrs": list(meta["attrs"]), "exclusive": [list(g) for g in meta["exclusive"]]}


def load_nuisance(out: str | os.PathLike) -> dict[str, Any] | None:
    """``{"attrs": [...], "exclusive": {group: [members]}}`` of the nuisance attributes a dataset folder declares
    (columns of its attribute file after the conditioned ones), or None for a dataset made before they existed
    (format version 1)."""
    out = Path(out)
    meta = require_dataset(out)
    if "nuisance" not in meta:
        return None
    attrs, groups = meta["nuisance"], meta.get("nuisance_exclusive") or {}
    if not isinstance(attrs, list) or not isinstance(groups, dict) or not all(
            isinstance(v, list) for v in groups.values()):
        raise UserError(f"{out / SCHEMA_FILE}: malformed nuisance attributes (expected \"nuisance\": a list and "
                        f"\"nuisance_exclusive\": a mapping of group name to members)")
    return {"attrs": list(attrs), "exclusive": {str(k): list(v) for k, v in groups.items()}}


def load_params(out: str | os.PathLike) -> dict[str, ShapesParams]:
    """File name -> :class:`ShapesParams` for every image, e.g. to compute object masks in metrics."""
    out = Path(out)
    meta = require_dataset(out)
    path = out / meta["params"]
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {f: ShapesParams.from_dict(d) for f, d in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: missing or malformed scene parameters ({e})") from None


def load_counterfactuals(out: str | os.PathLike) -> dict[str, Any]:
    """The ground-truth counterfactuals of the test split, with absolute paths::

        {"attrs": [...], "exclusive": [[...]],
         "items": {stem: {"source": Path, "label": [0/1 ...],
                          "targets": {attr: {"path": Path, "label": [0/1 ...]}}}}}

    Labels follow ``attrs`` order. Only real changes are listed: an image's own colour has no target.
    """
    out = Path(out)
    meta = require_dataset(out)
    path = out / meta["counterfactuals"]
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        items = {
            stem: {
                "source": out / e["source"],
                "label": list(e["label"]),
                "targets": {
                    attr: {"path": out / t["path"], "label": list(t["label"])} for attr, t in e["targets"].items()
                },
            }
            for stem, e in raw["items"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: missing or malformed counterfactual index ({e})") from None
    return {"attrs": list(meta["attrs"]), "exclusive": [list(g) for g in meta["exclusive"]], "items": items}
