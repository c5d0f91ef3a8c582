"""Two StarGAN options against the shortcuts G takes to fool D's classifier (issue 11, docs/fidelity.md):
nearest-neighbour upsampling in G (``network.g_upsample``) and D's classifier also learning from the fakes
(``loss.lambda_cls_fake``)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import shapes_overrides, train_cli

from common.checkpoint import load_checkpoint
from stargan.families import FAMILIES
from stargan.networks import Generator

STARGAN = Path(__file__).resolve().parents[1] / "configs" / "stargan" / "tiny.yaml"


def _first_upsampler(g: Generator) -> torch.nn.Module:
    layers = list(g.main)
    for i, layer in enumerate(layers):
        if isinstance(layer, torch.nn.ConvTranspose2d):
            return layer
        if isinstance(layer, torch.nn.Upsample):
            return torch.nn.Sequential(layer, layers[i + 1])
    raise AssertionError("no upsampling layer")


def test_transposed_upsampling_paints_a_checkerboard_on_flat_input_and_nearest_does_not():
    torch.manual_seed(0)
    flat = torch.ones(1, 4 * 8, 8, 8)
    spread = {}
    for mode in ("transposed", "nearest"):
        g = Generator(c_dim=3, conv_dim=8, repeat_num=1, upsample=mode)
        with torch.no_grad():
            inner = _first_upsampler(g)(flat)[..., 2:-2, 2:-2]  # away from the zero padding at the border
        assert inner.shape[-1] == 12
        spread[mode] = (inner.amax(dim=(2, 3)) - inner.amin(dim=(2, 3))).max().item()
    assert spread["transposed"] > 1e-3  # even and odd output pixels see different kernel taps
    assert spread["nearest"] < 1e-5


def test_nearest_generator_keeps_the_shape_has_no_transposed_conv_and_refuses_a_bad_mode():
    g = Generator(c_dim=3, conv_dim=8, repeat_num=1, upsample="nearest", attention_mask=True)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert g(x, torch.eye(3)[:2]).shape == x.shape
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in Generator(3, 8, 1).modules())
    with pytest.raises(ValueError, match="one of .*transposed.*nearest"):
        Generator(c_dim=3, conv_dim=8, repeat_num=1, upsample="bilinear")


def _run(tmp_path: Path, name: str, sets: list[str], resume: bool = False) -> Path:
    train_cli(STARGAN, tmp_path / name, sets, resume=resume)
    return tmp_path / name / "00000-tiny"


def test_cls_fake_teaches_ds_classifier_the_fakes_source_labels_and_resumes_exactly(tmp_path, shapes):
    base = shapes_overrides(shapes) + ["optim.num_iters=6", "optim.num_iters_decay=3", "network.g_upsample=nearest"]
    plain = _run(tmp_path, "plain", base)
    fake = _run(tmp_path, "fake", base + ["loss.lambda_cls_fake=0.5"])
    rows = {name: [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
            for name, run in (("plain", plain), ("fake", fake))}
    assert not any("D/cls_fake" in row for row in rows["plain"])
    d_rows = [row for row in rows["fake"] if "D/cls" in row]
    assert d_rows and all(row["D/cls_fake"] > 0 for row in d_rows)
    # Same seed and batches, so the first logged D step differs only through the new term.
    assert rows["plain"][0]["D/total"] != rows["fake"][0]["D/total"]
    ckpt = load_checkpoint(fake / "checkpoints" / "latest.pt")
    # The checkpoint rebuilds the generator it was trained with.
    g = FAMILIES["stargan"].load(ckpt, "fake").nets["G"]
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())
    # Stopped half-way and resumed: the same weights as the uninterrupted run.
    split = _run(tmp_path, "split", base + ["loss.lambda_cls_fake=0.5", "run.stop_after_steps=3"])
    _run(tmp_path, "split", base + ["loss.lambda_cls_fake=0.5"], resume=True)
    resumed = load_checkpoint(split / "checkpoints" / "latest.pt")
    for net in ("G", "D"):
        for key, value in ckpt["nets"][net].items():
            assert torch.equal(value, resumed["nets"][net][key]), (net, key)


@pytest.mark.parametrize("sets, named", [
    (["loss.lambda_cls_fake=-0.1"], "loss.lambda_cls_fake"),
    (["network.g_upsample=bilinear"], "network.g_upsample"),
])
def test_bad_values_are_one_line_errors(tmp_path, shapes, sets, named):
    result = train_cli(STARGAN, tmp_path / "out", shapes_overrides(shapes) + sets, code=2)
    assert named in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "out").exists()
