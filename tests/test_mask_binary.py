"""The attention mask's binarisation penalty (``loss.lambda_mask_binary``, issue 11): its values and gradient,
its place in StarGAN's and CycleGAN's G loss, and its one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import shapes_overrides, train_cli

from common.checkpoint import load_checkpoint
from common.layers.masked_output import mask_binary_penalty, mask_loss

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"


def test_binary_penalty_is_zero_at_zero_and_one_and_largest_at_a_half():
    mask = torch.tensor([0.0, 1.0, 0.5, 0.25]).view(1, 1, 2, 2)
    assert mask_binary_penalty(mask, 2.0).item() == pytest.approx(2.0 * (0 + 0 + 1 + 0.75) / 4)
    assert mask_binary_penalty(torch.zeros(1, 1, 3, 3), 5.0).item() == 0.0


def test_mask_loss_sums_the_masks_and_pushes_each_pixel_to_its_nearer_side():
    mask = torch.tensor([[0.3, 0.7], [0.3, 0.7]]).view(1, 1, 2, 2).requires_grad_()
    total, logs = mask_loss([mask, mask], 0.0, 0.0, 1.0)
    assert set(logs) == {"G/mask", "G/mask_tv", "G/mask_bin"}
    assert total.item() == pytest.approx(2 * 4 * 0.21)  # two masks, each mean 4 * 0.3 * 0.7
    total.backward()
    down, up = mask.grad[0, 0, 0].tolist()
    assert down > 0 > up  # gradient descent lowers 0.3 and raises 0.7
    _, logs = mask_loss([mask.detach()], 0.1, 0.1)
    assert "G/mask_bin" not in logs  # off at weight 0


def test_a_mask_one_pixel_high_has_no_vertical_variation_not_nan():
    row = torch.tensor([0.0, 1.0, 0.5]).view(1, 1, 1, 3)
    total, logs = mask_loss([row], 0.0, 1.0, 1.0)
    assert torch.isfinite(total)
    assert logs["G/mask_tv"].item() == pytest.approx((1.0 + 0.25) / 2)  # horizontal neighbours only


def test_stargan_trains_with_the_binary_penalty_logs_it_and_it_changes_the_result(tmp_path, shapes):
    sets = shapes_overrides(shapes) + ["network.attention_mask=true", "loss.lambda_mask=0.02",
                                       "optim.num_iters=6", "optim.num_iters_decay=3"]
    train_cli(STARGAN, tmp_path / "bin", sets + ["loss.lambda_mask_binary=0.5"])
    rows = [json.loads(line) for line in (tmp_path / "bin" / "00000-tiny" / "stats.jsonl").read_text().splitlines()]
    g_rows = [row for row in rows if "G/mask_bin" in row]
    assert g_rows and all(0 < row["G/mask_bin"] <= 2 * 0.5 for row in g_rows)  # two masks, each term <= weight
    train_cli(STARGAN, tmp_path / "plain", sets)
    with_term = load_checkpoint(tmp_path / "bin" / "00000-tiny" / "checkpoints" / "latest.pt")["nets"]["G"]
    without = load_checkpoint(tmp_path / "plain" / "00000-tiny" / "checkpoints" / "latest.pt")["nets"]["G"]
    assert any(not torch.equal(with_term[k], without[k]) for k in without)  # the term is in G's loss


@pytest.mark.parametrize("config, sets, named", [
    (STARGAN, ["loss.lambda_mask_binary=0.1"], "network.attention_mask"),
    (STARGAN, ["network.attention_mask=true", "loss.lambda_mask_binary=-1"], "loss.lambda_mask_binary"),
    (CYCLEGAN, ["loss.lambda_mask_binary=0.1"], "network.attention_mask"),
])
def test_bad_values_are_one_line_errors(tmp_path, shapes, config, sets, named):
    base = shapes_overrides(shapes) if config == STARGAN else [f"data.root={tmp_path}"]
    result = train_cli(config, tmp_path / "out", base + sets, code=2)
    assert named in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "out").exists()


def test_cyclegan_logs_the_binary_penalty(tmp_path, unpaired_root):
    sets = [f"data.root={unpaired_root}", "network.attention_mask=true", "loss.lambda_mask_binary=0.2"]
    train_cli(CYCLEGAN, tmp_path / "out", sets)
    rows = [json.loads(line) for line in (tmp_path / "out" / "00000-tiny" / "stats.jsonl").read_text().splitlines()]
    assert rows and all(0 < row["G/mask_bin"] <= 4 * 0.2 for row in rows)  # four masks
