"""Proof of learning (slow): a small StarGAN trained on the shapes data for a fixed number of steps changes
colours far above chance and gets closer to the ground-truth counterfactuals than doing nothing."""
import json

import pytest

from stargan.cli import demo
from stargan.cli.demo import run_demo


@pytest.mark.slow
def test_small_stargan_learns_shapes_colours(tmp_path, monkeypatch):
    monkeypatch.setitem(demo.DEMO_STARGAN, "log", {**demo.DEMO_STARGAN["log"], "progress": False})
    lines = []
    summary = run_demo(out=tmp_path / "demo", budget_minutes=60, device="cpu", seed=0, echo=lines.append,
                       n_images=1000, iterations=1200)  # n_critic 2, lr 5e-4: ~89% here
    assert summary["iterations"] == 1200  # the budget did not cut training short
    # 4 colours: chance is 25%.
    assert summary["colour_change_n"] >= 300
    assert summary["colour_change_accuracy"] > 0.6, summary
    assert summary["counterfactual_l1"] < 0.8 * summary["baseline_l1"], summary
    metrics = json.loads((tmp_path / "demo" / "eval" / "metrics.json").read_text())
    assert metrics["real_accuracy"]["overall"]["accuracy"] > 0.8  # the judge (2 epochs, 900 images) is trustworthy
    assert (tmp_path / "demo" / "grid.png").is_file()
    assert any("colour-change accuracy" in line for line in lines)
