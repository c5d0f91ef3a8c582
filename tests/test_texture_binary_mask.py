"""Two issue-11 options beyond GANimation: modulated Fourier features in StarGAN's generator
(``network.texture_features``) and the mask binarisation penalty (``loss.lambda_mask_binary``)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import run_cli, shapes_overrides, train_cli

from common.checkpoint import load_checkpoint
from common.layers.fourier_texture import FourierTexture
from common.layers.masked_output import mask_binary_penalty, mask_loss
from stargan.families import FAMILIES
from stargan.networks import Generator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"


def test_binary_penalty_is_zero_at_zero_and_one_and_largest_at_a_half():
    mask = torch.tensor([0.0, 1.0, 0.5, 0.25]).view(1, 1, 2, 2)
    assert mask_binary_penalty(mask, 2.0).item() == pytest.approx(2.0 * (0 + 0 + 1 + 0.75) / 4)
    assert mask_binary_penalty(torch.zeros(1, 1, 3, 3), 5.0).item() == 0.0


def test_mask_loss_sums_the_masks_and_pushes_each_pixel_to_its_nearer_side():
    mask = torch.tensor([[0.3, 0.7], [0.3, 0.7]]).view(1, 1, 2, 2).requires_grad_()
    total, logs = mask_loss([mask, mask], 0.0, 0.0, 1.0)
    assert set(logs) == {"G/mask", "G/mask_tv", "G/mask_bin"}
    assert total.item() == pytest.approx(2 * 4 * 0.21)  # two masks, each mean 4 * 0.3 * 0.7
    total.backward()
    down, up = mask.grad[0, 0, 0].tolist()
    assert down > 0 > up  # gradient descent lowers 0.3 and raises 0.7
    _, logs = mask_loss([mask.detach()], 0.1, 0.1)
    assert "G/mask_bin" not in logs  # off at weight 0


def test_fourier_waves_have_the_learned_frequency_and_keep_their_period_at_any_size():
    torch.manual_seed(0)
    layer = FourierTexture(in_channels=2, features=3)
    with torch.no_grad():
        layer.frequency[0] = torch.tensor([2 * math.pi / 4, 0.0])  # period 4 px along x
        layer.phase[0] = 0.3
    small, large = layer.waves(8, 8), layer.waves(16, 16)
    assert small.shape == (1, 3, 8, 8)
    torch.testing.assert_close(small, large[:, :, 4:12, 4:12])  # pixel coordinates from the centre
    row = small[0, 0, 0]
    torch.testing.assert_close(row[:4], row[4:])  # period 4 along x
    assert torch.allclose(small[0, 0, :, 0], small[0, 0, 0, 0].expand(8))  # constant along y
    assert {n for n, p in layer.named_parameters() if p.requires_grad} >= {"frequency", "phase"}


def test_fourier_texture_is_modulated_by_the_features():
    torch.manual_seed(0)
    layer = FourierTexture(in_channels=2, features=4)
    h = torch.zeros(2, 2, 6, 6)
    h[1, 0, :, :3] = 1.0  # the second image asks for texture on its left half
    with torch.no_grad():
        layer.amplitude.weight.zero_()
        layer.amplitude.bias.zero_()
        layer.amplitude.weight[:, 0] = 1.0
    out = layer(h)
    assert torch.equal(out[0], torch.zeros(4, 6, 6)) and torch.equal(out[1, :, :, 3:], torch.zeros(4, 6, 3))
    torch.testing.assert_close(out[1, :, :, :3], layer.waves(6, 6)[0, :, :, :3])


def test_generator_with_texture_features_is_the_plain_one_when_their_amplitude_is_zero():
    torch.manual_seed(0)
    textured = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, texture_features=5)
    plain = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True)
    assert set(textured.state_dict()) - set(plain.state_dict()) == {
        "texture.frequency", "texture.phase", "texture.amplitude.weight", "texture.amplitude.bias"}
    last = f"main.{len(plain.main) - 2}.weight"  # the last conv, before the tanh
    state = {k: v for k, v in textured.state_dict().items() if not k.startswith("texture.")}
    state[last] = state[last][:, :8]  # the plain conv's inputs are the first conv_dim channels
    plain.load_state_dict(state)
    with torch.no_grad():
        textured.texture.amplitude.weight.zero_()
        textured.texture.amplitude.bias.zero_()
    image, labels = torch.rand(2, 3, 16, 16) * 2 - 1, torch.eye(3)[:2]
    torch.testing.assert_close(textured(image, labels), plain(image, labels))
    with torch.no_grad():  # and not the plain one when the texture is on
        textured.texture.amplitude.bias.fill_(1.0)
    assert not torch.allclose(textured(image, labels), plain(image, labels))


def test_stargan_trains_resumes_and_translates_with_both_options(tmp_path, shapes):
    sets = shapes_overrides(shapes) + ["network.attention_mask=true", "network.texture_features=4",
                                       "loss.lambda_mask_binary=0.5", "optim.num_iters=6", "optim.num_iters_decay=3"]
    train_cli(STARGAN, tmp_path / "full", sets)
    rows = [json.loads(line) for line in (tmp_path / "full" / "00000-tiny" / "stats.jsonl").read_text().splitlines()]
    g_rows = [row for row in rows if "G/mask_bin" in row]
    assert g_rows and all(0 < row["G/mask_bin"] <= 2 * 0.5 for row in g_rows)  # two masks, each term <= weight
    full = load_checkpoint(tmp_path / "full" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert full["nets"]["G"]["texture.frequency"].shape == (4, 2)
    train_cli(STARGAN, tmp_path / "split", sets + ["run.stop_after_steps=3"])
    train_cli(STARGAN, tmp_path / "split", sets, resume=True)
    split = load_checkpoint(tmp_path / "split" / "00000-tiny" / "checkpoints" / "latest.pt")
    for key, value in full["nets"]["G"].items():
        assert torch.equal(value, split["nets"]["G"][key]), key
    loaded = FAMILIES["stargan"].load(full, "ckpt")
    assert loaded.nets["G"].texture is not None

    # The export carries the waves: translating with it writes the checkpoint's PNGs, at a non-square size too.
    image = shapes / "images" / "000001.png"
    run_cli(["export", "--checkpoint", tmp_path / "full" / "00000-tiny", "--out", tmp_path / "export"])
    for source, out in ((tmp_path / "full" / "00000-tiny", "by-ckpt"), (tmp_path / "export", "by-export")):
        run_cli(["translate", "--checkpoint", source, "--input", image, "--output", tmp_path / out,
                 "--target", "Blue=1,Striped=1", "--device", "cpu"])
    assert (tmp_path / "by-ckpt" / image.name).read_bytes() == (tmp_path / "by-export" / image.name).read_bytes()


@pytest.mark.slow  # the torch.export-based ONNX exporter takes several seconds
def test_textured_generator_exports_to_onnx_with_free_image_sizes(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[export]')")
    for module in ("onnx", "onnxscript"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[export]')")
    from common.export.onnx_export import export_onnx, sample_inputs

    torch.manual_seed(0)
    generator = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, texture_features=4).eval()
    with torch.no_grad():
        generator.texture.amplitude.bias.fill_(1.0)  # make the waves visible in the output
    export_onnx(generator, sample_inputs(3, 4, 8, 3), tmp_path / "g.onnx")
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    for batch, (h, w) in ((1, (20, 36)), (2, (32, 12))):
        image, labels = torch.rand(batch, 3, h, w) * 2 - 1, torch.rand(batch, 3)
        (output,) = session.run(None, {"image": image.numpy(), "labels": labels.numpy()})
        with torch.no_grad():
            expected = generator(image, labels).numpy()
        assert abs(output - expected).max() <= 1e-4, (h, w)


@pytest.mark.parametrize("config, sets, named", [
    (STARGAN, ["network.texture_features=-1"], "network.texture_features"),
    (STARGAN, ["loss.lambda_mask_binary=0.1"], "network.attention_mask"),
    (STARGAN, ["network.attention_mask=true", "loss.lambda_mask_binary=-1"], "loss.lambda_mask_binary"),
    (CYCLEGAN, ["loss.lambda_mask_binary=0.1"], "network.attention_mask"),
])
def test_bad_values_are_one_line_errors(tmp_path, shapes, config, sets, named):
    base = shapes_overrides(shapes) if config == STARGAN else [f"data.root={tmp_path}"]
    result = train_cli(config, tmp_path / "out", base + sets, code=2)
    assert named in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "out").exists()


def test_cyclegan_logs_the_binary_penalty(tmp_path, unpaired_root):
    sets = [f"data.root={unpaired_root}", "network.attention_mask=true", "loss.lambda_mask_binary=0.2"]
    train_cli(CYCLEGAN, tmp_path / "out", sets)
    rows = [json.loads(line) for line in (tmp_path / "out" / "00000-tiny" / "stats.jsonl").read_text().splitlines()]
    assert rows and all(0 < row["G/mask_bin"] <= 4 * 0.2 for row in rows)  # four masks
