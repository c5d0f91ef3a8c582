"""The divergence guard: a run whose losses or weights turn NaN/inf stops with one line naming the step and
what went bad (exit 2), never writes a non-finite checkpoint and never prunes the last good one."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import shapes_overrides, train_cli

from common.checkpoint import list_checkpoints, load_checkpoint
from common.config import load_config
from common.divergence import TrainingDiverged
from cyclegan.trainer import CycleGANTrainer
from stargan.families import config_classes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def _tensors(obj):
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def _all_finite(path: Path) -> bool:
    ckpt = load_checkpoint(path)
    return all(bool(torch.isfinite(t).all()) for part in ("nets", "optimizers")
               for t in _tensors(ckpt[part]) if t.is_floating_point())


def _stats_finite(run_dir: Path) -> bool:
    rows = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    return all(math.isfinite(v) for row in rows for v in row.values() if isinstance(v, float))


def test_cyclegan_huge_lr_stops_naming_step_and_loss(tmp_path, unpaired_root):
    out = tmp_path / "runs"
    result = train_cli(CYCLEGAN, out, [f"data.root={unpaired_root}", "optim.lr=1e30"], code=2)
    line = _error_line(result)
    assert line.startswith("error: step 2: loss ") and "the run diverged" in line, line
    assert "nan" in line or "inf" in line, line
    assert "no checkpoint was written" in line, line
    run_dir = out / "00000-tiny"
    assert list_checkpoints(run_dir) == [] and not (run_dir / "checkpoints" / "latest.pt").exists()
    assert _stats_finite(run_dir)


def _last_good(line: str) -> Path:
    return Path(line.split("last good checkpoint: ", 1)[1].split(")", 1)[0])


@pytest.mark.parametrize("family", ["cyclegan", "stargan"])
def test_diverging_resume_keeps_last_good_checkpoint_as_latest(tmp_path, unpaired_root, shapes, family):
    """A healthy run resumed with a huge LR: the resumed steps go NaN before the next save; the last good
    checkpoint stays, untouched and ``latest.pt``, even with keep_last 1."""
    out = tmp_path / "runs"
    if family == "cyclegan":  # the epoch-end save is step 3: stop before it, diverge at step 3
        config, sets, healthy, huge = CYCLEGAN, [f"data.root={unpaired_root}"], 1, ["optim.lr=1e30"]
    else:  # saves at step 6 (num_iters)
        config, sets, healthy, huge = STARGAN, shapes_overrides(shapes), 2, ["optim.g_lr=1e30", "optim.d_lr=1e30"]
    sets = [*sets, "log.keep_last=1"]
    train_cli(config, out, [*sets, f"run.stop_after_steps={healthy}"])
    run_dir = out / "00000-tiny"
    good = run_dir / "checkpoints" / f"ckpt-{healthy:09d}.pt"
    before = good.read_bytes()
    result = train_cli(config, out, [*sets, *huge], code=2, resume=True)
    line = _error_line(result)
    assert line.startswith("error: step ") and ": loss " in line and "the run diverged" in line, line
    assert int(line.split("step ", 1)[1].split(":", 1)[0]) > healthy
    assert "nan" in line or "inf" in line, line
    assert _last_good(line).read_bytes() == before
    assert [p for _, p in list_checkpoints(run_dir)] == [good]
    assert good.read_bytes() == before
    assert (run_dir / "checkpoints" / "latest.pt").read_bytes() == before
    assert _all_finite(run_dir / "checkpoints" / "latest.pt")
    assert _stats_finite(run_dir)


def test_infinite_loss_on_the_first_resumed_step_saves_nothing(tmp_path, unpaired_root):
    """Saving every step with keep_last 1 is the strongest pull to prune the good checkpoint: a loss weight
    beyond float32 makes the first resumed step's loss infinite, and nothing is saved or pruned."""
    out = tmp_path / "runs"
    sets = [f"data.root={unpaired_root}", "log.save_every_steps=1", "log.keep_last=1"]
    train_cli(CYCLEGAN, out, [*sets, "run.stop_after_steps=2"])
    run_dir = out / "00000-tiny"
    good = run_dir / "checkpoints" / "ckpt-000000002.pt"
    before = good.read_bytes()
    result = train_cli(CYCLEGAN, out, [*sets, "loss.lambda_A=1e39"], code=2, resume=True)
    line = _error_line(result)
    assert line.startswith("error: step 3: loss ") and "G/cycle_A is inf" in line, line
    assert [p for _, p in list_checkpoints(run_dir)] == [good] and good.read_bytes() == before
    assert (run_dir / "checkpoints" / "latest.pt").read_bytes() == before


def test_cyclegan_resume_takes_the_configured_lr(tmp_path, unpaired_root):
    """The way out of a divergence is a resume with a lower LR: the config's LR (and betas) must rule the
    resumed run, not the ones stored in the optimizer state."""
    out = tmp_path / "runs"
    data = f"data.root={unpaired_root}"
    train_cli(CYCLEGAN, out, [data, "run.stop_after_steps=2"])
    train_cli(CYCLEGAN, out, [data, "optim.lr=0.0001", "optim.beta1=0.9"], resume=True)
    run_dir = out / "00000-tiny"
    rows = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    # Epoch 2 (steps 4-6) runs at half the base LR under the linear policy (n_epochs 1, n_epochs_decay 1).
    assert [r["lr/G"] for r in rows if r["step"] > 3] == [pytest.approx(0.00005)] * 2
    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    group = ckpt["optimizers"]["G"]["param_groups"][0]
    assert group["initial_lr"] == 0.0001 and tuple(group["betas"]) == (0.9, 0.999)


def test_stargan_huge_lr_fresh_run_writes_no_checkpoint(tmp_path, shapes):
    out = tmp_path / "runs"
    result = train_cli(STARGAN, out, [*shapes_overrides(shapes), "optim.g_lr=1e30", "optim.d_lr=1e30"], code=2)
    line = _error_line(result)
    assert "error: step " in line and "no checkpoint was written" in line, line
    assert list_checkpoints(out / "00000-tiny") == []


def test_save_refuses_non_finite_weights_and_prunes_nothing(tmp_path, unpaired_root):
    """A NaN that reaches the weights without showing in a loss (e.g. from a gradient) is caught at save."""
    cfg = load_config(CYCLEGAN, [f"data.root={unpaired_root}", "log.keep_last=1"], config_classes())
    trainer = CycleGANTrainer(cfg, out_root=tmp_path / "runs", device="cpu")
    try:
        first = trainer.save()
        before = first.read_bytes()
        trainer.counters["global_step"] = 1
        with torch.no_grad():
            next(trainer.nets["D_B"].parameters())[0].fill_(float("nan"))
        with pytest.raises(TrainingDiverged) as err:
            trainer.save()
        message = str(err.value)
        assert message.startswith("step 1: network D_B holds NaN/inf values") and str(first) in message
        assert "\n" not in message
        assert [p for _, p in list_checkpoints(trainer.run_dir)] == [first]
        assert (trainer.run_dir / "checkpoints" / "latest.pt").read_bytes() == before
        # Optimizer moments are checked too.
        with torch.no_grad():
            next(trainer.nets["D_B"].parameters())[0].fill_(0.0)
        trainer.opt_G.state[trainer.params_G[0]] = {"exp_avg": torch.full((1,), float("inf"))}
        with pytest.raises(TrainingDiverged, match="optimizer G holds NaN/inf"):
            trainer.save()
    finally:
        trainer.close()
