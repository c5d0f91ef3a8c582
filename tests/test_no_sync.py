"""No host-device synchronisation in a training step: the losses stay on the device as detached tensors, the step
meter sums them there, and they are read once per log point.

On the CPU a read of a tensor's value (``.item()``, ``float()``, ``int()``, ``bool()``, ``.tolist()``) costs
nothing, but on a GPU each one waits for all queued work; so here every such call on a floating-point tensor is
counted while steps run between two log points, and must be zero. (Integer reads of the loader's CPU index
tensors are not loss reads and are not counted.) tests/test_cuda.py checks the same on a GPU with
``torch.cuda.set_sync_debug_mode("error")``.
"""
from __future__ import annotations

import math
import traceback
from pathlib import Path

import pytest
import torch
from conftest import run_cli, shapes_overrides

from common.config import load_config
from common.distributed import DistInfo
from common.step_meter import StepMeter
from cyclegan.trainer import CycleGANTrainer
from stargan.families import config_classes
from stargan.trainer import StarGANTrainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"
READS = ("item", "__float__", "__int__", "__bool__", "tolist")
CPU = torch.device("cpu")


class ReadCounter:
    """Records where a floating-point tensor's value is read, while ``active``."""

    def __init__(self, monkeypatch):
        self.active = False
        self.calls: list[str] = []
        for name in READS:
            original = getattr(torch.Tensor, name)

            def wrapper(tensor, *args, _original=original, _name=name, **kwargs):
                if self.active and tensor.is_floating_point():
                    caller = traceback.extract_stack(limit=2)[0]
                    self.calls.append(f"{_name} at {caller.filename}:{caller.lineno}")
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, wrapper)


def _cyclegan(tmp_path, unpaired_root, *sets):
    # pool_size 0: the image pool draws its coin flips from a CPU generator by design (reading those is no
    # device sync), and they would be counted here.
    cfg = load_config(CYCLEGAN, [f"data.root={unpaired_root}", "loss.pool_size=0", *sets], config_classes())
    return CycleGANTrainer(cfg, out_root=tmp_path / "runs", device="cpu")


def _stargan(tmp_path, shapes, *sets):
    cfg = load_config(STARGAN, [*shapes_overrides(shapes), *sets], config_classes())
    return StarGANTrainer(cfg, out_root=tmp_path / "runs", device="cpu")


@pytest.mark.parametrize("gan_mode", ["lsgan", "wgangp"])
def test_cyclegan_step_returns_tensors_and_reads_nothing(tmp_path, unpaired_root, monkeypatch, gan_mode):
    trainer = _cyclegan(tmp_path, unpaired_root, f"loss.gan_mode={gan_mode}")
    try:
        counter = ReadCounter(monkeypatch)
        meter = StepMeter()
        gen = torch.Generator().manual_seed(0)
        for step in (1, 2):
            real_a, real_b = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
            counter.active = True
            logs, _ = trainer.train_step(real_a, real_b)
            trainer.record_step(meter, step, logs, 2)
            counter.active = False
            assert counter.calls == []
            assert logs and all(torch.is_tensor(v) and v.dim() == 0 and not v.requires_grad for v in logs.values())
        assert {"G/total", "D_A", "G/cycle_A"} <= set(logs)
        if gan_mode == "wgangp":
            assert "D_A/gp" in logs
        means = trainer.log_means(meter, 2)  # the read happens here, once
        assert all(math.isfinite(v) for v in means.values())
    finally:
        trainer.close()


def test_stargan_step_returns_tensors_and_reads_nothing(tmp_path, shapes, monkeypatch):
    trainer = _stargan(tmp_path, shapes)
    try:
        counter = ReadCounter(monkeypatch)
        meter = StepMeter()
        gen = torch.Generator().manual_seed(0)
        label = torch.cat([torch.eye(4), torch.tensor([[1.0], [0.0], [0.0], [1.0]])], dim=1)
        for step, g_step in ((1, False), (2, True)):
            x = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
            counter.active = True
            logs = trainer.train_step(x, label, 0, g_step=g_step)
            trainer.record_step(meter, step, logs, 4)
            counter.active = False
            assert counter.calls == []
            assert all(torch.is_tensor(v) and not v.requires_grad for v in logs.values())
            assert ("G/total" in logs) == g_step and "D/gp" in logs
        means = trainer.log_means(meter, 2)
        assert "G/total" in means and "D/total" in means
    finally:
        trainer.close()


@pytest.mark.parametrize("family", ["cyclegan", "stargan"])
def test_fit_reads_no_loss_between_log_points(tmp_path, unpaired_root, shapes, monkeypatch, family):
    """The whole loop (loading, step, meter, stop and save checks) between two log points reads no loss;
    the meter is read at the log point and the logged means are the steps' own."""
    if family == "cyclegan":  # 5 A images, batch 2: 3 steps an epoch, 6 in all
        trainer = _cyclegan(tmp_path, unpaired_root, "log.every_steps=5", "log.image_every_steps=100",
                            "log.save_every_epochs=10")
    else:  # 6 iterations, G steps at 2, 4, 6
        trainer = _stargan(tmp_path, shapes, "log.every_steps=5", "log.image_every_steps=100")
    counter = ReadCounter(monkeypatch)
    reads_at: dict[int, list[str]] = {}

    def window(step: int) -> None:
        # Called right after each step's record_step: the window from step 1's to step 4's covers steps 2-4.
        reads_at[step] = list(counter.calls)
        counter.calls.clear()
        counter.active = 1 <= step < 4

    trainer.add_step_callback(window)
    try:
        run_dir = trainer.fit()
    finally:
        trainer.close()
    assert [reads_at[s] for s in (2, 3, 4)] == [[], [], []]
    rows = (run_dir / "stats.jsonl").read_text().splitlines()
    assert len(rows) == 1 and '"step": 5' in rows[0]


def test_meter_sums_tensors_and_floats_and_reads_once():
    meter = StepMeter()
    meter.add({"a": torch.tensor(1.0), "b": 2.0}, 2, step=1)
    meter.add({"a": torch.tensor(3.0, dtype=torch.bfloat16), "c": torch.tensor(5.0)}, 2, step=2)
    meter.add({"a": 2.0}, 2, step=3)  # a float for a key that was a tensor before: one mean
    reading = meter.read(DistInfo(), CPU)
    assert reading.first_non_finite is None
    assert {k: v for k, v in reading.means.items() if not k.startswith("speed")} == {"a": 2.0, "b": 2.0, "c": 5.0}
    assert reading.means["speed/images_per_s"] > 0
    assert meter.read(DistInfo(), CPU).means.keys() == {"speed/images_per_s"}  # read() reset it


def test_meter_keeps_the_first_non_finite_step_on_the_device():
    meter = StepMeter()
    meter.add({"G": torch.tensor(1.0), "D": torch.tensor(1.0)}, 1, step=7)
    meter.add({"G": torch.tensor(float("nan")), "D": torch.tensor(2.0)}, 1, step=8)
    meter.add({"G": torch.tensor(float("inf")), "D": torch.tensor(float("inf"))}, 1, step=9)
    meter.add({"D": torch.tensor(float("nan"))}, 1, step=10)  # another key set, later: not the first
    step, values = meter.first_non_finite()
    assert step == 8 and math.isnan(values["G"]) and values["D"] == 2.0
    assert meter.first_non_finite()[0] == 8  # reading the flag keeps it
    reading = meter.read(DistInfo(), CPU)
    assert reading.first_non_finite[0] == 8 and math.isnan(reading.means["G"])
    assert meter.first_non_finite() is None  # read() reset it


def test_divergence_found_at_the_log_point_names_the_step_it_happened(tmp_path, unpaired_root):
    """The guard no longer reads every step; a loss that went NaN/inf at step 2 is found at the step-3 log
    point (and before any save) and the message still names step 2."""
    out = tmp_path / "runs"
    result = run_cli(["train", CYCLEGAN, "--out", out, "--device", "cpu", "--set", f"data.root={unpaired_root}",
                      "--set", "optim.lr=1e30", "--set", "log.every_steps=3"], code=2)
    line = [x for x in result.output.splitlines() if x.startswith("error: ")][0]
    assert line.startswith("error: step 2: loss ") and "no checkpoint was written" in line, line
    assert not (out / "00000-tiny" / "checkpoints" / "latest.pt").exists()


def test_divergence_between_log_points_stops_before_a_save(tmp_path, unpaired_root):
    """Logging rarer than saving: the save itself checks the recorded losses, so no NaN state is written."""
    out = tmp_path / "runs"
    result = run_cli(["train", CYCLEGAN, "--out", out, "--device", "cpu", "--set", f"data.root={unpaired_root}",
                      "--set", "optim.lr=1e30", "--set", "log.every_steps=100", "--set", "log.save_every_steps=2"],
                     code=2)
    line = [x for x in result.output.splitlines() if x.startswith("error: ")][0]
    assert line.startswith("error: step 2: loss "), line
    assert not (out / "00000-tiny" / "checkpoints" / "latest.pt").exists()
