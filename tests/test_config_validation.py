"""Config values that pass the schema but used to crash later (or train silently wrong) are refused by the
config layer: through ``stargan train CONFIG --set ... --dry-run`` (exit 2, one line naming the key and the
value, nothing written), and for ``stargan compare`` the same way."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli
from PIL import Image

from common.checkpoint import load_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"

# (config, --set overrides, text the one-line error must contain: the key and the value given)
CASES = {
    "cyclegan_lr_inf": (CYCLEGAN, ["optim.lr=.inf"], ["optim.lr", "inf", "finite"]),
    "cyclegan_lr_1e999": (CYCLEGAN, ["optim.lr=1e999"], ["optim.lr", "finite"]),
    "cyclegan_lambda_nan": (CYCLEGAN, ["loss.lambda_A=.nan"], ["loss.lambda_A", "nan", "finite"]),
    "cyclegan_init_gain_nan": (CYCLEGAN, ["network.init_gain=.nan"], ["network.init_gain", "nan"]),
    "cyclegan_init_gain_negative": (CYCLEGAN, ["network.init_gain=-0.02"], ["network.init_gain", "-0.02", "> 0"]),
    "cyclegan_max_seconds_inf": (CYCLEGAN, ["run.max_seconds=.inf"], ["run.max_seconds", "finite"]),
    "cyclegan_beta1_2": (CYCLEGAN, ["optim.beta1=2"], ["optim.beta1", "2", "[0, 1)"]),
    "cyclegan_beta2_negative": (CYCLEGAN, ["optim.beta2=-0.1"], ["optim.beta2", "-0.1", "[0, 1)"]),
    "cyclegan_input_nc_2": (CYCLEGAN, ["network.input_nc=2"], ["network.input_nc", "2", "1 (grayscale) or 3"]),
    "cyclegan_output_nc_4": (CYCLEGAN, ["network.output_nc=4", "loss.lambda_identity=0"],
                             ["network.output_nc", "4"]),
    "cyclegan_unet_256_crop_32": (CYCLEGAN, ["network.netG=unet_256"],
                                  ["data.crop_size", "(32)", "unet_256", "multiple of 256"]),
    "cyclegan_unet_128_crop_64": (CYCLEGAN, ["network.netG=unet_128", "data.load_size=64", "data.crop_size=64"],
                                  ["data.crop_size", "(64)", "unet_128", "multiple of 128"]),
    "cyclegan_resnet_crop_30": (CYCLEGAN, ["data.crop_size=30"], ["data.crop_size", "(30)", "multiple of 4"]),
    "cyclegan_resnet_crop_4": (CYCLEGAN, ["data.crop_size=4", "network.netD=pixel"],
                               ["data.crop_size", "(4)", "from 8"]),
    "cyclegan_resnet_no_norm_crop_4": (CYCLEGAN, ["data.crop_size=4", "network.netD=pixel", "network.norm=none"],
                                       ["data.crop_size", "(4)", "norm none", "from 8"]),
    "cyclegan_basic_d_crop_16": (CYCLEGAN, ["data.crop_size=16"], ["data.crop_size", "(16)", "netD basic", "24"]),
    "cyclegan_n_layers_d_crop_32": (CYCLEGAN, ["network.netD=n_layers", "network.n_layers_D=4"],
                                    ["data.crop_size", "(32)", "n_layers_D 4", "48"]),
    "cyclegan_scale_width_34": (CYCLEGAN, ["data.preprocess=scale_width", "data.load_size=34"],
                                ["data.load_size", "(34)", "multiple of 4"]),
    "cyclegan_max_dataset_size_0": (CYCLEGAN, ["data.max_dataset_size=0"], ["data.max_dataset_size", "0", ">= 1"]),
    "cyclegan_pool_size_negative": (CYCLEGAN, ["loss.pool_size=-1"], ["loss.pool_size", "-1", ">= 0"]),
    "cyclegan_lambda_negative": (CYCLEGAN, ["loss.lambda_identity=-1"], ["loss.lambda_identity", "-1"]),
    "cyclegan_seed_2_64": (CYCLEGAN, [f"seed={2**64}"], ["seed", str(2**64), "2**48"]),
    "cyclegan_seed_negative": (CYCLEGAN, ["seed=-1"], ["seed", "-1", "[0, 2**48)"]),
    "stargan_g_lr_negative": (STARGAN, ["optim.g_lr=-0.0001"], ["optim.g_lr", "-0.0001", "> 0"]),
    "stargan_d_lr_nan": (STARGAN, ["optim.d_lr=.nan"], ["optim.d_lr", "nan", "finite"]),
    "stargan_lambda_rec_nan": (STARGAN, ["loss.lambda_rec=.nan"], ["loss.lambda_rec", "nan", "finite"]),
    "stargan_beta1_2": (STARGAN, ["optim.beta1=2"], ["optim.beta1", "2", "[0, 1)"]),
    "stargan_g_conv_dim_0": (STARGAN, ["network.g_conv_dim=0"], ["network.g_conv_dim", "0", ">= 1"]),
    "stargan_d_conv_dim_0": (STARGAN, ["network.d_conv_dim=0"], ["network.d_conv_dim", "0", ">= 1"]),
    "stargan_g_repeat_num_negative": (STARGAN, ["network.g_repeat_num=-1"], ["network.g_repeat_num", "-1", ">= 0"]),
    "stargan_d_repeat_num_0": (STARGAN, ["network.d_repeat_num=0"], ["network.d_repeat_num", "0", ">= 1"]),
    "stargan_image_size_vs_d_repeat_num": (STARGAN, ["network.d_repeat_num=6"],
                                           ["data.image_size", "(32)", "d_repeat_num"]),
    "stargan_image_size_not_multiple_of_4": (STARGAN, ["data.image_size=18", "network.d_repeat_num=1"],
                                             ["data.image_size", "(18)", "multiple of 4"]),
    "stargan_seed_2_64": (STARGAN, [f"seed={2**64}"], ["seed", str(2**64)]),
    "stargan_crop_size_0": (STARGAN, ["data.datasets.0.crop_size=0"], ["crop_size", "0"]),
}


@pytest.mark.parametrize("case", CASES)
def test_train_dry_run_refuses_value(tmp_path, case):
    config, overrides, expected = CASES[case]
    out = tmp_path / "out"
    args = ["train", config, "--out", out, "--device", "cpu", "--dry-run"]
    for item in overrides:
        args += ["--set", item]
    result = run_cli(args, code=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert not out.exists()


def test_limits_are_inclusive_where_the_value_is_usable(tmp_path):
    """The edges of each range still pass: seed 0 and 2**48 - 1, beta 0, pool 0, a U-Net at its size."""
    run_cli(["train", CYCLEGAN, "--out", tmp_path / "out", "--device", "cpu", "--dry-run",
             "--set", f"seed={2**48 - 1}", "--set", "optim.beta1=0", "--set", "loss.pool_size=0",
             "--set", "network.input_nc=1", "--set", "network.output_nc=1", "--set", "data.crop_size=24"])
    run_cli(["train", CYCLEGAN, "--out", tmp_path / "out", "--device", "cpu", "--dry-run",
             "--set", "network.netG=unet_128", "--set", "data.load_size=140", "--set", "data.crop_size=128"])
    run_cli(["train", STARGAN, "--out", tmp_path / "out", "--device", "cpu", "--dry-run",
             "--set", "network.g_repeat_num=0", "--set", "seed=0"])
    assert not (tmp_path / "out").exists()


def _compare_config(tmp_path, data: dict) -> Path:
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("data, expected", [
    ({"model": "compare", "name": "x"}, ["data.domains", "at least 2"]),
    ({"model": "compare", "data": {"kind": "shapes", "domains": ["Red", "Green"]}},
     ["budget.images_per_model"]),
    ({"model": "compare", "data": {"kind": "shapes", "domains": ["Red", "Green"], "size": 16},
      "budget": {"images_per_model": 10}, "cyclegan": {"network": {"netD": "pixel"}}},
     ["data.image_size", "(16)", "network.d_repeat_num (64)"]),
    ({"model": "compare", "data": {"kind": "shapes", "domains": ["Red", "Green"], "size": 16},
      "budget": {"images_per_model": 10}, "stargan": {"network": {"d_repeat_num": 4}}},
     ["data.size", "(16)", "cyclegan.network.netD basic", "at least"]),
    ({"model": "compare", "data": {"kind": "shapes", "domains": ["Red", "Green"], "size": 12},
      "budget": {"images_per_model": 10}, "stargan": {"network": {"d_repeat_num": 2}},
      "cyclegan": {"network": {"netG": "unet_128"}}},
     ["data.size", "(12)", "cyclegan.network.netG unet_128", "multiple of 128"]),
    ({"model": "compare", "data": {"kind": "shapes", "domains": ["Red", "Green"]},
      "budget": {"images_per_model": 10}, "stargan": {"optim": {"g_lr": float("nan")}}},
     ["stargan.optim.g_lr", "finite"]),
], ids=["no_data", "no_budget", "stargan_default_depth", "cyclegan_patchgan_too_big", "cyclegan_unet_size",
        "stargan_nan_lr"])
def test_incomplete_compare_config_is_one_line(tmp_path, data, expected):
    out = tmp_path / "out"
    result = run_cli(["compare", _compare_config(tmp_path, data), "--out", out, "--dry-run"], code=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert not out.exists()


@pytest.mark.parametrize("channels", [("1", "1"), ("1", "3")], ids=["gray_to_gray", "gray_to_rgb"])
def test_cyclegan_trains_grayscale_networks_on_rgb_data(tmp_path, unpaired_root, channels):
    """network.input_nc/output_nc 1: the RGB images are fed as their luminance (official --input_nc 1)."""
    input_nc, output_nc = channels
    out = tmp_path / "out"
    run_cli(["train", CYCLEGAN, "--out", out, "--device", "cpu", "--set", f"data.root={unpaired_root}",
             "--set", f"network.input_nc={input_nc}", "--set", f"network.output_nc={output_nc}",
             "--set", "loss.lambda_identity=0", "--set", "log.image_every_steps=2"])
    nets = load_checkpoint(out / "00000-tiny" / "checkpoints" / "latest.pt")["nets"]
    assert nets["G_A"]["model.1.weight"].shape[1] == int(input_nc)
    assert nets["G_B"]["model.1.weight"].shape[1] == int(output_nc)
    # translate reads RGB files: the one-channel side gets their luminance and writes grey RGB PNGs.
    for direction, channels_out in (("AtoB", output_nc), ("BtoA", input_nc)):
        dest = tmp_path / direction
        run_cli(["translate", "--checkpoint", out / "00000-tiny", "--input", unpaired_root / "testA",
                 "--output", dest, "--direction", direction, "--device", "cpu"])
        pngs = sorted(dest.glob("*.png"))
        assert len(pngs) == 2
        arr = np.asarray(Image.open(pngs[0]))
        assert arr.shape[2] == 3
        assert (arr[..., 0] == arr[..., 1]).all() == (channels_out == "1"), direction
