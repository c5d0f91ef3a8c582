"""The family registry through the CLI: every command finds the family from the config, the checkpoint or the
official file, and options of another family are refused by name."""
from __future__ import annotations

import numpy as np
import torch
from conftest import make_image_folder, run_cli
from PIL import Image

from common.checkpoint import atomic_save, load_checkpoint
from common.networks.factory import define_generator
from stargan.families import CYCLEGAN, STARGAN, family_of_checkpoint


def _official_cyclegan_file(tmp_path):
    """A generator file as the official CycleGAN code saves it (our ResNet keys are the official ones)."""
    torch.manual_seed(0)
    generator = define_generator("resnet_6blocks", in_channels=3, out_channels=3, ngf=8, norm="instance")
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(generator.state_dict(), path)
    return path, generator.eval()


def test_official_cyclegan_file_imports_and_translates_through_its_family(tmp_path):
    path, generator = _official_cyclegan_file(tmp_path)
    out = tmp_path / "imported.pt"
    result = run_cli(["import-official", path, "--out", out])
    assert "resnet_6blocks" in result.output and "--direction AtoB" in result.output
    ckpt = load_checkpoint(out)
    assert family_of_checkpoint(ckpt, str(out)) is CYCLEGAN
    image = make_image_folder(tmp_path / "in", 1, size=(20, 12))[0]
    run_cli(["translate", "--checkpoint", out, "--input", image, "--output", tmp_path / "res"])
    written = np.asarray(Image.open(tmp_path / "res" / image.with_suffix(".png").name))
    assert written.shape == (12, 20, 3)  # both sides are multiples of 4: no padding, the plain forward
    x = torch.from_numpy(np.asarray(Image.open(image), dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    with torch.no_grad():
        expected = ((generator(x)[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    assert np.abs(written.astype(np.float32) - expected).max() <= 1.0


def test_options_of_another_family_are_refused_by_name(tmp_path):
    path, _ = _official_cyclegan_file(tmp_path)
    out = tmp_path / "imported.pt"
    result = run_cli(["import-official", path, "--out", tmp_path / "x.pt", "--attrs", "a,b"], code=2)
    assert "--attrs does not apply" in result.output and not (tmp_path / "x.pt").exists()
    run_cli(["import-official", path, "--out", out])
    image = make_image_folder(tmp_path / "in", 1)[0]
    result = run_cli(["translate", "--checkpoint", out, "--input", image, "--output", tmp_path / "res",
                      "--target", "Red=1", "--strength", "2"], code=2)
    assert "--target/--strength do not apply" in result.output and "--direction" in result.output
    assert not (tmp_path / "res").exists()
    # A given 0 is a given option too (0 == False must not let it through).
    result = run_cli(["translate", "--checkpoint", out, "--input", image, "--output", tmp_path / "res",
                      "--strength", "0"], code=2)
    assert "--strength does not apply" in result.output


def test_importing_a_checkpoint_of_this_library_says_to_use_it_directly(tmp_path):
    path, _ = _official_cyclegan_file(tmp_path)
    ours = tmp_path / "imported.pt"
    run_cli(["import-official", path, "--out", ours])
    result = run_cli(["import-official", ours, "--out", tmp_path / "again.pt"], code=2)
    assert "already a checkpoint of this library; use it directly" in result.output


def test_unknown_official_file_names_what_each_family_expects(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, path)
    result = run_cli(["import-official", path, "--out", tmp_path / "x.pt"], code=2)
    line = result.output.strip()
    assert "\n" not in line and "not a checkpoint of a known official implementation" in line
    assert f"{CYCLEGAN.title}:" in line and f"{STARGAN.title}:" in line


def test_checkpoint_of_an_unknown_family_is_a_clear_error(tmp_path):
    path, _ = _official_cyclegan_file(tmp_path)
    ckpt_path = tmp_path / "imported.pt"
    run_cli(["import-official", path, "--out", ckpt_path])
    ckpt = load_checkpoint(ckpt_path)
    ckpt["model"] = "foo"
    atomic_save(ckpt, ckpt_path)
    image = make_image_folder(tmp_path / "in", 1)[0]
    result = run_cli(["translate", "--checkpoint", ckpt_path, "--input", image, "--output", tmp_path / "r"], code=2)
    assert "unknown model family 'foo'" in result.output
    assert CYCLEGAN.name in result.output and STARGAN.name in result.output


def test_train_config_of_an_unknown_family_lists_the_valid_ones(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: foo\nname: x\n")
    result = run_cli(["train", config, "--dry-run"], code=2)
    assert "foo" in result.output and CYCLEGAN.name in result.output and STARGAN.name in result.output
