"""Modulated Fourier features in StarGAN's generator (``network.texture_features``, issue 11, docs/fidelity.md):
plane waves with learned frequencies, scaled by amplitude maps from G's last features and mixed into the
painted colour, never into the attention mask."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import (
    assert_export_translates_like_checkpoint,
    assert_resume_is_exact,
    shapes_overrides,
    train_cli,
)

from common.checkpoint import load_checkpoint
from common.layers.fourier_texture import FourierTexture
from common.layers.guided_filter import guided_filter
from stargan.families import FAMILIES
from stargan.networks import Generator

STARGAN = Path(__file__).resolve().parents[1] / "configs" / "stargan" / "tiny.yaml"


def test_waves_have_the_learned_frequency_and_keep_their_period_in_pixels_at_any_size():
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


def test_texture_is_switched_on_where_the_features_ask_for_it():
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


@pytest.mark.parametrize("attention_mask, skip", [(True, False), (False, False), (True, True)])
def test_a_new_textured_generator_paints_what_the_plain_one_paints_and_the_texture_never_moves_the_mask(
        attention_mask, skip):
    torch.manual_seed(0)
    textured = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=attention_mask, skip=skip,
                         texture_features=5)
    plain = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=attention_mask, skip=skip)
    extra = set(textured.state_dict()) - set(plain.state_dict())
    assert extra == {"texture.frequency", "texture.phase", "texture.amplitude.weight", "texture.amplitude.bias",
                     "texture_to_colour.weight"}
    # The official keys keep their names and shapes, so the plain G loads the textured one's main weights.
    plain.load_state_dict({k: v for k, v in textured.state_dict().items() if k not in extra})
    image, labels = torch.rand(2, 3, 16, 16) * 2 - 1, torch.eye(3)[:2]
    with torch.no_grad():
        torch.testing.assert_close(textured(image, labels), plain(image, labels), rtol=0, atol=0)
        plain_mask = plain.attention.last_mask if attention_mask else None
        textured.texture.amplitude.bias.fill_(1.0)
        textured.texture_to_colour.weight.normal_(0, 0.1)
        changed = textured(image, labels)
    assert (changed - plain(image, labels)).abs().max() > 1e-2  # the texture reaches the picture ...
    if attention_mask:  # ... through the colour only: the mask is the plain one's, to the last bit
        assert torch.equal(textured.attention.last_mask, plain_mask)


def test_textured_generator_trains_from_the_cli_rebuilds_from_checkpoint_and_export_and_resumes_exactly(
        tmp_path, shapes):
    base = shapes_overrides(shapes) + ["network.texture_features=4", "network.attention_mask=true"]
    train_cli(STARGAN, tmp_path / "full", base)
    ckpt = load_checkpoint(tmp_path / "full" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert ckpt["nets"]["G"]["texture.frequency"].shape == (4, 2)
    # Trained: the zero-initialised mixing conv has learned something.
    assert ckpt["nets"]["G"]["texture_to_colour.weight"].abs().sum() > 0
    g = FAMILIES["stargan"].load(ckpt, "full").nets["G"]
    assert g.texture is not None and g.texture.features == 4
    assert_export_translates_like_checkpoint(tmp_path / "full" / "00000-tiny", tmp_path)
    assert_resume_is_exact(STARGAN, tmp_path / "split", base, ckpt)


@pytest.mark.slow  # the torch.export-based ONNX exporter takes several seconds
@pytest.mark.parametrize("after_guide", [False, True], ids=["waves", "waves_after_guide"])
def test_textured_generator_exports_to_onnx_with_free_image_sizes(tmp_path, after_guide):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[export]')")
    for module in ("onnx", "onnxscript"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[export]')")
    from common.export.onnx_export import export_onnx, sample_inputs

    torch.manual_seed(0)
    guide = dict(mask_guide_radius=2, mask_guide_colour=True, texture_after_guide=True) if after_guide else {}
    generator = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, texture_features=4,
                          **guide).eval()
    with torch.no_grad():  # make the waves visible in the output
        generator.texture.amplitude.bias.fill_(1.0)
        generator.texture_to_colour.weight.normal_(0, 0.1)
    export_onnx(generator, sample_inputs(3, 4, 8, 3), tmp_path / "g.onnx")
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    for batch, (h, w) in ((1, (20, 36)), (2, (32, 12))):
        image, labels = torch.rand(batch, 3, h, w) * 2 - 1, torch.rand(batch, 3)
        (output,) = session.run(None, {"image": image.numpy(), "labels": labels.numpy()})
        with torch.no_grad():
            expected = generator(image, labels).numpy()
        assert abs(output - expected).max() <= 1e-4, (h, w)


def test_a_negative_feature_count_is_a_one_line_error(tmp_path, shapes):
    result = train_cli(STARGAN, tmp_path / "out", shapes_overrides(shapes) + ["network.texture_features=-1"], code=2)
    assert "network.texture_features" in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "out").exists()


def _textured(floor: float) -> Generator:
    torch.manual_seed(0)
    generator = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, texture_features=4,
                          texture_floor=floor)
    with torch.no_grad():  # a live texture
        generator.texture.amplitude.bias.fill_(1.0)
        generator.texture_to_colour.weight.normal_(0, 0.1)
    return generator


def _closed_left(generator: Generator) -> None:
    """Close the mask on the left half of every image, whatever G paints."""
    def close(module, args, output):
        raw = output.clone()
        raw[:, -1:, :, :8] = -1.0  # mask (t + 1) / 2 = 0 there
        return raw
    generator.main[-1].register_forward_hook(close)


def test_texture_floor_changes_no_output_and_teaches_only_the_texture_where_the_mask_is_closed():
    image, labels = torch.rand(2, 3, 16, 16) * 2 - 1, torch.eye(3)[:2]
    grads, outputs = {}, {}
    for floor in (0.0, 0.5):
        generator = _textured(floor).train()
        _closed_left(generator)
        out = generator(image, labels)
        assert torch.equal(generator.attention.last_mask[..., :8], torch.zeros(2, 1, 16, 8))
        # Only the closed half is scored: without the floor nothing there reaches any weight.
        out[..., :8].square().sum().backward()
        outputs[floor] = out.detach()
        grads[floor] = {n: p.grad for n, p in generator.named_parameters()}
    assert torch.equal(outputs[0.0], outputs[0.5])  # the floor adds exactly 0 to the picture
    texture = {n for n in grads[0.5] if n.startswith(("texture.", "texture_to_colour."))}
    for name, grad in grads[0.0].items():
        assert grad is None or not grad.abs().sum(), name
    for name, grad in grads[0.5].items():
        if name in texture - {"texture.amplitude.bias"}:
            assert grad is not None and grad.abs().sum() > 0, name
        elif name not in texture:  # the body learns nothing from the floor
            assert grad is None or not grad.abs().sum(), name
    # Nor in evaluation, or without a graph: no extra work, the same picture.
    generator = _textured(0.5).eval()
    _closed_left(generator)
    with torch.no_grad():
        torch.testing.assert_close(generator(image, labels), outputs[0.5], rtol=0, atol=0)


@pytest.mark.parametrize("overrides, expected", [
    (["network.texture_floor=1.5"], "in [0, 1]"),
    (["network.texture_floor=0.2"], "texture_features > 0"),
    (["network.texture_floor=0.2", "network.texture_features=4"], "attention_mask"),
])
def test_a_texture_floor_out_of_range_or_without_waves_and_mask_is_a_one_line_error(tmp_path, shapes, overrides,
                                                                                    expected):
    result = train_cli(STARGAN, tmp_path / "out", shapes_overrides(shapes) + overrides, code=2)
    assert "network.texture_floor" in result.output and expected in result.output, result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()


def test_textured_generator_with_a_floor_trains_from_the_cli_and_its_checkpoint_rebuilds_it(tmp_path, shapes):
    base = shapes_overrides(shapes) + ["network.texture_features=4", "network.attention_mask=true",
                                       "network.texture_floor=0.3"]
    train_cli(STARGAN, tmp_path / "full", base)
    ckpt = load_checkpoint(tmp_path / "full" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert ckpt["config"]["network"]["texture_floor"] == 0.3
    g = FAMILIES["stargan"].load(ckpt, "full").nets["G"]
    assert g.texture_floor == 0.3 and not g.training


def _guided_pair(seed: int = 0) -> tuple[Generator, Generator]:
    """Two generators with the same weights, the colour and mask through the guided filter, the waves added
    after the filter (first) and before it (second)."""
    kwargs = dict(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, mask_guide_radius=2,
                  mask_guide_colour=True, texture_features=4)
    torch.manual_seed(seed)
    after = Generator(**kwargs, texture_after_guide=True)
    before = Generator(**kwargs)
    before.load_state_dict(after.state_dict())
    return after, before


def test_waves_after_the_guide_start_as_nothing_and_then_draw_fine_texture_the_filter_would_blur():
    after, before = _guided_pair()
    flat = torch.full((2, 3, 32, 32), -0.3)  # a flat input: the filtered colour is a blur there
    labels = torch.eye(3)[:2]
    # The mixing conv starts at zero: the same picture and mask as the guided generator without waves.
    torch.testing.assert_close(after(flat, labels), before(flat, labels), rtol=0, atol=1e-6)
    with torch.no_grad():
        after.texture.amplitude.bias.fill_(1.0)
        after.texture.frequency.copy_(torch.tensor([[2.1, 0.0], [0.0, 2.1], [1.5, 1.5], [-1.5, 1.5]]))  # ~3 px
        after.texture_to_colour.weight.normal_(0, 0.1)
    before.load_state_dict(after.state_dict())

    def fine(generator: Generator) -> float:
        """The energy left after a 5x5 blur: texture finer than the filter's window."""
        out = generator(flat, labels)
        return (out - torch.nn.functional.avg_pool2d(out, 5, 1, 2, count_include_pad=False)).square().mean().item()

    assert fine(after) > 10 * fine(before)
    assert torch.equal(after.attention.last_mask, before.attention.last_mask)  # the waves never move the mask


def test_waves_after_the_guide_are_added_to_the_filtered_colour_and_clamped():
    after, _ = _guided_pair(1)
    with torch.no_grad():
        after.texture.amplitude.bias.fill_(1.0)
        after.texture_to_colour.weight.normal_(0, 1.0)  # large enough to reach the clamp
    image, labels = torch.rand(2, 3, 16, 16) * 2 - 1, torch.eye(3)[1:]
    seen = {}
    # A mask of 1 everywhere shows the colour itself; keep G's tanh output and the mixed waves.
    after.main[-1].register_forward_hook(
        lambda m, a, o: seen.setdefault("raw", torch.cat([o[:, :-1], torch.ones_like(o[:, -1:])], 1)))
    after.texture_to_colour.register_forward_hook(lambda m, a, o: seen.setdefault("waves", o))
    shown = after(image, labels)
    raw = seen["raw"]
    filtered = guided_filter(image, raw, 2, 0.01)[:, :-1].clamp(-1, 1)
    torch.testing.assert_close(shown, (filtered + seen["waves"]).clamp(-1, 1), rtol=0, atol=1e-5)
    assert (shown.abs() >= 1 - 1e-6).float().mean() > 0.05  # the clamp is reached, and holds


def test_waves_after_the_guide_train_from_the_cli_and_export_like_the_checkpoint(tmp_path, shapes):
    base = shapes_overrides(shapes) + ["network.texture_features=4", "network.attention_mask=true",
                                       "network.mask_guide_radius=1", "network.mask_guide_colour=true",
                                       "network.texture_after_guide=true"]
    train_cli(STARGAN, tmp_path / "full", base)
    ckpt = load_checkpoint(tmp_path / "full" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert ckpt["config"]["network"]["texture_after_guide"] is True
    assert ckpt["nets"]["G"]["texture_to_colour.weight"].abs().sum() > 0  # a smoke check: gradients reach them
    assert FAMILIES["stargan"].load(ckpt, "full").nets["G"].texture_after_guide
    assert_export_translates_like_checkpoint(tmp_path / "full" / "00000-tiny", tmp_path)


@pytest.mark.parametrize("overrides", [
    ["network.texture_after_guide=true"],
    ["network.texture_after_guide=true", "network.texture_features=4", "network.attention_mask=true"],
])
def test_waves_after_the_guide_without_waves_or_the_colour_filter_is_a_one_line_error(tmp_path, shapes, overrides):
    result = train_cli(STARGAN, tmp_path / "out", shapes_overrides(shapes) + overrides, code=2)
    assert "network.texture_after_guide" in result.output and "mask_guide_colour" in result.output, result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()


def _nearest_wave(frequency: torch.Tensor, target: torch.Tensor) -> float:
    """Distance (rad/px) from ``target`` to the nearest wave; a wave and its opposite are the same texture."""
    return torch.minimum((frequency - target).norm(dim=1), (frequency + target).norm(dim=1)).min().item()


def test_even_spread_puts_one_wave_in_each_slice_of_the_period_range_and_leaves_no_direction_uncovered():
    lo, hi, n = 3.0, 12.0, 16
    for seed in range(10):
        torch.manual_seed(seed)
        frequency = FourierTexture(in_channels=2, features=n, periods=(lo, hi), spread="even").frequency.detach()
        period = 2 * math.pi / frequency.norm(dim=1)
        slice_of = ((period.log() - math.log(lo)) / (math.log(hi) - math.log(lo)) * n).floor().long()
        assert sorted(slice_of.tolist()) == list(range(n)), seed
        direction = (torch.atan2(frequency[:, 1], frequency[:, 0]) % math.pi).sort().values / math.pi
        gaps = torch.cat([direction.diff(), 1 + direction[:1] - direction[-1:]])  # on the half circle
        assert gaps.max() < 1.6 / n, seed
    torch.manual_seed(3)
    again = FourierTexture(in_channels=2, features=n, periods=(lo, hi), spread="even").frequency
    torch.manual_seed(3)
    assert torch.equal(again, FourierTexture(in_channels=2, features=n, periods=(lo, hi), spread="even").frequency)


def test_even_spread_starts_a_wave_nearer_every_texture_frequency_than_random_draws_do_in_the_worst_seed():
    # Textures of period 4-9 px at five directions; what a seed could not reach is the farthest of them.
    probes = [torch.tensor([math.cos(a), math.sin(a)]) * 2 * math.pi / p
              for p in (4.0, 6.4, 9.0) for a in (0.3, 0.785, 1.2, 2.0, 2.7)]
    worst = {}
    for spread in ("random", "even"):
        gaps = []
        for seed in range(20):
            torch.manual_seed(seed)
            frequency = FourierTexture(in_channels=2, features=16, periods=(3.0, 12.0), spread=spread).frequency
            gaps.append(max(_nearest_wave(frequency.detach(), probe) for probe in probes))
        worst[spread] = max(gaps)
    assert worst["even"] < 0.6 < worst["random"], worst


def test_the_layer_refuses_a_period_at_or_below_nyquist_a_reversed_range_and_an_unknown_spread():
    for periods in ((2.0, 12.0), (12.0, 3.0)):
        with pytest.raises(ValueError, match="2 < shortest <= longest"):
            FourierTexture(in_channels=2, features=4, periods=periods)
    with pytest.raises(ValueError, match="one of .*random.*even"):
        FourierTexture(in_channels=2, features=4, spread="grid")


def test_texture_periods_and_spread_reach_the_trained_generator_from_the_cli(tmp_path, shapes):
    base = shapes_overrides(shapes) + ["network.texture_features=6", "network.attention_mask=true",
                                       "network.texture_periods=[3, 6]", "network.texture_spread=even"]
    train_cli(STARGAN, tmp_path / "full", base)
    ckpt = load_checkpoint(tmp_path / "full" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert ckpt["config"]["network"]["texture_periods"] == [3.0, 6.0]
    assert ckpt["config"]["network"]["texture_spread"] == "even"
    # A few tiny steps move a frequency by far less than the range: every wave still has a period of 3-6 px,
    # which six waves drawn over the default 3-32 px would not (checked below on the same seed).
    period = 2 * math.pi / ckpt["nets"]["G"]["texture.frequency"].norm(dim=1)
    assert period.min() > 2.9 and period.max() < 6.2, period
    train_cli(STARGAN, tmp_path / "default", shapes_overrides(shapes) + ["network.texture_features=6",
                                                                       "network.attention_mask=true"])
    default = load_checkpoint(tmp_path / "default" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert default["config"]["network"]["texture_periods"] == [3.0, 32.0]
    assert (2 * math.pi / default["nets"]["G"]["texture.frequency"].norm(dim=1)).max() > 6.2


@pytest.mark.parametrize("overrides, key, expected", [
    (["network.texture_features=4", "network.texture_periods=[2, 12]"], "network.texture_periods", "2 < shortest"),
    (["network.texture_features=4", "network.texture_periods=[12, 3]"], "network.texture_periods", "2 < shortest"),
    (["network.texture_features=4", "network.texture_periods=[3]"], "network.texture_periods", "2 items"),
    (["network.texture_features=4", "network.texture_spread=grid"], "network.texture_spread", "'even'"),
    (["network.texture_spread=even"], "network.texture_spread", "unless texture_features > 0"),
    (["network.texture_periods=[3, 12]"], "network.texture_periods", "unless texture_features > 0"),
])
def test_bad_texture_periods_or_spread_are_one_line_errors(tmp_path, shapes, overrides, key, expected):
    result = train_cli(STARGAN, tmp_path / "out", shapes_overrides(shapes) + overrides, code=2)
    assert key in result.output and expected in result.output, result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()
