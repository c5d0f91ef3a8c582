"""The family registry: the one place that knows every model family (application layer).

Each family declares itself once, in its own ``family.py`` (a :class:`common.family.ModelFamily`). The CLI,
``evaluate``, ``compare`` and ``import-official`` find families here, by config, by checkpoint or by the shape
of an official state dict; no other code compares family names. A new family adds one line.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from common.checkpoint import FORMAT, safe_torch_load
from common.errors import UserError
from common.family import ModelFamily
from cyclegan.family import FAMILY as CYCLEGAN
from pix2pix.family import FAMILY as PIX2PIX
from stargan.family import FAMILY as STARGAN

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (CYCLEGAN, STARGAN, PIX2PIX)}


def config_classes() -> dict[str, type]:
    """``model:`` value -> typed config class, for :func:`common.config.load_config`."""
    return {name: f.config_class for name, f in FAMILIES.items()}


def family_named(name: Any, where: str) -> ModelFamily:
    if name not in FAMILIES:
        raise UserError(f"{where}: unknown model family {name!r}; valid values: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_of_config(cfg: Any) -> ModelFamily:
    return family_named(getattr(cfg, "model", None), "config key 'model'")


def family_of_checkpoint(ckpt: Mapping[str, Any], source: str) -> ModelFamily:
    return family_named(ckpt.get("model"), f"{source}: checkpoint field 'model'")


def _official_keys(raw: Any) -> frozenset[str]:
    """Keys of an official state dict (``module.`` segments removed), also when nested one or two levels
    under ``state_dict``/``model`` as some training scripts save them."""
    for _ in range(3):
        if not isinstance(raw, Mapping):
            return frozenset()
        inner = next((raw[k] for k in ("state_dict", "model") if isinstance(raw.get(k), Mapping)), None)
        if inner is None:
            break
        raw = inner
    return frozenset(".".join(p for p in str(k).split(".") if p != "module") for k in raw)


def family_of_official(path: str | os.PathLike) -> ModelFamily:
    """The family whose official code wrote the checkpoint file ``path`` (read with ``weights_only=True``)."""
    raw = safe_torch_load(path)
    if isinstance(raw, Mapping) and raw.get("format") == FORMAT:
        raise UserError(f"{path}: is already a checkpoint of this library; use it directly, no import needed")
    keys = _official_keys(raw)
    for family in FAMILIES.values():
        if family.is_official(keys):
            return family
    expected = "; ".join(f"{f.title}: {f.official_hint}" for f in FAMILIES.values())
    raise UserError(f"{path}: not a checkpoint of a known official implementation (expected {expected})")
