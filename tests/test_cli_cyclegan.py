"""CycleGAN through the public CLI: train, dry run, resume (bit-exact), translate, errors."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import run_cli as run
from PIL import Image

from common.checkpoint import load_checkpoint
from stargan.cli import cli

TINY = Path(__file__).resolve().parents[1] / "configs" / "cyclegan" / "tiny.yaml"


def make_domains(root: Path, n_a=6, n_b=5, size=40, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for phase, n in (("trainA", n_a), ("trainB", n_b), ("testA", 3), ("testB", 3)):
        folder = root / phase
        folder.mkdir(parents=True)
        for i in range(n):
            base = rng.integers(0, 255, 3) if "A" in phase else 255 - rng.integers(0, 255, 3)
            img = np.clip(base + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture()
def data(tmp_path):
    return make_domains(tmp_path / "data")


def train_args(data, out, *extra):
    return ["train", TINY, "--set", f"data.root={data}", "--out", out, "--device", "cpu", *extra]


def test_train_writes_run_folder_checkpoint_logs_and_translate_works(tmp_path, data):
    out = tmp_path / "runs"
    result = run(train_args(data, out))
    run_dir = out / "00000-tiny"
    assert f"run folder: {run_dir}" in result.output
    assert (run_dir / "config.yaml").is_file()
    stats = (run_dir / "stats.jsonl").read_text().splitlines()
    assert stats and '"G/total"' in stats[0] and '"speed/images_per_s"' in stats[0]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    # 6 images / batch 2 = 3 steps per epoch, 2 epochs.
    assert ckpt["counters"] == {"epoch": 2, "epoch_step": 0, "global_step": 6, "images_seen": 12}
    assert set(ckpt["nets"]) == {"G_A", "G_B", "D_A", "D_B"}
    assert ckpt["config"]["data"]["root"] == str(data)
    # LR (official linear rule, n_epochs=1, n_epochs_decay=1): epoch 1 at lr, epoch 2 at lr * (1 - 1/2).
    records = [json.loads(line) for line in stats]
    assert {r["epoch"]: r["lr/G"] for r in records} == pytest.approx({1: 0.0002, 2: 0.0001})

    # A second run never overwrites the first.
    run(train_args(data, out))
    assert (out / "00001-tiny").is_dir()

    # Translate a folder with odd sizes: output PNGs keep the input's size.
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((37, 50, 3), np.uint8)).save(inputs / "odd.png")
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(inputs / "sub" / "square.jpg")
    result = run(["translate", "--checkpoint", run_dir / "checkpoints" / "latest.pt", "--input", inputs,
                  "--output", tmp_path / "outA", "--device", "cpu", "--batch-size", "2"])
    assert "wrote 2 image(s)" in result.output
    assert Image.open(tmp_path / "outA" / "odd.png").size == (50, 37)
    assert Image.open(tmp_path / "outA" / "sub" / "square.png").size == (32, 32)
    # Single file, other direction; a run folder resolves to its latest checkpoint.
    run(["translate", "--checkpoint", run_dir, "--input", inputs / "odd.png", "--output", tmp_path / "outB",
         "--direction", "BtoA", "--device", "cpu"])
    assert sorted(p.name for p in (tmp_path / "outB").iterdir()) == ["odd.png"]


def _final_nets(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "latest.pt")


def test_resume_is_bit_exact(tmp_path, data):
    # Uninterrupted run.
    run(train_args(data, tmp_path / "a", "--set", "data.batch_size=1", "--set", "loss.gan_mode=wgangp",
                   "--set", "network.dropout=true"))
    full = _final_nets(tmp_path / "a" / "00000-tiny")
    # Same run stopped mid-epoch (step 4 of 12), then resumed with --resume auto.
    run(train_args(data, tmp_path / "b", "--set", "data.batch_size=1", "--set", "loss.gan_mode=wgangp",
                   "--set", "network.dropout=true", "--set", "run.stop_after_steps=4"))
    stopped = _final_nets(tmp_path / "b" / "00000-tiny")
    assert stopped["counters"]["global_step"] == 4 and stopped["counters"]["epoch_step"] == 4
    run(train_args(data, tmp_path / "b", "--set", "data.batch_size=1", "--set", "loss.gan_mode=wgangp",
                   "--set", "network.dropout=true", "--resume", "auto"))
    assert not (tmp_path / "b" / "00001-tiny").exists()  # continued in the same folder
    resumed = _final_nets(tmp_path / "b" / "00000-tiny")
    assert resumed["counters"] == full["counters"]
    for name in full["nets"]:
        for key, tensor in full["nets"][name].items():
            assert torch.equal(tensor, resumed["nets"][name][key]), f"{name}.{key} differs after resume"
    for name in ("G", "D"):
        assert full["optimizers"][name]["param_groups"][0]["lr"] == resumed["optimizers"][name]["param_groups"][0]["lr"]
    assert all(torch.equal(a, b) for a, b in zip(full["pools"][0]["fake_A"]["images"],
                                                 resumed["pools"][0]["fake_A"]["images"]))


def test_same_seed_same_result_and_other_seed_differs(tmp_path, data):
    run(train_args(data, tmp_path / "a", "--set", "optim.n_epochs_decay=0"))
    run(train_args(data, tmp_path / "b", "--set", "optim.n_epochs_decay=0"))
    run(train_args(data, tmp_path / "c", "--set", "optim.n_epochs_decay=0", "--set", "seed=1"))
    a, b, c = (_final_nets(tmp_path / x / "00000-tiny")["nets"]["G_A"] for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_dry_run_prints_config_and_writes_nothing(tmp_path, data):
    result = run(train_args(data, tmp_path / "runs", "--dry-run", "--set", "optim.lr=1e-4"))
    assert "lr: 0.0001" in result.output and "dry run" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("extra, message", [
    (["--set", "optim.lr_policy=plateau"], "optim.lr_policy"),
    (["--set", "data.root=/nonexistent/x"], "/nonexistent/x/trainA"),
    (["--set", "nope=1"], "unknown key 'nope'"),
    (["--resume", "/nonexistent/ckpt.pt"], "/nonexistent/ckpt.pt"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, data, extra, message):
    result = CliRunner().invoke(cli, [str(a) for a in train_args(data, tmp_path / "runs", *extra)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_translate_errors(tmp_path, data):
    bad = tmp_path / "bad.pt"
    torch.save(torch.nn.Linear(1, 1), bad)
    result = CliRunner().invoke(cli, ["translate", "--checkpoint", str(bad), "--input", str(data / "testA"),
                                      "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "refused to load" in result.output
    result = CliRunner().invoke(cli, ["translate", "--checkpoint", str(bad), "--input", str(tmp_path / "none"),
                                      "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no such file or folder" in result.output


def test_bf16_autocast_trains_with_finite_losses(tmp_path, data):
    run(train_args(data, tmp_path / "runs", "--set", "run.precision=amp_bf16", "--set", "loss.gan_mode=wgangp"))
    records = [json.loads(line) for line in (tmp_path / "runs" / "00000-tiny" / "stats.jsonl").read_text().splitlines()]
    assert records and all(isinstance(r["G/total"], float) and abs(r["G/total"]) < 1e6 for r in records)
    ckpt = _final_nets(tmp_path / "runs" / "00000-tiny")
    assert all(torch.isfinite(t).all() for t in ckpt["nets"]["G_A"].values())
    assert ckpt["nets"]["G_A"]["model.1.weight"].dtype == torch.float32  # autocast keeps fp32 master weights


def test_fp16_on_cpu_is_a_clear_error(tmp_path, data):
    args = train_args(data, tmp_path / "r", "--set", "run.precision=amp_fp16")
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2 and "amp_fp16 needs a CUDA device" in result.output


def test_resume_at_an_epoch_end_is_exact_and_quiet(tmp_path, data):
    """Stopped after the epoch's last step, before its LR step: the resumed process steps the schedulers first.
    That is right (the same LRs as the uninterrupted run), so torch's "scheduler before optimizer" warning,
    which guards against a misordered loop, must not be shown."""
    sets = ["--set", "data.batch_size=1"]
    run(train_args(data, tmp_path / "a", *sets))
    full = _final_nets(tmp_path / "a" / "00000-tiny")
    run(train_args(data, tmp_path / "b", *sets, "--set", "run.stop_after_steps=6"))
    stopped = _final_nets(tmp_path / "b" / "00000-tiny")
    assert stopped["counters"]["epoch"] == 0 and stopped["counters"]["epoch_step"] == 6  # the epoch's last step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(train_args(data, tmp_path / "b", *sets, "--resume", "auto"))
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)], [str(w.message) for w in caught]
    resumed = _final_nets(tmp_path / "b" / "00000-tiny")
    assert resumed["counters"] == full["counters"]
    for name in ("G", "D"):
        assert full["optimizers"][name]["param_groups"][0]["lr"] == resumed["optimizers"][name]["param_groups"][0]["lr"]
    for name in full["nets"]:
        for key, tensor in full["nets"][name].items():
            assert torch.equal(tensor, resumed["nets"][name][key]), f"{name}.{key} differs after resume"
