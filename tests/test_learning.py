"""Proof of learning (slow): a small StarGAN trained on the shapes data for a fixed number of steps changes
colours far above chance and gets closer to the ground-truth counterfactuals than doing nothing."""
import json
import logging
from pathlib import Path

import pytest
from conftest import run_cli

from common.checkpoint import load_checkpoint
from stargan.cli import demo
from stargan.cli.demo import run_demo


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["preserving", "official"])
def test_small_stargan_learns_shapes_colours(tmp_path, monkeypatch, caplog, recipe):
    monkeypatch.setitem(demo.DEMO_STARGAN, "log", {**demo.DEMO_STARGAN["log"], "progress": False})
    caplog.set_level(logging.INFO, logger="stargan")
    summary = run_demo(out=tmp_path / "demo", budget_minutes=60, device="cpu", seed=0, recipe=recipe,
                       n_images=1000, iterations=1200)  # n_critic 2, lr 5e-4: the official recipe ~89% here
    assert summary["iterations"] == 1200  # the budget did not cut training short
    # 4 colours: chance is 25%.
    assert summary["colour_change_n"] >= 300
    assert summary["colour_change_accuracy"] > 0.6, summary
    assert summary["counterfactual_l1"] < 0.8 * summary["baseline_l1"], summary
    metrics = json.loads((tmp_path / "demo" / "eval" / "metrics.json").read_text())
    # The judge (6 epochs of 900 images: CLASSIFIER_MIN_IMAGES) is trustworthy.
    assert metrics["real_accuracy"]["overall"]["accuracy"] > 0.8
    assert (tmp_path / "demo" / "grid.png").is_file()
    lines = [record.getMessage() for record in caplog.records]
    assert any("colour-change accuracy" in line for line in lines)


@pytest.mark.parametrize("recipe", [None, "official"])
def test_demo_command_end_to_end_in_miniature(tmp_path, monkeypatch, recipe):
    """`stargan demo` through the CLI, shrunk to seconds: every stage runs and the summary is printed; the
    default recipe trains the masked generator with its penalties and an EMA, `--recipe official` the official
    one."""
    monkeypatch.setitem(demo.DATA, "n", 60)
    monkeypatch.setitem(demo.CLASSIFIER, "epochs", 1)
    monkeypatch.setattr(demo, "CLASSIFIER_MIN_IMAGES", 0)
    monkeypatch.setitem(demo.DEMO_STARGAN, "optim", {**demo.DEMO_STARGAN["optim"], "num_iters": 4,
                                                     "num_iters_decay": 1})
    monkeypatch.setitem(demo.DEMO_STARGAN, "log", {**demo.DEMO_STARGAN["log"], "progress": False})
    recipe_args = ["--recipe", recipe] if recipe else []
    result = run_cli(["demo", "--out", tmp_path / "demo", "--device", "cpu", *recipe_args])
    assert "colour-change accuracy" in result.output and "counterfactual L1" in result.output
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert summary["iterations"] == 4 and summary["dataset_images"] == 60
    # The demo's classifier learns the nuisance attributes, so shape, position and size kept are reported.
    assert "shape kept per attribute" in result.output and "Shape kept" in result.output
    assert list(summary["nuisance_kept"]) == ["Shape", "Left", "Top", "Large"]
    assert set(summary["shape_kept_per_attribute"]) == set(summary["counterfactual_l1_ratio_per_attribute"])
    assert (tmp_path / "demo" / "grid.png").is_file()
    assert summary["overrides"] == []
    ckpt = load_checkpoint(Path(summary["run_dir"]) / "checkpoints" / "latest.pt")
    preserving = recipe is None
    assert summary["recipe"] == ("preserving" if preserving else "official")
    assert f"({summary['recipe']} recipe," in result.output
    assert ckpt["config"]["network"]["attention_mask"] is preserving
    assert ckpt["config"]["loss"]["lambda_mask_binary"] == (0.05 if preserving else 0.0)
    assert ckpt["config"]["network"]["mask_guide_radius"] == (2 if preserving else 0)
    assert ("G_ema" in ckpt["nets"]) is preserving
    # At 32x32 the mask stays soft (thresholding it cost the background flip there; demo.inference_options).
    assert ckpt["config"]["network"]["mask_hard"] is False
    metrics = json.loads((tmp_path / "demo" / "eval" / "metrics.json").read_text())
    assert metrics["mask_hard"] is False


def test_demo_recipe_choices_are_the_recipes():
    from stargan.cli.main import demo as demo_command

    option = next(p for p in demo_command.params if p.name == "recipe")
    assert sorted(option.type.choices) == sorted(demo.RECIPES) and option.default in demo.RECIPES


def test_demo_set_restores_the_unfiltered_mask(tmp_path, monkeypatch):
    """README and docs/fidelity.md give `--set network.mask_guide_radius=0` as the way to the demo's default of
    2026-12-02: the mask stays, its guided filter goes."""
    monkeypatch.setitem(demo.DATA, "n", 60)
    monkeypatch.setitem(demo.CLASSIFIER, "epochs", 1)
    monkeypatch.setattr(demo, "CLASSIFIER_MIN_IMAGES", 0)
    monkeypatch.setitem(demo.DEMO_STARGAN, "optim", {**demo.DEMO_STARGAN["optim"], "num_iters": 2,
                                                     "num_iters_decay": 1})
    monkeypatch.setitem(demo.DEMO_STARGAN, "log", {**demo.DEMO_STARGAN["log"], "progress": False})
    run_cli(["demo", "--out", tmp_path / "demo", "--device", "cpu", "--set", "network.mask_guide_radius=0"])
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    network = load_checkpoint(Path(summary["run_dir"]) / "checkpoints" / "latest.pt")["config"]["network"]
    assert network["mask_guide_radius"] == 0 and network["attention_mask"] is True
    assert summary["overrides"] == ["network.mask_guide_radius=0"]


def test_demo_thresholds_and_snaps_from_64_px_and_set_overrides_it():
    assert demo.inference_options("preserving", 64)["network"] == {"mask_hard": True, "mask_snap_radius": 6}
    assert demo.inference_options("preserving", 128)["network"]["mask_snap_radius"] == 12
    assert demo.inference_options("preserving", 48) == {} and demo.inference_options("official", 64) == {}
    schema = {"attrs": ["Red", "Blue"], "exclusive": [["Red", "Blue"]]}

    def network(*overrides):
        return demo._stargan_config(overrides, 0, 64, None, Path("data"), schema, "cpu", 60.0, "preserving").network

    assert (network().mask_hard, network().mask_snap_radius) == (True, 6)
    # The README's way back to the soft mask: one override, the snap goes with the threshold.
    assert (network("network.mask_hard=false").mask_hard, network("network.mask_hard=false").mask_snap_radius) \
        == (False, 0)
    assert network("network.mask_snap_radius=3").mask_snap_radius == 3  # an override of one key wins


def test_demo_at_64_px_translates_with_the_snapped_mask(tmp_path, monkeypatch):
    """`stargan demo --size 64`: the checkpoint carries the thresholded mask snapped with radius 6, and the
    evaluation composed with it."""
    monkeypatch.setitem(demo.DATA, "n", 60)
    monkeypatch.setitem(demo.CLASSIFIER, "epochs", 1)
    monkeypatch.setattr(demo, "CLASSIFIER_MIN_IMAGES", 0)
    monkeypatch.setitem(demo.DEMO_STARGAN, "log", {**demo.DEMO_STARGAN["log"], "progress": False})
    monkeypatch.setitem(demo.DEMO_STARGAN, "network", {**demo.DEMO_STARGAN["network"], "g_conv_dim": 8,
                                                       "d_conv_dim": 8})
    monkeypatch.setitem(demo.DEMO_STARGAN, "optim", {**demo.DEMO_STARGAN["optim"], "num_iters": 2,
                                                     "num_iters_decay": 1})
    run_cli(["demo", "--out", tmp_path / "demo", "--device", "cpu", "--size", "64"])
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    network = load_checkpoint(Path(summary["run_dir"]) / "checkpoints" / "latest.pt")["config"]["network"]
    assert network["mask_hard"] is True and network["mask_snap_radius"] == 6
    metrics = json.loads((tmp_path / "demo" / "eval" / "metrics.json").read_text())
    assert metrics["mask_hard"] is True and metrics["mask_snap_radius"] == 6
