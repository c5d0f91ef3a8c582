"""The ``stargan`` command line (also ``python -m stargan``).

Every command validates its options before doing work; user errors print one line and exit with status 2.
Commands import the library (torch, torchvision, ...) when they run, not at import time, so `stargan --help`
and option errors answer at once.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from common.version import __version__
from stargan.cli.common import DEVICE_HELP, mask_options, user_errors
from stargan.cli.data_commands import resize_dataset
from stargan.cli.eval_commands import evaluate, make_dataset, train_classifier
from stargan.cli.export import export
from stargan.compare.cli import compare

if TYPE_CHECKING:
    from common.inference import TranslationPlan, TranslationResult


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="stargan")
def cli() -> None:
    """Image-to-image translation: faithful CycleGAN and StarGAN (unpaired, multi-domain) and pix2pix (paired).

    Runs on CUDA when present, CPU otherwise. For several GPUs or nodes launch `train` with torchrun,
    e.g. `torchrun --nproc_per_node 4 -m stargan train CONFIG`.
    """


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set optim.lr=1e-4 (repeatable).")
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder that receives numbered run folders (00000-NAME, 00001-NAME, ...).")
@click.option("--resume", default=None, metavar="auto|PATH",
              help="auto: continue the newest run of this config's name under --out (start fresh if none); "
                   "PATH: a checkpoint file or run folder.")
@click.option("--device", default=None, help=DEVICE_HELP + " Overrides run.device.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and where the run would go; train nothing.")
@user_errors
def train(config: Path, overrides: tuple[str, ...], out: Path, resume: str | None, device: str | None,
          dry_run: bool) -> None:
    """Train the model a CONFIG (YAML) describes; its `model` key picks the model family."""
    from common.config import dump_yaml, load_config
    from common.device import resolve_device
    from common.training import resolve_resume
    from stargan.families import config_classes, family_of_config

    if device is not None:
        overrides = overrides + (f"run.device={device}",)
    cfg = load_config(config, overrides, config_classes())
    family = family_of_config(cfg)
    resolve_device(cfg.run.device)  # fail on a missing GPU before anything is written
    if dry_run:
        click.echo(dump_yaml(cfg), nl=False)
        target = resolve_resume(resume, out, cfg.name)
        where = f"resume {target}" if target else f"a new numbered folder under {out}/ named *-{cfg.name}"
        click.echo(f"# dry run: would train {family.title} into {where}")
        return
    run_dir = family.train(cfg, out_root=out, resume=resume)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    click.echo(f"run folder: {run_dir}")
    click.echo(f"checkpoint: {run_dir / 'checkpoints' / 'latest.pt'}")
    click.echo(f"tensorboard: tensorboard --logdir {run_dir / 'tensorboard'}")


@cli.command()
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(path_type=Path),
              help="A checkpoint written by `train` or `import-official` (file, or a run folder for its latest).")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="An image file or a folder (searched recursively).")
@click.option("--output", "output_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the results: one PNG per input, same stem (and sub-folders). Must not be the "
                   "input folder, lie inside it, or hold an input file.")
@click.option("--overwrite", is_flag=True,
              help="Replace outputs that already exist (default: keep them and skip their inputs).")
@click.option("--skip-bad", is_flag=True,
              help="Skip unreadable or corrupt input files and list them at the end (default: refuse the run, "
                   "naming them, before anything is written).")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default=None,
              help="CycleGAN: which generator to apply  [default: AtoB].")
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(min=1),
              help="Images per forward pass (images of equal size are batched together).")
@click.option("--target", default=None, metavar="SPEC",
              help='StarGAN: attributes to set, e.g. "Blond_Hair=1,Male=0". Setting a member of an exclusive '
                   "group clears the others; attributes not named keep the input's own values as the "
                   "discriminator's classifier predicts them (zeros when the checkpoint has no D).")
@click.option("--target-vector", default=None, metavar="V1,V2,...",
              help="StarGAN: the raw label vector, full length (mask vector included for multi-dataset models).")
@click.option("--all-targets", is_flag=True,
              help="StarGAN: the official test grid: input, then one column per single-attribute change.")
@click.option("--strength", default=None, type=float,
              help="StarGAN: scale the label change (0 = input labels, 1 = target, >1 exaggerates; finite)  "
                   "[default: 1].")
@click.option("--dataset", "dataset_name", default=None,
              help="StarGAN multi-dataset models: whose labels --target/--all-targets refer to.")
@click.option("--eval", "eval_mode", is_flag=True,
              help="pix2pix: batch norm with its running statistics and no dropout (official test.py --eval). "
                   "Default: as the paper and official test.py, each image's own statistics and dropout on, "
                   "seeded so reruns write the same PNGs.")
@click.option("--aligned", is_flag=True,
              help="pix2pix: inputs are aligned files (A|B side by side, even width); the half the model takes "
                   "(A for AtoB, B for BtoA, the checkpoint's direction) is translated.")
@mask_options
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@user_errors
def translate(checkpoint: Path, input_path: Path, output_dir: Path, overwrite: bool, skip_bad: bool,
              direction: str | None, batch_size: int, target: str | None, target_vector: str | None,
              all_targets: bool, strength: float | None, dataset_name: str | None, eval_mode: bool,
              aligned: bool, mask_hard: bool | None, mask_snap: int | None, mask_fill: bool | None,
              device: str) -> None:
    """Translate images with a trained generator, at their own resolution, one PNG per input.

    Any size works: sizes the network cannot take directly (ResNet/StarGAN generators: multiples of 4, at
    least 8; U-Nets: 128/256) are padded on the bottom/right (reflected, or the edge repeated where the image
    is too small to reflect) and the output cropped back, so every output PNG has its input's size (the
    --all-targets grid is as wide as the input times the number of columns).

    Nothing is lost: inputs are never written; an existing output is kept (its input skipped and counted)
    unless --overwrite; PNGs are written to a temp name and renamed, so a crash or a full disk never leaves a
    truncated one. Two inputs that would give the same output (good.png and good.jpg in one folder) stop the
    run before anything is written, naming both. So do unreadable inputs, unless --skip-bad.
    """
    from common.checkpoint import load_checkpoint, with_mask_options
    from common.device import resolve_device
    from common.family import check_options
    from common.inference import prepare_translation, translate_jobs
    from stargan.families import family_of_checkpoint

    dev = resolve_device(device)
    plan = prepare_translation(input_path, output_dir, overwrite=overwrite, skip_bad=skip_bad)
    ckpt = with_mask_options(load_checkpoint(checkpoint, map_location="cpu"), mask_hard, str(checkpoint), mask_snap,
                             mask_fill)
    family = family_of_checkpoint(ckpt, str(checkpoint))
    options = {"direction": direction, "target": target, "target_vector": target_vector,
               "all_targets": all_targets, "strength": strength, "dataset": dataset_name, "eval": eval_mode,
               "aligned": aligned}
    check_options(family, options, family.translate_options, str(checkpoint))
    translator = family.translator(ckpt, str(checkpoint), options, dev)
    result = translate_jobs(plan, translator, batch_size, dev)
    for line in _translate_report(plan, result):
        click.echo(line)


def _translate_report(plan: TranslationPlan, result: TranslationResult) -> list[str]:
    """The lines a translate run ends with: what was written, kept, replaced and skipped, with counts."""
    from common.inference import describe_files

    lines = [f"wrote {len(result.written)} image(s) to {plan.out_dir}"]
    if plan.existing and plan.overwrite:
        lines.append(f"replaced {plan.existing} existing output(s)")
    elif plan.existing:
        lines.append(f"skipped {plan.existing} input(s) whose output already exists (--overwrite replaces them)")
    if result.bad:
        lines.append(f"skipped {len(result.bad)} unreadable input(s): {describe_files(result.bad)}")
    return lines


@cli.command("import-official")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the converted checkpoint.")
@click.option("--attrs", default=None, metavar="NAMES",
              help="StarGAN: comma-separated names of the label vector (mask excluded), e.g. "
                   "Black_Hair,Blond_Hair,Brown_Hair,Male,Young. Default: attr_0, attr_1, ...")
@click.option("--exclusive", multiple=True, metavar="NAMES",
              help="StarGAN: comma-separated members of an exclusive group (repeatable), e.g. the hair colours.")
@click.option("--datasets", "datasets", default=None, metavar="N1,N2,...",
              help="StarGAN mask-vector models: label block sizes per dataset, e.g. 5,8 for CelebA+RaFD "
                   "(inferred from G and D when -D.ckpt is beside the G file and there are 2 datasets).")
@click.option("--dataset-names", default=None, metavar="NAMES",
              help="StarGAN mask-vector models: dataset names, e.g. celeba,rafd (default dataset0, dataset1, ...).")
@user_errors
def import_official(path: Path, out_path: Path, attrs: str | None, exclusive: tuple[str, ...],
                    datasets: str | None, dataset_names: str | None) -> None:
    """Convert a checkpoint of the official CycleGAN, pix2pix or StarGAN code into this library's format.

    CycleGAN: a generator file (latest_net_G_A.pth, released horse2zebra.pth, ...); the architecture
    (resnet_6/9blocks, unet_128/256, widths, norm, dropout layout) is inferred from the tensors, `module.`
    prefixes and pre-0.4 InstanceNorm statistics are handled. A file whose name contains `G_B` is stored as
    the BtoA generator, anything else as AtoB.

    pix2pix: a generator file with batch norm (latest_net_G.pth, the pix2pix default); recognised by its
    batch-norm statistics, which come along, so `translate --eval` gives the official `test.py --eval` output.

    StarGAN: `{iter}-G.ckpt`; `{iter}-D.ckpt` beside it is imported too (it predicts the input's own labels
    for `translate --target`). Widths, label size, image size and mask length come from the tensors.
    """
    from common.checkpoint import atomic_save
    from common.family import check_options
    from stargan.families import family_of_official

    family = family_of_official(path)
    options = {"attrs": attrs, "exclusive": exclusive or None, "datasets": datasets,
               "dataset_names": dataset_names}
    check_options(family, options, family.import_options, str(path))
    ckpt, summary = family.import_official(path, options)
    atomic_save(ckpt, out_path)
    click.echo(f"{path}: {summary} -> {out_path}")


@cli.command()
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: a new numbered folder runs/NNNNN-demo).")
@click.option("--budget-minutes", default=5.0, show_default=True, type=click.FloatRange(min=1.0),
              help="Wall-clock budget for the whole demo; StarGAN training stops early to respect it.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--size", default=32, show_default=True, type=click.IntRange(min=16),
              help="Image side of the shapes data and the StarGAN (a multiple of 16).")
@click.option("--recipe", type=click.Choice(["preserving", "official"]), default="preserving", show_default=True,
              help="preserving: the attention mask (sparsity 0.02, binarisation 0.05, no TV, through a guided "
                   "filter of radius 2 with the input as guide) and an EMA of G, so edits leave the rest of the "
                   "image alone, from --size 64 up translated with the mask thresholded and snapped to the input's "
                   "edges (radius 6 px per 64, rounded); official: the official StarGAN networks and "
                   "losses (docs/fidelity.md compares them).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a value of the demo's StarGAN config after the recipe, e.g. --set ema.decay=0 "
                   "(repeatable; checked before any work).")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@user_errors
def demo(out: Path | None, budget_minutes: float, seed: int, size: int, recipe: str, overrides: tuple[str, ...],
         device: str) -> None:
    """Make a synthetic dataset, train a small StarGAN on it, evaluate it, and write a picture.

    No data and no flags needed. Writes the shapes dataset, an attribute classifier, a StarGAN run folder
    (checkpoints, TensorBoard), eval/metrics.json and grid.png (test inputs x target attributes), then prints
    the colour-change accuracy, the counterfactual error against the do-nothing baseline (overall and per
    attribute) and how often shape, position and size are kept.
    """
    from stargan.cli.demo import run_demo

    run_demo(out=out, budget_minutes=budget_minutes, device=device, seed=seed, overrides=overrides, size=size,
             recipe=recipe)


@cli.command()
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(path_type=Path),
              help="What `translate --checkpoint` takes: a checkpoint file, a run folder (its latest) or a "
                   "safetensors export folder.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on; the default keeps the page on this machine (0.0.0.0 opens it to the "
                   "network, unauthenticated).")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535))
@mask_options
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@user_errors
def edit(checkpoint: Path, host: str, port: int, mask_hard: bool | None, mask_snap: int | None,
         mask_fill: bool | None, device: str) -> None:
    """Edit images in the browser: a local page to upload an image, see the model's reading of its attributes,
    set them (or the CycleGAN direction, the pix2pix mode) and download the result.

    The page's result is the PNG `stargan translate` writes for the same input and flags (the page shows that
    command). Needs the app extra: pip install -e ".[app]". Ctrl-C stops the server.
    """
    from stargan.editor.app import build_app, serve  # raises the install hint when Gradio is missing
    from stargan.editor.session import EditorSession

    session = EditorSession.open(checkpoint, device, mask_hard, mask_snap, mask_fill)
    try:
        blocks = build_app(session)
        url = serve(blocks, host, port)
        click.echo(f"editor: {url} ({session.family.title} model {checkpoint} on {session.device}); Ctrl-C stops it")
        blocks.block_thread()
    finally:
        session.close()


for _command in (make_dataset, resize_dataset, train_classifier, evaluate, compare, export):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="stargan")
