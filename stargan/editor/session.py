"""The editor's model side: everything the page does except drawing it, usable and testable without Gradio.

The page's result for given settings is `stargan translate`'s for the same input and flags because it takes
the same road: :meth:`EditorSession.options` turns the settings into translate's options (same names, refused
by the same :func:`common.family.check_options`), ``family.translator`` builds the generator from them, and
:func:`common.inference.translate_image` reads the file, pads, translates, crops and rounds to 8 bits as
``translate`` does; :func:`common.data.images.write_png` writes the PNG as ``translate`` writes it.
:meth:`EditorSession.command` prints that ``translate`` command.

What the page controls is declared elsewhere, never by family name: attribute controls come from the
checkpoint's label schema when the family is ``label_conditioned``; every other option in the family's
``translate_options`` (CycleGAN's ``--direction``, ...) gets a control built from the ``translate`` command's
own Click declaration (a choice, an on/off flag or a value).
"""
from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch
from PIL import Image

from common.checkpoint import load_checkpoint, mask_fill_flag, mask_flag, mask_snap_flag, with_mask_options
from common.data.images import load_rgb, to_tensor, write_png
from common.device import resolve_device
from common.errors import UserError
from common.family import ModelFamily, Translator, check_options, option_flag
from common.inference import translate_image, unreadable
from common.labels.schema import LabelSchema
from stargan.cli.main import translate as translate_command
from stargan.families import family_of_checkpoint
from stargan.translate import label_logits, predict_labels

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_SIDE = 4096
# The choice of an exclusive group that names none of its members: the group keeps the input's own values.
KEEP = "(input's own)"
# Translate options the page sets with its own controls (attributes, strength, dataset) or does not offer (a raw
# vector and the test grid are command-line work); a family's other options get a generic control.
PAGE_OPTIONS = ("target", "strength", "dataset", "target_vector", "all_targets")
# Results kept on disk for the download button (Gradio copies what it shows into its own cache).
KEPT_RESULTS = 8

Value = bool | str


@dataclass(frozen=True)
class Reading:
    """D's reading of an input for one dataset's labels. ``decided``: the 0/1 vector `translate` starts from for
    attributes a target does not name (what ``predict_labels`` gives it); ``confidence``: D's probability of
    each attribute (sigmoid, or softmax over a cross-entropy group); None when the checkpoint has no D (then
    ``decided`` is all zeros, as translate assumes)."""

    decided: tuple[float, ...]
    confidence: tuple[float, ...] | None


@dataclass(frozen=True)
class OptionControl:
    """A translate option the page offers with a generic control, as the ``translate`` command declares it."""

    name: str
    flag: str
    help: str
    choices: tuple[str, ...] | None  # a choice (radio buttons) ...
    is_flag: bool                     # ... an on/off flag (checkbox) ... or else a value (text box)
    default: Any
    param: click.Parameter

    def value(self, raw: Any) -> Any:
        """A page value as translate's option value: Click's own conversion, so the page accepts what the
        command line accepts. An empty text box or an unticked flag is the option not given."""
        if self.is_flag:
            return True if raw else None
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        try:
            return self.param.type.convert(raw, self.param, None)
        except click.BadParameter as err:
            raise UserError(f"{self.flag} {raw!r}: {err.message}") from None


def option_controls(family: ModelFamily) -> list[OptionControl]:
    """Generic controls for the family's translate options that the page has no control of its own for."""
    # By flag: an option's name is its flag's (--eval -> eval), while the command's parameter may be named otherwise.
    params = {flag: p for p in translate_command.params for flag in p.opts}
    controls = []
    for name in family.translate_options:
        param = params.get(option_flag(name))
        if name in PAGE_OPTIONS or param is None:
            continue
        choices = tuple(param.type.choices) if isinstance(param.type, click.Choice) else None
        is_flag = bool(getattr(param, "is_flag", False))
        # Flags start off, as on the command line; Click marks a default not given with a (truthy) sentinel.
        default = param.default if isinstance(param.default, (str, int, float)) and not is_flag else None
        if default is None and choices:
            default = choices[0]
        controls.append(OptionControl(name, option_flag(name), getattr(param, "help", "") or "", choices,
                                      is_flag, default, param))
    return controls


def check_image(path: str | os.PathLike, name: str) -> None:
    """Refuse, in one line naming the upload ``name``, a file over the upload limits or that is not an image PIL
    can read (from its header, before decoding the pixels)."""
    size = os.path.getsize(path)
    if size > MAX_UPLOAD_BYTES:
        raise UserError(f"{name}: {size / 2**20:.1f} MB; the editor takes images up to "
                        f"{MAX_UPLOAD_BYTES // 2**20} MB (`stargan translate` takes any)")
    reason = unreadable(Path(path))
    if reason is not None:
        raise UserError(f"{name}: cannot read image ({reason})")
    with Image.open(path) as img:
        width, height = img.size
    if max(width, height) > MAX_SIDE:
        raise UserError(f"{name}: {width}x{height} pixels; the editor takes up to {MAX_SIDE} pixels a side "
                        "(`stargan translate` takes any size)")


def confidences(logits: torch.Tensor, schema: LabelSchema) -> tuple[float, ...]:
    """D's probability of each attribute from its logits, by how each group was trained (``schema.slices``)."""
    probs = torch.empty_like(logits)
    for kind, start, stop in schema.slices():
        block = logits[start:stop]
        probs[start:stop] = block.softmax(dim=0) if kind == "exclusive" else block.sigmoid()
    return tuple(probs.tolist())


class EditorSession:
    """One model opened for editing: its family, device, label space and D, and the translator in use."""

    def __init__(self, source: str, ckpt: dict, family: ModelFamily, device: torch.device,
                 device_flag: str = "auto", mask_hard: bool | None = None, mask_snap: int | None = None,
                 mask_fill: bool | None = None) -> None:
        """``mask_hard``, ``mask_snap``, ``mask_fill``: ``edit --mask-hard/--mask-soft``, ``--mask-snap``,
        ``--mask-fill/--no-mask-fill`` (None: not given),
        already applied to ``ckpt`` by :meth:`open`; kept to show them in :meth:`command`."""
        self.source, self.ckpt, self.family, self.device = source, ckpt, family, device
        self.device_flag, self.mask_hard, self.mask_snap, self.mask_fill = device_flag, mask_hard, mask_snap, mask_fill
        self.labels = self.D = None
        self.image_size = 0
        if family.label_conditioned:
            loaded = family.load(ckpt, source)
            self.labels, self.image_size = loaded.labels, loaded.image_size
            D = loaded.nets.get("D")
            self.D = D.to(device) if D is not None else None
        self.option_controls = option_controls(family)
        self.results_dir = Path(tempfile.mkdtemp(prefix="editor-results-"))
        self._results: deque[Path] = deque()
        self._translator: tuple[str, Translator] | None = None
        self._lock = threading.Lock()  # one model, one request at a time (Gradio runs handlers in threads)

    @classmethod
    def open(cls, checkpoint: str | os.PathLike, device: str = "auto", mask_hard: bool | None = None,
             mask_snap: int | None = None, mask_fill: bool | None = None) -> EditorSession:
        dev = resolve_device(device)
        ckpt = load_checkpoint(checkpoint, map_location="cpu")  # as translate reads it (also an export folder)
        ckpt = with_mask_options(ckpt, mask_hard, str(checkpoint), mask_snap, mask_fill)
        family = family_of_checkpoint(ckpt, str(checkpoint))
        return cls(str(checkpoint), ckpt, family, dev, device, mask_hard, mask_snap, mask_fill)

    def close(self) -> None:
        shutil.rmtree(self.results_dir, ignore_errors=True)

    # -- what the page shows ------------------------------------------------------------------------------
    @property
    def dataset_names(self) -> tuple[str, ...]:
        return self.labels.names if self.labels is not None else ()

    @property
    def has_strength(self) -> bool:
        return self.family.label_conditioned and "strength" in self.family.translate_options

    def schema(self, dataset: int) -> LabelSchema:
        return self.labels.schemas[dataset]

    @torch.no_grad()
    def read(self, path: str | os.PathLike) -> list[Reading]:
        """D's reading of the image at ``path`` for each dataset's labels (empty for families without labels)."""
        if self.labels is None:
            return []
        with self._lock:
            x = to_tensor(load_rgb(path)).unsqueeze(0).to(self.device)
            readings = []
            for i, schema in enumerate(self.labels.schemas):
                decided = predict_labels(self.D, x, self.labels, i, self.image_size)[0]
                conf = None
                if self.D is not None:
                    conf = confidences(label_logits(self.D, x, self.labels, i, self.image_size)[0].float(), schema)
                readings.append(Reading(tuple(decided.tolist()), conf))
        return readings

    def initial_values(self, dataset: int, reading: Reading) -> list[Value]:
        """The attribute controls set to the input's reading, one per group: a toggle for a binary attribute,
        the member read for an exclusive group (:data:`KEEP` when D reads none or several)."""
        values: list[Value] = []
        for group, start, stop in self.schema(dataset).spans():
            block = reading.decided[start:stop]
            if group.kind == "binary":
                values.append(block[0] > 0.5)
            else:
                ones = [n for n, v in zip(group.names, block) if v > 0.5]
                values.append(ones[0] if len(ones) == 1 else KEEP)
        return values

    # -- settings -> translate ------------------------------------------------------------------------------
    def target_spec(self, dataset: int, values: Sequence[Value], reading: Reading) -> str:
        """translate's ``--target`` for the attribute controls of ``dataset``: the attributes set otherwise than
        the input reads (those not named keep the input's values there too); when none is, every attribute
        the controls state (which reproduces the reading)."""
        schema = self.schema(dataset)
        if len(values) != len(schema.groups):
            raise UserError(f"{len(values)} attribute values for {len(schema.groups)} groups ({schema.describe()})")
        changed, stated = [], []
        for (group, start, stop), value in zip(schema.spans(), values):
            if group.kind == "binary":
                part, wanted = f"{group.names[0]}={int(bool(value))}", [float(bool(value))]
            elif value == KEEP:
                continue
            elif value in group.names:
                part, wanted = f"{value}=1", [float(n == value) for n in group.names]
            else:
                raise UserError(f"group {group.name!r}: {value!r} is none of {', '.join(group.names)}")
            stated.append(part)
            if list(reading.decided[start:stop]) != wanted:
                changed.append(part)
        if not stated:
            raise UserError(f"set at least one attribute ({schema.describe()})")
        return ",".join(changed or stated)

    def options(self, dataset: int = 0, values: Sequence[Value] = (), reading: Reading | None = None,
                strength: float = 1.0, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """translate's options for the page's settings: ``extra`` holds the generic controls' values by option
        name. Options at translate's default are left out, so :meth:`command` shows what a user would type."""
        options = {}
        for control in self.option_controls:
            value = control.value((extra or {}).get(control.name, control.default))
            if value is not None:
                options[control.name] = value
        if self.labels is not None:
            if reading is None:
                raise UserError("no attribute reading: upload an image first")
            options["target"] = self.target_spec(dataset, values, reading)
            strength = float(strength)
            if self.has_strength and strength != 1.0:
                options["strength"] = strength
            if self.labels.n > 1:
                options["dataset"] = self.labels.names[dataset]
        return options

    def translate(self, path: str | os.PathLike, options: Mapping[str, Any]) -> Image.Image:
        """The image `translate` writes for the file ``path`` with ``options`` (a batch of one)."""
        options = dict(options)
        check_options(self.family, options, self.family.translate_options, self.source)
        key = repr(sorted(options.items()))
        with self._lock:
            if self._translator is None or self._translator[0] != key:
                self._translator = None  # let the previous networks go before building the next
                self._translator = (key, self.family.translator(self.ckpt, self.source, options, self.device))
            return translate_image(path, self._translator[1], self.device)

    def save_result(self, image: Image.Image, input_name: str) -> Path:
        """Write ``image`` as translate names and writes its output (input stem + ``.png``), in a folder of its
        own; only the last :data:`KEPT_RESULTS` are kept."""
        path = self.results_dir / uuid.uuid4().hex / f"{Path(input_name).stem}.png"
        path.parent.mkdir()
        write_png(image, path)
        self._results.append(path.parent)
        while len(self._results) > KEPT_RESULTS:
            shutil.rmtree(self._results.popleft(), ignore_errors=True)
        return path

    def command(self, input_name: str, options: Mapping[str, Any]) -> str:
        """The `stargan translate` line that writes the same PNG for ``input_name`` into ``edited/``."""
        args = ["--checkpoint", self.source, "--input", input_name, "--output", "edited"]
        for name, value in options.items():
            if value is True:
                args.append(option_flag(name))
            elif value is not None and value is not False:
                args += [option_flag(name), str(value)]
        if self.mask_hard is not None:
            args.append(mask_flag(self.mask_hard))
        if self.mask_snap is not None:
            args += mask_snap_flag(self.mask_snap).split()
        if self.mask_fill is not None:
            args.append(mask_fill_flag(self.mask_fill))
        if self.device_flag != "auto":
            args += ["--device", self.device_flag]
        return "stargan translate " + shlex.join(args)
