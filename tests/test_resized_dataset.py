"""``stargan resize-dataset``: a pre-resized copy of a CelebA-format folder that trains to the same tensors as the
original, written by the repository's output rules (refusals, resume, inputs untouched)."""
from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from celeba_helpers import TINY_STARGAN, celeba_overrides, make_celeba, tree_digest
from conftest import run_cli, train_cli

from common.checkpoint import load_checkpoint
from common.config import load_config
from common.data.celeba_attrs import read_attr_file
from stargan.data import build_dataset
from stargan.datasets import CelebADataset, read_partition
from stargan.families import config_classes
from stargan.resized import MARKER

CROP, SIZE = 36, 16


def resize(src, out, *extra, code=0):
    return run_cli(["resize-dataset", "--src", src, "--out", out, "--crop", CROP, "--size", SIZE, *extra], code=code)


def splits(root, crop_size, decoder="pil", partition=True):
    kw = dict(image_size=SIZE, crop_size=crop_size, flip=True, decoder=decoder,
              partition_path=root / "list_eval_partition.txt" if partition else None, test_count=3)
    return [CelebADataset(root / "images", root / "list_attr_celeba.txt", ["Red", "Blue", "Striped"], mode=mode, **kw)
            for mode in ("train", "test")]


def assert_same_samples(original, copy):
    assert [f.stem for f in original.files] == [f.stem for f in copy.files]
    assert [f.suffix for f in copy.files] == [".png"] * len(copy)
    assert torch.equal(original.labels, copy.labels)
    for i in range(len(original)):
        for seed in range(3):  # flipped and not
            a, b = original[(i, seed)][0], copy[(i, seed)][0]
            assert a.shape == b.shape == (3, SIZE, SIZE)
            assert torch.equal(a, b)


@pytest.mark.parametrize("partition", [True, False])
def test_the_copy_gives_the_original_tensors(tmp_path, partition):
    src = make_celeba(tmp_path / "src", n=14)
    if not partition:  # the seeded test_count split, no partition file in the source or the copy
        (src / "list_eval_partition.txt").unlink()
    before = tree_digest(src)
    result = resize(src, tmp_path / "out", "--workers", "2")
    out = tmp_path / "out"
    assert "14 images" in result.output and "14 written" in result.output
    assert (out / "list_eval_partition.txt").is_file() == partition
    assert ("partition_path=" in result.output) == partition
    assert tree_digest(src) == before  # the source is only read
    for original, copy in zip(splits(src, CROP, partition=partition), splits(out, None, partition=partition)):
        assert_same_samples(original, copy)
    # A crop of at least the size is clamped to the copy's side: still exact, as is torchvision on the PNGs.
    for original, copy in zip(splits(src, CROP, partition=partition),
                              splits(out, 178, decoder="torchvision", partition=partition)):
        assert_same_samples(original, copy)
    marker = json.loads((out / MARKER).read_text())
    assert marker["complete"] is True and marker["source"] == str(src.resolve())
    assert (marker["crop_size"], marker["image_size"], marker["rows"], marker["skipped"]) == (CROP, SIZE, 14, [])
    names = read_attr_file(out / "list_attr_celeba.txt").files
    assert names == [f.replace(".jpg", ".png") for f in read_attr_file(src / "list_attr_celeba.txt").files]
    if partition:
        assert list(read_partition(out / "list_eval_partition.txt")) == names


def test_training_on_the_copy_equals_training_on_the_original(tmp_path):
    src = make_celeba(tmp_path / "src")
    resize(src, tmp_path / "out")
    train_cli(TINY_STARGAN, tmp_path / "a", celeba_overrides(src, SIZE, CROP))
    train_cli(TINY_STARGAN, tmp_path / "b", celeba_overrides(tmp_path / "out", SIZE, None))
    a, b = (load_checkpoint(tmp_path / run / "00000-tiny") for run in ("a", "b"))
    for net in ("G", "D"):
        for key, tensor in a["nets"][net].items():
            assert torch.equal(tensor, b["nets"][net][key]), f"{net}.{key}"


def test_a_finished_copy_is_left_alone_and_other_settings_are_refused(tmp_path):
    src = make_celeba(tmp_path / "src")
    out = tmp_path / "out"
    resize(src, out)
    before = tree_digest(out)
    assert "already a complete resized copy" in resize(src, out).output
    for extra, message in [(["--crop", "30"], "crop_size 36 (asked: 30)"),
                           (["--size", "8"], "image_size 16 (asked: 8)")]:
        result = resize(src, out, *extra, code=2)
        assert result.output.count("\n") == 1 and message in result.output
    (src / "list_attr_celeba.txt").write_text((src / "list_attr_celeba.txt").read_text().replace(" 1", "-1", 1))
    assert "attr_sha256" in resize(src, out, code=2).output
    assert tree_digest(out) == before


def test_refusals_before_anything_is_written(tmp_path):
    src = make_celeba(tmp_path / "src")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = resize(src, busy, code=2)
    assert result.output.strip() == (f"error: {busy}: folder is not empty and is not a resized copy (no {MARKER} "
                                     'with "format": "resized-celeba"); choose a new or empty folder')
    assert tree_digest(busy) == {"notes.txt": tree_digest(busy)["notes.txt"]}
    assert "inside the source image folder" in resize(src, src / "images" / "small", code=2).output
    assert "source folder not found" in resize(tmp_path / "nowhere", tmp_path / "o1", code=2).output
    (tmp_path / "file").write_text("")
    assert resize(src, tmp_path / "file", code=2).output.strip() == (
        f"error: {tmp_path / 'file'}: --out must be a folder, but a file with that name exists")
    attr = src / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    lines[0] = str(int(lines[0]) + 1)
    attr.write_text("\n".join([*lines, "000001.png  1 -1 -1 -1  1"]) + "\n")  # beside 000001.jpg
    assert "would both become 000001.png" in resize(src, tmp_path / "o2", code=2).output
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_an_unreadable_image_stops_the_copy_which_then_resumes(tmp_path):
    src = make_celeba(tmp_path / "src")
    out = tmp_path / "out"
    good = (src / "images" / "000006.jpg").read_bytes()
    (src / "images" / "000006.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    result = resize(src, out, "--workers", "1", code=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {src / 'images' / '000006.jpg'}: cannot read image")
    assert "--skip-bad" in lines[0]
    assert json.loads((out / MARKER).read_text())["complete"] is False
    assert not (out / "list_attr_celeba.txt").exists()  # the label files come last: nothing looks finished
    done = sorted(p.name for p in (out / "images").iterdir())
    assert done == [f"{i:06d}.png" for i in range(6)]  # one worker, in order, up to the bad one
    kept = out / "images" / "000002.png"
    os.utime(kept, (1, 1))
    (out / "images" / ".000007.png.k1ll3d.tmp").write_bytes(b"half a png")  # a write a kill interrupted

    (src / "images" / "000006.jpg").write_bytes(good)
    result = resize(src, out)
    assert "6 written, 6 kept from an earlier run" in result.output
    assert kept.stat().st_mtime == 1  # resumed, not redone
    assert not list((out / "images").glob(".*.tmp"))
    for original, copy in zip(splits(src, CROP), splits(out, None)):
        assert_same_samples(original, copy)


def test_skip_bad_leaves_the_image_out_of_the_copy_and_its_label_files(tmp_path):
    src = make_celeba(tmp_path / "src")
    (src / "images" / "000004.jpg").write_bytes(b"broken")
    (src / "images" / "000009.jpg").unlink()
    result = resize(src, tmp_path / "out", "--skip-bad")
    assert "10 images" in result.output and "2 unreadable image(s) left out" in result.output
    out = tmp_path / "out"
    assert json.loads((out / MARKER).read_text())["skipped"] == ["000004.jpg", "000009.jpg"]
    names = read_attr_file(out / "list_attr_celeba.txt").files
    assert len(names) == 10 and "000004.png" not in names and "000009.png" not in names
    assert list(read_partition(out / "list_eval_partition.txt")) == names
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(names)


def test_reading_a_copy_at_another_size_warns(tmp_path, caplog):
    src = make_celeba(tmp_path / "src")
    resize(src, tmp_path / "out")
    cfg = load_config(TINY_STARGAN, celeba_overrides(tmp_path / "out", 8, None), config_classes())
    with caplog.at_level(logging.WARNING, logger="stargan"):
        build_dataset(cfg.data.datasets[0], cfg.data, "train")
    assert "is a copy resized to 16x16" in caplog.text and "image_size 8" in caplog.text
    caplog.clear()
    cfg = load_config(TINY_STARGAN, celeba_overrides(tmp_path / "out", SIZE, None), config_classes())
    with caplog.at_level(logging.WARNING, logger="stargan"):
        build_dataset(cfg.data.datasets[0], cfg.data, "train")
    assert "resized" not in caplog.text
