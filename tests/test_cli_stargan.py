"""StarGAN through the public CLI: train (one dataset and the mask vector), exact resume, translate, import."""
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import run_cli as run
from conftest import shapes_overrides
from PIL import Image

from common.checkpoint import load_checkpoint
from stargan.cli import cli

TINY = Path(__file__).resolve().parents[1] / "configs" / "stargan" / "tiny.yaml"


def data_args(root):
    return [arg for kv in shapes_overrides(root) for arg in ("--set", kv)]


def train(shapes, out, *extra):
    return run(["train", TINY, *data_args(shapes), "--out", out, "--device", "cpu", *extra])


def test_train_resume_exact_and_translate(tmp_path, shapes):
    train(shapes, tmp_path / "a")
    full = load_checkpoint(tmp_path / "a" / "00000-tiny")
    assert full["counters"]["global_step"] == 6
    assert full["extra"]["labels"]["datasets"][0]["schema"]
    # LR: linear to 0 over the last 3 of 6 iterations; the last iteration ran at 1 - 3/4.
    assert full["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.25)

    train(shapes, tmp_path / "b", "--set", "run.stop_after_steps=3")
    assert load_checkpoint(tmp_path / "b" / "00000-tiny")["counters"]["global_step"] == 3
    train(shapes, tmp_path / "b", "--resume", "auto")
    resumed = load_checkpoint(tmp_path / "b" / "00000-tiny")
    assert resumed["counters"] == full["counters"]
    for net in ("G", "D"):
        for key, tensor in full["nets"][net].items():
            assert torch.equal(tensor, resumed["nets"][net][key]), f"{net}.{key} differs after resume"

    ckpt = tmp_path / "a" / "00000-tiny" / "checkpoints" / "latest.pt"
    image = shapes / "images" / "000001.png"
    out = tmp_path / "out"
    run(["translate", "--checkpoint", ckpt, "--input", image, "--output", out / "t", "--target", "Blue=1"])
    assert [p.name for p in (out / "t").iterdir()] == ["000001.png"]
    assert Image.open(out / "t" / "000001.png").size == (32, 32)
    run(["translate", "--checkpoint", ckpt, "--input", image, "--output", out / "grid", "--all-targets"])
    # input + one column per attribute (4 colours + Striped)
    assert Image.open(out / "grid" / "000001.png").size == (32 * 6, 32)
    run(["translate", "--checkpoint", ckpt, "--input", image, "--output", out / "v",
         "--target-vector", "0,0,1,0,1"])
    run(["translate", "--checkpoint", ckpt, "--input", image, "--output", out / "s0", "--target", "Blue=1",
         "--strength", "0"])
    run(["translate", "--checkpoint", ckpt, "--input", image, "--output", out / "s1", "--target", "Blue=1",
         "--strength", "1"])
    s0 = np.asarray(Image.open(out / "s0" / "000001.png"), dtype=np.int16)
    s1 = np.asarray(Image.open(out / "s1" / "000001.png"), dtype=np.int16)
    assert np.abs(s0 - s1).max() > 0  # strength changes the conditioning

    for args, message in [
        (["--target", "Purple=1"], "Purple"),
        (["--target-vector", "0,1"], "expected 5"),
        ([], "exactly one of --target"),
        (["--target", "Blue=1", "--all-targets"], "exactly one of --target"),
        (["--target", "Nope=1"], "Nope"),
        (["--direction", "BtoA", "--target", "Blue=1"], "--direction does not apply"),
    ]:
        result = CliRunner().invoke(cli, ["translate", "--checkpoint", str(ckpt), "--input", str(image),
                                          "--output", str(out / "err"), *args])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_mask_vector_training_on_two_datasets(tmp_path, shapes):
    # Second dataset: an ImageFolder (one exclusive group) made from the shapes images by colour.
    folder = tmp_path / "byshape"
    rows = (shapes / "list_attr_celeba.txt").read_text().splitlines()[2:]
    for row in rows[:24]:
        name, *values = row.split()
        cls = "striped" if values[4] == "1" else "solid"
        (folder / cls).mkdir(parents=True, exist_ok=True)
        Image.open(shapes / "images" / name).save(folder / cls / name)
    result = run(["train", TINY, *data_args(shapes), "--out", tmp_path / "runs", "--device", "cpu",
                  "--set", "data.datasets=[{name: shapes, format: celeba, image_dir: "
                  f"{shapes / 'images'}, attr_path: {shapes / 'list_attr_celeba.txt'}, "
                  "selected_attrs: [Red, Green, Blue, Yellow], exclusive: [[Red, Green, Blue, Yellow]], "
                  f"crop_size: null, test_count: 4}}, {{name: texture, format: imagefolder, image_dir: {folder}, "
                  "crop_size: null}]"])
    assert "run folder" in result.output
    ckpt = load_checkpoint(tmp_path / "runs" / "00000-tiny")
    # G input: 4 colours + 2 textures + 2-long mask; D classifies 6.
    assert ckpt["nets"]["G"]["main.0.weight"].shape[1] == 3 + 4 + 2 + 2
    assert ckpt["nets"]["D"]["conv2.weight"].shape[0] == 6
    assert ckpt["counters"]["batches"] == [3, 3]  # datasets alternate every iteration
    image = shapes / "images" / "000002.png"
    out = tmp_path / "t"
    run(["translate", "--checkpoint", tmp_path / "runs" / "00000-tiny", "--input", image, "--output", out,
         "--target", "striped=1"])
    assert (out / "000002.png").is_file()
    run(["translate", "--checkpoint", tmp_path / "runs" / "00000-tiny", "--input", image, "--output",
         tmp_path / "g", "--all-targets", "--dataset", "shapes"])
    # input + 4 own colours + 2 other-dataset classes
    assert Image.open(tmp_path / "g" / "000002.png").size == (32 * 7, 32)


def test_config_errors_exit_2(tmp_path, shapes):
    result = CliRunner().invoke(cli, ["train", str(TINY), *data_args(shapes), "--set",
                                      "data.datasets.0.selected_attrs=[Red, Purple]", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "Purple" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(cli, ["train", str(TINY), *data_args(shapes), "--set", "data.image_size=36",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2 and "divisible" in result.output
