"""Shared test helpers: tiny random-image datasets written to tmp folders, and CLI invocation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image


def run_cli(args, code: int = 0):
    """Invoke the ``stargan`` CLI in-process with ``args`` (str()-ed) and assert its exit code."""
    from stargan.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def train_cli(config: str | Path, out: Path, sets: list[str], code: int = 0, resume: bool = False):
    """``stargan train CONFIG --out OUT --device cpu --set ...`` (``--resume auto`` when ``resume``)."""
    args = ["train", config, "--out", out, "--device", "cpu"]
    for item in sets:
        args += ["--set", item]
    if resume:
        args += ["--resume", "auto"]
    return run_cli(args, code=code)


def make_image_folder(root: str | Path, n: int, size: tuple[int, int] = (32, 32), seed: int = 0) -> list[Path]:
    """Write ``n`` random RGB PNGs ``img_000.png, ...`` of ``size`` (width, height) into ``root`` (created if
    needed) and return their paths, sorted. Same arguments -> same pixels."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    paths = []
    for i in range(n):
        path = root / f"img_{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def unpaired_root(tmp_path: Path) -> Path:
    """A CycleGAN-layout dataset of 32x32 PNGs: trainA 5, trainB 3, testA 2, testB 2 images (A and B sizes
    differ on purpose so that ``max(|A|, |B|)`` and B wrapping are exercised)."""
    root = tmp_path / "data"
    for seed, (name, n) in enumerate((("trainA", 5), ("trainB", 3), ("testA", 2), ("testB", 2))):
        make_image_folder(root / name, n, seed=seed)
    return root


@pytest.fixture(scope="session")
def shapes(tmp_path_factory) -> Path:
    """A 40-image 32x32 shapes dataset (``stargan make-dataset shapes`` layout), shared read-only."""
    from common.data.shapes import make_dataset

    root = tmp_path_factory.mktemp("shapes")
    make_dataset(root, n=40, size=32, seed=0)
    return root


@pytest.fixture(scope="session")
def two_inputs(tmp_path_factory) -> Path:
    """A folder of two random 32x32 PNGs (``make_image_folder`` seed 5), shared read-only, for translate runs."""
    folder = tmp_path_factory.mktemp("inputs")
    make_image_folder(folder, 2, size=(32, 32), seed=5)
    return folder


def translate_pngs(source: Path, inputs: Path, out: Path, *flags: str) -> dict[str, bytes]:
    """``stargan translate --checkpoint SOURCE --input INPUTS --output OUT --device cpu FLAGS...``; the PNGs it
    wrote, by name (one per input)."""
    run_cli(["translate", "--checkpoint", source, "--input", inputs, "--output", out, "--device", "cpu", *flags])
    written = {p.name: p.read_bytes() for p in sorted(Path(out).glob("*.png"))}
    assert len(written) == len(list(Path(inputs).iterdir()))
    return written


def shapes_overrides(root: Path) -> list[str]:
    """``KEY=VALUE`` overrides pointing configs/stargan/tiny.yaml's dataset at a shapes folder."""
    return [f"data.datasets.0.image_dir={root / 'images'}",
            f"data.datasets.0.attr_path={root / 'list_attr_celeba.txt'}",
            f"data.datasets.0.partition_path={root / 'list_eval_partition.txt'}"]


def assert_export_translates_like_checkpoint(run: Path, tmp_path: Path, target_vector: str = "0,1,0,0,1") -> None:
    """``stargan export`` the run, then ``stargan translate`` two images from the run and from the export: the
    PNGs are byte-identical (the export carries every network option)."""
    run_cli(["export", "--checkpoint", run, "--out", tmp_path / "export"])
    make_image_folder(tmp_path / "inputs", 2)
    written = {}
    for name, source in (("ckpt", run), ("export", tmp_path / "export")):
        run_cli(["translate", "--checkpoint", source, "--input", tmp_path / "inputs", "--output", tmp_path / name,
                 "--device", "cpu", "--target-vector", target_vector])
        written[name] = {p.name: p.read_bytes() for p in sorted((tmp_path / name).glob("*.png"))}
    assert len(written["ckpt"]) == 2 and written["ckpt"] == written["export"]


def assert_resume_is_exact(config: Path, out: Path, sets: list[str], reference: dict, stop_after: int = 3) -> None:
    """Train ``config`` with ``sets`` into ``out``, stopped after ``stop_after`` steps, then resumed: its G and D
    equal ``reference``'s (the checkpoint of the uninterrupted run), tensor for tensor."""
    import torch

    from common.checkpoint import load_checkpoint

    train_cli(config, out, sets + [f"run.stop_after_steps={stop_after}"])
    train_cli(config, out, sets, resume=True)
    resumed = load_checkpoint(out / "00000-tiny" / "checkpoints" / "latest.pt")
    for net in ("G", "D"):
        for key, value in reference["nets"][net].items():
            assert torch.equal(value, resumed["nets"][net][key]), (net, key)
