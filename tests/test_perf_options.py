"""The speed options change no maths: run.channels_last and run.compile give the losses of the plain step, an
exact resume stays exact, the data-loader options (workers auto, persistent workers across epochs) give the same
batches, and every new key is validated by name."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from conftest import run_cli, shapes_overrides

from common.checkpoint import load_checkpoint
from common.config import load_config
from common.data import loader as loader_module
from common.data.loader import EpochSampler, loader_options, resolve_workers, training_loader
from common.data.unpaired import UnpairedDataset, UnpairedSampler, make_loader
from common.errors import UserError
from common.train_config import RunConfig
from cyclegan.trainer import CycleGANTrainer
from stargan.families import config_classes
from stargan.trainer import StarGANTrainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"


def _run_steps(trainer, family: str, steps: int) -> tuple[list[dict[str, float]], dict[str, torch.Tensor]]:
    """``steps`` train steps on fixed random batches: each step's logs as floats, and the gradients the first
    step's optimizer steps took (still in ``.grad`` after it: G's from the G step, D's from the D step)."""
    gen = torch.Generator().manual_seed(5)
    losses, grads = [], {}
    try:
        for i in range(steps):
            if family == "cyclegan":
                real_a, real_b = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
                logs, _ = trainer.train_step(real_a, real_b)
            else:
                x = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
                label = torch.cat([torch.eye(4), torch.tensor([[1.0], [0.0], [0.0], [1.0]])], dim=1)
                logs = trainer.train_step(x, label, 0, g_step=i % 2 == 0)
            losses.append({k: float(v) for k, v in logs.items()})
            if i == 0:
                grads = {f"{name}.{key}": p.grad.clone() for name, net in trainer.nets.items()
                         for key, p in net.named_parameters() if p.grad is not None}
    finally:
        trainer.close()
    return losses, grads


def _trainer(family: str, tmp_path: Path, data: Path, *sets: str):
    if family == "cyclegan":
        cfg = load_config(CYCLEGAN, [f"data.root={data}", "loss.gan_mode=wgangp", *sets], config_classes())
        return CycleGANTrainer(cfg, out_root=tmp_path, device="cpu")
    cfg = load_config(STARGAN, [*shapes_overrides(data), *sets], config_classes())
    return StarGANTrainer(cfg, out_root=tmp_path, device="cpu")


def _assert_same_steps(plain: tuple, other: tuple, compiled: bool = False) -> None:
    (plain_losses, plain_grads), (losses, grads) = plain, other
    assert [set(s) for s in losses] == [set(s) for s in plain_losses]
    assert grads.keys() == plain_grads.keys() and grads
    # The first step starts from the same weights: same losses and gradients up to float rounding (other
    # kernels sum in another order; torch.compile also fuses the instance norms' reductions).
    rel = 1e-3 if compiled else 1e-4
    for key, value in plain_losses[0].items():
        # The gradient penalty goes through a double backward, which carries the convolutions' rounding
        # further: with channels_last on an AMD EPYC CPU (2026-12-04) StarGAN's D/gp differed by 1.3e-4 of
        # itself and the input-gradient norm inside it (D/gp/grad_norm) by 4.5e-4, every other loss by less
        # than 1e-4. A missing or wrong penalty would be off by its size.
        tol = max(rel, 1e-3) if "/gp" in key else rel
        assert losses[0][key] == pytest.approx(value, rel=tol, abs=tol / 10), key
    nets = {key.split(".", 1)[0] for key in plain_grads}
    for net in nets:
        keys = [k for k in plain_grads if k.startswith(net + ".")]
        ours, theirs = (torch.cat([g[k].flatten() for k in keys]) for g in (grads, plain_grads))
        scale = float(theirs.abs().max())
        if compiled:
            # The penalty's input gradient flips LeakyReLU branches for input changes of 1e-6 (seen: its norm
            # moves 1% for such noise at 32 px), so compiled G's rounding reaches D's gradient at ~1e-2; a
            # missing or wrong penalty term would be off by its whole size.
            assert float((ours - theirs).norm()) <= 2e-2 * float(theirs.norm()), net
            continue
        # Eager, other kernels only sum in another order, but D's LeakyReLUs turn that rounding into branch
        # flips where an activation sits at 0, and the penalty's double backward carries them further: on an
        # AMD EPYC CPU (2026-12-04) channels_last moved StarGAN's D gradient by 0.37% of its norm (one layer
        # 0.9%), G's by 0.09%. So: the network to 1% of its norm, and each parameter to 5% of its own norm
        # (plus 1e-4 of the network's largest gradient per element, for the biases in front of an
        # InstanceNorm, whose true gradient is 0), which the measured worst case uses a sixth of; a wrong or
        # transposed layer is off by about its whole norm.
        assert float((ours - theirs).norm()) <= 1e-2 * float(theirs.norm()), net
        for key in keys:
            diff, ref = float((grads[key] - plain_grads[key]).norm()), float(plain_grads[key].norm())
            assert diff <= 5e-2 * ref + 1e-4 * scale * plain_grads[key].numel() ** 0.5, (key, diff, ref)
    # Later steps: Adam turns the rounding of near-zero gradients into lr-sized steps and the WGAN-GP critic
    # amplifies them (seen: 0.75% on a gradient penalty after 3 steps); the losses stay close, not equal.
    for i, (a, b) in enumerate(zip(plain_losses[1:], losses[1:]), start=1):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=0.05, abs=1e-3), (i, key)


@pytest.mark.parametrize("family", ["cyclegan", "stargan"])
def test_channels_last_gives_the_same_losses(tmp_path, unpaired_root, shapes, family):
    data = unpaired_root if family == "cyclegan" else shapes
    plain = _run_steps(_trainer(family, tmp_path / "a", data), family, 4)
    trainer = _trainer(family, tmp_path / "b", data, "run.channels_last=true")
    net = next(iter(trainer.nets.values()))
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)  # the option took effect
    _assert_same_steps(plain, _run_steps(trainer, family, 4))


def test_channels_last_resume_is_bit_exact(tmp_path, unpaired_root):
    base = ["train", CYCLEGAN, "--device", "cpu", "--set", f"data.root={unpaired_root}", "--set",
            "run.channels_last=true", "--set", "loss.gan_mode=wgangp"]
    run_cli([*base, "--out", tmp_path / "a"])
    run_cli([*base, "--out", tmp_path / "b", "--set", "run.stop_after_steps=2"])
    run_cli([*base, "--out", tmp_path / "b", "--resume", "auto"])
    full, resumed = (load_checkpoint(tmp_path / x / "00000-tiny" / "checkpoints" / "latest.pt") for x in "ab")
    assert resumed["counters"] == full["counters"] and full["counters"]["global_step"] == 6
    for name, state in full["nets"].items():
        for key, tensor in state.items():
            assert torch.equal(tensor, resumed["nets"][name][key]), f"{name}.{key}"
    # The layout is kept in the checkpoint and does not matter to a plain run: it loads and continues.
    ckpt_weight = full["nets"]["G_A"]["model.1.weight"]
    assert ckpt_weight.is_contiguous(memory_format=torch.channels_last)
    run_cli(["train", CYCLEGAN, "--device", "cpu", "--set", f"data.root={unpaired_root}", "--set",
             "loss.gan_mode=wgangp", "--set", "optim.n_epochs_decay=2", "--out", tmp_path / "a", "--resume", "auto"])


def _inductor_works() -> str | None:
    try:
        torch.compile(lambda x: x * 2 + 1)(torch.ones(3))
    except Exception as err:  # noqa: BLE001 - any failure means: no compiler here
        return f"torch.compile cannot build on this machine ({type(err).__name__}: {str(err).splitlines()[0]})"
    return None


@pytest.mark.slow
def test_compile_gives_the_same_losses_and_falls_back_for_the_penalty(tmp_path, shapes, caplog):
    reason = _inductor_works()
    if reason:
        pytest.skip(reason)
    plain = _run_steps(_trainer("stargan", tmp_path / "a", shapes), "stargan", 2)
    with caplog.at_level(logging.INFO, logger="common.perf"):
        compiled = _run_steps(_trainer("stargan", tmp_path / "b", shapes, "run.compile=true"), "stargan", 2)
    _assert_same_steps(plain, compiled, compiled=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "common.perf"]
    # torch 2.x cannot compile a double backward; should a later torch do it, no line is due.
    assert len(lines) <= 1 and all("gradient penalty of D runs uncompiled" in line for line in lines), lines


@pytest.mark.parametrize("setting, message", [
    ("run.num_workers=-1", "key 'run.num_workers' must be >= 0 or 'auto', got -1"),
    ("run.num_workers=many", "key 'run.num_workers' must be int or one of 'auto', got 'many'"),
    ("run.prefetch_factor=0", "key 'run.prefetch_factor' must be >= 1, got 0"),
    ("run.channels_last=maybe", "key 'run.channels_last' must be bool, got 'maybe'"),
    ("run.compile=1", "key 'run.compile' must be bool, got 1"),
    ("run.pin_memory=yes please", "key 'run.pin_memory' must be bool, got 'yes please'"),
])
def test_new_run_keys_are_validated_by_name(setting, message):
    with pytest.raises(UserError, match="^" + str(CYCLEGAN).replace(".", r"\.") + ": ") as err:
        load_config(CYCLEGAN, [setting], config_classes())
    assert message in str(err.value)


def test_cudnn_benchmark_contradicting_deterministic_is_refused():
    with pytest.raises(UserError, match="key 'run.cudnn_benchmark' must be false or null when run.deterministic"):
        load_config(STARGAN, ["run.deterministic=true", "run.cudnn_benchmark=true"], config_classes())
    cfg = load_config(STARGAN, ["run.deterministic=true", "run.cudnn_benchmark=false"], config_classes())
    assert cfg.run.cudnn_benchmark is False


def test_workers_auto_shares_the_cpus(monkeypatch):
    monkeypatch.setattr(loader_module, "available_cpus", lambda: 16)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_workers("auto") == 15  # one CPU left to the training process
    assert resolve_workers("auto", n_loaders=2) == 7  # StarGAN with two datasets: two loaders at once
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resolve_workers("auto") == 3
    monkeypatch.setattr(loader_module, "available_cpus", lambda: 1)
    assert resolve_workers("auto") == 0  # one CPU: load in the training process
    assert resolve_workers(3) == 3


def test_loader_options_by_device():
    run = RunConfig(num_workers=0)
    assert loader_options(run, torch.device("cpu")) == {"num_workers": 0, "pin_memory": False}
    run = RunConfig(num_workers=2, prefetch_factor=4, persistent_workers=False)
    assert loader_options(run, torch.device("cuda")) == {"num_workers": 2, "pin_memory": True,
                                                          "persistent_workers": False, "prefetch_factor": 4}
    assert loader_options(RunConfig(num_workers=2, pin_memory=False), torch.device("cuda"))["pin_memory"] is False


def test_one_persistent_loader_gives_each_epochs_batches(unpaired_root):
    """CycleGAN keeps one loader (and its workers) for the run and swaps the epoch's sampler: the batches are
    those of a fresh single-process loader per epoch, a mid-epoch start included."""
    ds = UnpairedDataset(unpaired_root, phase="train", preprocess="resize_and_crop", load_size=36, crop_size=32)
    n_a, n_b = len(ds.paths_a), len(ds.paths_b)
    starts = [2, 0, 0]  # a resume two samples into epoch 0, then whole epochs

    def sampler(epoch: int) -> UnpairedSampler:
        return UnpairedSampler(n_a, n_b, seed=3, epoch=epoch, batch_size=2, start=starts[epoch])

    expected = [list(make_loader(ds, sampler(e), batch_size=2, num_workers=0)) for e in range(3)]
    keys = EpochSampler()
    options = loader_options(RunConfig(num_workers=2, persistent_workers=True), torch.device("cpu"))
    loader = training_loader(ds, options, batch_size=2, sampler=keys, drop_last=False)
    got = []
    for epoch in range(3):
        keys.set(sampler(epoch))
        got.append(list(loader))
    assert [len(e) for e in got] == [len(e) for e in expected] == [2, 3, 3]
    for ours, theirs in zip(got, expected):
        for a, b in zip(ours, theirs):
            assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])


def _documented_train_lines(path: Path) -> list[list[str]]:
    """The `stargan train` commands of a markdown file's bash blocks (continuations joined, comments dropped)."""
    import shlex

    commands, block = [], None
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            block = [] if block is None and line.strip() == "```bash" else None
            continue
        if block is not None:
            block.append(line)
            text = " ".join(block)
            if not line.rstrip().endswith("\\"):
                words = shlex.split(text.replace("\\", " "), comments=True)
                if words[:2] == ["stargan", "train"]:
                    commands.append(words[2:])
                block.clear()
    return commands


@pytest.mark.parametrize("doc", ["README.md", "docs/gpu.md"])
def test_documented_gpu_launch_lines_pass_a_dry_run(tmp_path, doc):
    """Every documented `stargan train` line that sets a `run.` option resolves: config found, every key real."""
    root = CONFIGS.parent
    lines = [words for words in _documented_train_lines(root / doc) if any(w.startswith("run.") for w in words)]
    assert lines, f"{doc}: no `stargan train ... --set run.*` line found"
    for words in lines:
        args = [str(root / w) if w.startswith("configs/") else w for w in words]
        result = run_cli(["train", *args, "--dry-run", "--out", tmp_path / "runs"])
        assert "# dry run: would train" in result.output
    assert not (tmp_path / "runs").exists()
