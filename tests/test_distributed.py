"""Multi-process training through torchrun on CPU (gloo): CycleGAN 2 ranks x batch 1 == 1 rank x batch 2,
StarGAN run folder / checkpoint contents / resume under torchrun, and the mean semantics of the reductions.

Nothing here is skipped: if torchrun or gloo cannot start on this machine the tests fail with the output.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_image_folder, shapes_overrides

from common.checkpoint import load_checkpoint
from common.config import from_dict
from cyclegan.config import CycleGANConfig
from cyclegan.model import build_networks

REPO = Path(__file__).resolve().parents[1]
CYCLEGAN_TINY = REPO / "configs" / "cyclegan" / "tiny.yaml"
STARGAN_TINY = REPO / "configs" / "stargan" / "tiny.yaml"
TIMEOUT_S = 240
# Variables a surrounding torchrun (or a CI launcher) may have set; a leftover WORLD_SIZE would turn the
# single-process reference run into a rank waiting for peers that never come.
_DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
             "TORCHELASTIC_RUN_ID")


def launch(args, cwd: Path, nproc: int | None = None, pythonpath: Path | None = None,
           target: tuple[str, ...] = ("-m", "stargan", "train")) -> str:
    """``python [-m torch.distributed.run --standalone --nproc_per_node N] -m stargan train ARGS``; fails
    with the full output."""
    cmd = [sys.executable]
    if nproc is not None:
        cmd += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd += [*target, *(str(a) for a in args)]
    env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV}
    env["OMP_NUM_THREADS"] = "1"  # 2 ranks on 2 shared cores: more threads only oversubscribe
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    # A session of its own, so a timeout can kill the torchrun agent and its workers together.
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"timed out after {TIMEOUT_S}s: {' '.join(cmd)}\n{out}")
    assert proc.returncode == 0, f"exit {proc.returncode}: {' '.join(cmd)}\n{out}"
    return out


# ------------------------------------------------------------------------------------------- reductions
_REDUCE_SCRIPT = """
import sys, torch
from common.distributed import (allreduce_gradients, allreduce_mean, broadcast_parameters, init_distributed,
                                shutdown_distributed)
info = init_distributed("cpu")
torch.manual_seed(info.rank)
net = torch.nn.Linear(3, 2)
broadcast_parameters([net], info)
weights = [p.detach().clone() for p in net.parameters()]
net(torch.full((1, 3), float(info.rank + 1))).sum().backward()
allreduce_gradients(list(net.parameters()), info)
logs = allreduce_mean({"loss": float(info.rank + 1)}, info, torch.device("cpu"))
torch.save({"world_size": info.world_size, "weights": weights, "grads": [p.grad for p in net.parameters()],
            "logs": logs}, f"{sys.argv[1]}/rank{info.rank}.pt")
shutdown_distributed()
"""


def test_reductions_average_over_ranks(tmp_path):
    # Adam is invariant to the scale of the gradient, so a SUM instead of a MEAN would pass the training
    # equivalence below; it is checked here directly.
    script = tmp_path / "reduce.py"
    script.write_text(_REDUCE_SCRIPT)
    launch([tmp_path], tmp_path, nproc=2, target=(str(script),))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        rank0 = [p.detach() for p in torch.nn.Linear(3, 2).parameters()]
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["world_size"] == 2
        for w, w0 in zip(got["weights"], rank0):
            assert torch.equal(w, w0)  # every rank starts from rank 0's weights
        # d(sum(W x + b))/dW = x per output row, x = rank + 1: the mean over ranks is 1.5, the sum 3.
        assert torch.equal(got["grads"][0], torch.full((2, 3), 1.5))
        assert torch.equal(got["grads"][1], torch.ones(2))
        assert got["logs"] == {"loss": 1.5}


# ------------------------------------------------------------------------------------------- CycleGAN
# oneDNN picks different convolution kernels for a batch of 2 than for a batch of 1, so the same image gets
# activations that differ at ~1e-6 relative between the two layouts. The native kernels compute each sample
# of a batch bit for bit like a batch of one, which leaves only the order in which per-sample gradients are
# summed (one batch sum vs per-rank sums averaged) -- the difference this comparison is about. Both runs get
# the same switch; the command line stays `-m stargan train`.
_NATIVE_CONV = "import torch\ntorch.backends.mkldnn.enabled = False\n"


def _cyclegan_pair(tmp_path: Path, *overrides: str) -> tuple[dict, dict]:
    """Final checkpoints of (2 ranks x batch 1, 1 rank x batch 2) on the same data and config."""
    data = tmp_path / "data"
    # 6 A images (even, so both layouts see every position), 5 B images so B is drawn at random with wrapping.
    make_image_folder(data / "trainA", 6, seed=1)
    make_image_folder(data / "trainB", 5, seed=2)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_NATIVE_CONV)
    # pool_size 0 and no dropout remove the per-rank randomness (each rank has its own pool and dropout
    # streams); what is left is deterministic, so both layouts must take the same mean gradient every step.
    args = [CYCLEGAN_TINY, "--device", "cpu", "--set", f"data.root={data}", "--set", "loss.pool_size=0",
            "--set", "network.dropout=false", "--set", "loss.gan_mode=lsgan"]
    for item in overrides:
        args += ["--set", item]
    launch([*args, "--set", "data.batch_size=1", "--out", tmp_path / "two"], tmp_path, nproc=2, pythonpath=site)
    launch([*args, "--set", "data.batch_size=2", "--out", tmp_path / "one"], tmp_path, pythonpath=site)
    two = load_checkpoint(tmp_path / "two" / "00000-tiny" / "checkpoints" / "latest.pt")
    one = load_checkpoint(tmp_path / "one" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert two["counters"] == one["counters"]
    assert two["extra"]["world_size"] == 2 and one["extra"]["world_size"] == 1
    return two, one


def _initial_weights(ckpt: dict) -> dict[str, dict[str, torch.Tensor]]:
    cfg = from_dict(CycleGANConfig, ckpt["config"])
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)  # what the trainer does right before building the networks
        return {name: net.state_dict() for name, net in build_networks(cfg).items()}


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.double().flatten() for t in state.values() if t.is_floating_point()])


def test_cyclegan_two_ranks_batch_1_match_one_rank_batch_2(tmp_path):
    """2 epochs x 3 steps (6 positions / global batch 2; the LR halves for epoch 2, whose order is reshuffled).

    ``network.norm=none``: with the default instance norm, the official rule gives the convs before it a bias
    the norm subtracts again. Their true gradient is 0, the computed one rounding noise, and Adam divides that
    noise by its own RMS into ~lr steps in a random direction, differently in each layout. They change no
    output, but they change rounding, which now and then flips a ReLU mask and lets GAN dynamics grow a
    1e-3 relative gradient difference. Without them both layouts agree to float32 summation noise."""
    two, one = _cyclegan_pair(tmp_path, "network.norm=none")
    assert one["counters"] == {"epoch": 2, "epoch_step": 0, "global_step": 6, "images_seen": 12}
    lr = one["config"]["optim"]["lr"]
    for name, start in _initial_weights(one).items():
        w0, w1, w2 = _flat(start), _flat(one["nets"][name]), _flat(two["nets"][name])
        moved = (w1 - w0).abs().max()
        # Trained (Adam's first step alone moves every weight with a gradient by ~lr), and by no more than
        # 6 Adam steps can, which also shows w0 is the real starting point.
        assert lr < moved < 10 * lr, (name, float(moved))
        # Seen here: <= 1.3e-7 apart, ~1e-6 of the distance trained.
        torch.testing.assert_close(w2, w1, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
        assert (w2 - w1).norm() < 1e-4 * (w1 - w0).norm(), name


@pytest.mark.slow
def test_cyclegan_equivalence_with_instance_norm_first_step(tmp_path):
    """The default instance-norm networks: after one G and one D step (before the noise-driven biases
    described above have moved apart) every weight, those biases included, agrees."""
    two, one = _cyclegan_pair(tmp_path, "run.stop_after_steps=1")
    assert one["config"]["network"]["norm"] == "instance"
    assert one["counters"]["global_step"] == 1
    lr = one["config"]["optim"]["lr"]
    for name, start in _initial_weights(one).items():
        w0, w1, w2 = _flat(start), _flat(one["nets"][name]), _flat(two["nets"][name])
        assert (w1 - w0).abs().max() > lr / 2, name
        torch.testing.assert_close(w2, w1, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


# ------------------------------------------------------------------------------------------- StarGAN
def _stargan_args(tmp_path: Path, shapes: Path) -> list:
    sets = [arg for kv in shapes_overrides(shapes) for arg in ("--set", kv)]
    return [STARGAN_TINY, "--device", "cpu", "--out", tmp_path / "runs", *sets]


def test_stargan_two_ranks_one_run_folder_gathered_state_and_resume(tmp_path, shapes):
    args = _stargan_args(tmp_path, shapes)
    launch([*args, "--set", "run.stop_after_steps=3"], tmp_path, nproc=2)
    runs = tmp_path / "runs"
    assert [p.name for p in runs.iterdir()] == ["00000-tiny"]  # rank 1 made no folder of its own
    run_dir = runs / "00000-tiny"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["ckpt-000000003.pt", "latest.pt"]
    assert len(list((run_dir / "tensorboard").iterdir())) == 1  # only rank 0 logs

    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert ckpt["extra"]["world_size"] == 2
    assert ckpt["counters"] == {"global_step": 3, "images_seen": 3 * 4 * 2, "batches": [3]}
    # Every rank's RNG, pool and target-label streams, in rank order; the ranks draw different noise.
    assert len(ckpt["rng"]) == len(ckpt["pools"]) == len(ckpt["extra"]["target_rng"]) == 2
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    assert not torch.equal(ckpt["extra"]["target_rng"][0], ckpt["extra"]["target_rng"][1])

    launch([*args, "--resume", "auto"], tmp_path, nproc=2)
    assert [p.name for p in runs.iterdir()] == ["00000-tiny"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "ckpt-000000003.pt", "ckpt-000000006.pt", "latest.pt"]
    final = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert final["counters"] == {"global_step": 6, "images_seen": 6 * 4 * 2, "batches": [6]}
    assert final["extra"]["world_size"] == 2 and len(final["rng"]) == 2
    steps = [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]  # one writer, and the resumed run picked up where the first stopped


@pytest.mark.slow
def test_stargan_resume_under_torchrun_is_bit_exact(tmp_path, shapes):
    args = _stargan_args(tmp_path, shapes)
    launch([*args, "--set", "run.stop_after_steps=3"], tmp_path, nproc=2)
    launch([*args, "--resume", "auto"], tmp_path, nproc=2)
    launch([*args, "--out", tmp_path / "straight"], tmp_path, nproc=2)  # the last --out wins
    resumed = load_checkpoint(tmp_path / "runs" / "00000-tiny" / "checkpoints" / "latest.pt")
    straight = load_checkpoint(tmp_path / "straight" / "00000-tiny" / "checkpoints" / "latest.pt")
    assert resumed["counters"] == straight["counters"]
    for name, state in straight["nets"].items():
        for key, value in state.items():
            assert torch.equal(resumed["nets"][name][key], value), (name, key)
