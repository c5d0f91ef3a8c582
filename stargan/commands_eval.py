"""CLI commands for data and evaluation: ``make-dataset``, ``train-classifier``, ``evaluate``.

Plain Click commands; ``stargan.cli`` registers them on the ``stargan`` group.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from common.errors import UserError
from stargan.cli_common import DEVICE_HELP, user_errors

CLASSIFIER_TEST_FRACTION = 0.1


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
@user_errors
def make_dataset(kind: str, out: Path, n: int, size: int, seed: int, test_fraction: float,
                 views: tuple[str, ...]) -> None:
    """Generate a synthetic dataset. KIND `shapes`: coloured shapes with ground-truth counterfactuals.

    The folder is CelebA-format (images/, list_attr_celeba.txt, list_eval_partition.txt) plus attributes.json
    and counterfactuals/ for the test images, so `train`, `train-classifier` and `evaluate` read it directly.
    """
    from stargan.shapes import make_dataset as make_shapes

    pairs = []
    for v in views:
        parts = _names(v, "--cyclegan-view")
        if len(parts) != 2:
            raise UserError(f"--cyclegan-view {v!r}: expected two attribute names A,B, e.g. Red,Blue")
        pairs.append((parts[0], parts[1]))
    summary = make_shapes(out, n=n, size=size, seed=seed, test_fraction=test_fraction, cyclegan_views=pairs)
    click.echo(f"{kind}: {summary['n']} images ({summary['n_train']} train, {summary['n_test']} test) of "
               f"{summary['size']}x{summary['size']} in {summary['images']} ({summary['seconds']:.1f}s)")
    click.echo("attributes: " + ", ".join(f"{a} {c}" for a, c in summary["attr_counts"].items()))
    click.echo(f"labels: {summary['attr_file']}")
    click.echo(f"counterfactuals: {summary['n_counterfactuals']} in {summary['counterfactuals']}")
    for name, view in summary["cyclegan_views"].items():
        counts = ", ".join(f"{k} {v}" for k, v in view.items() if k != "path")
        click.echo(f"cyclegan view {name}: {view['path']} ({counts})")


@click.command("train-classifier")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="CelebA-format folder: images/ and list_attr_celeba.txt (list_eval_partition.txt optional).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the classifier checkpoint.")
@click.option("--attrs", default=None, metavar="A,B,...",
              help="Attributes to classify, in order (default for a shapes dataset: all of its attributes).")
@click.option("--exclusive", multiple=True, metavar="A,B,...",
              help="A group of --attrs of which exactly one is set, e.g. hair colours (repeatable; default for a "
                   "shapes dataset: its colour group).")
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
    from torch.utils.data import DataLoader

    from common.device import resolve_device
    from common.metrics import attribute_accuracy, predict, save_classifier
    from common.metrics import train_classifier as fit
    from stargan.datasets import CelebADataset, read_celeba_attrs
    from stargan.labels import LabelSchema

    t0 = time.perf_counter()
    if not data_dir.is_dir():
        raise UserError(f"--data {data_dir}: data folder not found")
    names = _names(attrs, "--attrs") if attrs is not None else None
    groups = [_names(g, "--exclusive") for g in exclusive]
    if (data_dir / "attributes.json").is_file():
        from stargan.shapes import load_schema

        known = load_schema(data_dir)
        if names is None:
            names = known["attrs"]
        if not exclusive:
            groups = [g for g in known["exclusive"] if all(a in names for a in g)]
    if names is None:
        raise UserError(f"--attrs is required: {data_dir} has no attributes.json to take the attributes from")
    # The schema's kinds (not its loss) decide the classifier's groups: an exclusive group is learned with
    # cross-entropy so evaluation can read it as an argmax, while the data itself need not be strictly one-hot.
    schema = LabelSchema.from_attrs(names, groups or None, "bce")
    cls_groups = [("exclusive" if g.kind == "exclusive" else "binary", s, e) for g, s, e in schema.spans()]
    attr_path = data_dir / "list_attr_celeba.txt"
    partition = data_dir / "list_eval_partition.txt"
    n_rows = len(read_celeba_attrs(attr_path, names)[0])
    split_kw = ({"partition_path": partition} if partition.is_file()
                else {"test_count": max(1, round(n_rows * CLASSIFIER_TEST_FRACTION))})
    ds_kw = dict(image_dir=data_dir / "images", attr_path=attr_path, selected_attrs=names, image_size=image_size,
                  crop_size=crop_size, flip=False, schema=schema, **split_kw)
    train_set = CelebADataset(mode="train", **ds_kw)
    test_set = CelebADataset(mode="test", **ds_kw)
    if len(train_set) == 0:
        raise UserError(f"{data_dir}: the training split is empty")
    dev = resolve_device(device)
    split = "list_eval_partition.txt" if partition.is_file() else f"seeded split, {split_kw.get('test_count')} test"
    click.echo(f"training on {len(train_set)} images ({split}), testing on {len(test_set)}: {schema.describe()}")

    def report(rec: dict) -> None:
        acc = "-" if rec["accuracy"] is None else f"{rec['accuracy']:.3f}"
        click.echo(f"epoch {rec['epoch']}/{epochs}: loss {rec['loss']:.4f}, train accuracy {acc}")

    model, history = fit(train_set, cls_groups, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                         device=dev, progress=report, width=width, attribute_names=names)
    test_acc = None
    if len(test_set):
        import torch

        preds, labels = [], []
        for images, lab in DataLoader(test_set, batch_size=max(batch_size, 64)):
            preds.append(predict(model, images))
            labels.append(lab)
        test_acc = attribute_accuracy(torch.cat(preds), torch.cat(labels), cls_groups, names)
        click.echo(f"test accuracy: {_pct(test_acc['overall']['accuracy'])} "
                   f"({test_acc['overall']['decisions']} decisions on {test_acc['overall']['n']} images)")
        for row in test_acc["attributes"]:
            click.echo(f"  {row['name']}: {_pct(row['accuracy'])} (n={row['n']})")
    else:
        click.echo("test accuracy: skipped (the test split is empty)")
    meta = {"data": str(data_dir), "split": split, "crop_size": crop_size, "schema": schema.to_dict(),
            "epochs": epochs, "seed": seed, "history": history, "test_accuracy": test_acc,
            "n_train": len(train_set), "n_test": len(test_set)}
    save_classifier(out_path, model, meta)
    click.echo(f"classifier: {out_path} ({time.perf_counter() - t0:.1f}s)")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@click.command("evaluate")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A StarGAN checkpoint (file, or a run folder for its latest).")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="CelebA-format folder whose test split is evaluated (list_eval_partition.txt, test_files.txt, "
                   "or the checkpoint's seeded split); shapes datasets add ground-truth counterfactuals.")
@click.option("--classifier", default=None, type=click.Path(path_type=Path),
              help="Attribute classifier from `train-classifier` (without it, accuracies are skipped).")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for metrics.json and the sample grids [default: RUN/eval for RUN/checkpoints/*.pt, "
                   "else ./eval].")
@click.option("--fid-weights", default=None, type=click.Path(path_type=Path),
              help="The FID Inception weights (pt_inception-2015-12-05-6726825d.pth); without them FID/KID are "
                   "skipped.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--max-images", default=None, type=click.IntRange(min=1), help="Evaluate only the first N test images.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--dataset", default=None, help="Multi-dataset models: whose labels and test data to use.")
@user_errors
def evaluate(checkpoint: Path, data_dir: Path, classifier: Path | None, out_dir: Path | None,
             fid_weights: Path | None, batch_size: int, max_images: int | None, device: str,
             dataset: str | None) -> None:
    """Score a StarGAN model on a test split: target/preservation accuracy with an attribute classifier (the
    paper's protocol), error against ground-truth counterfactuals, cycle reconstruction, FID/KID."""
    from stargan.evaluate import evaluate as run_evaluation
    from stargan.evaluate import format_table

    metrics = run_evaluation(checkpoint, data_dir, out_dir=out_dir, classifier=classifier, fid_weights=fid_weights,
                             device=device, batch_size=batch_size, max_images=max_images, dataset=dataset)
    click.echo(format_table(metrics))
    click.echo(f"metrics: {metrics['outputs']['metrics']}")
    for key in ("samples", "counterfactuals"):
        if key in metrics["outputs"]:
            click.echo(f"{key}: {metrics['outputs'][key]}")
