"""The hard attention mask (``network.mask_hard``, issue 11): at inference (eval mode) the output is composed
with the mask thresholded at 0.5; training composes with the soft mask as before. Its algebra, that training is
untouched, the soft mask it keeps, the three families' generators, training, export and resume from the CLI, and
its one-line errors. The inference flags ``--mask-hard/--mask-soft``: tests/test_mask_hard_switch.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import assert_export_translates_like_checkpoint, assert_resume_is_exact, shapes_overrides, train_cli
from pix2pix_helpers import make_aligned

from common.checkpoint import load_checkpoint, with_mask_options
from common.layers.masked_output import AttentionMask
from common.networks.factory import define_generator
from cyclegan.model import generator_from_checkpoint as cyclegan_generator
from pix2pix.model import generator_from_checkpoint as pix2pix_generator
from stargan.families import FAMILIES
from stargan.networks import Generator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"
PIX2PIX = CONFIGS / "pix2pix" / "tiny.yaml"


def _raw_and_image(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 4, 6, 6, generator=g) * 2 - 1, torch.rand(2, 3, 6, 6, generator=g) * 2 - 1


def test_at_inference_each_pixel_is_the_input_or_the_painted_colour_exactly():
    raw, image = _raw_and_image()
    out = AttentionMask(hard=True).eval()(raw, image)
    open_ = (raw[:, 3:] + 1) / 2 > 0.5
    assert open_.any() and (~open_).any()
    assert torch.equal(out, torch.where(open_, raw[:, :3], image))
    soft = AttentionMask().eval()(raw, image)
    assert not torch.allclose(soft, out)  # the soft head blends


def test_training_composes_with_the_soft_mask_as_before_and_the_kept_mask_stays_soft():
    raw, image = _raw_and_image(1)
    weights = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    outs, grads, kept = [], [], []
    for hard in (False, True):
        head, leaf = AttentionMask(guide_radius=1, hard=hard).train(), raw.clone().requires_grad_()
        out = head(leaf, image)
        (out * weights).sum().backward()
        outs.append(out.detach())
        grads.append(leaf.grad)
        kept.append(head.last_mask)
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])
    head = AttentionMask(guide_radius=1, hard=True).eval()
    head(raw, image)
    assert torch.equal(head.last_mask, kept[1]) and ((kept[1] > 0) & (kept[1] < 1)).any()  # soft, not thresholded


def test_a_closed_mask_returns_the_input_exactly():
    raw, image = _raw_and_image(3)
    raw[:, 3:] = torch.rand(2, 1, 6, 6) * 0.9 - 1  # mask < 0.5 everywhere, but not 0
    assert torch.equal(AttentionMask(hard=True).eval()(raw, image), image)


def test_stargan_generator_thresholds_where_the_soft_one_blends():
    torch.manual_seed(0)
    soft = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, mask_guide_radius=1).eval()
    hard = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, mask_guide_radius=1,
                     mask_hard=True).eval()
    hard.load_state_dict(soft.state_dict())  # same keys: the option has no parameters
    x, c = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3)
    with torch.no_grad():
        soft(x, c)
        mask = soft.attention.last_mask
        out = hard(x, c)
        soft_out = soft(x, c)
    closed = (mask <= 0.5).expand_as(x)
    assert closed.any() and torch.equal(out[closed], x[closed])
    assert not torch.equal(soft_out[closed], x[closed])  # where the soft mask blends a little of G's colour in
    with pytest.raises(ValueError, match="mask_hard needs attention_mask"):
        Generator(c_dim=3, conv_dim=8, repeat_num=1, mask_hard=True)


@pytest.mark.parametrize("arch", ["resnet_6blocks", "unet_128"])
def test_resnet_and_unet_generators_threshold_at_inference(arch):
    torch.manual_seed(0)
    g = define_generator(arch, ngf=4, attention_mask=True, mask_hard=True).eval()
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        out = g(x)
    closed = (g.attention.last_mask <= 0.5).expand_as(x)
    assert closed.any() and (~closed).any() and torch.equal(out[closed], x[closed])


def test_pix2pix_paper_mode_inference_thresholds_too():
    # Paper mode runs G in training mode (dropout, batch statistics) but it is still inference.
    from pix2pix.translate import generate

    torch.manual_seed(0)
    g = define_generator("unet_128", ngf=4, norm="batch", dropout=True, attention_mask=True, mask_hard=True)
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    out = generate(g, x, paper=True)
    assert g.training and not g.attention.training  # the rest of G stays in training mode
    closed = (g.attention.last_mask <= 0.5).expand_as(x)
    assert closed.any() and (~closed).any() and torch.equal(out[closed], x[closed])


def test_stargan_trains_with_it_from_the_cli_rebuilds_it_exports_it_and_resumes_exactly(tmp_path, shapes):
    base = shapes_overrides(shapes) + ["network.attention_mask=true", "network.mask_guide_radius=1",
                                       "network.mask_hard=true", "loss.lambda_mask=0.02"]
    train_cli(STARGAN, tmp_path / "full", base)
    ckpt = load_checkpoint(tmp_path / "full" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert FAMILIES["stargan"].load(ckpt, "full").nets["G"].attention.hard
    assert_export_translates_like_checkpoint(tmp_path / "full" / "00000-tiny", tmp_path)
    assert_resume_is_exact(STARGAN, tmp_path / "split", base, ckpt)


def test_cyclegan_and_pix2pix_train_with_it_and_rebuild_it(tmp_path, unpaired_root):
    hard = ["network.attention_mask=true", "network.mask_hard=true"]
    train_cli(CYCLEGAN, tmp_path / "cg", [f"data.root={unpaired_root}", *hard])
    ckpt = load_checkpoint(tmp_path / "cg" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert cyclegan_generator(ckpt, "AtoB", "cg").attention.hard
    assert not cyclegan_generator(with_mask_options(ckpt, False, "cg"), "AtoB", "cg").attention.hard  # --mask-soft
    make_aligned(tmp_path / "pairs", 4)
    train_cli(PIX2PIX, tmp_path / "p2p", [f"data.root={tmp_path / 'pairs'}", *hard])
    ckpt = load_checkpoint(tmp_path / "p2p" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert pix2pix_generator(ckpt, "p")[1].attention.hard
    assert not pix2pix_generator(with_mask_options(ckpt, False, "p"), "p")[1].attention.hard


@pytest.mark.parametrize("config", [STARGAN, CYCLEGAN, PIX2PIX], ids=["stargan", "cyclegan", "pix2pix"])
def test_without_the_mask_it_is_a_one_line_error(tmp_path, shapes, config):
    base = shapes_overrides(shapes) if config == STARGAN else [f"data.root={tmp_path}"]
    result = train_cli(config, tmp_path / "out", base + ["network.mask_hard=true"], code=2)
    assert "network.mask_hard" in result.output and "network.attention_mask" in result.output, result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()
