"""Resuming never loses or mixes work: auto-resume takes the newest state by write order, a resume from an
older checkpoint moves the later ones aside, a refused resume leaves the run's record untouched, temp files of
a killed save go away, ``stats.jsonl`` never repeats a step, and a run killed with SIGKILL at random moments
resumes to the same weights as an uninterrupted one."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import run_cli as run

from common.checkpoint import list_checkpoints, load_checkpoint
from stargan.cli import cli

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "cyclegan" / "tiny.yaml"
# 5 x 3 images at batch 1: 5 steps per epoch; 8 epochs = 40 steps, a checkpoint every 10 of them.
FORTY_STEPS = ("data.batch_size=1", "optim.n_epochs=4", "optim.n_epochs_decay=4", "log.every_steps=1",
               "log.image_every_steps=1000", "log.save_every_steps=10", "log.save_every_epochs=100",
               "log.keep_last=2")


def train_args(data: Path, out: Path, *sets: str, resume: str | os.PathLike | None = None) -> list:
    args = ["train", TINY, "--out", out, "--device", "cpu", "--set", f"data.root={data}"]
    for kv in (*FORTY_STEPS, *sets):
        args += ["--set", kv]
    return args + ([] if resume is None else ["--resume", resume])


def stats_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def assert_same_nets(a: dict, b: dict) -> None:
    assert a["counters"] == b["counters"]
    for name, state in a["nets"].items():
        for key, value in state.items():
            assert torch.equal(value, b["nets"][name][key]), f"{name}.{key} differs"


def test_auto_resume_after_a_resume_from_an_older_checkpoint_continues_the_new_branch(tmp_path, unpaired_root):
    out = tmp_path / "runs"
    run_dir = out / "00000-tiny"
    run(train_args(unpaired_root, out, "log.keep_last=10"))
    assert [s for s, _ in list_checkpoints(run_dir)] == [10, 20, 30, 40]
    old_40 = load_checkpoint(run_dir / "checkpoints" / "ckpt-000000040.pt")

    # Resume from ckpt-20 (another LR from there on) and stop at 25: 30 and 40 belong to the abandoned
    # continuation.
    result = run(train_args(unpaired_root, out, "optim.lr=1e-4", "run.stop_after_steps=25",
                            resume=run_dir / "checkpoints" / "ckpt-000000020.pt"))
    assert "continuing from step 20" in result.output and "steps 30, 40" in result.output
    # keep_last=2 counts the new branch only; before, pruning [10, 20, 25, 30, 40] deleted the new ckpt-25.
    assert [s for s, _ in list_checkpoints(run_dir)] == [20, 25]
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["counters"]["global_step"] == 25
    (aside,) = (run_dir / "checkpoints").glob("abandoned-*")
    assert sorted(p.name for p in aside.iterdir()) == ["ckpt-000000030.pt", "ckpt-000000040.pt", "latest.pt"]
    assert_same_nets(load_checkpoint(aside / "ckpt-000000040.pt"), old_40)  # moved, not lost

    # --resume auto continues at 25; the stale ckpt-40 would have ended the run at once with its old weights.
    result = run(train_args(unpaired_root, out, "optim.lr=1e-4", resume="auto"))
    assert "continuing from step" not in result.output  # the head: nothing to move aside
    final = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert final["counters"] == old_40["counters"] and final["config"]["optim"]["lr"] == 1e-4
    assert not torch.equal(final["nets"]["G_A"]["model.1.weight"], old_40["nets"]["G_A"]["model.1.weight"])
    assert [s for s, _ in list_checkpoints(run_dir)] == [30, 40]
    assert stats_steps(run_dir) == list(range(1, 41))  # every step once: rows past a resumed step were dropped


def test_refused_resume_leaves_the_run_folder_untouched(tmp_path, unpaired_root):
    out = tmp_path / "runs"
    run_dir = out / "00000-tiny"
    run(train_args(unpaired_root, out, "run.stop_after_steps=10"))
    def record() -> dict:  # everything but the lock file, which names the last process that opened the run
        return {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}

    before = record()

    result = CliRunner().invoke(cli, [str(a) for a in train_args(unpaired_root, out, "network.ngf=16",
                                                                 resume="auto")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "does not fit" in lines[0] and "network.ngf 8 -> 16" in lines[0] and "latest.pt" in lines[0]
    assert record() == before  # config.yaml byte-identical, no checkpoint moved, no stats row dropped

    # The refused resume left no lock behind: the right config resumes.
    run(train_args(unpaired_root, out, "run.stop_after_steps=12", resume="auto"))
    assert load_checkpoint(run_dir)["counters"]["global_step"] == 12


def test_reopened_run_removes_temp_files_of_a_killed_save(tmp_path, unpaired_root):
    out = tmp_path / "runs"
    run_dir = out / "00000-tiny"
    run(train_args(unpaired_root, out, "run.stop_after_steps=10"))
    leftovers = [run_dir / "checkpoints" / ".ckpt-000000020.pt.k3j2h1.tmp", run_dir / "checkpoints" / ".latest.pt.tmp",
                 run_dir / "checkpoints" / ".latest.pt.x8f1a2.tmp", run_dir / ".config.yaml.q9w8e7.tmp"]
    for path in leftovers:
        path.write_bytes(b"torn")
    # A kill between writing latest.pt and linking its numbered name: the resume restores the name.
    (run_dir / "checkpoints" / "ckpt-000000010.pt").unlink()
    with (run_dir / "stats.jsonl").open("a") as f:
        f.write('{"step": 11, "G/tot')  # a row torn by the kill
    result = run(train_args(unpaired_root, out, "run.stop_after_steps=20", resume="auto"))
    assert "removed 4 temp file(s)" in result.output
    assert not [p for p in leftovers if p.exists()]
    assert [s for s, _ in list_checkpoints(run_dir)] == [10, 20]
    assert stats_steps(run_dir) == list(range(1, 21))


def _kill_at_random(cmd: list[str], latest: Path, rng: random.Random) -> bool:
    """Start ``cmd``; once it has written a checkpoint of its own, SIGKILL it after a random delay. False if
    it ended by itself first."""
    before = latest.stat().st_ino if latest.exists() else None
    # Same environment as this process: another thread count would change float rounding, not the resume.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not latest.exists() or latest.stat().st_ino == before:
            if proc.poll() is not None:
                return False
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        return True
    finally:
        proc.wait()


@pytest.mark.slow  # four processes start torch: over 10 s
def test_sigkill_at_random_moments_then_auto_resume_is_bit_exact(tmp_path, unpaired_root):
    # 15 steps, a checkpoint after each (so kills land in saves too), dropout on (RNG state must resume).
    sets = ("optim.n_epochs=2", "optim.n_epochs_decay=1", "log.save_every_steps=1", "network.dropout=true")
    run(train_args(unpaired_root, tmp_path / "straight", *sets))
    straight = load_checkpoint(tmp_path / "straight" / "00000-tiny")

    out = tmp_path / "runs"
    run_dir = out / "00000-tiny"
    # --resume auto starts the run when there is none yet, and continues it after each kill.
    cmd = [sys.executable, "-m", "stargan", *map(str, train_args(unpaired_root, out, *sets, resume="auto"))]
    rng = random.Random(0)
    kills = sum(_kill_at_random(cmd, run_dir / "checkpoints" / "latest.pt", rng) for _ in range(3))
    assert kills >= 1
    run(train_args(unpaired_root, out, *sets, resume="auto"))
    assert [p.name for p in out.iterdir()] == ["00000-tiny"]  # every resume continued the same run
    assert_same_nets(load_checkpoint(run_dir), straight)
    assert stats_steps(run_dir) == list(range(1, 16))
