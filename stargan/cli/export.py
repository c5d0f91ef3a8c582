"""``stargan export``: a trained generator as safetensors + JSON (which ``translate`` and ``edit`` take as
``--checkpoint``) or as ONNX, for every family in the registry."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from stargan.cli.common import mask_options, user_errors

if TYPE_CHECKING:
    from torch import nn

    from common.family import LoadedModel

# Kept in step with common.export.schema.WEIGHT_FORMATS (not imported: `stargan --help` loads no torch).
FORMATS = ("safetensors", "onnx")


def exported_nets(loaded: LoadedModel, with_classifier: bool, where: str) -> dict[str, tuple[str, nn.Module]]:
    """The networks an export holds, name -> (role, module): the generators the family's ``load`` gives, which
    are the weights ``translate`` runs, and its classifiers only when asked. Every format takes them from here."""
    from common.errors import UserError

    generators = {name: ("generator", net) for name, net in loaded.nets.items() if name not in loaded.classifiers}
    classifiers = {name: ("classifier", net) for name, net in loaded.nets.items() if name in loaded.classifiers}
    if with_classifier and not classifiers:
        raise UserError(f"{where} has no classifier network; --with-classifier does not apply to it")
    return {**generators, **classifiers} if with_classifier else generators


def _safetensors_files(nets: dict[str, tuple[str, Any]]) -> tuple[dict[str, dict], dict[str, Any]]:
    """export.json's ``nets`` entries and the writers of the weight files, one file per role."""
    from common.export.folder import SAFETENSORS_FILES, save_safetensors

    entries = {name: {"role": role, "file": SAFETENSORS_FILES[role]} for name, (role, _) in nets.items()}
    writers = {}
    for role, file in SAFETENSORS_FILES.items():
        states = {name: net.state_dict() for name, (r, net) in nets.items() if r == role}
        if states:
            writers[file] = lambda path, states=states: save_safetensors(states, path)
    return entries, writers


def _onnx_files(nets: dict[str, tuple[str, Any]], loaded: LoadedModel, label_width: int | None
                ) -> tuple[dict[str, dict], dict[str, Any], dict[str, dict]]:
    """export.json's ``nets`` entries, the writers of the ``.onnx`` files and each file's check inputs."""
    from common.export.onnx_export import OUTPUT, export_onnx, sample_inputs

    entries, writers, checks = {}, {}, {}
    for name, (role, net) in nets.items():
        channels = loaded.image_channels.get(name, 3)
        trace = sample_inputs(channels, loaded.multiple, loaded.min_side, label_width)
        file = f"{name}.onnx"
        entries[name] = {"role": role, "file": file, "inputs": list(trace), "outputs": [OUTPUT]}
        writers[file] = lambda path, net=net, trace=trace: export_onnx(net, trace, path)
        # Checked at other sizes than traced, so a size baked into the graph would show.
        checks[file] = sample_inputs(channels, loaded.multiple, loaded.min_side, label_width, scale=(3, 2))
    return entries, writers, checks


@click.command("export")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A checkpoint file, a run folder (its latest checkpoint) or an earlier safetensors export.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new (or empty) folder for the export.")
@click.option("--format", "weights", type=click.Choice(FORMATS), default="safetensors", show_default=True,
              help="safetensors: weights + export.json, which translate/edit take as --checkpoint; onnx: one "
                   ".onnx file per generator (needs the export extra).")
@click.option("--with-classifier", is_flag=True,
              help="safetensors: also include the classifier (StarGAN's D), with which translate --target "
                   "reads the input's own attributes; without it they read as all zero.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in --out (never other files).")
@mask_options
@user_errors
def export(checkpoint: Path, out_dir: Path, weights: str, with_classifier: bool, overwrite: bool,
           mask_hard: bool | None, mask_snap: int | None, mask_fill: bool | None) -> None:
    """Export a model's generator(s) to OUT as safetensors + export.json (default) or ONNX.

    The safetensors folder holds no pickle: `stargan translate --checkpoint OUT` and `stargan edit` load it and
    give the checkpoint's outputs bit for bit. export.json names the family, its config (architecture,
    widths), the input sizes the generator takes, the normalisation and, for label-conditioned models, the
    label vector layout (exclusive groups, mask vector); see docs/export.md.

    ONNX: inputs `image` (N,C,H,W in [-1,1]) and, for label-conditioned generators, `labels` (N,width); output
    `output`; batch, height and width dynamic. With onnxruntime installed the files are checked against
    PyTorch. The folder is written to a temp name and renamed into place.
    """
    from common.checkpoint import load_checkpoint, with_mask_options
    from common.config import to_dict
    from common.errors import UserError
    from common.export.folder import check_destination, write_folder
    from common.export.onnx_export import require_onnx
    from common.export.schema import EXPORT_JSON, describe, to_json
    from stargan.families import family_of_checkpoint

    check_destination(out_dir, overwrite)
    if weights == "onnx":
        if with_classifier:
            raise UserError("--with-classifier applies to --format safetensors (the ONNX export holds the "
                            "generators)")
        require_onnx()
    source = str(checkpoint)
    ckpt = with_mask_options(load_checkpoint(checkpoint, map_location="cpu"), mask_hard, source, mask_snap, mask_fill)
    family = family_of_checkpoint(ckpt, source)
    loaded = family.load(ckpt, source)
    nets = exported_nets(loaded, with_classifier, f"{source}: the {family.title} model")
    checks: dict[str, dict] = {}
    if weights == "onnx":
        label_width = loaded.labels.g_dim if family.label_conditioned else None
        entries, writers, checks = _onnx_files(nets, loaded, label_width)
    else:
        entries, writers = _safetensors_files(nets)
    doc = describe(family.name, family.title, weights, entries, loaded, to_dict(loaded.config), ckpt.get("extra", {}))
    text = to_json(doc, f"{out_dir / EXPORT_JSON}")
    writers[EXPORT_JSON] = lambda path: path.write_text(text, encoding="utf-8")
    write_folder(out_dir, writers, overwrite)

    click.echo(f"exported {family.title} {', '.join(nets)} ({weights}) to {out_dir}")
    left_out = [name for name in loaded.classifiers if name in loaded.nets and name not in nets]
    if left_out and weights == "safetensors":
        click.echo(f"left out the classifier {', '.join(left_out)}: translate --target then reads the input's own "
                   "attributes as all zero; --with-classifier includes it")
    for name, entry in entries.items():
        if entry["file"] in checks:
            _report_onnx_check(out_dir / entry["file"], loaded.nets[name], checks[entry["file"]])


def _report_onnx_check(path: Path, net: Any, inputs: dict) -> None:
    from common.export.onnx_export import TOLERANCE, onnx_difference

    diff = onnx_difference(net, path, inputs)
    if diff is None:
        click.echo(f"{path}: not checked (onnxruntime is not installed)")
        return
    shape = "x".join(str(s) for s in next(iter(inputs.values())).shape)
    close = diff <= TOLERANCE
    verdict = "ok" if close else f"above the expected {TOLERANCE:g}"
    click.echo(f"{'' if close else 'warning: '}{path}: onnxruntime vs PyTorch on a {shape} input: max abs difference "
               f"{diff:.2g} ({verdict})", err=not close)
