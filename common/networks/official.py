"""Recognising generators saved by the official pytorch-CycleGAN-and-pix2pix code (junyanz), which CycleGAN
and pix2pix share.

Our networks use the official module names, so conversion is mostly *recognition*: infer the architecture
(ResNet 6/9 blocks or U-Net 128/256, ngf, norm, dropout layout, channel counts) from the tensors alone, strip
DataParallel ``module.`` segments, and drop the InstanceNorm running statistics that pre-0.4 PyTorch wrote.
The result loads with ``strict=True`` into ``define_generator(**arch)``; anything else is a one-line
:class:`~common.errors.UserError`. Each family turns the result into its own checkpoint.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from common.checkpoint import FORMAT, safe_torch_load
from common.errors import UserError
from common.networks.factory import define_generator

_STAT_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
_RESNET_ARCHS = {9: "resnet_9blocks", 6: "resnet_6blocks"}
_UNET_ARCHS = {7: "unet_128", 8: "unet_256"}
_BLOCK_RE = re.compile(r"^model\.(\d+)\.conv_block\.")
# Where the ResNet's residual blocks start in ``model``: pad, conv, norm, ReLU, then 2 x (conv, norm, ReLU).
_FIRST_BLOCK = 10
_EXPECTED = (
    "expected an official CycleGAN/pix2pix generator state_dict (ResNet keys 'model.1.weight', "
    "'model.10.conv_block.1.weight', ...; U-Net keys 'model.model.0.weight', 'model.model.1.model.1.weight', ...)"
)


def _strip_module(key: str) -> str:
    # DataParallel/DDP wrappers insert a 'module' path segment wherever a user wrapped a (sub)module; the
    # official networks have no submodule of that name, so every such segment is a wrapper artefact.
    return ".".join(part for part in key.split(".") if part != "module")


def _unwrap(obj: Any, source: str) -> Mapping[str, Any]:
    """The state dict inside ``obj``: the mapping itself or one nested under 'state_dict' / 'model'."""
    for _ in range(3):
        if not isinstance(obj, Mapping):
            break
        if isinstance(obj.get("format"), str) and obj["format"] == FORMAT:
            raise UserError(f"{source}: is already a checkpoint of this library; use it directly, no import needed")
        inner = next((obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise UserError(f"{source}: holds a {type(obj).__name__}, not a state_dict; {_EXPECTED}")
    return obj


def _clean_keys(state_dict: Mapping[str, Any], source: str) -> dict[str, Tensor]:
    cleaned: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise UserError(
                f"{source}: not a state_dict (entry {key!r} is a {type(value).__name__}, not a tensor); {_EXPECTED}"
            )
        new_key = _strip_module(key)
        if new_key in cleaned:
            raise UserError(f"{source}: keys {key!r} and another one both mean {new_key!r} after removing 'module.'")
        cleaned[new_key] = value
    if not cleaned:
        raise UserError(f"{source}: the state_dict is empty; {_EXPECTED}")
    return cleaned


def _norm_of(sd: Mapping[str, Tensor], first_conv: str, first_norm: str) -> str:
    """BatchNorm leaves weights on the norm layer; InstanceNorm (no affine) leaves a bias on the conv instead."""
    if f"{first_norm}.weight" in sd:
        return "batch"
    if f"{first_conv}.bias" in sd:
        return "instance"
    return "none"


def _conv_weight(sd: Mapping[str, Tensor], key: str, source: str) -> Tensor:
    weight = sd.get(key)
    if weight is None or weight.dim() != 4:
        raise UserError(f"{source}: unrecognised layout: no 4-d conv weight {key!r}; {_EXPECTED}")
    return weight


def _infer_resnet(sd: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    first = _conv_weight(sd, "model.1.weight", source)
    blocks = sorted({int(m.group(1)) for key in sd if (m := _BLOCK_RE.match(key))})
    n_blocks = len(blocks)
    if blocks != list(range(_FIRST_BLOCK, _FIRST_BLOCK + n_blocks)) or n_blocks not in _RESNET_ARCHS:
        raise UserError(
            f"{source}: unrecognised ResNet generator: residual blocks at model indices {blocks or 'none'}; "
            f"expected 9 (model.10-18, resnet_9blocks) or 6 (model.10-15, resnet_6blocks)"
        )
    # The Dropout module takes an index in each block, so the second conv moves from conv_block.5 to .6
    # (with BatchNorm, conv_block.6 also exists without dropout, but then it is a 1-d norm weight).
    second = sd.get(f"model.{_FIRST_BLOCK}.conv_block.6.weight")
    dropout = second is not None and second.dim() == 4
    # After the blocks: 2 x (convT, norm, ReLU), pad, last conv.
    last = _conv_weight(sd, f"model.{_FIRST_BLOCK + n_blocks + 7}.weight", source)
    return dict(
        arch=_RESNET_ARCHS[n_blocks], ngf=first.shape[0], norm=_norm_of(sd, "model.1", "model.2"),
        dropout=dropout, in_channels=first.shape[1], out_channels=last.shape[0],
    )


def _infer_unet(sd: Mapping[str, Tensor], source: str, unet_dropout: bool) -> dict[str, Any]:
    first = _conv_weight(sd, "model.model.0.weight", source)
    last = _conv_weight(sd, "model.model.3.weight", source)  # ConvTranspose2d weight: (in, out, k, k)
    # Each level's submodule sits at index 1 (outermost) or 3 (the others) of its ``model`` Sequential.
    depth, prefix = 1, "model.model.1"
    while any(key.startswith(f"{prefix}.model.") for key in sd):
        depth, prefix = depth + 1, f"{prefix}.model.3"
    if depth not in _UNET_ARCHS:
        raise UserError(
            f"{source}: unrecognised U-Net generator with {depth} levels; expected 7 (unet_128) or 8 (unet_256)"
        )
    return dict(
        arch=_UNET_ARCHS[depth], ngf=first.shape[0], norm=_norm_of(sd, "model.model.0", "model.model.1.model.2"),
        dropout=unet_dropout, in_channels=first.shape[1], out_channels=last.shape[1],
    )


def _describe(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return f"{shown}{f' (+{len(keys) - limit} more)' if len(keys) > limit else ''}"


def convert_official_generator(
    state_dict: Mapping[str, Tensor], *, source: str = "state_dict", unet_dropout: bool = True
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(our_state_dict, arch)`` for an official generator state_dict; ``define_generator(**arch)`` loads it.

    ``arch`` has ``arch``, ``ngf``, ``norm``, ``dropout``, ``in_channels``, ``out_channels``. For ResNets the
    dropout flag is read from the key layout. U-Net dropout leaves no trace in the keys (the Dropout module is
    last in its block), so ``unet_dropout`` supplies it; its default is pix2pix's default (dropout on).
    ``source`` names the input in error messages. Raises :class:`UserError` for anything unrecognised.
    """
    sd = _clean_keys(_unwrap(state_dict, source), source)
    if "model.model.0.weight" in sd:
        arch = _infer_unet(sd, source, unet_dropout)
    elif "model.1.weight" in sd:
        arch = _infer_resnet(sd, source)
    else:
        hint = ""
        if "model.0.weight" in sd or "net.0.weight" in sd:
            hint = " (it looks like a discriminator, net_D)"
        raise UserError(f"{source}: unrecognised layout{hint}: found {_describe(sorted(sd))}; {_EXPECTED}")

    if arch["norm"] == "instance":
        # Pre-0.4 PyTorch saved running stats for InstanceNorm; the official code never used them at test time.
        sd = {k: v for k, v in sd.items() if not k.endswith(_STAT_SUFFIXES)}

    with torch.device("meta"):  # shapes only: no memory, no init cost even for the 54M-parameter U-Net
        reference = define_generator(**arch, init_type=None).state_dict()
    if arch["norm"] == "batch":
        # Files from before PyTorch 0.4.1 lack the batch counter; it only matters for momentum=None.
        for key in reference:
            if key.endswith(".num_batches_tracked") and key not in sd:
                sd[key] = torch.tensor(0, dtype=torch.long)

    missing = [k for k in reference if k not in sd]
    unexpected = sorted(k for k in sd if k not in reference)
    wrong = [k for k in reference if k in sd and sd[k].shape != reference[k].shape]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"missing {_describe(missing)}")
        if unexpected:
            problems.append(f"unexpected {_describe(unexpected)}")
        if wrong:
            k = wrong[0]
            problems.append(f"{len(wrong)} shape mismatch(es), e.g. {k!r} {tuple(sd[k].shape)} "
                            f"vs {tuple(reference[k].shape)}")
        raise UserError(
            f"{source}: looks like {arch['arch']} (ngf={arch['ngf']}, norm={arch['norm']}) but does not match "
            f"its official layout: {'; '.join(problems)}"
        )
    return OrderedDict((k, sd[k]) for k in reference), arch


def load_official_generator(
    path: str | os.PathLike, *, unet_dropout: bool = True
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read an official generator file (``latest_net_G_A.pth``, ``horse2zebra.pth``, ...) safely and convert it.

    Loading is ``torch.load(..., map_location='cpu', weights_only=True)`` only: a file that pickles a whole
    model object is refused with a :class:`UserError`, never unpickled unsafely. A dict wrapping the state dict
    under ``'state_dict'`` or ``'model'`` is accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found (expected an official CycleGAN/pix2pix generator .pth file)")
    obj = safe_torch_load(path, map_location="cpu")
    return convert_official_generator(obj, source=str(path), unet_dropout=unet_dropout)


def has_batch_norm_stats(keys: Iterable[str]) -> bool:
    """Whether state_dict ``keys`` hold batch-norm layers: running statistics beside an affine weight. The
    official pix2pix generators have them (batch norm is its default); CycleGAN's InstanceNorm has no affine
    weight, and the only statistics it leaves are pre-0.4 leftovers without one."""
    keys = set(keys)
    return any(key.endswith(".running_mean") and key.removesuffix("running_mean") + "weight" in keys
               for key in keys)
