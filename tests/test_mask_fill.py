"""The pixels the snap opens filled from their neighbours (``network.mask_snap_fill``, ``--mask-fill``; issue 11):
G paints the pixels its mask hides with whatever it likes (in a background flip, a blurred blob of the kept
object); when the snap moves the border onto the input's edges, the pixels it opens would show that paint, a rim
around the object. With the fill they take the mean painted colour of the neighbours G's own threshold opened.
The algebra, that training is untouched, the three families' generators, the config key, and the option on
``translate``, ``evaluate``, ``export`` and ``edit`` with its one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli, shapes_overrides, train_cli, translate_pngs
from mask_helpers import assert_export_and_editor_carry, mask_closed_on, square_and_disk

from common.checkpoint import load_checkpoint, with_mask_options
from common.errors import UserError
from common.layers.masked_output import AttentionMask, fill_opened
from common.networks.factory import define_generator
from stargan.evaluation.evaluate import mask_fields
from stargan.families import FAMILIES
from stargan.networks import Generator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"
TARGET = ["--target-vector", "0,1,0,0,1"]
NEW_BACKGROUND = torch.tensor([0.7, 0.6, 0.5]).view(1, 3, 1, 1)
BLOB = torch.tensor([-0.9, -0.9, -0.9]).view(1, 3, 1, 1)


def _background_flip(size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A dark noisy image with a red square, and G's output for a background flip: the mask open everywhere but
    a disk a ring wider than the square, the painted colour the new background except a dark blob on that disk
    (paint G meant to be hidden). Returns ``(image, raw tanh output, square)``."""
    image, square, disk = square_and_disk(size)
    raw = torch.empty(1, 4, size, size)
    raw[:, :3] = torch.where(disk, BLOB, NEW_BACKGROUND)
    raw[:, 3] = mask_closed_on(disk)
    return image, raw, square


def test_fill_opened_sets_what_the_snap_opened_to_the_mean_of_the_open_neighbours():
    colour = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    before = torch.zeros(2, 1, 6, 6)
    before[0, 0, 0, 0] = before[0, 0, 0, 1] = 1  # two open pixels in the corner of image 0
    after = before.clone()
    after[0, 0, 1, 1] = 1  # the snap opens one next to them (both within radius 1) ...
    after[0, 0, 0, 3] = 1  # ... one with only (0, 1) within 2 radii and none within 1 ...
    after[0, 0, 5, 5] = 1  # ... and one with no open pixel within 2 radii
    after[1, 0, 2, 2] = 1  # image 1: nothing was open before
    out = fill_opened(colour, before, after, radius=1)
    # Means of box means: equal up to float rounding.
    assert torch.allclose(out[0, :, 1, 1], (colour[0, :, 0, 0] + colour[0, :, 0, 1]) / 2, atol=1e-4)  # every channel
    assert torch.allclose(out[0, :, 0, 3], colour[0, :, 0, 1], atol=1e-4)
    changed = (out != colour).any(1)
    assert changed.sum() == 2 and changed[0, 1, 1] and changed[0, 0, 3]  # all else, the lone pixels too, kept
    half = fill_opened(colour.bfloat16(), before, after, radius=1)
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), out, rtol=1e-2)


def test_the_fill_removes_the_rim_the_snap_leaves():
    image, raw, square = _background_flip()
    outside = ~square
    snapped = AttentionMask(hard=True, snap_radius=6).eval()(raw, image)
    filled = AttentionMask(hard=True, snap_radius=6, snap_fill=True).eval()(raw, image)
    for out in (snapped, filled):
        assert torch.equal(out[0][:, square], image[0][:, square])  # the object kept exactly, either way
    rim = (snapped[0] - NEW_BACKGROUND[0]).abs().amax(0) > 0.5
    assert (rim & outside).sum() > 50  # without the fill the snap shows G's hidden blob around the square
    assert torch.allclose(filled[0][:, outside], NEW_BACKGROUND[0].expand(3, 32, 32)[:, outside], atol=1e-6)


def test_training_is_untouched_and_it_needs_the_snap():
    image, raw, _ = _background_flip()
    weights = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    outs, grads = [], []
    for fill in (False, True):
        leaf = raw.clone().requires_grad_()
        out = AttentionMask(hard=True, snap_radius=6, snap_fill=fill).train()(leaf, image)
        (out * weights).sum().backward()
        outs.append(out.detach())
        grads.append(leaf.grad)
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])
    with pytest.raises(ValueError, match="snap_fill needs snap_radius"):
        AttentionMask(hard=True, snap_fill=True)
    with pytest.raises(ValueError, match="mask_snap_fill needs mask_snap_radius"):
        Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, mask_hard=True, mask_snap_fill=True)
    g = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, mask_hard=True, mask_snap_radius=2,
                  mask_snap_fill=True)
    assert g.attention.snap_fill
    for arch in ("resnet_6blocks", "unet_128"):
        assert define_generator(arch, ngf=4, attention_mask=True, mask_hard=True, mask_snap_radius=3,
                                mask_snap_fill=True).attention.snap_fill


@pytest.mark.parametrize("config", [STARGAN, CYCLEGAN], ids=["stargan", "cyclegan"])
def test_the_config_key_without_the_snap_is_a_one_line_error(tmp_path, shapes, config):
    base = shapes_overrides(shapes) if config == STARGAN else [f"data.root={tmp_path}"]
    result = train_cli(config, tmp_path / "out", base + ["network.attention_mask=true", "network.mask_hard=true",
                                                         "network.mask_snap_fill=true"], code=2)
    assert "network.mask_snap_fill" in result.output and "network.mask_snap_radius" in result.output, result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shapes) -> dict[str, Path]:
    """configs/stargan/tiny.yaml with a thresholded, snapped attention mask, trained with and without the fill
    (the same seed: the same weights)."""
    root = tmp_path_factory.mktemp("fill-runs")
    base = shapes_overrides(shapes) + ["network.attention_mask=true", "network.mask_hard=true",
                                       "network.mask_snap_radius=4", "loss.lambda_mask=0.02"]
    for name, fill in (("snap", "false"), ("fill", "true")):
        train_cli(STARGAN, root / name, base + [f"network.mask_snap_fill={fill}"])
    return {name: root / name / "00000-tiny" for name in ("snap", "fill")}


def _translate(source: Path, inputs: Path, out: Path, *flags: str) -> dict[str, bytes]:
    return translate_pngs(source, inputs, out, *TARGET, *flags)


def test_the_flag_gives_what_the_config_key_gives(runs, two_inputs, tmp_path):
    snap, fill = (load_checkpoint(runs[name]) for name in ("snap", "fill"))
    assert fill["config"]["network"]["mask_snap_fill"] is True
    assert all(torch.equal(snap["nets"]["G"][k], fill["nets"]["G"][k]) for k in snap["nets"]["G"])
    assert FAMILIES["stargan"].load(fill, "fill").nets["G"].attention.snap_fill
    plain = _translate(runs["snap"], two_inputs, tmp_path / "snap")
    filled = _translate(runs["fill"], two_inputs, tmp_path / "fill")
    assert plain != filled  # the fill changes the PNGs, so the equalities below say something
    assert _translate(runs["snap"], two_inputs, tmp_path / "snap-fill", "--mask-fill") == filled
    assert _translate(runs["fill"], two_inputs, tmp_path / "fill-off", "--no-mask-fill") == plain
    assert _translate(runs["fill"], two_inputs, tmp_path / "fill-snap0", "--mask-snap", "0") == \
        _translate(runs["snap"], two_inputs, tmp_path / "snap-snap0", "--mask-snap", "0")  # no snap, no fill


def test_evaluate_names_it_in_its_folder_its_metrics_and_its_header(runs):
    result = run_cli(["evaluate", "--checkpoint", runs["snap"], "--device", "cpu", "--max-images", "6",
                      "--mask-fill"])
    folder = runs["snap"] / "eval-mask-fill"
    assert f"metrics: {folder / 'metrics.json'}" in result.output, result.output
    assert "(radius 4, the pixels it opened filled from their neighbours)" in result.output, result.output
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["mask_snap_fill"] is True and metrics["mask_fill_from"] == "--mask-fill"
    reference = run_cli(["evaluate", "--checkpoint", runs["fill"], "--device", "cpu", "--max-images", "6"])
    assert "filled from their neighbours" in reference.output
    own = json.loads((runs["fill"] / "eval" / "metrics.json").read_text())
    assert own["mask_fill_from"] == "checkpoint" and own["counterfactual"] == metrics["counterfactual"]


def test_export_carries_it_and_the_editor_shows_it(runs, two_inputs, tmp_path):
    config = assert_export_and_editor_carry(runs["snap"], ["--mask-fill"], {"mask_fill": True}, runs["fill"],
                                            two_inputs, tmp_path, TARGET)
    assert config["network"]["mask_snap_fill"] is True


def test_a_fill_without_the_snap_is_a_one_line_error_that_writes_nothing(runs, two_inputs, tmp_path):
    result = run_cli(["translate", "--checkpoint", runs["snap"], "--input", two_inputs, "--output", tmp_path / "out",
                      "--device", "cpu", *TARGET, "--mask-snap", "0", "--mask-fill"], code=2)
    assert result.output.count("\n") == 1 and "--mask-fill" in result.output and "--mask-snap" in result.output
    result = run_cli(["evaluate", "--checkpoint", runs["snap"], "--out", tmp_path / "eval", "--device", "cpu",
                      "--mask-soft", "--mask-fill"], code=2)
    assert result.output.count("\n") == 1 and "--mask-fill" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "eval").exists()
    ckpt = load_checkpoint(runs["fill"])
    assert with_mask_options(ckpt, False, "fill")["config"]["network"]["mask_snap_fill"] is False
    for hard, snap, fix in ((None, 0, "--mask-snap 0 turns the snap off"),
                            (False, None, "--mask-soft turns the snap off; use --mask-hard")):
        with pytest.raises(UserError, match=fix):
            with_mask_options(ckpt, hard, "fill", snap, True)
    off = FAMILIES["stargan"].load(with_mask_options(ckpt, None, "fill", 0), "fill").config
    assert mask_fields(off, None, 0) == {"mask_hard": True, "mask_hard_from": "checkpoint", "mask_snap_radius": 0,
                                         "mask_snap_from": "--mask-snap 0", "mask_snap_fill": False,
                                         "mask_fill_from": "--mask-snap 0"}  # no snap, nothing filled
