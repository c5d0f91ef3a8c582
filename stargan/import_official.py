"""Reading StarGAN v1 checkpoints written by the official code (``{iter}-G.ckpt``, ``{iter}-D.ckpt``).

Official files are bare ``state_dict`` s whose keys already match :mod:`stargan.networks`; converting them
means stripping ``module.`` prefixes (DataParallel) and dropping the InstanceNorm running-stat buffers, which
the official code never used (it never calls ``eval()``). The architecture is inferred from tensor shapes,
then the result is checked key-by-key against a freshly built network, so anything that would not load
``strict=True`` is reported as a one-line :class:`~common.errors.UserError` instead of a PyTorch traceback.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from common.checkpoint import new_checkpoint, safe_torch_load
from common.config import from_dict, to_dict
from common.errors import UserError
from common.labels.schema import LabelSchema
from common.labels.space import LabelSpace
from stargan.config import StarGANConfig
from stargan.networks import Discriminator, Generator

_STALE_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
# Official G: Conv7/IN/ReLU, then two [Conv4 s2, IN, ReLU]; residual blocks start at this Sequential index.
_FIRST_BLOCK = 9
_G_BLOCK = re.compile(r"main\.(\d+)\.main\.0\.weight")
_D_CONV = re.compile(r"main\.(\d+)\.weight")


def _strip_prefix(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module."):]
    return key


def _clean(sd: Any, source: str) -> dict[str, Tensor]:
    """Bare tensor mapping with DataParallel prefixes stripped and stale norm buffers dropped."""
    if not isinstance(sd, Mapping):
        raise UserError(f"{source}: not a state_dict (found {type(sd).__name__}, expected a dict of tensors)")
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            hint = ""
            if key in ("nets", "config", "state_dict", "model"):
                hint = "; it looks like a wrapped checkpoint, not an official StarGAN file"
            raise UserError(f"{source}: not a bare state_dict (entry {key!r} is {type(value).__name__}, "
                            f"expected tensors only{hint})")
        key = _strip_prefix(key)
        if key.rsplit(".", 1)[-1] in _STALE_BUFFERS:
            continue
        out[key] = value
    if not out:
        raise UserError(f"{source}: empty state_dict (expected StarGAN weights)")
    return out


def _shape(sd: Mapping[str, Tensor], key: str) -> tuple[int, ...] | None:
    t = sd.get(key)
    return tuple(t.shape) if t is not None else None


def _guess_kind(sd: Mapping[str, Tensor]) -> str:
    if "conv1.weight" in sd and "conv2.weight" in sd:
        return "it looks like a StarGAN discriminator (has conv1/conv2 heads)"
    if any(k.startswith("model.") for k in sd):
        return "it looks like a CycleGAN/pix2pix network (model.* keys)"
    if "main.0.weight" in sd and any(_G_BLOCK.fullmatch(k) for k in sd):
        return "it looks like a StarGAN generator (has residual blocks)"
    return f"first keys: {', '.join(list(sd)[:3])}"


def _check_against(sd: dict[str, Tensor], net: torch.nn.Module, source: str, what: str, arch: dict) -> None:
    """Reject anything that would not ``load_state_dict(strict=True)`` into ``net``, naming the first problem."""
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    arch_text = ", ".join(f"{k}={v}" for k, v in arch.items())
    if missing:
        raise UserError(f"{source}: unrecognised StarGAN {what} layout (inferred {arch_text}): missing "
                        f"{len(missing)} key(s), first {missing[0]!r}")
    if unexpected:
        raise UserError(f"{source}: unrecognised StarGAN {what} layout (inferred {arch_text}): "
                        f"{len(unexpected)} unexpected key(s), first {unexpected[0]!r}")
    if wrong:
        k = wrong[0]
        raise UserError(f"{source}: unrecognised StarGAN {what} layout (inferred {arch_text}): {k!r} has shape "
                        f"{tuple(sd[k].shape)}, expected {expected[k]}")
    not_float = [k for k, v in sd.items() if not v.is_floating_point()]
    if not_float:
        raise UserError(f"{source}: {not_float[0]!r} has dtype {sd[not_float[0]].dtype}, expected floating point")


def convert_official_generator(sd: Mapping[str, Any], source: str = "state_dict") -> tuple[dict[str, Tensor], dict]:
    """Official StarGAN ``G`` state_dict -> ``(our_state_dict, arch)``.

    ``arch`` is ``dict(c_dim, conv_dim, repeat_num)``, inferred from ``main.0.weight`` (shape
    ``(conv_dim, 3 + c_dim, 7, 7)``) and the number of residual blocks; ``Generator(**arch)`` loads the
    result with ``strict=True``. ``source`` names the file in error messages.
    """
    sd = _clean(sd, source)
    first = _shape(sd, "main.0.weight")
    if first is None or len(first) != 4 or first[2:] != (7, 7) or first[1] <= 3 or "conv1.weight" in sd:
        raise UserError(f"{source}: unrecognised StarGAN generator layout: expected 'main.0.weight' of shape "
                        f"(conv_dim, 3 + c_dim, 7, 7), found {first}; {_guess_kind(sd)}")
    blocks = sorted(int(m.group(1)) for k in sd if (m := _G_BLOCK.fullmatch(k)))
    if blocks != list(range(_FIRST_BLOCK, _FIRST_BLOCK + len(blocks))):
        raise UserError(f"{source}: unrecognised StarGAN generator layout: residual blocks at main.{blocks}, "
                        f"expected consecutive indices from main.{_FIRST_BLOCK}")
    arch = {"c_dim": first[1] - 3, "conv_dim": first[0], "repeat_num": len(blocks)}
    with torch.device("meta"):  # shapes only: no memory, no init cost
        reference = Generator(**arch)
    _check_against(sd, reference, source, "generator", arch)
    return sd, arch


def convert_official_discriminator(sd: Mapping[str, Any],
                                   source: str = "state_dict") -> tuple[dict[str, Tensor], dict]:
    """Official StarGAN ``D`` state_dict -> ``(our_state_dict, arch)``.

    ``arch`` is ``dict(image_size, conv_dim, c_dim, repeat_num)``: ``repeat_num`` counts the stride-2 convs,
    ``c_dim`` is the class head's output count and ``image_size = conv2 kernel * 2**repeat_num`` (the class
    head covers the whole final map). ``Discriminator(**arch)`` loads the result with ``strict=True``.
    """
    sd = _clean(sd, source)
    first, src, cls = _shape(sd, "main.0.weight"), _shape(sd, "conv1.weight"), _shape(sd, "conv2.weight")
    if (first is None or len(first) != 4 or first[1] != 3 or src is None or cls is None or len(cls) != 4
            or cls[2] != cls[3]):
        raise UserError(f"{source}: unrecognised StarGAN discriminator layout: expected 'main.0.weight' "
                        f"(conv_dim, 3, 4, 4), 'conv1.weight' and a square 'conv2.weight'; {_guess_kind(sd)}")
    repeat_num = sum(1 for k in sd if _D_CONV.fullmatch(k))
    arch = {"image_size": cls[2] * 2 ** repeat_num, "conv_dim": first[0], "c_dim": cls[0], "repeat_num": repeat_num}
    with torch.device("meta"):
        reference = Discriminator(**arch)
    _check_against(sd, reference, source, "discriminator", arch)
    return sd, arch


def _mask_size(g_arch: dict, d_arch: dict, g_path: Path, d_path: Path) -> int:
    """Datasets in the mask vector: 0 for a single-dataset model, N >= 2 when G gets N extra mask labels."""
    g_c, d_c = g_arch["c_dim"], d_arch["c_dim"]
    n_mask = g_c - d_c
    if n_mask == 0 or (n_mask >= 2 and d_c >= n_mask):
        return n_mask
    raise UserError(f"{d_path}: D has {d_c} class logits but {g_path.name} G takes {g_c} labels; expected "
                    f"equal sizes, or G = D + N for a mask model over N >= 2 datasets (e.g. G 15, D 13)")


def load_official_stargan(g_path: str | os.PathLike) -> dict[str, Any]:
    """Read an official ``{iter}-G.ckpt`` and, when it lies beside it, the matching ``{iter}-D.ckpt``.

    Files are read with ``torch.load(map_location='cpu', weights_only=True)``; a file that pickles whole
    objects is refused, never loaded unsafely. Returns ``{'G': (sd, arch), 'D': (sd, arch) or None,
    'n_mask': int or None, 'G_path': Path, 'D_path': Path or None}`` where ``n_mask`` is the number of
    datasets in the mask vector (``G c_dim - D c_dim``; 0 = single dataset; None when there is no D to tell).
    Any problem raises a one-line :class:`UserError` naming the file.
    """
    g_path = Path(g_path)
    if not g_path.is_file():
        raise UserError(f"{g_path}: file not found (expected an official StarGAN generator, e.g. 200000-G.ckpt)")
    g_sd, g_arch = convert_official_generator(safe_torch_load(g_path), source=str(g_path))
    result: dict[str, Any] = {"G": (g_sd, g_arch), "D": None, "n_mask": None, "G_path": g_path, "D_path": None}

    if g_path.name.endswith("-G.ckpt"):
        d_path = g_path.with_name(g_path.name[: -len("-G.ckpt")] + "-D.ckpt")
        if d_path.is_file():
            d_sd, d_arch = convert_official_discriminator(safe_torch_load(d_path), source=str(d_path))
            result.update(D=(d_sd, d_arch), D_path=d_path, n_mask=_mask_size(g_arch, d_arch, g_path, d_path))
    return result


def convert_to_checkpoint(g_path: str | os.PathLike, attrs: str | None = None, exclusive: tuple[str, ...] = (),
                          dataset_sizes: str | None = None, dataset_names: str | None = None) -> tuple[dict, str]:
    """An inference checkpoint of this library from official ``{iter}-G.ckpt`` (+ ``-D.ckpt`` beside it).

    The label vector gets names from ``attrs`` (default ``attr_0``...) and exclusive groups from ``exclusive``
    (comma-separated members each). Mask-vector models split it into per-dataset blocks given by
    ``dataset_sizes`` ("5,8"); with two datasets and a D the split cannot be inferred, so it is required.
    """
    loaded = load_official_stargan(g_path)
    g_sd, g_arch = loaded["G"]
    d_part = loaded["D"]
    n_mask = loaded["n_mask"] or 0
    where = str(g_path)
    if dataset_sizes:
        try:
            sizes = [int(x) for x in dataset_sizes.split(",")]
        except ValueError:
            raise UserError(f"--datasets {dataset_sizes!r}: expected comma-separated integers such as 5,8") from None
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise UserError(f"--datasets {dataset_sizes!r}: a mask-vector model has at least 2 positive block sizes")
        if sum(sizes) + len(sizes) != g_arch["c_dim"]:
            raise UserError(f"--datasets {dataset_sizes!r}: blocks {sum(sizes)} + mask {len(sizes)} != the "
                            f"generator's label size {g_arch['c_dim']} ({where})")
        if n_mask and n_mask != len(sizes):
            raise UserError(f"--datasets {dataset_sizes!r}: {len(sizes)} datasets, but G and D imply {n_mask}")
    elif n_mask >= 2:
        raise UserError(f"{where}: a mask-vector model ({n_mask} datasets, {g_arch['c_dim'] - n_mask} labels); "
                        "pass --datasets with the label block sizes, e.g. --datasets 5,8 for CelebA+RaFD")
    else:
        sizes = [g_arch["c_dim"]]
    label_dim = sum(sizes)
    names = [a.strip() for a in attrs.split(",")] if attrs else [f"attr_{i}" for i in range(label_dim)]
    if len(names) != label_dim:
        raise UserError(f"--attrs: {len(names)} names given, but the model has {label_dim} labels (mask excluded)")
    groups = [[m.strip() for m in g.split(",")] for g in exclusive]
    if dataset_names:
        ds_names = [n.strip() for n in dataset_names.split(",")]
        if len(ds_names) != len(sizes):
            raise UserError(f"--dataset-names: {len(ds_names)} names for {len(sizes)} datasets")
    else:
        ds_names = [f"dataset{i}" for i in range(len(sizes))] if len(sizes) > 1 else ["dataset"]
    schemas, start = [], 0
    for size in sizes:
        block = names[start:start + size]
        block_groups = [g for g in groups if all(m in block for m in g)]
        stray = [g for g in groups if any(m in block for m in g) and g not in block_groups]
        if stray:
            raise UserError(f"--exclusive {','.join(stray[0])}: members must belong to one dataset's block")
        try:
            schemas.append(LabelSchema.from_attrs(block, block_groups))
        except ValueError as err:
            raise UserError(f"--attrs/--exclusive: {err}") from None
        start += size
    unknown = [m for g in groups for m in g if m not in names]
    if unknown:
        raise UserError(f"--exclusive: {', '.join(unknown)} not in --attrs ({', '.join(names)})")
    labels = LabelSpace(ds_names, schemas)
    image_size = d_part[1]["image_size"] if d_part else 128
    data = {
        "image_size": image_size,
        "datasets": [{"name": n, "format": "celeba", "selected_attrs": list(s.names),
                      "exclusive": [list(g.names) for g in s.groups if g.kind == "exclusive"]}
                     for n, s in zip(ds_names, schemas)],
    }
    network = {"g_conv_dim": g_arch["conv_dim"], "g_repeat_num": g_arch["repeat_num"]}
    if d_part:
        network.update(d_conv_dim=d_part[1]["conv_dim"], d_repeat_num=d_part[1]["repeat_num"])
    cfg = from_dict(StarGANConfig, {"name": Path(g_path).stem, "data": data, "network": network}, source=where)
    nets = {"G": g_sd}
    if d_part:
        nets["D"] = d_part[0]
    ckpt = new_checkpoint(cfg.model, to_dict(cfg), nets, kind="inference",
                          extra={"labels": labels.to_dict(), "imported_from": where})
    summary = (f"StarGAN conv_dim={g_arch['conv_dim']} labels={label_dim}"
               + (f" mask={len(sizes)} datasets {dict(zip(ds_names, sizes))}" if len(sizes) > 1 else "")
               + (f" with D (image_size {image_size})" if d_part else " without D"))
    return ckpt, summary
