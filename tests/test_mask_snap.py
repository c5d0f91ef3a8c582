"""The thresholded mask snapped to the input's edges (``network.mask_snap_radius``, ``--mask-snap``; issue 11):
at inference, after the threshold, a guided filter with the input as guide and a second threshold move the
border of what is kept onto the input's edges. Its effect on a hole cut too wide around an object, that
training is untouched, the three families' generators, training and export from the CLI, the option on
``translate``, ``evaluate``, ``export`` and ``edit`` (two runs that differ only in the radius share their
weights, so each gives the other's outputs with the option), and its one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli, shapes_overrides, train_cli, translate_pngs
from mask_helpers import assert_export_and_editor_carry, mask_closed_on, square_and_disk
from pix2pix_helpers import make_aligned

from common.checkpoint import load_checkpoint, with_mask_options
from common.errors import UserError
from common.layers.masked_output import AttentionMask
from common.networks.factory import define_generator
from cyclegan.model import generator_from_checkpoint as cyclegan_generator
from pix2pix.model import generator_from_checkpoint as pix2pix_generator
from stargan.evaluation.evaluate import default_out_dir, mask_fields
from stargan.families import FAMILIES
from stargan.networks import Generator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"
PIX2PIX = CONFIGS / "pix2pix" / "tiny.yaml"
TARGET = ["--target-vector", "0,1,0,0,1"]


def _square_under_a_round_hole(size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A noisy dark image with a red square, a painted colour, and a mask closed over a disk that holds the
    square with a ring of background 0-3.5 pixels wide around it (a threshold's rounded hole)."""
    image, square, disk = square_and_disk(size)
    raw = torch.empty(1, 4, size, size)
    raw[:, :3] = 0.5
    raw[:, 3] = mask_closed_on(disk)
    return image, raw, square


def test_snapping_moves_a_round_hole_onto_the_objects_outline():
    image, raw, square = _square_under_a_round_hole()
    kept = {}
    for radius in (0, 6):
        out = AttentionMask(hard=True, snap_radius=radius).eval()(raw, image)
        kept[radius] = (out == image).all(1)[0]
        painted = ~kept[radius]
        assert torch.equal(out[0][:, painted], raw[0, :3][:, painted])  # each pixel one or the other, exactly
    assert (kept[0] & ~square).sum() > 100  # thresholded alone: the ring of old background stays
    assert torch.equal(kept[6], square)  # snapped: the square and nothing else


def test_a_patch_painted_where_the_input_has_no_edge_survives():
    # The guided filter alone would average a flat region's mask over its window and erase a patch smaller
    # than the window; where the input has no edge the snap keeps the thresholded mask.
    g = torch.Generator().manual_seed(2)
    image = -0.6 + 0.02 * torch.randn(1, 3, 32, 32, generator=g)  # flat, with pixel noise
    raw = torch.full((1, 4, 32, 32), -0.8)
    raw[:, :3] = 0.5
    raw[:, 3, 13:19, 13:19] = 0.8  # a 6x6 patch painted on the flat background
    hard = AttentionMask(hard=True).eval()(raw, image)
    snapped = AttentionMask(hard=True, snap_radius=6).eval()(raw, image)
    assert torch.equal(snapped, hard)
    assert torch.equal(snapped[0, :, 13:19, 13:19], raw[0, :3, 13:19, 13:19])


def test_training_and_the_soft_head_are_untouched():
    image, raw, _ = _square_under_a_round_hole()
    weights = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    outs, grads = [], []
    for radius in (0, 6):
        leaf = raw.clone().requires_grad_()
        out = AttentionMask(hard=True, snap_radius=radius).train()(leaf, image)
        (out * weights).sum().backward()
        outs.append(out.detach())
        grads.append(leaf.grad)
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])
    head = AttentionMask(hard=True, snap_radius=6).eval()
    head(raw, image)
    assert ((head.last_mask > 0) & (head.last_mask < 1)).all()  # the penalties' mask stays soft


def test_generators_of_each_kind_take_it_and_refuse_it_without_the_threshold():
    torch.manual_seed(0)
    g = Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, mask_hard=True, mask_snap_radius=2)
    assert g.attention.snap_radius == 2
    for arch in ("resnet_6blocks", "unet_128"):
        assert define_generator(arch, ngf=4, attention_mask=True, mask_hard=True,
                                mask_snap_radius=3).attention.snap_radius == 3
    with pytest.raises(ValueError, match="needs hard"):
        AttentionMask(snap_radius=2)
    with pytest.raises(ValueError, match="mask_snap_radius must be >= 0 and needs mask_hard"):
        Generator(c_dim=3, conv_dim=8, repeat_num=1, attention_mask=True, mask_snap_radius=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shapes) -> dict[str, Path]:
    """configs/stargan/tiny.yaml with a thresholded attention mask, trained without snapping and with radius 2."""
    root = tmp_path_factory.mktemp("runs")
    base = shapes_overrides(shapes) + ["network.attention_mask=true", "network.mask_hard=true",
                                       "loss.lambda_mask=0.02"]
    for name, radius in (("hard", 0), ("snap", 2)):
        train_cli(STARGAN, root / name, base + [f"network.mask_snap_radius={radius}"])
    return {name: root / name / "00000-tiny" for name in ("hard", "snap")}


def _translate(source: Path, inputs: Path, out: Path, *flags: str) -> dict[str, bytes]:
    return translate_pngs(source, inputs, out, *TARGET, *flags)


def test_the_two_runs_share_their_weights_and_rebuild_their_radius(runs):
    hard, snap = (load_checkpoint(runs[name]) for name in ("hard", "snap"))
    assert snap["config"]["network"]["mask_snap_radius"] == 2
    for net in ("G", "D"):
        assert all(torch.equal(hard["nets"][net][k], snap["nets"][net][k]) for k in hard["nets"][net])
    assert FAMILIES["stargan"].load(snap, "snap").nets["G"].attention.snap_radius == 2


def test_translate_with_the_option_writes_what_the_other_run_writes(runs, two_inputs, tmp_path):
    hard = _translate(runs["hard"], two_inputs, tmp_path / "hard")
    snap = _translate(runs["snap"], two_inputs, tmp_path / "snap")
    assert hard != snap  # snapping changes the PNGs, so the equalities below say something
    assert _translate(runs["hard"], two_inputs, tmp_path / "hard-snap", "--mask-snap", "2") == snap
    assert _translate(runs["snap"], two_inputs, tmp_path / "snap-0", "--mask-snap", "0") == hard
    soft = _translate(runs["hard"], two_inputs, tmp_path / "soft", "--mask-soft")
    assert _translate(runs["snap"], two_inputs, tmp_path / "snap-soft", "--mask-soft") == soft  # nothing to snap


def test_evaluate_with_the_option_scores_as_the_other_run_in_a_folder_of_its_own(runs):
    scores = {}
    for name, run, flags in (("hard", runs["hard"], []), ("snap", runs["snap"], []),
                             ("snap off", runs["snap"], ["--mask-snap", "0"])):
        result = run_cli(["evaluate", "--checkpoint", run, "--device", "cpu", "--max-images", "6", *flags])
        folder = run / ("eval-mask-snap0" if flags else "eval")
        assert f"metrics: {folder / 'metrics.json'}" in result.output, result.output
        assert ("snapped to the input's edges (radius 2)" in result.output) == (name == "snap"), result.output
        scores[name] = json.loads((folder / "metrics.json").read_text())
    assert [scores[n]["mask_snap_radius"] for n in scores] == [0, 2, 0]
    assert [scores[n]["mask_snap_from"] for n in scores] == ["checkpoint", "checkpoint", "--mask-snap 0"]
    assert scores["snap off"]["counterfactual"] == scores["hard"]["counterfactual"]
    assert scores["snap"]["counterfactual"] != scores["hard"]["counterfactual"]
    assert json.loads((runs["snap"] / "eval" / "metrics.json").read_text())["mask_snap_radius"] == 2  # kept


def test_export_carries_it_and_the_editor_shows_it(runs, two_inputs, tmp_path):
    config = assert_export_and_editor_carry(runs["hard"], ["--mask-snap", "2"], {"mask_snap": 2}, runs["snap"],
                                            two_inputs, tmp_path, TARGET)
    assert config["network"]["mask_snap_radius"] == 2


def test_a_radius_without_the_threshold_is_a_one_line_error_that_writes_nothing(runs, two_inputs, tmp_path):
    result = run_cli(["translate", "--checkpoint", runs["hard"], "--input", two_inputs, "--output", tmp_path / "out",
                      "--device", "cpu", *TARGET, "--mask-soft", "--mask-snap", "2"], code=2)
    assert result.output.count("\n") == 1 and "--mask-snap 2" in result.output and "--mask-hard" in result.output
    result = run_cli(["evaluate", "--checkpoint", runs["hard"], "--out", tmp_path / "eval", "--device", "cpu",
                      "--mask-snap", "-1"], code=2)
    assert "--mask-snap" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "eval").exists()
    with pytest.raises(UserError, match="use --mask-hard instead of --mask-soft"):
        with_mask_options(load_checkpoint(runs["hard"]), False, "hard", 2)
    ckpt = load_checkpoint(runs["hard"])
    no_mask = {**ckpt, "config": {**ckpt["config"], "network": {**ckpt["config"]["network"],
                                                                 "attention_mask": False}}}
    with pytest.raises(UserError, match="--mask-snap 2 applies to a generator with an attention mask"):
        with_mask_options(no_mask, None, "no-mask", 2)


def test_the_flags_name_the_eval_folder_and_metrics_say_where_the_radius_came_from(runs):
    assert default_out_dir(runs["hard"], True, 2) == runs["hard"] / "eval-mask-hard-mask-snap2"
    assert default_out_dir(runs["hard"], None, 0) == runs["hard"] / "eval-mask-snap0"
    snap = FAMILIES["stargan"].load(load_checkpoint(runs["snap"]), "snap").config
    assert mask_fields(snap, None) == {"mask_hard": True, "mask_hard_from": "checkpoint", "mask_snap_radius": 2,
                                       "mask_snap_from": "checkpoint", "mask_snap_fill": False,
                                       "mask_fill_from": "checkpoint"}
    soft = FAMILIES["stargan"].load(with_mask_options(load_checkpoint(runs["snap"]), False, "snap"), "snap").config
    assert mask_fields(soft, False) == {"mask_hard": False, "mask_hard_from": "--mask-soft", "mask_snap_radius": 0,
                                        "mask_snap_from": "--mask-soft", "mask_snap_fill": False,
                                        "mask_fill_from": "--mask-soft"}  # the soft mask has nothing to snap
    hard = FAMILIES["stargan"].load(with_mask_options(load_checkpoint(runs["snap"]), True, "snap"), "snap").config
    assert mask_fields(hard, True)["mask_snap_radius"] == 2  # --mask-hard alone keeps the checkpoint's radius


@pytest.mark.parametrize("config", [STARGAN, CYCLEGAN, PIX2PIX], ids=["stargan", "cyclegan", "pix2pix"])
def test_the_config_key_without_the_threshold_is_a_one_line_error(tmp_path, shapes, config):
    base = shapes_overrides(shapes) if config == STARGAN else [f"data.root={tmp_path}"]
    result = train_cli(config, tmp_path / "out", base + ["network.attention_mask=true",
                                                         "network.mask_snap_radius=2"], code=2)
    assert "network.mask_snap_radius" in result.output and "network.mask_hard" in result.output, result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()


def test_cyclegan_and_pix2pix_train_with_it_and_rebuild_it(tmp_path, unpaired_root):
    snap = ["network.attention_mask=true", "network.mask_hard=true", "network.mask_snap_radius=2"]
    train_cli(CYCLEGAN, tmp_path / "cg", [f"data.root={unpaired_root}", *snap])
    ckpt = load_checkpoint(tmp_path / "cg" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert cyclegan_generator(ckpt, "AtoB", "cg").attention.snap_radius == 2
    assert cyclegan_generator(with_mask_options(ckpt, None, "cg", 0), "AtoB", "cg").attention.snap_radius == 0
    make_aligned(tmp_path / "pairs", 4)
    train_cli(PIX2PIX, tmp_path / "p2p", [f"data.root={tmp_path / 'pairs'}", *snap])
    ckpt = load_checkpoint(tmp_path / "p2p" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert pix2pix_generator(ckpt, "p")[1].attention.snap_radius == 2
