"""pix2pix through the public CLI: train the tiny config, translate in the paper's mode and in eval mode, aligned
inputs, exact resume, official import parity, and options of other families refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image
from pix2pix_helpers import make_aligned

from common.checkpoint import load_checkpoint
from common.networks.factory import define_generator
from pix2pix.model import generator_from_checkpoint
from stargan.families import PIX2PIX, family_of_checkpoint

TINY = Path(__file__).resolve().parents[1] / "configs" / "pix2pix" / "tiny.yaml"


def _train(data: Path, out: Path, *extra: str) -> Path:
    run_cli(["train", TINY, "--set", f"data.root={data}", "--out", out, "--device", "cpu", *extra])
    return out / "00000-tiny"


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def _as_input(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1


def _levels(t: torch.Tensor) -> np.ndarray:
    """A (1, 3, H, W) output in [-1, 1] as the 8-bit levels translate writes."""
    return ((t[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy().astype(np.int16)


def _translate(ckpt, inputs, out, *extra):
    return run_cli(["translate", "--checkpoint", ckpt, "--input", inputs, "--output", out, "--device", "cpu", *extra])


def test_train_then_translate_in_paper_and_eval_mode(tmp_path):
    pairs = make_aligned(tmp_path / "data", 6)
    run_dir = _train(tmp_path / "data", tmp_path / "runs")
    ckpt_path = run_dir / "checkpoints" / "latest.pt"
    ckpt = load_checkpoint(ckpt_path)
    assert family_of_checkpoint(ckpt, "x") is PIX2PIX and set(ckpt["nets"]) == {"G", "D"}
    assert ckpt["counters"] == {"epoch": 2, "epoch_step": 0, "global_step": 6, "images_seen": 12}  # 6 pairs / 2
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert {"D", "D/real", "D/fake", "G/gan", "G/L1", "G/total"} <= set(records[0])
    assert {r["epoch"]: r["lr/G"] for r in records} == pytest.approx({1: 0.0002, 2: 0.0001})  # linear decay

    # Plain inputs: the A halves of two training files.
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in pairs[:2]:
        Image.open(path).crop((0, 0, 32, 32)).save(inputs / path.name)
    _translate(ckpt_path, inputs, tmp_path / "paper1")
    _translate(run_dir, inputs, tmp_path / "paper2", "--batch-size", "1")
    _translate(ckpt_path, inputs / pairs[1].name, tmp_path / "alone")
    _translate(ckpt_path, inputs, tmp_path / "eval", "--eval")
    cfg, generator = generator_from_checkpoint(ckpt, "x")
    for path in pairs[:2]:
        paper = _png(tmp_path / "paper1" / path.name)
        # Seeded per image: the same PNG on every run, with any batch size, alone or among others.
        assert np.array_equal(paper, _png(tmp_path / "paper2" / path.name))
        x = _as_input(inputs / path.name)
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            expected_paper = _levels(generator.train()(x))  # official test.py without --eval
            expected_eval = _levels(generator.eval()(x))
        assert np.abs(paper - expected_paper).max() <= 1
        evaluated = _png(tmp_path / "eval" / path.name)
        assert np.abs(evaluated - expected_eval).max() <= 1
        assert np.abs(paper - evaluated).max() > 2  # batch statistics and dropout do change the output
    assert np.array_equal(_png(tmp_path / "alone" / pairs[1].name), _png(tmp_path / "paper1" / pairs[1].name))

    # Aligned inputs: the A half (AtoB model) is translated; the output is half as wide.
    _translate(ckpt_path, pairs[0], tmp_path / "aligned", "--aligned", "--eval")
    aligned = _png(tmp_path / "aligned" / pairs[0].name)
    assert aligned.shape == (32, 32, 3) and np.array_equal(aligned, _png(tmp_path / "eval" / pairs[0].name))
    odd = tmp_path / "odd" / "odd.png"
    odd.parent.mkdir()
    Image.new("RGB", (33, 20)).save(odd)
    result = run_cli(["translate", "--checkpoint", ckpt_path, "--input", odd, "--output", tmp_path / "o",
                      "--aligned"], code=2)
    assert "odd width" in result.output and "33x20" in result.output


def test_options_of_other_families_are_refused_both_ways(tmp_path):
    make_aligned(tmp_path / "data", 2)
    run_dir = _train(tmp_path / "data", tmp_path / "runs", "--set", "run.stop_after_steps=1")
    image = make_aligned(tmp_path / "in", 1)[0]
    result = run_cli(["translate", "--checkpoint", run_dir, "--input", image, "--output", tmp_path / "o",
                      "--direction", "BtoA"], code=2)
    assert "is a pix2pix model; --direction does not apply" in result.output and "--eval, --aligned" in result.output
    official = tmp_path / "latest_net_G_A.pth"
    torch.save(define_generator("resnet_6blocks", ngf=8, norm="instance").state_dict(), official)
    run_cli(["import-official", official, "--out", tmp_path / "cyclegan.pt"])
    result = run_cli(["translate", "--checkpoint", tmp_path / "cyclegan.pt", "--input", image, "--output",
                      tmp_path / "o", "--eval", "--aligned"], code=2)
    assert "is a CycleGAN model; --eval/--aligned do not apply" in result.output
    assert not (tmp_path / "o").exists()


def test_resume_is_exact(tmp_path):
    make_aligned(tmp_path / "data", 5)
    args = ("--set", "data.batch_size=1")  # 5 steps an epoch; dropout on (tiny.yaml), so the RNG must resume too
    full = load_checkpoint(_train(tmp_path / "data", tmp_path / "a", *args) / "checkpoints" / "latest.pt")
    stopped_dir = _train(tmp_path / "data", tmp_path / "b", *args, "--set", "run.stop_after_steps=3")
    assert load_checkpoint(stopped_dir / "checkpoints" / "latest.pt")["counters"]["epoch_step"] == 3
    run_cli(["train", TINY, "--set", f"data.root={tmp_path / 'data'}", "--out", tmp_path / "b", "--device", "cpu",
             *args, "--resume", "auto"])
    resumed = load_checkpoint(stopped_dir / "checkpoints" / "latest.pt")
    assert resumed["counters"] == full["counters"] and full["counters"]["global_step"] == 10
    for name in ("G", "D"):
        for key, tensor in full["nets"][name].items():  # weights and batch-norm running statistics
            assert torch.equal(tensor, resumed["nets"][name][key]), f"{name}.{key} differs after resume"
        saved, again = full["optimizers"][name], resumed["optimizers"][name]
        assert saved["param_groups"][0]["lr"] == again["param_groups"][0]["lr"]
        assert all(torch.equal(saved["state"][i]["exp_avg"], again["state"][i]["exp_avg"]) for i in saved["state"])


def test_official_generator_imports_and_translates_like_the_official_eval_mode(tmp_path):
    """A state_dict in the official key layout (ours is the official one, tests/data/cyclegan_official_keys.txt)
    with random weights and running statistics, saved as the official code saves latest_net_G.pth."""
    torch.manual_seed(0)
    official = define_generator("unet_128", ngf=8, norm="batch", dropout=True)
    with torch.no_grad():
        for name, buffer in official.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.5)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    path = tmp_path / "latest_net_G.pth"
    torch.save(official.state_dict(), path)
    result = run_cli(["import-official", path, "--out", tmp_path / "imported.pt"])
    assert "pix2pix unet_128 ngf=8 norm=batch dropout=True" in result.output
    assert family_of_checkpoint(load_checkpoint(tmp_path / "imported.pt"), "x") is PIX2PIX
    image = tmp_path / "in" / "photo.png"
    image.parent.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(image)
    _translate(tmp_path / "imported.pt", image, tmp_path / "out", "--eval")
    with torch.no_grad():
        expected = _levels(official.eval()(_as_input(image)))
    assert np.abs(_png(tmp_path / "out" / "photo.png") - expected).max() <= 1


@pytest.mark.parametrize("mode, precision", [("lsgan", "fp32"), ("wgangp", "amp_bf16")])
def test_other_gan_modes_train_with_finite_losses(tmp_path, mode, precision):
    make_aligned(tmp_path / "data", 4)
    run_dir = _train(tmp_path / "data", tmp_path / "runs", "--set", f"loss.gan_mode={mode}", "--set",
                     f"run.precision={precision}", "--set", "run.stop_after_steps=2")
    record = json.loads((run_dir / "stats.jsonl").read_text().splitlines()[0])
    assert all(np.isfinite(v) for k, v in record.items() if k.startswith(("D", "G")))
    assert ("D/gp" in record) == (mode == "wgangp")  # the penalty the official code forgets


@pytest.mark.parametrize("extra, message", [
    ("network.netG=unet_256", "key 'data.crop_size' (32) does not fit network.netG unet_256"),
    ("data.direction=AtoC", "key 'data.direction' has invalid value 'AtoC'"),
    ("data.phase=../x", "key 'data.phase' must be a sub-folder name"),
    ("loss.lambda_L1=-1", "key 'loss.lambda_L1' must be >= 0"),
    ("data.root=/nonexistent/p2p", "/nonexistent/p2p/train"),
])
def test_config_errors_are_one_line(tmp_path, extra, message):
    result = run_cli(["train", TINY, "--set", extra, "--out", tmp_path / "runs", "--device", "cpu"], code=2)
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_tiny_model_learns_the_pairs(tmp_path):
    """B = 255 - A. After 30 epochs of 4 steps (5 to 30 s on a CPU) the eval-mode output is clearly
    closer to B than the mean B image is (measured 0.229 vs 0.330 mean absolute error in [-1, 1]), and far closer
    than the input itself."""
    pairs = make_aligned(tmp_path / "data", 8)
    run_dir = _train(tmp_path / "data", tmp_path / "runs", "--set", "optim.n_epochs=20", "--set",
                     "optim.n_epochs_decay=10", "--set", "log.every_steps=20", "--set", "log.save_every_epochs=30")
    _, generator = generator_from_checkpoint(load_checkpoint(run_dir / "checkpoints" / "latest.pt"), "x")
    halves = [(_as_input(p)[..., :32], _as_input(p)[..., 32:]) for p in pairs]
    mean_b = torch.stack([b for _, b in halves]).mean(0)
    with torch.no_grad():
        model = np.mean([float((generator(a) - b).abs().mean()) for a, b in halves])
    baseline = np.mean([float((mean_b - b).abs().mean()) for _, b in halves])
    identity = np.mean([float((a - b).abs().mean()) for a, b in halves])
    assert model < 0.8 * baseline and model < 0.5 * identity, (model, baseline, identity)
