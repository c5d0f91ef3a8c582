"""One process at a time trains in a run folder: a second one is refused naming the holder's pid, a lock
left by a killed process is taken over, and the lock goes when training ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_cli as run

from common.checkpoint import load_checkpoint
from common.runs import LOCK_FILE, RunLock
from stargan.cli import cli

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "cyclegan" / "tiny.yaml"
_DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
             "TORCHELASTIC_RUN_ID")


def train_args(data: Path, out: Path, *extra) -> list[str]:
    return [str(a) for a in ("train", TINY, "--set", f"data.root={data}", "--out", out, "--device", "cpu",
                             "--set", "run.stop_after_steps=2", *extra)]


def python(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def started_run(tmp_path: Path, data: Path) -> Path:
    run(train_args(data, tmp_path / "runs"))
    return tmp_path / "runs" / "00000-tiny"


def test_second_process_is_refused_naming_the_holder(tmp_path, unpaired_root):
    run_dir = started_run(tmp_path, unpaired_root)
    config = (run_dir / "config.yaml").read_bytes()
    lock = RunLock.acquire(run_dir)  # this test process plays the training process
    try:
        done = python("-m", "stargan", *train_args(unpaired_root, tmp_path / "runs", "--resume", "auto",
                                                   "--set", "run.stop_after_steps=4"))
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"locked by a training process (pid {os.getpid()})" in lines[0], done.stderr
        assert str(run_dir) in lines[0]
        # In-process as well (a library caller that already holds it elsewhere).
        result = CliRunner().invoke(cli, train_args(unpaired_root, tmp_path / "runs", "--resume", run_dir))
        assert result.exit_code == 2 and f"pid {os.getpid()}" in result.output, result.output
    finally:
        lock.release()
    assert (run_dir / "config.yaml").read_bytes() == config
    assert load_checkpoint(run_dir)["counters"]["global_step"] == 2

    # Released: the same resume now trains, and releases the lock when it ends.
    run(train_args(unpaired_root, tmp_path / "runs", "--resume", "auto", "--set", "run.stop_after_steps=4"))
    assert load_checkpoint(run_dir)["counters"]["global_step"] == 4
    RunLock.acquire(run_dir).release()
    assert (run_dir / LOCK_FILE).read_text() == ""  # a clean release leaves no pid behind


def test_lock_of_a_killed_process_is_taken_over(tmp_path, unpaired_root):
    run_dir = started_run(tmp_path, unpaired_root)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from common.runs import RunLock; "
         "lock = RunLock.acquire(sys.argv[1]); print('locked', flush=True); time.sleep(600)", str(run_dir)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused = CliRunner().invoke(cli, train_args(unpaired_root, tmp_path / "runs", "--resume", "auto"))
        assert refused.exit_code == 2 and f"pid {holder.pid}" in refused.output, refused.output
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run_dir / LOCK_FILE).read_text().strip() == str(holder.pid)  # the dead holder's pid is still there
    result = run(train_args(unpaired_root, tmp_path / "runs", "--resume", "auto",
                            "--set", "run.stop_after_steps=4"))
    assert f"taking over the lock of pid {holder.pid}" in result.output
    assert load_checkpoint(run_dir)["counters"]["global_step"] == 4


@pytest.mark.slow  # one more torchrun launch
def test_under_torchrun_a_locked_run_is_refused_by_every_rank(tmp_path, unpaired_root):
    run_dir = started_run(tmp_path, unpaired_root)
    lock = RunLock.acquire(run_dir)
    try:
        done = python("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                      "-m", "stargan", *train_args(unpaired_root, tmp_path / "runs", "--resume", "auto"),
                      timeout=240)
    finally:
        lock.release()
    assert done.returncode != 0
    # Rank 0 tells the other rank, so neither waits forever (the timeout); each says it in one line (unless
    # torchrun stops rank 1 first, as it does once a rank has failed).
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error: ")]
    assert 1 <= len(errors) <= 2, done.stdout + done.stderr
    assert all(f"locked by a training process (pid {os.getpid()})" in line for line in errors)
