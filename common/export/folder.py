"""Export folders on disk: written atomically (a temp folder renamed into place), read back without pickle.

A safetensors export holds one file per role (``generator.safetensors``, ``classifier.safetensors``) whose
tensors are named ``<network>.<state_dict key>``, plus ``export.json`` (:mod:`common.export.schema`).
"""
from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from common.errors import UserError
from common.export.schema import EXPORT_JSON, read_document
from common.files import fsync_dir, write_failure

# The file each role's networks go to in a safetensors export.
SAFETENSORS_FILES = {"generator": "generator.safetensors", "classifier": "classifier.safetensors"}


@dataclass
class ExportedModel:
    """What a safetensors export gives back: the parts of an inference checkpoint."""

    model: str
    library_version: str
    config: dict[str, Any]
    extra: dict[str, Any]
    nets: dict[str, dict[str, torch.Tensor]]


def is_export(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and (Path(path) / EXPORT_JSON).is_file()


def check_destination(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that would lose files: a file, or a folder with anything in it, unless ``overwrite``
    and the folder is an earlier export (never an arbitrary folder)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; choose a folder name")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise UserError(f"--out {out}: exists and is not empty; choose a new folder, or pass --overwrite to "
                        "replace an earlier export there")
    if not is_export(out):
        raise UserError(f"--out {out}: holds files but no {EXPORT_JSON}; --overwrite only replaces an earlier "
                        "export, choose another folder")
    # Replacing the folder would take everything in it: only an export's own files may go.
    own = {EXPORT_JSON, *(entry["file"] for entry in read_document(out / EXPORT_JSON)["nets"].values())}
    others = sorted(p.name for p in out.iterdir() if p.name not in own)
    if others:
        raise UserError(f"--out {out}: holds files that are not part of its export ({', '.join(others[:3])}"
                        f"{' ...' if len(others) > 3 else ''}); --overwrite replaces only an export's own files: "
                        "move them, or choose another folder")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_folder(out: str | os.PathLike, files: Mapping[str, Callable[[Path], None]], overwrite: bool) -> Path:
    """Write ``files`` (name -> ``write(path)``, in order) into a temp folder beside ``out``, then put it in
    place of ``out`` with renames: a crash or a full disk leaves the previous ``out`` (or nothing), never a
    half-written export. See :func:`check_destination` for what may be replaced."""
    out = Path(out)
    check_destination(out, overwrite)
    token = secrets.token_hex(4)
    tmp = out.parent / f".{out.name}.{token}.tmp"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()  # not mkdtemp: the folder gets the permissions of any other folder the user makes
        for name, write in files.items():
            write(tmp / name)
            _fsync_file(tmp / name)
        fsync_dir(tmp)
        if out.is_dir() and any(out.iterdir()):
            old = out.parent / f".{out.name}.{token}.old"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)  # onto a missing or empty folder
        fsync_dir(out.parent)
    except OSError as err:
        failure = write_failure(out, err)
        shutil.rmtree(tmp, ignore_errors=True)
        raise failure from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def save_safetensors(states: Mapping[str, Mapping[str, torch.Tensor]], path: Path) -> None:
    """The state dicts of several networks in one file, keys prefixed with the network's name."""
    tensors = {f"{name}.{key}": value.detach().cpu().contiguous()
               for name, state in states.items() for key, value in state.items()}
    # Bytes written by a plain open: safetensors' own file writer leaves the file readable by its owner only.
    path.write_bytes(save(tensors, metadata={"format": "pt"}))


def read_export(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> ExportedModel:
    """Read a safetensors export folder (``export.json`` validated, weights matched to the networks it names).
    Nothing is unpickled. Every problem is a one-line :class:`UserError` naming the file (and JSON key)."""
    path = Path(path)
    json_path = path / EXPORT_JSON
    doc = read_document(json_path)
    if doc["weights"] != "safetensors":
        raise UserError(f"{path}: is an ONNX export ({json_path} key 'weights'); translate and the editor take a "
                        "checkpoint or a safetensors export (stargan export --format safetensors); run ONNX files "
                        "with onnxruntime (docs/export.md)")
    by_file: dict[str, list[str]] = {}
    for name, entry in doc["nets"].items():
        by_file.setdefault(entry["file"], []).append(name)
    nets: dict[str, dict[str, torch.Tensor]] = {name: {} for name in doc["nets"]}
    for file, names in by_file.items():
        tensors = _load_tensors(path / file, json_path, names, map_location)
        for key, value in tensors.items():
            owner = next((name for name in names if key.startswith(f"{name}.")), None)
            if owner is None:
                raise UserError(f"{path / file}: tensor {key!r} belongs to none of the networks {json_path} assigns "
                                f"to this file ({', '.join(names)}; tensors are named NETWORK.KEY)")
            nets[owner][key[len(owner) + 1:]] = value
        for name in names:
            if not nets[name]:
                raise UserError(f"{path / file}: holds no tensors of network {name!r} (named {name}.*), which "
                                f"{json_path} key 'nets.{name}.file' places there")
    return ExportedModel(doc["model"], doc["library_version"], doc["config"], doc["extra"], nets)


def _load_tensors(file: Path, json_path: Path, names: list[str], map_location: str | torch.device
                  ) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise UserError(f"{file}: file not found (the weights of {', '.join(names)}, named by {json_path} key "
                        f"'nets.{names[0]}.file')")
    try:
        return load_file(str(file), device=str(map_location))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        detail = (str(err).strip().splitlines() or [err.__class__.__name__])[0][:200]
        raise UserError(f"{file}: not a readable safetensors file ({detail})") from None
