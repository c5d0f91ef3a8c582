"""LR schedules and run folders."""
import copy
import math
from pathlib import Path

import pytest
import torch
import yaml

from common.config import load_config, to_dict
from common.distributed import DistInfo
from common.grids import tile_grid
from common.runs import latest_run_with_checkpoint, new_run_dir
from common.training import load_optimizer_state, lr_factor, make_adam, open_run
from stargan.families import config_classes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_linear_matches_official_formula():
    # Official: 1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1) with epoch_count = 1.
    factors = [lr_factor("linear", t, 100, 100) for t in range(200)]
    assert factors[:100] == [1.0] * 100
    assert factors[100] == pytest.approx(1 - 1 / 101)
    assert factors[199] == pytest.approx(1 - 100 / 101)
    assert all(a > b for a, b in zip(factors[99:], factors[100:]))


def test_cosine_and_step_and_constant():
    assert [lr_factor("cosine", t, 2, 3) for t in range(2)] == [1.0, 1.0]
    assert lr_factor("cosine", 3, 2, 3) == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 4)))
    assert lr_factor("cosine", 10, 2, 3) == pytest.approx(0.0)
    assert [lr_factor("step", t, 0, 0, step_every=2) for t in range(5)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert lr_factor("constant", 1000, 1, 1) == 1.0
    with pytest.raises(ValueError, match="valid values: linear, step, cosine, constant"):
        lr_factor("plateau", 0, 1, 1)


def test_run_folders_are_numbered_and_never_reused(tmp_path):
    a = new_run_dir(tmp_path, "horse2zebra")
    b = new_run_dir(tmp_path, "horse2zebra")
    c = new_run_dir(tmp_path, "other name")
    assert [p.name for p in (a, b, c)] == ["00000-horse2zebra", "00001-horse2zebra", "00002-other-name"]
    assert latest_run_with_checkpoint(tmp_path, "horse2zebra") is None
    (a / "checkpoints").mkdir()
    (a / "checkpoints" / "ckpt-000000001.pt").write_bytes(b"x")
    assert latest_run_with_checkpoint(tmp_path, "horse2zebra") == a


def _steps(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()


@pytest.mark.parametrize("config", ["cyclegan/tiny.yaml", "stargan/tiny.yaml"])
def test_open_run_writes_the_config_as_plain_yaml_in_field_order(tmp_path, config):
    cfg = load_config(CONFIGS / config, [], config_classes())
    ctx = open_run(cfg, tmp_path / "runs", None, DistInfo())
    ctx.logger.close()
    text = (ctx.run_dir / "config.yaml").read_text(encoding="utf-8")
    assert text == yaml.safe_dump(to_dict(cfg), sort_keys=False)
    assert load_config(ctx.run_dir / "config.yaml", [], config_classes()) == cfg
    assert not [p for p in ctx.run_dir.iterdir() if p.name.endswith(".tmp")]


def test_make_adam_is_the_adam_update_and_resumes_across_implementations():
    torch.manual_seed(0)
    start = [torch.randn(7, 5), torch.randn(5)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(4)]
    fast = [p.clone().requires_grad_(True) for p in start]
    plain = [p.clone().requires_grad_(True) for p in start]
    opt_fast = make_adam(fast, 1e-2, (0.5, 0.999))
    opt_plain = torch.optim.Adam(plain, lr=1e-2, betas=(0.5, 0.999), foreach=False)
    assert opt_fast.param_groups[0]["fused"]  # torch >= 2.4 has the fused CPU kernel
    _steps(opt_fast, fast, grads[:3])
    _steps(opt_plain, plain, grads[:3])
    for a, b, s0 in zip(fast, plain, start):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert not torch.equal(a, s0)

    # Fused state into plain Adam (a torch without the fused kernel) and plain state into make_adam (an old
    # checkpoint): each keeps its own implementation and continues the same update.
    into_plain = [p.detach().clone().requires_grad_(True) for p in fast]
    opt_into_plain = torch.optim.Adam(into_plain, lr=1e-2, betas=(0.5, 0.999), foreach=False)
    load_optimizer_state(opt_into_plain, copy.deepcopy(opt_fast.state_dict()))  # as read from disk
    into_fast = [p.detach().clone().requires_grad_(True) for p in plain]
    opt_into_fast = make_adam(into_fast, 1e-2, (0.5, 0.999))
    load_optimizer_state(opt_into_fast, copy.deepcopy(opt_plain.state_dict()))
    assert not opt_into_plain.param_groups[0]["fused"] and opt_into_plain.param_groups[0]["foreach"] is False
    assert opt_into_fast.param_groups[0]["fused"] and opt_into_fast.param_groups[0]["foreach"] is None
    for opt, params in ((opt_into_plain, into_plain), (opt_into_fast, into_fast), (opt_plain, plain)):
        _steps(opt, params, grads[3:])
    for a, b, c in zip(into_plain, into_fast, plain):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b, c, rtol=1e-5, atol=1e-6)

    # A GradScaler hands its scale to a fused optimizer; after resuming from a plain checkpoint the optimizer
    # must still take it (plain load_state_dict made this step fail).
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    opt_into_fast.zero_grad()
    before = [p.detach().clone() for p in into_fast]
    scaler.scale(sum((p * g).sum() for p, g in zip(into_fast, grads[0]))).backward()
    scaler.step(opt_into_fast)
    scaler.update()
    assert all(not torch.equal(a, b) for a, b in zip(before, into_fast))


def test_tensorboard_grids_tile_batches_in_unit_range():
    a, b = torch.full((2, 3, 4, 4), -1.0), torch.full((2, 3, 4, 4), 3.0)  # 3.0: out of range, clamped
    grid = tile_grid([a, b], nrow=2, padding=2)
    assert grid.shape == (3, 2 + 2 * (4 + 2), 2 + 2 * (4 + 2))
    assert grid[:, 2:6, 2:6].eq(0).all() and grid[:, 8:12, 2:6].eq(1).all()  # row 1 holds a, row 2 holds b
    assert grid.min() >= 0 and grid.max() <= 1
