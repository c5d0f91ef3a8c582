"""CLI commands that prepare data for training: ``resize-dataset``.

Plain Click commands; ``stargan.cli`` registers them on the ``stargan`` group.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from stargan.cli.common import user_errors


@click.command("resize-dataset")
@click.option("--src", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="CelebA-format folder: images/ and list_attr_celeba.txt (list_eval_partition.txt optional). "
                   "Only read.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Folder to write: missing, empty, or a copy with the same settings (source, crop, size, label "
                   "files): an unfinished one is resumed, a finished one left as it is.")
@click.option("--size", required=True, type=click.IntRange(min=1), help="Image side of the copy: the config's "
                                                                         "data.image_size, e.g. 128.")
@click.option("--crop", default=None, type=click.IntRange(min=1),
              help="Centre crop before resizing: the config's crop_size, e.g. 178 [default: the shorter side].")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Processes that decode and resize [default: the CPUs this process may use].")
@click.option("--skip-bad", is_flag=True,
              help="Leave unreadable images out of the copy and its label files (named in resized.json) instead of "
                   "stopping at the first (a seeded test_count split then differs; a partition file keeps it).")
@user_errors
def resize_dataset(src: Path, out: Path, size: int, crop: int | None, workers: int | None, skip_bad: bool) -> None:
    """Write a copy of a CelebA-format dataset with every image centre-cropped and resized once, for machines
    whose CPUs cannot decode and resize the originals as fast as the GPU trains.

    The copy holds PNGs made by the training transform itself, so training on it with crop_size null and
    data.image_size SIZE gives exactly the tensors of the original with crop_size CROP read with the default
    decoder (pil): same split, labels and flips. An interrupted run resumes when started again with the same arguments.
    """
    from stargan.resized import MARKER, make_resized

    try:
        summary = make_resized(src, out, image_size=size, crop_size=crop, workers=workers, skip_bad=skip_bad)
    except KeyboardInterrupt:
        click.echo("interrupted; run the same command again to resume", err=True)
        sys.exit(130)
    crop_text = f"centre crop {crop}" if crop else "centre crop of the shorter side"
    if summary["already_complete"]:
        click.echo(f"{out}: already a complete resized copy of {src} ({crop_text}, {size}x{size}); nothing to do")
    else:
        click.echo(f"resized {summary['rows']} images of {src} ({crop_text}, {size}x{size} PNG): {summary['written']} "
                   f"written, {summary['reused']} kept from an earlier run, in {summary['seconds']:.1f}s with "
                   f"{summary['workers']} worker(s)")
    if summary["skipped"]:
        click.echo(f"warning: {len(summary['skipped'])} unreadable image(s) left out (listed in {out / MARKER}); "
                   "a seeded test_count split of the copy differs from the original's, a partition file keeps it",
                   err=True)
    click.echo(f"images: {summary['images']}")
    click.echo(f"labels: {summary['attr_file']}")
    if summary["partition_file"]:
        click.echo(f"partition: {summary['partition_file']}")
    click.echo(f"train on it: --set data.datasets.0.image_dir={summary['images']} "
               f"--set data.datasets.0.attr_path={summary['attr_file']} --set data.datasets.0.crop_size=null "
               f"--set data.image_size={size}"
               + (f" --set data.datasets.0.partition_path={summary['partition_file']}"
                  if summary["partition_file"] else ""))
