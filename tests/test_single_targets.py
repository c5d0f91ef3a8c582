"""``loss.target: single``: StarGAN trains on edits of one attribute group at a time (docs/fidelity.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import assert_resume_is_exact, shapes_overrides, train_cli

from common.checkpoint import load_checkpoint
from common.config import load_config
from common.labels.targets import mix_targets
from stargan.families import config_classes
from stargan.trainer import StarGANTrainer

TINY = Path(__file__).resolve().parents[1] / "configs" / "stargan" / "tiny.yaml"


def _groups_changed(trainer: StarGANTrainer, label_org: torch.Tensor, label_trg: torch.Tensor) -> torch.Tensor:
    changed = torch.zeros(label_org.shape[0], dtype=torch.long)
    for _, start, stop in trainer.labels.schemas[0].spans():
        changed += (label_trg[:, start:stop] != label_org[:, start:stop]).any(1).long()
    return changed


def test_single_targets_change_one_group_per_image_and_shuffle_does_not(shapes, tmp_path):
    labels = {}
    for mode in ("single", "shuffle"):
        cfg = load_config(TINY, [*shapes_overrides(shapes), "run.device=cpu", f"loss.target={mode}"],
                          config_classes())
        trainer = StarGANTrainer(cfg, out_root=tmp_path / mode)
        label_org = torch.stack([trainer.datasets[0][i][1] for i in range(16)])
        draws = [trainer.targets_for(label_org, 0) for _ in range(20)]
        labels[mode] = torch.cat([_groups_changed(trainer, label_org, t) for t in draws])
        trainer.ctx.close()
    assert (labels["single"] == 1).all()
    # The official rule changes several groups at once, or none, in many of its draws.
    assert (labels["shuffle"] != 1).float().mean() > 0.2


def test_training_with_single_targets_through_the_cli(shapes, tmp_path):
    sets = shapes_overrides(shapes) + ["optim.num_iters=4", "optim.num_iters_decay=2", "loss.target=single"]
    train_cli(TINY, tmp_path / "out", sets)
    run = tmp_path / "out" / "00000-tiny"
    assert "target: single" in (run / "config.yaml").read_text()
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert rows and all(torch.isfinite(torch.tensor(row["D/total"])) for row in rows)


def test_an_unknown_target_rule_is_a_one_line_error_listing_the_rules(shapes, tmp_path):
    result = train_cli(TINY, tmp_path / "out", shapes_overrides(shapes) + ["loss.target=one"], code=2)
    assert "loss.target" in result.output and "single" in result.output, result.output
    assert result.output.count("\n") == 1, result.output
    assert not (tmp_path / "out").exists()


def test_mix_targets_takes_each_row_from_one_rule_with_the_given_share():
    base, other = torch.zeros(4000, 3), torch.ones(4000, 3)
    assert torch.equal(mix_targets(base, other, 0.0, torch.Generator().manual_seed(0)), base)
    assert torch.equal(mix_targets(base, other, 1.0, torch.Generator().manual_seed(0)), other)
    mixed = mix_targets(base, other, 0.3, torch.Generator().manual_seed(0))
    assert ((mixed == 0).all(1) | (mixed == 1).all(1)).all()  # whole rows, never a blend
    assert abs(mixed[:, 0].mean().item() - 0.3) < 0.03
    # One draw per row whatever the share: the generator's stream does not depend on it.
    gens = [torch.Generator().manual_seed(1) for _ in range(2)]
    mix_targets(base, other, 0.1, gens[0])
    mix_targets(base, other, 0.9, gens[1])
    assert torch.equal(torch.rand(3, generator=gens[0]), torch.rand(3, generator=gens[1]))


def test_a_single_share_makes_one_group_edits_that_share_of_the_shuffled_targets(shapes, tmp_path):
    singles = {}
    for share in (0.0, 0.5, 1.0):
        cfg = load_config(TINY, [*shapes_overrides(shapes), "run.device=cpu", "loss.target=shuffle",
                                 f"loss.target_single_share={share}"], config_classes())
        trainer = StarGANTrainer(cfg, out_root=tmp_path / str(share))
        label_org = torch.stack([trainer.datasets[0][i][1] for i in range(16)])
        draws = [trainer.targets_for(label_org, 0) for _ in range(40)]
        singles[share] = torch.cat([_groups_changed(trainer, label_org, t) for t in draws]).eq(1).float().mean()
        trainer.ctx.close()
    assert singles[1.0] == 1.0
    assert singles[0.0] + 0.2 < singles[0.5] < singles[1.0]


def test_training_with_a_single_share_through_the_cli_resumes_exactly(shapes, tmp_path):
    sets = shapes_overrides(shapes) + ["optim.num_iters=4", "optim.num_iters_decay=2",
                                       "loss.target_single_share=0.5"]
    train_cli(TINY, tmp_path / "out", sets)
    run = tmp_path / "out" / "00000-tiny"
    assert "target_single_share: 0.5" in (run / "config.yaml").read_text()
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    g_rows = [row for row in rows if "G/total" in row]
    assert g_rows and all(torch.isfinite(torch.tensor(row["G/total"])) for row in g_rows)
    # The mixed draws come from the checkpointed target generator: a run stopped and resumed ends the same.
    assert_resume_is_exact(TINY, tmp_path / "split", sets, load_checkpoint(run / "checkpoints" / "latest.pt"),
                           stop_after=2)


@pytest.mark.parametrize("sets, expected", [
    (["loss.target_single_share=1.5"], "in [0, 1]"),
    (["loss.target=single", "loss.target_single_share=0.5"], "0 when loss.target is single"),
])
def test_a_bad_single_share_is_a_one_line_error(shapes, tmp_path, sets, expected):
    result = train_cli(TINY, tmp_path / "out", shapes_overrides(shapes) + sets, code=2)
    assert "loss.target_single_share" in result.output and expected in result.output, result.output
    assert result.output.count("\n") == 1, result.output
    assert not (tmp_path / "out").exists()
