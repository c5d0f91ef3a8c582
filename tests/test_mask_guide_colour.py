"""The guided filter on G's painted colour as well as its mask (``network.mask_guide_colour``, issue 11,
docs/fidelity.md)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import (
    assert_export_translates_like_checkpoint,
    assert_resume_is_exact,
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
