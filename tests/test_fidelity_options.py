"""The identity-preserving options through the CLI (issue 11): the generator weight average (EMA) of every
family, its checkpointing and exact resume, inference using it; StarGAN's attention mask, its penalties and the
identity term."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import make_image_folder, run_cli, shapes_overrides, train_cli
from pix2pix_helpers import make_aligned

from common.checkpoint import load_checkpoint
from stargan.families import FAMILIES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STARGAN = CONFIGS / "stargan" / "tiny.yaml"
CYCLEGAN = CONFIGS / "cyclegan" / "tiny.yaml"
PIX2PIX = CONFIGS / "pix2pix" / "tiny.yaml"


def _latest(out: Path) -> dict:
    return load_checkpoint(out / "00000-tiny" / "checkpoints" / "latest.pt")


def test_stargan_ema_is_checkpointed_resumed_exactly_and_used_for_translation(tmp_path, shapes):
    sets = shapes_overrides(shapes) + ["ema.decay=0.9", "ema.warmup=0", "optim.num_iters=8",
                                       "optim.num_iters_decay=4"]
    train_cli(STARGAN, tmp_path / "full", sets)
    full = _latest(tmp_path / "full")
    assert set(full["nets"]) == {"G", "D", "G_ema"}
    g_updates = 8 // 2  # n_critic 2: one G step every second iteration
    assert full["extra"]["ema_updates"] == {"G": g_updates}
    assert any(not torch.equal(full["nets"]["G"][k], full["nets"]["G_ema"][k]) for k in full["nets"]["G"])

    # Stopped half-way and resumed: the average continues exactly.
    train_cli(STARGAN, tmp_path / "split", sets + ["run.stop_after_steps=4"])
    assert _latest(tmp_path / "split")["extra"]["ema_updates"] == {"G": 2}
    train_cli(STARGAN, tmp_path / "split", sets, resume=True)
    split = _latest(tmp_path / "split")
    for key, value in full["nets"]["G_ema"].items():
        assert torch.equal(value, split["nets"]["G_ema"][key]), key

    # Inference takes the average.
    loaded = FAMILIES["stargan"].load(full, "ckpt")
    for key, value in loaded.nets["G"].state_dict().items():
        assert torch.equal(value, full["nets"]["G_ema"][key]), key


def test_ema_switched_on_at_a_resume_starts_from_the_resumed_weights(tmp_path, shapes):
    sets = shapes_overrides(shapes) + ["optim.num_iters=6", "optim.num_iters_decay=3"]
    train_cli(STARGAN, tmp_path / "out", sets + ["run.stop_after_steps=4"])
    resumed_g = _latest(tmp_path / "out")["nets"]["G"]
    assert "G_ema" not in _latest(tmp_path / "out")["nets"]
    train_cli(STARGAN, tmp_path / "out", sets + ["ema.decay=0.5", "ema.warmup=0"], resume=True)
    ckpt = _latest(tmp_path / "out")
    # One G step (iteration 6) after the resume: average = 0.5 resumed + 0.5 new.
    assert ckpt["extra"]["ema_updates"] == {"G": 1}
    for key, value in ckpt["nets"]["G_ema"].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.5 * resumed_g[key] + 0.5 * ckpt["nets"]["G"][key])


def test_stargan_attention_mask_identity_and_penalties_train_and_log(tmp_path, shapes):
    sets = shapes_overrides(shapes) + ["network.attention_mask=true", "loss.lambda_mask=0.1",
                                       "loss.lambda_mask_tv=0.1", "loss.lambda_id=5"]
    train_cli(STARGAN, tmp_path / "out", sets)
    rows = [json.loads(line) for line in (tmp_path / "out" / "00000-tiny" / "stats.jsonl").read_text().splitlines()]
    logged = {k for row in rows for k in row}
    assert {"G/mask", "G/mask_tv", "G/id"} <= logged
    g_rows = [row for row in rows if "G/mask" in row]
    assert all(0 < row["G/mask"] <= 2 * 0.1 and row["G/id"] > 0 for row in g_rows)  # two masks, mean <= 1 each
    ckpt = _latest(tmp_path / "out")
    last_conv = [v for k, v in ckpt["nets"]["G"].items() if k.endswith("weight") and v.ndim == 4][-1]
    assert last_conv.shape[0] == 4  # the painted colour + the mask channel
    # translate runs the masked generator.
    run_cli(["translate", "--checkpoint", tmp_path / "out" / "00000-tiny", "--input", shapes / "images" / "000001.png",
             "--output", tmp_path / "t", "--target", "Blue=1", "--device", "cpu"])
    assert (tmp_path / "t" / "000001.png").is_file()


def test_mask_penalties_without_the_mask_are_refused(tmp_path, shapes):
    result = train_cli(STARGAN, tmp_path / "out", shapes_overrides(shapes) + ["loss.lambda_mask=0.1"], code=2)
    assert "network.attention_mask" in result.output and result.output.count("\n") == 1
    result = train_cli(STARGAN, tmp_path / "out", shapes_overrides(shapes) + ["ema.decay=1"], code=2)
    assert "ema.decay" in result.output and "[0, 1)" in result.output


@pytest.mark.parametrize("family", ["cyclegan", "pix2pix"])
def test_epoch_families_keep_and_use_an_ema(tmp_path, unpaired_root, family):
    if family == "cyclegan":
        config, root, names = CYCLEGAN, unpaired_root, ("G_A", "G_B")
    else:
        config, root, names = PIX2PIX, tmp_path / "pairs", ("G",)
        make_aligned(root, 4)
        make_aligned(root, 2, phase="test", seed=1)
    train_cli(config, tmp_path / "out", [f"data.root={root}", "ema.decay=0.9"])
    ckpt = _latest(tmp_path / "out")
    for name in names:
        assert f"{name}_ema" in ckpt["nets"]
        assert ckpt["extra"]["ema_updates"][name] == ckpt["counters"]["global_step"]
    # Inference loads the averages.
    loaded = FAMILIES[family].load(ckpt, "ckpt")
    for name in names:
        for key, value in loaded.nets[name].state_dict().items():
            assert torch.equal(value, ckpt["nets"][f"{name}_ema"][key]), (name, key)
    if family == "cyclegan":  # and translate with them: the trained weights give another picture
        image = make_image_folder(tmp_path / "in", 1)[0]
        run_cli(["translate", "--checkpoint", tmp_path / "out" / "00000-tiny", "--input", image,
                 "--output", tmp_path / "ema", "--device", "cpu"])
        raw = dict(ckpt, nets={k: v for k, v in ckpt["nets"].items() if not k.endswith("_ema")})
        torch.save(raw, tmp_path / "raw.pt")
        run_cli(["translate", "--checkpoint", tmp_path / "raw.pt", "--input", image, "--output", tmp_path / "raw",
                 "--device", "cpu"])
        assert (tmp_path / "ema" / image.name).read_bytes() != (tmp_path / "raw" / image.name).read_bytes()


@pytest.mark.parametrize("args, named", [
    (["--set", "network.g_conv_dim=0"], "network.g_conv_dim"),
    (["--recipe", "official", "--set", "loss.lambda_mask=0.1"], "network.attention_mask"),
    # --set applies after the recipe: the recipe's guided mask is refused without the mask.
    (["--set", "network.attention_mask=false"], "'network.mask_guide_radius' must be 0"),
    (["--size", "40"], "data.image_size"),
    (["--set", "data.image_size=64"], "--size"),
])
def test_demo_checks_its_options_before_any_work(tmp_path, args, named):
    result = run_cli(["demo", "--out", tmp_path / "demo", "--device", "cpu", *args], code=2)
    assert result.output.count("\n") == 1 and named in result.output, result.output
    assert not (tmp_path / "demo").exists()


def test_demo_refuses_an_unknown_recipe_listing_the_known_ones(tmp_path):
    result = run_cli(["demo", "--out", tmp_path / "demo", "--recipe", "other"], code=2)
    assert "'other' is not one of 'preserving', 'official'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "demo").exists()


def test_cyclegan_attention_mask_trains_logs_and_translates(tmp_path, unpaired_root):
    sets = [f"data.root={unpaired_root}", "network.attention_mask=true", "loss.lambda_mask=0.1",
            "loss.lambda_mask_tv=0.1"]
    train_cli(CYCLEGAN, tmp_path / "out", sets)
    rows = [json.loads(line) for line in (tmp_path / "out" / "00000-tiny" / "stats.jsonl").read_text().splitlines()]
    # Four translations per step, each mask's mean at most 1: the weighted sum is in (0, 4 x 0.1].
    assert rows and all(0 < row["G/mask"] <= 4 * 0.1 and row["G/mask_tv"] >= 0 for row in rows)
    nets = _latest(tmp_path / "out")["nets"]
    last_conv = [v for k, v in nets["G_A"].items() if k.endswith("weight") and v.ndim == 4][-1]
    assert last_conv.shape[0] == 4  # the last conv paints colour + mask
    image = make_image_folder(tmp_path / "in", 1)[0]
    run_cli(["translate", "--checkpoint", tmp_path / "out" / "00000-tiny", "--input", image,
             "--output", tmp_path / "t", "--device", "cpu"])
    assert (tmp_path / "t" / image.name).is_file()


def test_cyclegan_mask_options_are_checked_by_key(tmp_path, unpaired_root):
    root = f"data.root={unpaired_root}"
    result = train_cli(CYCLEGAN, tmp_path / "out", [root, "loss.lambda_mask=0.1"], code=2)
    assert "network.attention_mask" in result.output and result.output.count("\n") == 1
    result = train_cli(CYCLEGAN, tmp_path / "out", [root, "network.attention_mask=true", "network.input_nc=1",
                                                 "loss.lambda_identity=0"], code=2)
    assert "network.attention_mask" in result.output and "input_nc" in result.output
