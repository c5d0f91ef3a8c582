"""The StarGAN generator's long skip (``network.g_skip``, issue 11, docs/fidelity.md): the first conv block's
full-resolution features also reach the last conv."""
from __future__ import annotations

from pathlib import Path

import torch
from conftest import (
    assert_export_translates_like_checkpoint,
    assert_resume_is_exact,
    shapes_overrides,
    train_cli,
)

from common.checkpoint import load_checkpoint
from stargan.families import FAMILIES
from stargan.networks import Generator

STARGAN = Path(__file__).resolve().parents[1] / "configs" / "stargan" / "tiny.yaml"


def _last_conv(g: Generator) -> torch.nn.Conv2d:
    return [m for m in g.main if isinstance(m, torch.nn.Conv2d)][-1]


def test_skip_adds_a_term_to_the_official_generator_and_nothing_else():
    torch.manual_seed(0)
    plain = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True)
    skip = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, skip=True)
    assert _last_conv(skip).in_channels == _last_conv(plain).in_channels + 8
    # Same weights, and the last conv's taps on the skipped channels at zero: exactly the official network.
    state = plain.state_dict()
    key = f"main.{len(plain.main) - 2}.weight"  # the last conv; main[-1] is the Tanh
    assert state[key].shape == _last_conv(plain).weight.shape
    state[key] = torch.cat([state[key], torch.zeros(4, 8, 7, 7)], dim=1)
    skip.load_state_dict(state)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.eye(3)[:2]
    with torch.no_grad():
        assert torch.equal(skip(x, c), plain(x, c))
        # The skipped taps do reach the output.
        _last_conv(skip).weight[:, -8:].normal_(0, 0.1)
        assert (skip(x, c) - plain(x, c)).abs().max() > 1e-3


def test_skip_trains_from_the_cli_rebuilds_from_checkpoint_and_export_and_resumes_exactly(tmp_path, shapes):
    base = shapes_overrides(shapes) + ["network.g_skip=true", "network.attention_mask=true"]
    train_cli(STARGAN, tmp_path / "full", base)
    ckpt = load_checkpoint(tmp_path / "full" / "00000-tiny" / "checkpoints" / "latest.pt")
    g = FAMILIES["stargan"].load(ckpt, "full").nets["G"]
    assert g.skip and _last_conv(g).in_channels == 8 + 8
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert g(x, torch.eye(g.c_dim)[:1]).shape == x.shape
    # A safetensors export carries the option: translate gives the checkpoint's pixels.
    assert_export_translates_like_checkpoint(tmp_path / "full" / "00000-tiny", tmp_path)
    assert_resume_is_exact(STARGAN, tmp_path / "split", base, ckpt)
