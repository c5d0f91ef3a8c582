"""Checks shared by the tests of the optional attention-mask terms (idle, edge-aware TV, colour): each is logged
under its key in StarGAN's and CycleGAN's training stats within a bound, it is in G's loss (the weights differ from
a run without it), and a bad value is a one-line error that writes nothing."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import shapes_overrides, train_cli

from common.checkpoint import load_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"


def stats_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "00000-tiny" / "stats.jsonl").read_text().splitlines()]


def assert_stargan_logs_the_term_and_trains_on_it(tmp_path: Path, shapes: Path, term: list[str], key: str,
                                                  most: float) -> None:
    """configs/stargan/tiny.yaml with the mask, trained with ``term`` and without: every G row logs ``key`` in
    (0, most], and G's weights differ."""
    sets = shapes_overrides(shapes) + ["network.attention_mask=true", "loss.lambda_mask=0.02"]
    train_cli(STARGAN, tmp_path / "term", sets + term)
    g_rows = [row for row in stats_rows(tmp_path / "term") if key in row]
    assert g_rows and all(0 < row[key] <= most for row in g_rows), g_rows
    train_cli(STARGAN, tmp_path / "plain", sets)
    with_term = load_checkpoint(tmp_path / "term" / "00000-tiny" / "checkpoints" / "latest.pt")["nets"]["G"]
    without = load_checkpoint(tmp_path / "plain" / "00000-tiny" / "checkpoints" / "latest.pt")["nets"]["G"]
    assert any(not torch.equal(with_term[k], without[k]) for k in without)  # the term is in G's loss


def assert_cyclegan_logs_the_term(tmp_path: Path, unpaired_root: Path, term: list[str], key: str,
                                  most: float) -> None:
    train_cli(CYCLEGAN, tmp_path / "out", [f"data.root={unpaired_root}", "network.attention_mask=true", *term])
    rows = stats_rows(tmp_path / "out")
    assert rows and all(0 < row[key] <= most for row in rows), rows


def assert_one_line_config_error(tmp_path: Path, shapes: Path, config: Path, sets: list[str], named: str) -> None:
    base = shapes_overrides(shapes) if config == STARGAN else [f"data.root={tmp_path}"]
    result = train_cli(config, tmp_path / "out", base + sets, code=2)
    assert named in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "out").exists()
