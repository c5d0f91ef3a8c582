"""Checkpoints: the complete training state, written atomically, read with ``weights_only=True``.

Layout of a training checkpoint (plain containers of tensors and numbers only, so the safe loader reads it)::

    {"format": "stargan-lib", "format_version": 1, "library_version": str, "model": "cyclegan"|"stargan",
     "kind": "training"|"inference", "config": dict, "nets": {name: state_dict},
     "optimizers": {...}, "schedulers": {...}, "pools": {...}, "scalers": {...},
     "counters": {"epoch", "epoch_step", "global_step", "images_seen"}, "rng": {...}, "extra": {...}}

A run folder keeps ``checkpoints/latest.pt``, the last state written, and ``checkpoints/ckpt-<step>.pt`` (the
last N), hard links (or copies) of the same files. ``latest.pt`` is written first and the numbered name linked
to it after, so ``latest.pt`` is always the newest state by write order, which is what a resume takes; step
numbers alone could point at a later step of an abandoned continuation. Every file is first written to a
temporary name and then ``os.replace``-d, so a crash at any moment leaves either the old or the new file,
never a torn one. Checkpoints get the permissions of any other file the run writes (0644 under umask 022).
"""
from __future__ import annotations

import filecmp
import logging
import os
import pickle
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from common.errors import UserError
from common.export.folder import is_export, read_export
from common.export.schema import EXPORT_JSON
from common.files import atomic_writer, fsync_dir, link_or_copy, replace_with_link, write_failure
from common.runs import CHECKPOINTS_DIR, LATEST
from common.version import __version__

FORMAT = "stargan-lib"
FORMAT_VERSION = 1
_CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")
# Where a resume from an older checkpoint moves what a previous continuation wrote after it.
ABANDONED_PREFIX = "abandoned-"
# Sections every checkpoint has, and those a training run needs on top to resume.
REQUIRED_SECTIONS = ("config", "nets")
TRAINING_SECTIONS = ("optimizers", "schedulers", "pools", "counters", "rng")
# How torch.save reports a failed write of its zip archive (a full disk: "[enforce fail at
# inline_container.cc:672] unexpected pos"); other RuntimeErrors are the saved object's own.
_ARCHIVE_WRITE_FAILED = re.compile(r"inline_container|PytorchStreamWriter|unexpected pos|file write failed")
# How weights_only refuses a pickle that could run code: "Unsupported global: GLOBAL x.Y was not an allowed
# global", "unsupported GLOBAL posix.system whose module posix is blocked", a call or object of no allowed type.
_UNSAFE_GLOBAL = re.compile(r"\bGLOBAL ([\w.]+)")
_UNSAFE_CALL = re.compile(r"call reduce for unrecognized function|Can only create new object")

log = logging.getLogger(__name__)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync it, then ``os.replace`` it into place (with the
    permissions a plain ``open`` would give). A failed write (full disk, folder not writable) is a one-line
    :class:`UserError` and leaves the previous ``path`` as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_failure(path, err) from None
    with atomic_writer(path, binary=True, fsync=True) as handle:
        try:
            torch.save(obj, handle)
        except RuntimeError as err:
            if _ARCHIVE_WRITE_FAILED.search(str(err)):
                raise write_failure(path, err) from None  # inside: the partial file still takes its space
            raise
    return path


def new_checkpoint(model: str, config: dict, nets: dict, kind: str = "training", **parts: Any) -> dict:
    """Assemble a checkpoint dict with the format header; ``parts`` are the remaining top-level sections."""
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "model": model,
        "kind": kind,
        "config": config,
        "nets": nets,
    }
    ckpt.update(parts)
    return ckpt


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line UserErrors. Never falls back to unsafe unpickling:
    a file that pickles classes or functions (a whole ``nn.Module``, or code such as ``os.system``) is refused
    as unsafe, with what it pickles named."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        match = _UNSAFE_GLOBAL.search(text)
        if match or _UNSAFE_CALL.search(text):
            what = match.group(1) if match else "objects other than tensors and plain containers"
            raise UserError(
                f"{path}: refused to load: it pickles {what}, which is unsafe to unpickle (it can run code); "
                "loading uses weights_only=True, save a state_dict instead of a whole object"
            ) from None
        raise UserError(f"{path}: not a readable PyTorch file (corrupt or not a torch.save file)") from None
    except Exception as err:  # torn/garbage files fail in many ways inside the loader
        detail = str(err).splitlines()[0][:160] if str(err).strip() else "truncated or corrupt"
        raise UserError(f"{path}: not a readable PyTorch file ({err.__class__.__name__}: {detail})") from None


def _check_sections(ckpt: Mapping[str, Any], sections: tuple[str, ...], path: Path) -> None:
    for key in sections:
        if key not in ckpt:
            raise UserError(f"{path}: damaged checkpoint: section {key!r} is missing "
                            f"(a checkpoint of this library has {', '.join(sections)})")
        if not isinstance(ckpt[key], (dict, list)):
            raise UserError(f"{path}: damaged checkpoint: section {key!r} is a {type(ckpt[key]).__name__}, "
                            "expected a dict")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read one of our checkpoints with ``weights_only=True``; any problem is a one-line UserError. A folder
    written by ``stargan export`` (safetensors) is read as an inference checkpoint, without pickle."""
    path = Path(path)
    if is_export(path):
        exported = read_export(path, map_location)
        ckpt = new_checkpoint(exported.model, exported.config, exported.nets, kind="inference", extra=exported.extra)
        ckpt["library_version"] = exported.library_version
        return ckpt
    if path.is_dir():
        latest = path / CHECKPOINTS_DIR / LATEST
        if not latest.is_file():
            raise UserError(f"{path}: is a folder without {CHECKPOINTS_DIR}/{LATEST} (a run folder) or {EXPORT_JSON} "
                            "(an export); pass a checkpoint file")
        path = latest
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file not found")
    ckpt = safe_torch_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(
            f"{path}: not a checkpoint of this library (expected a dict with format={FORMAT!r}); "
            "for files of the official CycleGAN/StarGAN code use `stargan import-official`"
        )
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(
            f"{path}: checkpoint format {ckpt['format_version']} is newer than this library understands "
            f"({FORMAT_VERSION}); upgrade the library"
        )
    _check_sections(ckpt, REQUIRED_SECTIONS, path)
    return ckpt


def mask_flag(mask_hard: bool) -> str:
    """The command-line flag that sets ``mask_hard``: ``--mask-hard`` or ``--mask-soft``."""
    return "--mask-hard" if mask_hard else "--mask-soft"


def mask_snap_flag(radius: int) -> str:
    """The command-line option that sets ``mask_snap_radius``, as it would be typed: ``--mask-snap 6``."""
    return f"--mask-snap {radius}"


def mask_fill_flag(fill: bool) -> str:
    """The command-line flag that sets ``mask_snap_fill``: ``--mask-fill`` or ``--no-mask-fill``."""
    return "--mask-fill" if fill else "--no-mask-fill"


def with_mask_options(ckpt: dict, mask_hard: bool | None, source: str, mask_snap: int | None = None,
                      mask_fill: bool | None = None) -> dict:
    """``ckpt`` with its config's ``network.mask_hard`` set, so that inference composes with the attention mask
    thresholded at 0.5 (True) or soft (False) whatever the run was trained with; training never thresholds, so
    the weights fit either. ``mask_snap`` sets ``network.mask_snap_radius`` (0 = off) the same way; it snaps the
    thresholded mask, so a radius > 0 needs ``mask_hard`` (given or the checkpoint's), and ``mask_hard=False``
    alone turns snapping off. ``mask_fill`` sets ``network.mask_snap_fill`` (the pixels the snap opens filled
    with their neighbours' painted colour), which needs a snap radius (given or the checkpoint's); turning the
    snap off turns it off. None for all three returns ``ckpt`` itself. A generator without an attention mask, a
    radius without the threshold, or a fill without the snap is refused (one line naming ``source``). ``ckpt``'s
    own dicts are left as they were."""
    if mask_hard is None and mask_snap is None and mask_fill is None:
        return ckpt
    flags = " ".join(f for f in (None if mask_hard is None else mask_flag(mask_hard),
                                 None if mask_snap is None else mask_snap_flag(mask_snap),
                                 None if mask_fill is None else mask_fill_flag(mask_fill)) if f)
    config = ckpt.get("config")
    network = config.get("network") if isinstance(config, dict) else None
    if not isinstance(network, dict) or not network.get("attention_mask", False):
        raise UserError(f"{source}: {flags} applies to a generator with an attention mask; this one has none (its "
                        "config's network.attention_mask is false)")
    network = dict(network)
    if mask_hard is not None:
        network["mask_hard"] = bool(mask_hard)
    if mask_snap is not None:
        if mask_snap and not network.get("mask_hard", False):
            fix = "use --mask-hard instead of --mask-soft" if mask_hard is False else \
                "add --mask-hard (network.mask_hard is false)"
            raise UserError(f"{source}: {mask_snap_flag(mask_snap)} snaps the thresholded mask, but this generator "
                            f"would compose with the soft one; {fix}")
        network["mask_snap_radius"] = mask_snap
    elif mask_hard is False:
        network["mask_snap_radius"] = 0  # nothing thresholded, nothing to snap
    if mask_fill is not None:
        if mask_fill and not network.get("mask_snap_radius", 0):
            if mask_hard is False:
                fix = "--mask-soft turns the snap off; use --mask-hard --mask-snap RADIUS"
            elif mask_snap == 0:
                fix = "--mask-snap 0 turns the snap off; give a radius > 0"
            else:
                fix = "the checkpoint's network.mask_snap_radius is 0; add --mask-snap RADIUS" + (
                    "" if network.get("mask_hard", False) else " with --mask-hard")
            raise UserError(f"{source}: --mask-fill fills the pixels the snap opens, but this generator would not "
                            f"snap the mask: {fix}")
        network["mask_snap_fill"] = bool(mask_fill)
    elif not network.get("mask_snap_radius", 0):
        network["mask_snap_fill"] = False  # nothing snapped, nothing to fill
    return {**ckpt, "config": {**config, "network": network}}


def check_resumable(ckpt: Mapping[str, Any], path: str | os.PathLike, model: str) -> int:
    """Refuse (one line) a checkpoint a ``model`` training run cannot continue from; returns its step."""
    path = Path(path)
    if ckpt.get("model") != model or ckpt.get("kind") != "training":
        raise UserError(f"{path}: cannot resume a {model} training run from a "
                        f"{ckpt.get('model')} {ckpt.get('kind')} checkpoint")
    _check_sections(ckpt, TRAINING_SECTIONS, path)
    counters = ckpt["counters"]
    step = counters.get("global_step") if isinstance(counters, dict) else None
    if not isinstance(step, int) or step < 0:
        raise UserError(f"{path}: damaged checkpoint: counters.global_step is {step!r}, expected a step number")
    return step


def check_nets_fit(nets: Mapping[str, torch.nn.Module], ckpt: Mapping[str, Any], path: str | os.PathLike,
                   config: Mapping[str, Any] | None = None) -> None:
    """Refuse, in one line, a checkpoint whose networks ``nets`` (built from the config) cannot load: another
    architecture or size. ``load_state_dict`` would say so in many lines, after the run folder was touched.
    ``config`` (the config as a dict) lets the message name the ``network.*`` keys that differ."""
    saved = ckpt["nets"]
    for name, net in nets.items():
        if name not in saved:
            raise UserError(f"{path}: the checkpoint has no network {name!r} (it has {', '.join(map(str, saved))})")
        problems = _misfits(net.state_dict(), saved[name])
        if problems:
            raise UserError(
                f"{path}: network {name} of the checkpoint does not fit the one the config builds "
                f"({problems}){_network_changes(ckpt.get('config'), config)}; resume with "
                "the config the run was trained with (its config.yaml)"
            )


def _misfits(own: Mapping[str, Any], theirs: Mapping[str, Any]) -> str:
    """The first two differences between a network's state dict and saved weights, in one phrase ('' if none)."""
    problems = [f"{key}: checkpoint {list(theirs[key].shape)}, config {list(value.shape)}"
                for key, value in own.items()
                if key in theirs and torch.is_tensor(theirs[key]) and theirs[key].shape != value.shape]
    problems += [f"{key} missing from the checkpoint" for key in own if key not in theirs]
    problems += [f"{key} unknown to the config's network" for key in theirs if key not in own]
    more = f" and {len(problems) - 2} more" if len(problems) > 2 else ""
    return "; ".join(problems[:2]) + more


def load_weights(net: torch.nn.Module, state: Mapping[str, Any], source: str, name: str) -> torch.nn.Module:
    """``net.load_state_dict(state)``, or a one-line UserError naming the first keys that do not fit (torch's
    own message spans many lines and starts with no detail)."""
    problems = _misfits(net.state_dict(), state)
    if problems:
        raise UserError(f"{source}: {name} weights do not match its config ({problems})")
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError) as err:  # e.g. a value that is not a tensor
        raise UserError(f"{source}: {name} weights cannot be loaded ({str(err).strip().splitlines()[-1]})") from None
    return net


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, Mapping):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _network_changes(saved: Any, current: Mapping[str, Any] | None) -> str:
    if not isinstance(saved, Mapping) or current is None:
        return ""
    before, after = _flatten(saved.get("network", {}), "network"), _flatten(current.get("network", {}), "network")
    changed = [f"{key} {before.get(key)!r} -> {after.get(key)!r}" for key in sorted(set(before) | set(after))
               if before.get(key) != after.get(key)]
    return f"; config changed {', '.join(changed[:3])}" if changed else ""


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete numbered checkpoint in ``run_dir/checkpoints``, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = _CKPT_RE.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _numbered(folder: Path, step: int) -> Path:
    return folder / f"ckpt-{step:09d}.pt"


class CheckpointManager:
    """Writes ``latest.pt`` + ``ckpt-<step>.pt`` into ``run_dir/checkpoints`` and keeps the last ``keep_last``."""

    def __init__(self, run_dir: str | os.PathLike, keep_last: int = 3):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.folder = Path(run_dir) / CHECKPOINTS_DIR
        self.keep_last = keep_last

    def save(self, ckpt: dict, step: int) -> Path:
        """Write the state of ``step``; returns its numbered path. A failed write (full disk) is a one-line
        :class:`UserError` that leaves the previous checkpoints as they were."""
        # latest.pt first: at every moment it is the newest complete state, even if a kill comes before the
        # numbered name exists (reopening the run links that name then).
        latest = atomic_save(ckpt, self.folder / LATEST)
        path = replace_with_link(latest, _numbered(self.folder, step))  # a hard link costs no disk or I/O
        for _, old in list_checkpoints(self.folder.parent)[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path


def newest_loadable(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[Path, dict] | None:
    """The checkpoint a run continues from: ``latest.pt`` (the newest by write order); if it is missing or
    damaged, the numbered checkpoints from the highest step down, the first that loads."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    candidates = [folder / LATEST] if (folder / LATEST).is_file() else []
    candidates += [path for _, path in reversed(list_checkpoints(run_dir))]
    for path in candidates:
        try:
            return path, load_checkpoint(path, map_location)
        except UserError as err:
            log.warning("skipping unreadable checkpoint: %s", err)
    return None


def run_dir_of(checkpoint: str | os.PathLike) -> Path:
    """The run folder a checkpoint file belongs to: ``RUN`` for ``RUN/checkpoints/x.pt`` and for
    ``RUN/checkpoints/abandoned-*/x.pt``, else the file's own folder."""
    folder = Path(checkpoint).parent
    if folder.name.startswith(ABANDONED_PREFIX) and folder.parent.name == CHECKPOINTS_DIR:
        folder = folder.parent
    return folder.parent if folder.name == CHECKPOINTS_DIR else folder


def _same_content(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _new_abandoned_folder(folder: Path) -> Path:
    base = folder / f"{ABANDONED_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def continue_from(run_dir: str | os.PathLike, resumed: str | os.PathLike, step: int) -> Path | None:
    """Make the checkpoint ``resumed`` (of ``step``) the head of the run in ``run_dir``, for a resume that
    continues from it: it becomes ``latest.pt`` (and ``ckpt-<step>.pt`` where that name is missing), and what an
    earlier continuation wrote past it (numbered checkpoints of later steps, the old ``latest.pt``) moves to
    ``checkpoints/abandoned-<time>/``, so histories never mix: auto-resume never goes back to a stale later step
    and keep-last pruning never deletes the new branch's checkpoints. Crash-safe in this order: a kill at any
    point leaves ``latest.pt`` at either the old head or ``resumed``. Call it under the run's lock. Returns the
    folder of the abandoned checkpoints, or None when nothing was moved."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    resumed = Path(resumed)
    latest = folder / LATEST
    folder.mkdir(parents=True, exist_ok=True)
    numbered = list_checkpoints(run_dir)
    kept = [path for s, path in numbered if s <= step]
    later = [(s, path) for s, path in numbered if s > step]
    repoint = not (latest.is_file() and _same_content(latest, resumed))
    # The old head is only kept when no kept numbered checkpoint already holds it.
    keep_old_head = repoint and latest.is_file() and not any(_same_content(latest, path) for path in kept)
    aside = _new_abandoned_folder(folder) if later or keep_old_head else None
    if keep_old_head:
        link_or_copy(latest, aside / LATEST)
    if repoint:
        replace_with_link(resumed, latest)
    if not _numbered(folder, step).exists():
        replace_with_link(latest, _numbered(folder, step))
    for _, path in later:
        os.replace(path, aside / path.name)
    if aside is not None:
        fsync_dir(aside)
        fsync_dir(folder)
        moved = [f"steps {', '.join(str(s) for s, _ in later)}"] if later else []
        moved += ["its latest.pt"] if keep_old_head else []
        log.info("%s: continuing from step %d; moved what an earlier continuation wrote after it (%s) to %s",
                 run_dir, step, " and ".join(moved), aside)
    return aside
