"""``data.decoder: torchvision`` (common/data/decode.py) as a config option of every family: it trains through the
CLI, its batches equal the PIL path's within the tolerance of tests/test_data_decode.py (two 8-bit levels:
two libjpeg builds, and torchvision's resize rounding), and a bad value is one line with exit code 2."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from celeba_helpers import TINY_STARGAN, celeba_overrides, make_celeba
from click.testing import CliRunner
from conftest import train_cli
from pix2pix_helpers import make_aligned, make_folders
from test_cli_cyclegan import make_domains
from test_data_decode import LEVEL, _photo_like

import common.data.decode
import stargan.datasets
from common.checkpoint import load_checkpoint
from common.config import load_config
from common.data.transforms import PREPROCESS_MODES, preprocess
from common.data.unpaired import UnpairedDataset
from common.errors import UserError
from pix2pix.data import PairedDataset
from stargan.cli import cli
from stargan.data import BatchStream, build_dataset
from stargan.families import config_classes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TOLERANCE = 2 * LEVEL + 1e-6


def _stargan_splits(root: Path, decoder: str, **sizes):
    cfg = load_config(TINY_STARGAN, [*celeba_overrides(root, **sizes), f"data.decoder={decoder}"], config_classes())
    entry = cfg.data.datasets[0]
    return build_dataset(entry, cfg.data, "train"), build_dataset(entry, cfg.data, "test")


def test_stargan_batches_match_the_pil_path(tmp_path):
    root = make_celeba(tmp_path / "celeba")
    (pil_train, pil_test), (tv_train, tv_test) = (_stargan_splits(root, d) for d in ("pil", "torchvision"))
    assert tv_train.decoder == "torchvision" and pil_train.files == tv_train.files
    stream = BatchStream(len(pil_train), 4, seed=0, stream=0)
    flipped = 0
    for b in range(6):
        keys = stream.keys(b)
        x_pil = torch.stack([pil_train[k][0] for k in keys])
        x_tv = torch.stack([tv_train[k][0] for k in keys])
        assert x_pil.shape == x_tv.shape == (4, 3, 16, 16)
        assert float((x_pil - x_tv).abs().max()) <= TOLERANCE
        flipped += sum(not torch.equal(pil_train[k][0], pil_train[k[0]][0]) for k in keys)
    assert flipped > 0  # the flips were part of the comparison
    for i in range(len(pil_test)):  # the test split reads through the same decoder
        image_pil, label_pil = pil_test[i]
        image_tv, label_tv = tv_test[i]
        assert float((image_pil - image_tv).abs().max()) <= TOLERANCE and torch.equal(label_pil, label_tv)


def test_stargan_without_a_resize_is_exact(tmp_path):
    # crop 32 -> size 32: a crop and a flip only, so PNGs (lossless, one decoder) give identical tensors.
    root = make_celeba(tmp_path / "celeba")
    pil, tv = (_stargan_splits(root, d, image_size=32, crop_size=32)[0] for d in ("pil", "torchvision"))
    pngs = [i for i, f in enumerate(pil.files) if f.suffix == ".png"]
    assert pngs
    for i in pngs:
        for seed in range(4):
            assert torch.equal(pil[(i, seed)][0], tv[(i, seed)][0])


def _count_calls(monkeypatch, module, name: str = "decode_rgb") -> list[str]:
    """Make ``module.name`` record its arguments (the decoder the trainer's data really used)."""
    calls: list[str] = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda path: calls.append(str(path)) or real(path))
    return calls


def test_stargan_trains_with_torchvision_through_the_cli(tmp_path, monkeypatch):
    root = make_celeba(tmp_path / "celeba")
    calls = _count_calls(monkeypatch, stargan.datasets)
    train_cli(TINY_STARGAN, tmp_path / "runs", [*celeba_overrides(root), "data.decoder=torchvision"])
    ckpt = load_checkpoint(tmp_path / "runs" / "00000-tiny")
    assert ckpt["counters"]["global_step"] == 6
    assert ckpt["config"]["data"]["decoder"] == "torchvision"
    assert all(torch.isfinite(t).all() for t in ckpt["nets"]["G"].values())
    assert len(calls) >= 6 * 4 and all(c.startswith(str(root / "images")) for c in calls)


@pytest.mark.parametrize("config", ["stargan/tiny.yaml", "cyclegan/tiny.yaml", "pix2pix/tiny.yaml"])
def test_a_bad_decoder_is_one_line_exit_2(tmp_path, config):
    result = CliRunner().invoke(cli, ["train", str(CONFIGS / config), "--set", "data.decoder=opencv", "--dry-run",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"error: {CONFIGS / config}: key 'data.decoder' has invalid value 'opencv'; "
                                     "valid values: 'pil', 'torchvision'")
    assert not any(tmp_path.iterdir())


def test_datasets_refuse_an_unknown_decoder(tmp_path):
    with pytest.raises(UserError, match="data.decoder: expected one of pil, torchvision, got 'cv2'"):
        UnpairedDataset(make_domains(tmp_path / "d"), decoder="cv2")


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_cyclegan_preprocess_of_tensors_matches_pil(mode):
    # Non-square, with odd sides: every resize of every mode runs (bicubic up and down, make_multiple).
    image = _photo_like(3, (45, 38))
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
    for seed in range(6):
        ours = preprocess(tensor, mode, 40, 32, True, random.Random(seed))
        theirs = preprocess(image, mode, 40, 32, True, random.Random(seed))
        assert ours.dtype == theirs.dtype == torch.float32 and ours.shape == theirs.shape
        assert float((ours - theirs).abs().max()) <= TOLERANCE


def test_cyclegan_and_pix2pix_datasets_match_the_pil_path(tmp_path):
    domains = make_domains(tmp_path / "unpaired")
    options = dict(preprocess="resize_and_crop", load_size=36, crop_size=32, flip=True)
    pil, tv = (UnpairedDataset(domains, decoder=d, **options) for d in ("pil", "torchvision"))
    for key in [(0, 1, 5), (3, 4, 6), (5, 0, 7)]:
        a, b = pil[key], tv[key]
        assert a["A_path"] == b["A_path"] and a["B_path"] == b["B_path"]
        for side in "AB":
            assert float((a[side] - b[side]).abs().max()) <= TOLERANCE
    for make, fmt in ((make_aligned, "aligned"), (make_folders, "folders")):
        root = tmp_path / fmt
        make(root, 3)
        pil, tv = (PairedDataset(root, format=fmt, decoder=d, **options) for d in ("pil", "torchvision"))
        for key in [(0, 0, 1), (2, 2, 9)]:
            a, b = pil[key], tv[key]
            for side in "AB":
                assert float((a[side] - b[side]).abs().max()) <= TOLERANCE


@pytest.mark.parametrize("family", ["cyclegan", "pix2pix"])
def test_cyclegan_and_pix2pix_train_with_torchvision_through_the_cli(tmp_path, monkeypatch, family):
    calls = _count_calls(monkeypatch, common.data.decode)
    if family == "cyclegan":
        root = make_domains(tmp_path / "data")
    else:
        root = tmp_path / "data"
        make_aligned(root, 4)
    train_cli(CONFIGS / family / "tiny.yaml", tmp_path / "runs",
              [f"data.root={root}", "data.decoder=torchvision", "optim.n_epochs=1", "optim.n_epochs_decay=0"])
    ckpt = load_checkpoint(tmp_path / "runs" / "00000-tiny")
    assert ckpt["config"]["data"]["decoder"] == "torchvision"
    assert ckpt["counters"]["global_step"] > 0 and len(calls) >= 2 * ckpt["counters"]["global_step"]
