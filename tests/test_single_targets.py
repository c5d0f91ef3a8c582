"""``loss.target: single``: StarGAN trains on edits of one attribute group at a time (docs/fidelity.md)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import shapes_overrides, train_cli

from common.config import load_config
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
