"""The guided filter (common/layers/guided_filter.py), the attention mask guided by the input image
(``network.mask_guide_radius``) and the painted colour guided too (``network.mask_guide_colour``); issue 11,
docs/fidelity.md."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    assert_export_translates_like_checkpoint,
    assert_resume_is_exact,
    make_image_folder,
    run_cli,
    shapes_overrides,
    train_cli,
)
from pix2pix_helpers import make_aligned

from common.checkpoint import load_checkpoint
from common.layers.guided_filter import box_mean, guided_filter
from common.layers.masked_output import AttentionMask, compose
from common.networks.factory import define_generator
from cyclegan.model import generator_from_checkpoint as cyclegan_generator
from pix2pix.model import generator_from_checkpoint as pix2pix_generator
from stargan.families import FAMILIES
from stargan.networks import Generator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"
PIX2PIX = CONFIGS / "pix2pix" / "tiny.yaml"


def _edge_scene(size: int = 32, edge: int = 16, left=(0.7, -0.7, -0.7), right=(0.6, 0.6, 0.6), noise: float = 0.0):
    """An image whose left ``edge`` columns are one colour and the rest another, plus Gaussian noise."""
    g = torch.Generator().manual_seed(0)
    img = torch.empty(1, 3, size, size)
    img[..., :edge] = torch.tensor(left).view(1, 3, 1, 1)
    img[..., edge:] = torch.tensor(right).view(1, 3, 1, 1)
    return img + noise * torch.randn(img.shape, generator=g)


def _soft_step(size: int, centre: float, width: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32)
    return torch.sigmoid((x - centre) / width).view(1, 1, 1, size).expand(1, 1, size, size).contiguous()


@pytest.mark.parametrize("shape,radius", [((16, 12, 64, 64), 3), ((2, 3, 17, 23), 2), ((1, 1, 5, 9), 4),
                                          ((1, 2, 3, 1), 1)])
def test_box_mean_is_avg_pool_without_padding_to_the_last_bit(shape, radius):
    # The shifted-slice sum replaced avg_pool2d(count_include_pad=False) for speed; runs measured before it
    # must train the same, so values and gradients must not move by a single rounding (windows wider than the
    # image included).
    def pooled(x):
        k = 2 * radius + 1
        x = F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius), count_include_pad=False)
        return F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)

    x = (torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_(True)
    weight = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    ours, theirs = box_mean(x, radius), pooled(x)
    assert torch.equal(ours, theirs)
    grad_ours, = torch.autograd.grad((ours * weight).sum(), x)
    grad_theirs, = torch.autograd.grad((theirs * weight).sum(), x)
    assert torch.equal(grad_ours, grad_theirs)


def test_constant_and_locally_linear_inputs_pass_unchanged():
    guide = torch.rand(2, 3, 20, 20) * 2 - 1
    const = torch.full((2, 1, 20, 20), 0.3)
    assert torch.allclose(guided_filter(guide, const, 2, 0.01), const, atol=1e-5)
    # A map that is a linear function of a grey guide is the filter's own model: kept (eps tiny).
    grey = torch.rand(1, 1, 20, 20)
    linear = 0.5 * grey - 0.2
    assert torch.allclose(guided_filter(grey, linear, 2, 1e-8), linear, atol=1e-3)


def test_a_blurry_misplaced_border_moves_onto_the_guide_edge():
    size, edge = 32, 16
    guide = _edge_scene(size, edge, noise=0.0235)  # the shapes data's pixel noise, 3 levels
    blurry = _soft_step(size, centre=edge + 1.5, width=1.5)
    out = guided_filter(guide, blurry, 3, 0.01)
    # The filtered mask's largest step sits on the guide's edge (the blurry one's is 2 px right of it), and
    # it is more than twice as steep.
    steps = (out[0, 0, :, 1:] - out[0, 0, :, :-1]).mean(0)
    blurry_steps = blurry[0, 0, 0, 1:] - blurry[0, 0, 0, :-1]
    assert int(blurry_steps.argmax()) == edge + 1 and int(steps.argmax()) == edge - 1
    assert steps.max() > 2 * blurry_steps.max()
    # Far from the edge the noise (variance far below eps) does not leak into the mask.
    assert (out[..., :8] - out[..., :8].mean()).abs().max() < 0.01


def test_the_colour_guide_sees_an_edge_a_grey_guide_misses():
    # Two colours of the same mean: the grey guide is flat, the colour guide is not.
    guide = _edge_scene(left=(0.6, -0.3, 0.0), right=(-0.3, 0.6, 0.0))
    assert torch.allclose(guide.mean(1, keepdim=True), torch.full((1, 1, 32, 32), 0.1), atol=1e-6)
    blurry = _soft_step(32, centre=17.5, width=1.5)
    colour = guided_filter(guide, blurry, 3, 0.01)
    grey = guided_filter(guide.mean(1, keepdim=True), blurry, 3, 0.01)
    jump = lambda m: (m[0, 0, 0, 16] - m[0, 0, 0, 15]).item()  # noqa: E731
    assert jump(colour) > 0.3 and jump(grey) < 0.2


def test_gradients_reach_the_mask_and_bad_arguments_are_refused():
    guide = torch.rand(1, 3, 12, 12)
    src = torch.rand(1, 1, 12, 12, requires_grad=True)
    guided_filter(guide, src, 2, 0.01).pow(2).sum().backward()
    assert src.grad is not None and src.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="radius"):
        guided_filter(guide, src, 0, 0.01)
    with pytest.raises(ValueError, match="guide must be"):
        guided_filter(torch.rand(1, 2, 12, 12), src, 2, 0.01)
    with pytest.raises(ValueError, match="guide_radius"):
        AttentionMask(guide_radius=-1)


def test_guided_mask_zero_returns_the_input_exactly_and_one_the_colour():
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    colour = torch.rand(2, 3, 16, 16) * 2 - 1
    head = AttentionMask(guide_radius=2)
    assert torch.equal(head(torch.cat([colour, -torch.ones(2, 1, 16, 16)], 1), image), image)
    assert torch.equal(head.last_mask, torch.zeros(2, 1, 16, 16))
    out = head(torch.cat([colour, torch.ones(2, 1, 16, 16)], 1), image)
    assert torch.allclose(out, colour, atol=1e-5)


def test_guided_generator_differs_from_the_plain_one_only_in_the_mask():
    torch.manual_seed(0)
    plain = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True)
    guided = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, mask_guide_radius=2)
    guided.load_state_dict(plain.state_dict())  # parameter-free: the same keys
    x = _edge_scene(16, 8).expand(2, -1, -1, -1).contiguous()
    c = torch.eye(3)[:2]
    with torch.no_grad():
        plain(x, c)
        guided(x, c)
    expected = guided_filter(x, plain.attention.last_mask, 2, 0.01).clamp(0, 1)
    assert torch.allclose(guided.attention.last_mask, expected, atol=1e-6)
    assert not torch.allclose(guided.attention.last_mask, plain.attention.last_mask, atol=1e-3)


@pytest.mark.parametrize("arch", ["resnet_6blocks", "unet_128"])
def test_resnet_and_unet_generators_take_the_guide(arch):
    torch.manual_seed(0)
    plain = define_generator(arch, 3, 3, ngf=8, attention_mask=True)
    guided = define_generator(arch, 3, 3, ngf=8, attention_mask=True, mask_guide_radius=2)
    guided.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        plain.eval()(x)
        guided.eval()(x)
    expected = guided_filter(x, plain.attention.last_mask, 2, 0.01).clamp(0, 1)
    assert torch.allclose(guided.attention.last_mask, expected, atol=1e-6)


def test_guided_mask_trains_from_the_cli_rebuilds_from_export_and_resumes_exactly(tmp_path, shapes):
    base = shapes_overrides(shapes) + ["network.attention_mask=true", "network.mask_guide_radius=2"]
    train_cli(STARGAN, tmp_path / "full", base)
    ckpt = load_checkpoint(tmp_path / "full" / "00000-tiny" / "checkpoints" / "latest.pt")
    g = FAMILIES["stargan"].load(ckpt, "full").nets["G"]
    assert g.attention.guide_radius == 2
    assert_export_translates_like_checkpoint(tmp_path / "full" / "00000-tiny", tmp_path)
    assert_resume_is_exact(STARGAN, tmp_path / "split", base, ckpt)


@pytest.mark.parametrize("overrides, key", [
    (["network.attention_mask=true", "network.mask_guide_radius=-1"], "network.mask_guide_radius"),
    (["network.attention_mask=true", "network.mask_guide_eps=0"], "network.mask_guide_eps"),
    (["network.mask_guide_radius=2"], "network.mask_guide_radius"),
])
def test_bad_guide_settings_exit_2_naming_the_key(tmp_path, shapes, overrides, key):
    result = run_cli(["train", STARGAN, "--out", tmp_path / "runs",
                      *[a for o in shapes_overrides(shapes) + overrides for a in ("--set", o)]],
                     code=2)
    assert key in result.output and "Traceback" not in result.output


def test_cyclegan_and_pix2pix_train_with_the_guided_mask_and_rebuild_it(tmp_path, unpaired_root):
    guided = ["network.attention_mask=true", "network.mask_guide_radius=2", "network.mask_guide_eps=0.02"]
    train_cli(CYCLEGAN, tmp_path / "cg", [f"data.root={unpaired_root}", *guided])
    ckpt = load_checkpoint(tmp_path / "cg" / "00000-tiny" / "checkpoints" / "latest.pt")
    g_a = cyclegan_generator(ckpt, "AtoB", "cg")
    assert (g_a.attention.guide_radius, g_a.attention.guide_eps) == (2, 0.02)
    image = make_image_folder(tmp_path / "in", 1)[0]
    run_cli(["translate", "--checkpoint", tmp_path / "cg" / "00000-tiny", "--input", image,
             "--output", tmp_path / "t", "--device", "cpu"])
    assert (tmp_path / "t" / image.name).is_file()
    make_aligned(tmp_path / "pairs", 4)
    train_cli(PIX2PIX, tmp_path / "p2p", [f"data.root={tmp_path / 'pairs'}", *guided])
    _, g = pix2pix_generator(load_checkpoint(tmp_path / "p2p" / "00000-tiny" / "checkpoints" / "latest.pt"), "p")
    assert g.attention.guide_radius == 2
    result = train_cli(CYCLEGAN, tmp_path / "bad", [f"data.root={unpaired_root}", "network.mask_guide_radius=2"],
                       code=2)
    assert "network.mask_guide_radius" in result.output and result.output.count("\n") == 1


# The painted colour through the same filter (network.mask_guide_colour).

def _disk(size: int = 32, fg=(0.8, -0.6, -0.6), bg=(0.7, 0.7, 0.7), noise: float = 0.0235) -> torch.Tensor:
    """A disk of one colour on another, with the shapes data's pixel noise."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    inside = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 4) ** 2).float()
    img = inside * torch.tensor(fg).view(3, 1, 1) + (1 - inside) * torch.tensor(bg).view(3, 1, 1)
    return (img + noise * torch.randn(img.shape, generator=g)).unsqueeze(0)


@pytest.mark.parametrize("guide_channels", [1, 3])
def test_many_channels_at_once_equal_one_at_a_time(guide_channels):
    torch.manual_seed(0)
    guide, src = torch.rand(2, guide_channels, 20, 20) * 2 - 1, torch.rand(2, 4, 20, 20)
    together = guided_filter(guide, src, 3, 0.01)
    apart = torch.cat([guided_filter(guide, src[:, k:k + 1], 3, 0.01) for k in range(4)], 1)
    assert together.shape == src.shape and torch.allclose(together, apart, atol=1e-6)


def test_a_blurred_redrawing_of_the_input_gets_its_outline_back():
    # What G paints where its mask covers an object the edit leaves alone: the object, blurred (its
    # quarter-resolution bottleneck). Filtered with the input as guide, its edge is steep again and in place.
    image, clean = _disk(), _disk(noise=0.0)
    blurred = box_mean(box_mean(image, 2), 2)
    head = AttentionMask(guide_radius=3, guide_colour=True)
    painted = torch.cat([blurred, torch.ones_like(image[:, :1])], 1)  # mask 1: all of it repainted
    out = head(painted, image)
    assert torch.allclose(AttentionMask(guide_radius=3)(painted, image), blurred, atol=1e-5)

    def steps(t):  # the colour change between neighbours across the disk's left edge, rows through its centre
        row = t[0, :, 14:18].mean(1)
        return (row[:, 1:] - row[:, :-1]).abs().sum(0)[:16]

    edge = int(steps(clean).argmax())
    assert int(steps(out).argmax()) == edge and steps(out).max() > 2.5 * steps(blurred).max()
    # A flat recolouring stays flat (a constant is the filter's fixed point).
    flat = torch.cat([torch.full_like(image, 0.3), torch.ones_like(image[:, :1])], 1)
    assert torch.allclose(head(flat, image), torch.full_like(image, 0.3), atol=1e-5)


def test_mask_zero_still_returns_the_input_exactly():
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    head = AttentionMask(guide_radius=2, guide_colour=True)
    raw = torch.cat([torch.rand(2, 3, 16, 16) * 2 - 1, -torch.ones(2, 1, 16, 16)], 1)
    assert torch.equal(head(raw, image), image)
    assert torch.equal(head.last_mask, torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="guide_colour needs guide_radius"):
        AttentionMask(guide_colour=True)


def _painted(net: torch.nn.Module, body: torch.nn.Module, *inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """``net(*inputs)`` and the raw output of its ``body`` (the layers before the attention head)."""
    seen = {}
    handle = body.register_forward_hook(lambda _m, _i, out: seen.setdefault("raw", out))
    with torch.no_grad():
        out = net(*inputs)
    handle.remove()
    return out, seen["raw"]


def _expected(raw: torch.Tensor, x: torch.Tensor, radius: int) -> torch.Tensor:
    colour = guided_filter(x, raw[:, :3], radius, 0.01).clamp(-1, 1)
    mask = guided_filter(x, (raw[:, 3:] + 1) / 2, radius, 0.01).clamp(0, 1)
    return compose(colour, mask, x)


def test_stargan_generator_filters_its_colour_and_mask():
    torch.manual_seed(0)
    guided = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, mask_guide_radius=2,
                       mask_guide_colour=True)
    mask_only = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, mask_guide_radius=2)
    mask_only.load_state_dict(guided.state_dict())  # parameter-free: the same keys
    x, c = _disk(16).expand(2, -1, -1, -1).contiguous(), torch.eye(3)[:2]
    out, raw = _painted(guided, guided.main, x, c)
    assert torch.allclose(out, _expected(raw, x, 2), atol=1e-5)
    assert not torch.allclose(out, mask_only(x, c), atol=1e-3)


@pytest.mark.parametrize("arch", ["resnet_6blocks", "unet_128"])
def test_resnet_and_unet_generators_filter_their_colour(arch):
    torch.manual_seed(0)
    g = define_generator(arch, 3, 3, ngf=8, attention_mask=True, mask_guide_radius=2, mask_guide_colour=True)
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    out, raw = _painted(g.eval(), g.model, x)
    assert torch.allclose(out, _expected(raw, x, 2), atol=1e-5)


def test_guided_colour_trains_from_the_cli_rebuilds_from_export_and_resumes_exactly(tmp_path, shapes):
    base = shapes_overrides(shapes) + ["network.attention_mask=true", "network.mask_guide_radius=2",
                                       "network.mask_guide_colour=true"]
    train_cli(STARGAN, tmp_path / "full", base)
    ckpt = load_checkpoint(tmp_path / "full" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert FAMILIES["stargan"].load(ckpt, "full").nets["G"].attention.guide_colour is True
    assert_export_translates_like_checkpoint(tmp_path / "full" / "00000-tiny", tmp_path)
    assert_resume_is_exact(STARGAN, tmp_path / "split", base, ckpt)


def test_the_colour_guide_without_a_radius_exits_2_naming_the_key(tmp_path, shapes):
    sets = shapes_overrides(shapes) + ["network.attention_mask=true", "network.mask_guide_colour=true"]
    result = run_cli(["train", STARGAN, "--out", tmp_path / "runs", *[a for o in sets for a in ("--set", o)]],
                     code=2)
    assert "network.mask_guide_colour" in result.output and "Traceback" not in result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "runs").exists()


def test_cyclegan_and_pix2pix_train_with_the_guided_colour_and_rebuild_it(tmp_path, unpaired_root):
    guided = ["network.attention_mask=true", "network.mask_guide_radius=2", "network.mask_guide_colour=true"]
    train_cli(CYCLEGAN, tmp_path / "cg", [f"data.root={unpaired_root}", *guided])
    ckpt = load_checkpoint(tmp_path / "cg" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert cyclegan_generator(ckpt, "AtoB", "cg").attention.guide_colour is True
    make_aligned(tmp_path / "pairs", 4)
    train_cli(PIX2PIX, tmp_path / "p2p", [f"data.root={tmp_path / 'pairs'}", *guided])
    _, g = pix2pix_generator(load_checkpoint(tmp_path / "p2p" / "00000-tiny" / "checkpoints" / "latest.pt"), "p")
    assert g.attention.guide_colour is True
    result = train_cli(CYCLEGAN, tmp_path / "bad",
                       [f"data.root={unpaired_root}", "network.attention_mask=true", "network.mask_guide_colour=true"],
                       code=2)
    assert "network.mask_guide_colour" in result.output and result.output.count("\n") == 1
