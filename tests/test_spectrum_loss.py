"""The label-conditional texture-spectrum loss (common.losses.spectrum_match_loss, ``loss.lambda_spectrum``)."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import shapes_overrides, train_cli

from common.data.shapes import ShapesParams, object_mask, render
from common.losses import spectrum_match_loss

STARGAN = Path(__file__).resolve().parents[1] / "configs" / "stargan" / "tiny.yaml"
SIZE = 64


def _image(params: ShapesParams) -> torch.Tensor:
    return torch.from_numpy(render(params, SIZE)).permute(2, 0, 1).float() / 127.5 - 1


def _scenes(striped: bool, start: int) -> list[ShapesParams]:
    """Eight scenes of the data's kind (shapes, positions, stripe phases vary)."""
    shapes = ("circle", "square", "triangle")
    return [ShapesParams(colour="Green", striped=striped, dark_background=False, shape=shapes[i % 3],
                         cx=0.4 + 0.03 * (i % 5), cy=0.45 + 0.02 * (i % 4), radius=0.22 + 0.01 * (i % 6),
                         rotation=11.0 * i, stripe_phase=0.13 * i, gradient_angle=40.0 * i, noise_seed=start + i)
            for i in range(8)]


def _painted(params: ShapesParams, angle_deg: float, period: float, grid: bool = False) -> torch.Tensor:
    """The solid scene with darker stripes (or a grid) of another angle or period painted on its object."""
    y, x = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32),
                          indexing="ij")
    a = math.radians(angle_deg)
    dark = (torch.sin(2 * math.pi * (x * math.cos(a) + y * math.sin(a)) / period) > 0).float()
    if grid:
        dark = torch.maximum(dark, (torch.sin(2 * math.pi * (y * math.cos(a) - x * math.sin(a)) / period) > 0).float())
    solid = _image(replace(params, striped=False))
    cover = torch.from_numpy(object_mask(params, SIZE))
    return solid - 0.5 * (solid + 1) * dark * cover  # the object's colour halved on the dark bands, as the data's


def _batch(striped: torch.Tensor, solid: torch.Tensor, adds: torch.Tensor):
    """A batch as the trainer sees it (labels: one attribute, Striped): real images ``striped`` (kept striped,
    translated to themselves) and ``solid`` (translated to striped, giving ``adds``). Returns fake, real,
    label_trg, label_org."""
    n, m = striped.shape[0], solid.shape[0]
    label_org = torch.tensor([[1.0]] * n + [[0.0]] * m)
    return torch.cat([striped, adds]), torch.cat([striped, solid]), torch.ones_like(label_org), label_org


def test_the_datas_stripes_at_other_phases_cost_least():
    striped = torch.stack([_image(p) for p in _scenes(True, 0)])
    others = _scenes(False, 100)  # other scenes, drawn without stripes, are the translations' inputs
    solid = torch.stack([_image(p) for p in others])
    candidates = {
        "the data's stripes, other phases": torch.stack([_image(replace(p, striped=True)) for p in others]),
        "left solid": torch.stack([_image(p) for p in others]),
        "135 degrees": torch.stack([_painted(p, 135, 6.4) for p in others]),
        "a finer period": torch.stack([_painted(p, 45, 3.5) for p in others]),
        "a fine grid": torch.stack([_painted(p, 0, 3.5, grid=True) for p in others]),
        "axis-aligned": torch.stack([_painted(p, 0, 6.4) for p in others]),
    }
    cost = {}
    for name, fakes in candidates.items():
        fake, real, label_trg, label_org = _batch(striped, solid, fakes)
        cost[name], logs = spectrum_match_loss(fake, real, label_trg, label_org, weight=2.0, name="G/spectrum")
        assert logs["G/spectrum"] == cost[name]
    best = cost.pop("the data's stripes, other phases")
    for name, value in cost.items():
        assert value > 1.5 * best, (name, float(value), float(best))


def test_only_the_translations_get_a_gradient_and_a_batch_without_pairs_costs_nothing():
    striped = torch.stack([_image(p) for p in _scenes(True, 0)])
    solid = torch.stack([_image(p) for p in _scenes(False, 100)])
    fake, real, label_trg, label_org = _batch(striped, solid, solid.clone())
    fake.requires_grad_(True)
    real.requires_grad_(True)
    loss, _ = spectrum_match_loss(fake, real, label_trg, label_org, weight=1.0)
    loss.backward()
    assert loss.item() > 0 and real.grad is None
    assert fake.grad is not None and fake.grad[8:].abs().sum() > 0
    assert fake.grad[:8].abs().sum() == 0  # unchanged rows are no translation to Striped
    # Nothing changed: no pair of translations and real images to compare.
    unchanged, _ = spectrum_match_loss(fake, real, label_org, label_org, weight=1.0)
    assert unchanged.item() == 0.0
    # Every row translated to Striped, none striped before: no real image to compare with.
    no_real, _ = spectrum_match_loss(fake, real, label_trg, torch.zeros_like(label_org), weight=1.0)
    assert no_real.item() == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        spectrum_match_loss(fake[:4], real, label_trg, label_org, weight=1.0)


def test_only_the_named_columns_count():
    striped = torch.stack([_image(p) for p in _scenes(True, 0)])
    solid = torch.stack([_image(p) for p in _scenes(False, 100)])
    fake, real, label_trg, label_org = _batch(striped, solid, solid.clone())
    # A second column that changes nowhere adds no pair: the same loss with it named or not.
    two_trg, two_org = (torch.cat([label, torch.zeros_like(label)], dim=1) for label in (label_trg, label_org))
    assert spectrum_match_loss(fake, real, two_trg, two_org, 1.0)[0] == spectrum_match_loss(
        fake, real, label_trg, label_org, 1.0)[0]
    assert spectrum_match_loss(fake, real, two_trg, two_org, 1.0, columns=[1])[0].item() == 0.0
    assert spectrum_match_loss(fake, real, two_trg, two_org, 1.0, columns=[0])[0].item() > 0


def test_training_with_lambda_spectrum_logs_the_term(tmp_path, shapes):
    base = shapes_overrides(shapes) + ["optim.num_iters=6", "optim.num_iters_decay=2", "log.every_steps=1",
                                       "data.batch_size=8"]
    rows = {}
    # Off (weight 0), the names are not looked up: a config that turns the term off runs on any data.
    for name, sets in (("plain", ["loss.spectrum_attrs=[Stripy]"]),
                       ("spectrum", ["loss.lambda_spectrum=2.0", "loss.spectrum_attrs=[Striped]"])):
        train_cli(STARGAN, tmp_path / name, base + sets)
        stats = tmp_path / name / "00000-tiny" / "stats.jsonl"
        rows[name] = [json.loads(line) for line in stats.read_text().splitlines()]
    assert not any("G/spectrum" in row for row in rows["plain"])
    g_rows = [row for row in rows["spectrum"] if "G/total" in row]
    assert g_rows and all("G/spectrum" in row and row["G/spectrum"] >= 0 for row in g_rows)
    assert any(row["G/spectrum"] > 0 for row in g_rows)


@pytest.mark.parametrize("sets, named", [
    (["loss.lambda_spectrum=-1"], "loss.lambda_spectrum"),
    (["loss.lambda_spectrum=1"], "loss.spectrum_attrs"),
    (["loss.lambda_spectrum=1", "loss.spectrum_attrs=[Stripy]"], "Stripy"),
    (["loss.lambda_spectrum=1", "loss.spectrum_attrs=[Striped]", "data.image_size=8"], "data.image_size >= 12"),
])
def test_bad_spectrum_options_are_one_line_errors(tmp_path, shapes, sets, named):
    result = train_cli(STARGAN, tmp_path / "out", shapes_overrides(shapes) + sets, code=2)
    assert named in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "out").exists()
