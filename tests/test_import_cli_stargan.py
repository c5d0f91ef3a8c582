"""`stargan import-official` on official StarGAN files, then inference through the converted checkpoint."""
import pytest
import torch
from click.testing import CliRunner
from test_import_official_stargan import (
    functional_g,
    official_d_shapes,
    official_g_shapes,
    random_state,
)

from common.checkpoint import load_checkpoint
from common.errors import UserError
from stargan.cli import cli
from stargan.model import networks_from_checkpoint
from stargan.translate import TargetSpec, make_translator


def _save_official(tmp_path, g_c, d_c, conv_dim=16, image_size=64, prefix=""):
    g = random_state(official_g_shapes(g_c, conv_dim, 6), seed=1)
    d = random_state(official_d_shapes(image_size, conv_dim, d_c, 6), seed=2)
    torch.save({prefix + k: v for k, v in g.items()}, tmp_path / "200000-G.ckpt")
    torch.save({prefix + k: v for k, v in d.items()}, tmp_path / "200000-D.ckpt")
    return g


def test_celeba_import_then_translate_matches_official_forward(tmp_path):
    g_official = _save_official(tmp_path, 5, 5)
    out = tmp_path / "converted.pt"
    result = CliRunner().invoke(cli, [
        "import-official", str(tmp_path / "200000-G.ckpt"), "--out", str(out),
        "--attrs", "Black_Hair,Blond_Hair,Brown_Hair,Male,Young", "--exclusive", "Black_Hair,Blond_Hair,Brown_Hair"])
    assert result.exit_code == 0, result.output
    assert "with D (image_size 64)" in result.output
    ckpt = load_checkpoint(out)
    *_, nets, labels = networks_from_checkpoint(ckpt, str(out))
    assert set(nets) == {"G", "D"} and labels.schemas[0].names[3] == "Male"
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    c = torch.tensor([[0, 1, 0, 1, 0], [1, 0, 0, 0, 1]], dtype=torch.float32)
    with torch.no_grad():
        assert (nets["G"](x, c) - functional_g(g_official, x, c)).abs().max() <= 1e-5
        # The translate path with a raw vector applies exactly that generator.
        fn = make_translator(nets, labels, TargetSpec(vector="0,1,0,1,0"), image_size=64)
        assert (fn(x, (64, 64)) - functional_g(g_official, x, c[:1].expand(2, -1))).abs().max() <= 1e-5


def test_mask_model_import_needs_and_uses_block_sizes(tmp_path):
    g_official = _save_official(tmp_path, 15, 13, prefix="module.")
    g_file = tmp_path / "200000-G.ckpt"
    result = CliRunner().invoke(cli, ["import-official", str(g_file), "--out", str(tmp_path / "x.pt")])
    assert result.exit_code == 2 and "--datasets" in result.output
    result = CliRunner().invoke(cli, ["import-official", str(g_file), "--out", str(tmp_path / "x.pt"),
                                      "--datasets", "5,8", "--dataset-names", "celeba,rafd"])
    assert result.exit_code == 0, result.output
    *_, nets, labels = networks_from_checkpoint(load_checkpoint(tmp_path / "x.pt"), "x")
    assert labels.names == ("celeba", "rafd") and labels.g_dim == 15 and labels.d_dim == 13
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    c = labels.g_label(1, torch.nn.functional.one_hot(torch.tensor([3]), 8).float())
    assert c[0, -2:].tolist() == [0.0, 1.0]
    with torch.no_grad():
        assert (nets["G"](x, c) - functional_g(g_official, x, c)).abs().max() <= 1e-5
    # --dataset picks a dataset by name; an unknown one lists the model's datasets.
    make_translator(nets, labels, TargetSpec(all_targets=True, dataset="rafd"), image_size=64)
    with pytest.raises(UserError, match="unknown dataset 'nope'; this model's datasets: celeba, rafd"):
        make_translator(nets, labels, TargetSpec(all_targets=True, dataset="nope"), image_size=64)
    result = CliRunner().invoke(cli, ["import-official", str(g_file), "--out", str(tmp_path / "y.pt"),
                                      "--datasets", "6,8"])
    assert result.exit_code == 2 and "label size" in result.output
