"""`stargan evaluate` on paired (pix2pix) models: the metric core with oracle, do-nothing and mean generators,
and the CLI on an untrained and on a briefly trained checkpoint of the paired shapes view."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from PIL import Image

from common.checkpoint import atomic_save, new_checkpoint
from common.config import from_dict, to_dict
from common.data.images import to_tensor
from common.data.shapes import load_paired_view, make_dataset
from common.metrics.image_error import PSNR_CAP_DB
from pix2pix.data import paired_files, read_pair
from pix2pix.model import build_generator
from stargan.evaluation.paired import mean_target, score_pairs
from stargan.families import FAMILIES, PIX2PIX

SIZE = 32
TINY = Path(__file__).resolve().parents[1] / "configs" / "pix2pix" / "tiny.yaml"


@pytest.fixture(scope="module")
def view(tmp_path_factory) -> Path:
    """The paired view of a 40-image 32x32 shapes dataset (4 test, 4 val, 32 train pairs)."""
    out = tmp_path_factory.mktemp("paired_eval") / "shapes"
    make_dataset(out, n=40, size=SIZE, seed=5, paired=True)
    return out / "paired"


@pytest.fixture
def no_fid_weights(monkeypatch, tmp_path):
    monkeypatch.delenv("STARGAN_FID_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def _batches(root: Path, phase: str = "test", batch: int = 3):
    pairs = paired_files(root, phase)
    out = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        sides = [read_pair(path, partner, direction="AtoB", size=SIZE) for path, partner in chunk]
        out.append((torch.stack([s[0] for s in sides]), torch.stack([s[1] for s in sides]),
                    [path.stem for path, _ in chunk]))
    return out


def _train_mean(root: Path) -> torch.Tensor:
    return mean_target(paired_files(root, "train"), "AtoB", SIZE, (3, 3), progress=False)[0]


# ------------------------------------------------------------------------------------------ the metric core
def test_oracle_generator_scores_perfectly_and_beats_both_baselines(view):
    batches = _batches(view)
    truths = iter([targets for _, targets, _ in batches])
    metrics, _ = score_pairs(lambda x: next(truths), batches, _train_mean(view))
    n = sum(len(t) for _, t, _ in batches)
    assert metrics["counts"]["test_images"] == n == 4
    assert metrics["scores"]["model"] == {"l1": 0.0, "psnr": PSNR_CAP_DB, "ssim": 1.0, "n": n}
    for baseline in ("train_mean", "identity"):
        row = metrics["scores"][baseline]
        assert row["n"] == n and row["l1"] > 0.1 and row["psnr"] < 25 and row["ssim"] < 0.9


def test_do_nothing_and_mean_generators_equal_their_baselines(view):
    batches, mean = _batches(view), _train_mean(view)
    identity, _ = score_pairs(lambda x: x, batches, mean)
    assert identity["scores"]["model"] == identity["scores"]["identity"]
    constant, _ = score_pairs(lambda x: mean.expand_as(x), batches, mean)
    assert constant["scores"]["model"] == constant["scores"]["train_mean"]


def test_identity_baseline_is_the_input_against_the_target(view):
    # Computed here from the files, independently of the evaluation's reading.
    errors = []
    for path, _ in paired_files(view, "test"):
        pixels = to_tensor(Image.open(path))
        errors.append((pixels[:, :, :SIZE] - pixels[:, :, SIZE:]).abs().mean())
    metrics, _ = score_pairs(lambda x: x, _batches(view), _train_mean(view))
    assert metrics["scores"]["identity"]["l1"] == pytest.approx(float(torch.stack(errors).mean()), abs=1e-6)


def test_mean_target_is_the_average_of_evenly_spaced_training_targets(view):
    pairs = paired_files(view, "train")
    targets = torch.stack([read_pair(p, q, direction="AtoB", size=SIZE)[1] for p, q in pairs])
    mean, n = mean_target(pairs, "AtoB", SIZE, (3, 3), progress=False)
    assert n == len(pairs) and torch.allclose(mean, targets.mean(0), atol=1e-6)
    mean4, n4 = mean_target(pairs, "AtoB", SIZE, (3, 3), limit=4, progress=False)
    picked = [0, 10, 21, 31]  # the nearest to 0, 31/3, 62/3 and 31 of the 32 training pairs
    assert len(pairs) == 32 and n4 == 4 and torch.allclose(mean4, targets[picked].mean(0), atol=1e-6)


def test_grid_rows_are_input_output_target(view):
    batches = _batches(view)
    metrics, grid = score_pairs(lambda x: -x, batches, _train_mean(view), sample_rows=2)
    x, y = batches[0][0][:2], batches[0][1][:2]
    assert grid.shape == (3, 2 * SIZE, 3 * SIZE)
    assert torch.equal(grid[:, SIZE:, :SIZE], x[1]) and torch.equal(grid[:, :SIZE, SIZE:2 * SIZE], -x[0])
    assert torch.equal(grid[:, :SIZE, 2 * SIZE:], y[0])


def test_fid_rows_with_a_stand_in_feature_extractor(view):
    batches = _batches(view)
    truths = iter([targets for _, targets, _ in batches])

    def features(images):  # per-channel means and stds: a cheap 6-d stand-in for Inception
        return torch.cat([images.mean((2, 3)), images.std((2, 3))], 1).double()

    metrics, _ = score_pairs(lambda x: next(truths), batches, _train_mean(view), features=features)
    fid = metrics["fid"]
    assert set(fid) == {"model", "train_mean", "identity"}
    assert fid["model"]["fid"] == pytest.approx(0.0, abs=1e-9) and fid["model"]["n_fake"] == 4
    assert fid["train_mean"]["fid"] > 0.01 and fid["identity"]["fid"] > 0.01
    assert fid["model"]["kid"] is not None


def test_no_identity_row_when_asked_and_shape_mismatch_refused(view):
    batches = _batches(view)
    metrics, _ = score_pairs(lambda x: x, batches, _train_mean(view), identity=False)
    assert set(metrics["scores"]) == {"model", "train_mean"}
    with pytest.raises(ValueError, match="differs from the targets"):
        score_pairs(lambda x: x[:, :, :8], batches, _train_mean(view))


# ------------------------------------------------------------------------------------------ the CLI
def _untrained_checkpoint(path: Path, root: Path) -> Path:
    cfg = from_dict(PIX2PIX.config_class, {
        "name": "tiny", "data": {"root": str(root), "load_size": SIZE, "crop_size": SIZE, "batch_size": 2},
        "network": {"netG": "resnet_6blocks", "ngf": 8, "ndf": 8}})
    torch.manual_seed(0)
    generator = build_generator(cfg.network)
    atomic_save(new_checkpoint(PIX2PIX.name, to_dict(cfg), {"G": generator.state_dict()}, kind="inference"), path)
    return path


def _evaluate(*args, code=0):
    return run_cli(["evaluate", "--device", "cpu", "--batch-size", 3, *args], code=code)


def test_cli_scores_model_and_baselines_with_counts(tmp_path, view, no_fid_weights):
    ckpt = _untrained_checkpoint(tmp_path / "p.pt", view)
    r = _evaluate("--checkpoint", ckpt, "--out", tmp_path / "e")
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["mode"] == "paper" and metrics["phase"] == "test" and metrics["direction"] == "AtoB"
    assert metrics["counts"] == {"test_images": 4, "train_mean_images": 32, "train_images": 32}
    scores = metrics["scores"]
    assert set(scores) == {"model", "train_mean", "identity", "noise_floor"}
    assert all(row["n"] == 4 for row in scores.values())
    floor = load_paired_view(view)["noise_floor"]["test"]
    assert scores["noise_floor"] == pytest.approx(floor)
    assert metrics["fid"] is None and metrics["skipped"]["fid"]
    for title in ("model", "baseline: train mean", "baseline: identity", "noise floor"):
        assert title in r.output
    with Image.open(tmp_path / "e" / "samples.png") as grid:
        assert grid.size == (3 * SIZE, 4 * SIZE)

    # Seeded: the same command gives the same numbers; eval mode runs the running statistics instead.
    _evaluate("--checkpoint", ckpt, "--out", tmp_path / "again")
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["scores"] == scores
    _evaluate("--checkpoint", ckpt, "--out", tmp_path / "eval", "--eval")
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["mode"] == "eval" and evaluated["scores"]["train_mean"] == scores["train_mean"]


def test_the_two_modes_keep_their_own_default_folders(tmp_path, view, no_fid_weights):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    ckpt = _untrained_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt", view)
    _evaluate("--checkpoint", ckpt)
    _evaluate("--checkpoint", ckpt, "--eval")
    modes = {folder: json.loads((tmp_path / "run" / folder / "metrics.json").read_text())["mode"]
             for folder in ("eval", "eval-evalmode")}
    assert modes["eval"] != modes["eval-evalmode"] == "eval"


def test_cli_phase_max_images_and_moved_data(tmp_path, view, no_fid_weights):
    ckpt = _untrained_checkpoint(tmp_path / "p.pt", tmp_path / "gone")
    r = _evaluate("--checkpoint", ckpt, code=2)
    assert "data.root" in r.output and "--data" in r.output
    _evaluate("--checkpoint", ckpt, "--data", view, "--out", tmp_path / "v", "--phase", "val", "--max-images", 2)
    metrics = json.loads((tmp_path / "v" / "metrics.json").read_text())
    assert metrics["phase"] == "val" and metrics["scores"]["model"]["n"] == 2
    assert metrics["scores"]["noise_floor"] is None and "phase" in metrics["skipped"]["noise_floor"]
    r = _evaluate("--checkpoint", ckpt, "--data", view, "--phase", "nope", code=2)
    assert "nope" in r.output and r.output.strip().count("\n") == 0


def test_cli_refuses_options_of_the_other_kind(tmp_path, view):
    ckpt = _untrained_checkpoint(tmp_path / "p.pt", view)
    r = _evaluate("--checkpoint", ckpt, "--classifier", tmp_path / "clf.pt", code=2)
    assert "--classifier" in r.output and "--phase" in r.output  # names what it refuses and what it takes
    conditioned = next(f for f in FAMILIES.values() if f.label_conditioned)
    atomic_save(new_checkpoint(conditioned.name, to_dict(conditioned.config_class()), {}, kind="inference"),
                tmp_path / "s.pt")
    r = _evaluate("--checkpoint", tmp_path / "s.pt", "--phase", "val", code=2)
    assert "--phase" in r.output and conditioned.title in r.output


@pytest.mark.slow
def test_cli_train_then_evaluate_on_the_paired_shapes_view(tmp_path, view, no_fid_weights):
    run_cli(["train", TINY, "--set", f"data.root={view}", "--set", "run.stop_after_steps=8", "--out",
             tmp_path / "runs", "--device", "cpu"])
    run_dir = tmp_path / "runs" / "00000-tiny"
    r = _evaluate("--checkpoint", run_dir)
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["checkpoint"] == str(run_dir) and metrics["scores"]["model"]["n"] == 4
    assert (run_dir / "eval" / "samples.png").is_file() and "noise floor" in r.output
