"""CLI commands for data and evaluation: ``make-dataset``, ``train-classifier``, ``evaluate``.

Plain Click commands; ``stargan.cli`` registers them on the ``stargan`` group.
"""
from __future__ import annotations

from pathlib import Path

import click

from common.errors import UserError
from stargan.cli.common import DEVICE_HELP, mask_options, user_errors


def _names(text: str, option: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    if not text.strip() or not all(names):
        raise UserError(f"{option} {text!r}: expected comma-separated attribute names, e.g. Red,Green")
    return names


@click.command("make-dataset")
@click.argument("kind", type=click.Choice(["shapes"]))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write (missing, empty, or an earlier shapes dataset, which is regenerated).")
@click.option("--n", "n", default=5000, show_default=True, type=int, help="Number of images.")
@click.option("--size", default=64, show_default=True, type=int, help="Image side in pixels.")
@click.option("--seed", default=0, show_default=True, type=int, help="Everything written depends on it alone.")
@click.option("--test-fraction", default=0.1, show_default=True, type=float,
              help="Share of each colour held out as the test split (with ground-truth counterfactuals).")
@click.option("--cyclegan-view", "views", multiple=True, metavar="A,B",
              help="Also write cyclegan/A2B/{trainA,trainB,testA,testB} for two colours, e.g. Red,Blue "
                   "(repeatable).")
@click.option("--paired", is_flag=True,
              help="Also write paired/{train,val,test}/ in the official aligned format for paired (pix2pix) "
                   "training: A = the scene's label map, B = the scene (AtoB), with the noise floor in "
                   "paired/view.json.")
@user_errors
def make_dataset(kind: str, out: Path, n: int, size: int, seed: int, test_fraction: float,
                 views: tuple[str, ...], paired: bool) -> None:
    """Generate a synthetic dataset. KIND `shapes`: coloured shapes with ground-truth counterfactuals.

    The folder is CelebA-format (images/, list_attr_celeba.txt, list_eval_partition.txt) plus attributes.json
    and counterfactuals/ for the test images, so `train`, `train-classifier` and `evaluate` read it directly.
    """
    from common.data.shapes import make_dataset as make_shapes

    pairs = []
    for v in views:
        parts = _names(v, "--cyclegan-view")
        if len(parts) != 2:
            raise UserError(f"--cyclegan-view {v!r}: expected two attribute names A,B, e.g. Red,Blue")
        pairs.append((parts[0], parts[1]))
    summary = make_shapes(out, n=n, size=size, seed=seed, test_fraction=test_fraction, cyclegan_views=pairs,
                          paired=paired)
    click.echo(f"{kind}: {summary['n']} images ({summary['n_train']} train, {summary['n_test']} test) of "
               f"{summary['size']}x{summary['size']} in {summary['images']} ({summary['seconds']:.1f}s)")
    click.echo("attributes: " + ", ".join(f"{a} {c}" for a, c in summary["attr_counts"].items()))
    click.echo("nuisance attributes (classifier only, never changed): "
               + ", ".join(f"{a} {c}" for a, c in summary["nuisance_counts"].items()))
    click.echo(f"labels: {summary['attr_file']}")
    click.echo(f"counterfactuals: {summary['n_counterfactuals']} in {summary['counterfactuals']}")
    for name, view in summary["cyclegan_views"].items():
        counts = ", ".join(f"{k} {v}" for k, v in view.items() if k != "path")
        click.echo(f"cyclegan view {name}: {view['path']} ({counts})")
    view = summary["paired_view"]
    if view is not None:
        floor = view["noise_floor_test"]
        click.echo(f"paired view (aligned, A = label map, B = scene, AtoB): {view['path']} (train {view['train']}, "
                   f"val {view['val']}, test {view['test']}); noise floor on test: L1 {floor['l1']:.4f}, "
                   f"PSNR {floor['psnr']:.2f} dB, SSIM {floor['ssim']:.4f}")


@click.command("train-classifier")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="CelebA-format folder: images/ and list_attr_celeba.txt (list_eval_partition.txt optional).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the classifier checkpoint.")
@click.option("--attrs", default=None, metavar="A,B,...",
              help="Attributes to classify, in order (default for a shapes dataset: all of its attributes, then its "
                   "nuisance ones: shape, position, size, whose preservation `evaluate` then measures).")
@click.option("--exclusive", multiple=True, metavar="A,B,...",
              help="A group of --attrs of which exactly one is set, e.g. hair colours (repeatable; default for a "
                   "shapes dataset: its colour and shape groups).")
@click.option("--image-size", default=64, show_default=True, type=click.IntRange(min=8))
@click.option("--crop-size", default=None, type=click.IntRange(min=1),
              help="Centre crop before resizing [default: the shorter side].")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--width", default=32, show_default=True, type=click.IntRange(min=1),
              help="Channels of the first stage (doubling per stage up to 8x).")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@user_errors
def train_classifier(data_dir: Path, out_path: Path, attrs: str | None, exclusive: tuple[str, ...],
                     image_size: int, crop_size: int | None, epochs: int, batch_size: int, lr: float, seed: int,
                     width: int, device: str) -> None:
    """Train the attribute classifier of the StarGAN paper's protocol on the TRAIN split of a folder.

    The split is list_eval_partition.txt when present, else a seeded 10% test split. Prints the accuracy on
    the test split per attribute and saves the classifier for `evaluate --classifier`.
    """
    from stargan.evaluation.classify import train_attribute_classifier

    names = _names(attrs, "--attrs") if attrs is not None else None
    groups = [_names(g, "--exclusive") for g in exclusive]
    train_attribute_classifier(data_dir, out_path, names, groups, image_size=image_size, crop_size=crop_size,
                               epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, width=width,
                               device=device)


@click.command("evaluate")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A StarGAN or pix2pix checkpoint (file, or a run folder for its latest).")
@click.option("--data", "data_dir", default=None, type=click.Path(path_type=Path),
              help="The data folder, if it moved since training: it replaces the folder that held the training "
                   "dataset's files (e.g. images/ and list_attr_celeba.txt; pix2pix: the folder with train/ and "
                   "test/) [default: the paths in the checkpoint's config]. StarGAN: the split is the one the "
                   "trainer held out; required when the config held none out (test_fraction 0, e.g. RaFD: pass "
                   "the test folder). Shapes datasets add ground-truth counterfactuals.")
@click.option("--classifier", default=None, type=click.Path(path_type=Path),
              help="StarGAN: attribute classifier from `train-classifier` (without it, accuracies are skipped); "
                   "one trained on a shapes dataset without --attrs also scores whether shape, position and size "
                   "are kept.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for metrics.json and the sample grids [default: RUN/eval for RUN/checkpoints/*.pt, "
                   "else ./eval; pix2pix --eval: RUN/eval-evalmode].")
@click.option("--fid-weights", default=None, type=click.Path(path_type=Path),
              help="The FID Inception weights (pt_inception-2015-12-05-6726825d.pth); without them FID/KID are "
                   "skipped.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--max-images", default=None, type=click.IntRange(min=1), help="Evaluate only the first N test images.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--dataset", default=None, help="StarGAN multi-dataset models: whose labels and test data to use.")
@click.option("--phase", default=None,
              help="pix2pix: the split folder to score, e.g. val for datasets without test/  [default: test].")
@click.option("--eval", "eval_mode", is_flag=True,
              help="pix2pix: run G in eval mode (running statistics, no dropout) as `translate --eval`; default: "
                   "the paper's test-time mode, as `translate`.")
@mask_options
@user_errors
def evaluate(checkpoint: Path, data_dir: Path | None, classifier: Path | None, out_dir: Path | None,
             fid_weights: Path | None, batch_size: int, max_images: int | None, device: str,
             dataset: str | None, phase: str | None, eval_mode: bool, mask_hard: bool | None,
             mask_snap: int | None, mask_fill: bool | None) -> None:
    """Score a model on held-out data with ground truth.

    StarGAN (label-conditioned): on the test split its training held out, target/preservation accuracy with an
    attribute classifier (the paper's protocol), error against ground-truth counterfactuals, cycle
    reconstruction, FID/KID.

    pix2pix (paired): on the dataset's test/ pairs, L1, PSNR and SSIM of the output against the true target,
    and FID/KID, each beside the train-mean and do-nothing baselines (and the noise floor on a shapes paired
    view); writes metrics.json and samples.png (input | output | target).
    """
    from common.checkpoint import load_checkpoint
    from common.family import check_options
    from stargan.families import FAMILIES, family_of_checkpoint

    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    family = family_of_checkpoint(ckpt, str(checkpoint))
    options = {"classifier": classifier, "dataset": dataset, "phase": phase, "eval": eval_mode}
    if family.paired:
        from stargan.evaluation.paired import evaluate_paired, format_paired_table

        check_options(family, options, ("phase", "eval"), str(checkpoint))
        metrics = evaluate_paired(checkpoint, data_dir, out_dir=out_dir, phase=phase or "test", eval_mode=eval_mode,
                                  fid_weights=fid_weights, device=device, batch_size=batch_size,
                                  max_images=max_images, ckpt=ckpt, mask_hard=mask_hard,
                                  mask_snap=mask_snap, mask_fill=mask_fill)
        click.echo(format_paired_table(metrics))
    elif family.label_conditioned:
        from stargan.evaluation.evaluate import evaluate as run_evaluation
        from stargan.evaluation.table import format_table

        check_options(family, options, ("classifier", "dataset"), str(checkpoint))
        del ckpt  # run_evaluation reads the file again; do not hold two copies
        metrics = run_evaluation(checkpoint, data_dir, out_dir=out_dir, classifier=classifier,
                                 fid_weights=fid_weights, device=device, batch_size=batch_size,
                                 max_images=max_images, dataset=dataset, mask_hard=mask_hard,
                                 mask_snap=mask_snap, mask_fill=mask_fill)
        click.echo(format_table(metrics))
    else:
        scored = ", ".join(f.title for f in FAMILIES.values() if f.paired or f.label_conditioned)
        raise UserError(f"{checkpoint}: is a {family.title} checkpoint; `evaluate` scores label-conditioned and "
                        f"paired models ({scored})")
    click.echo(f"metrics: {metrics['outputs']['metrics']}")
    for key in ("samples", "counterfactuals"):
        if key in metrics["outputs"]:
            click.echo(f"{key}: {metrics['outputs'][key]}")
