"""The paired view of the shapes dataset (official aligned format; A = label map, B = scene) and the aligned-file
reader: format, splits, determinism, that A fixes B up to the declared pixel noise, and the noise floor."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from common.data.aligned import join_aligned, oriented, read_aligned, split_aligned
from common.data.images import to_tensor
from common.data.shapes import (
    NOISE_STD,
    aligned_pair,
    clean_render,
    label_map,
    load_paired_view,
    load_params,
    make_dataset,
    render,
    sample_params,
    write_paired_view,
)
from common.data.shapes.paired import BACKGROUND_LABELS
from common.errors import UserError
from common.metrics import l1_error, psnr, ssim

N, SIZE = 40, 32
PHASES = ("train", "val", "test")


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paired") / "shapes"
    make_dataset(out, n=N, size=SIZE, seed=3, paired=True)
    return out


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _phase_files(ds: Path) -> dict[str, list[str]]:
    return {phase: sorted(p.name for p in (ds / "paired" / phase).iterdir()) for phase in PHASES}


def test_aligned_files_hold_label_map_and_scene(ds):
    params = load_params(ds)
    for phase, names in _phase_files(ds).items():
        assert names, phase
        for name in names:
            pixels = _pixels(ds / "paired" / phase / name)
            assert pixels.shape == (SIZE, 2 * SIZE, 3)
            assert np.array_equal(pixels[:, SIZE:], _pixels(ds / "images" / name))  # B is the dataset's image
            assert np.array_equal(pixels[:, :SIZE], label_map(params[name], SIZE))


def test_splits_are_disjoint_and_test_is_the_datasets_test_split(ds):
    files = _phase_files(ds)
    everything = sum(files.values(), [])
    assert len(everything) == len(set(everything)) == N
    assert files["test"] == sorted((ds / "test_files.txt").read_text().split())
    assert len(files["val"]) == len(files["test"])
    view = load_paired_view(ds / "paired")
    assert view["counts"] == {phase: len(names) for phase, names in files.items()}
    assert view["direction"] == "AtoB" and view["size"] == SIZE
    assert json.loads((ds / "attributes.json").read_text())["paired_view"] == "paired"


# Every scene field B's noise-free image depends on, with a changed value.
CHANGES = {"colour": "Blue", "striped": False, "dark_background": True, "shape": "triangle", "cx": 0.45,
           "cy": 0.55, "radius": 0.2, "rotation": 33.0, "stripe_phase": 0.5, "gradient_angle": 140.0,
           "noise_seed": 12345}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_changes_exactly_when_the_noise_free_b_does(field):
    # A fixes B up to noise: A must show every factor of B's noise-free image, and nothing else.
    base = dataclasses.replace(sample_params(np.random.default_rng(7)), colour="Red", striped=True,
                               dark_background=False, shape="square", cx=0.5, cy=0.5, radius=0.22,
                               rotation=10.0, stripe_phase=0.1, gradient_angle=20.0, noise_seed=1)
    changed = dataclasses.replace(base, **{field: CHANGES[field]})
    b_changed = not np.array_equal(clean_render(base, SIZE), clean_render(changed, SIZE))
    a_changed = not np.array_equal(label_map(base, SIZE), label_map(changed, SIZE))
    assert a_changed == b_changed
    assert a_changed == (field != "noise_seed")
    # The noise changes B itself, never A.
    if field == "noise_seed":
        assert not np.array_equal(render(base, SIZE), render(changed, SIZE))


def test_stripe_phase_of_a_solid_object_shows_in_neither_side():
    base = dataclasses.replace(sample_params(np.random.default_rng(8)), striped=False)
    other = dataclasses.replace(base, stripe_phase=(base.stripe_phase + 0.5) % 1.0)
    assert np.array_equal(label_map(base, SIZE), label_map(other, SIZE))
    assert np.array_equal(clean_render(base, SIZE), clean_render(other, SIZE))


def test_label_map_is_flat_class_colours_plus_the_gradient():
    p = dataclasses.replace(sample_params(np.random.default_rng(9)), gradient_angle=0.0, dark_background=True,
                            cx=0.75, cy=0.75, radius=0.16, shape="circle")
    a = label_map(p, 64).astype(int)
    corner = a[0, 0]  # background, far from the object; the gradient runs along x (angle 0)
    assert np.array_equal(a[0, 0], a[5, 0])  # no noise: constant down a column
    assert np.array_equal(corner, np.rint(np.array(BACKGROUND_LABELS[True]) - 14 * 63 / 64).astype(int))


def test_the_rest_of_b_is_the_declared_noise(ds):
    params = load_params(ds)
    residual = np.concatenate([(render(p, SIZE).astype(float) - clean_render(p, SIZE)).ravel()
                               for p in params.values()])
    assert abs(residual.mean()) < 0.05
    assert residual.std() == pytest.approx(np.sqrt(NOISE_STD**2 + 1 / 12), rel=0.02)  # noise + rounding


def test_noise_floor_in_the_view_is_the_noise_free_render_scored(ds):
    view = load_paired_view(ds / "paired")
    params = load_params(ds)
    names = _phase_files(ds)["test"]
    truth = torch.stack([to_tensor(Image.open(ds / "images" / n)) for n in names])
    best = torch.stack([torch.from_numpy(clean_render(params[n], SIZE)).permute(2, 0, 1) for n in names]) / 127.5 - 1
    per_image = view["noise_floor_per_image"]["test"]
    for name, fn in (("l1", l1_error), ("psnr", psnr), ("ssim", ssim)):
        want = fn(best, truth)
        got = torch.tensor([per_image[Path(n).stem][("l1", "psnr", "ssim").index(name)] for n in names])
        assert torch.allclose(got.double(), want, atol=1e-9), name
        assert view["noise_floor"]["test"][name] == pytest.approx(float(want.mean()))
    # Theory for Gaussian noise of std 3 levels (+ rounding): L1 = 3 sqrt(2/pi) / 127.5, PSNR = 20 log10(255/3).
    assert view["noise_floor"]["test"]["l1"] == pytest.approx(3 * np.sqrt(2 / np.pi) / 127.5, rel=0.05)
    assert view["noise_floor"]["test"]["psnr"] == pytest.approx(20 * np.log10(255 / 3), abs=0.3)


def test_deterministic_from_the_seed(tmp_path, ds):
    again = tmp_path / "again"
    make_dataset(again, n=N, size=SIZE, seed=3, paired=True)
    for phase, names in _phase_files(ds).items():
        assert names == _phase_files(again)[phase]
        for name in names:
            assert (ds / "paired" / phase / name).read_bytes() == (again / "paired" / phase / name).read_bytes()
    assert (ds / "paired" / "view.json").read_bytes() == (again / "paired" / "view.json").read_bytes()
    other = tmp_path / "other"
    make_dataset(other, n=N, size=SIZE, seed=4, paired=True)
    assert _phase_files(other)["val"] != _phase_files(ds)["val"] or _phase_files(other)["test"] != _phase_files(
        ds)["test"]


def test_view_of_an_existing_dataset_and_regeneration(tmp_path, ds):
    out = tmp_path / "later"
    make_dataset(out, n=N, size=SIZE, seed=3)
    assert not (out / "paired").exists()
    summary = write_paired_view(out)
    assert summary["test"] == len(_phase_files(ds)["test"])
    for phase, names in _phase_files(ds).items():
        for name in names:
            assert (ds / "paired" / phase / name).read_bytes() == (out / "paired" / phase / name).read_bytes()
    make_dataset(out, n=N, size=SIZE, seed=3)  # regenerating without the view removes the old one
    assert not (out / "paired").exists()


def test_paired_argument_is_checked_before_writing(tmp_path):
    with pytest.raises(UserError, match="paired"):
        make_dataset(tmp_path / "x", n=N, size=SIZE, paired="yes")
    assert not (tmp_path / "x").exists()


def test_cli_writes_the_paired_view(tmp_path):
    r = run_cli(["make-dataset", "shapes", "--out", tmp_path / "d", "--n", 20, "--size", 16, "--paired"])
    assert "paired view" in r.output and "noise floor on test" in r.output
    view = load_paired_view(tmp_path / "d" / "paired")
    assert sum(view["counts"].values()) == 20


def test_aligned_pair_is_a_then_b():
    p = sample_params(np.random.default_rng(1))
    pixels = aligned_pair(p, 16)
    assert np.array_equal(pixels[:, :16], label_map(p, 16)) and np.array_equal(pixels[:, 16:], render(p, 16))


def test_aligned_reader_splits_halves_and_refuses_odd_widths(tmp_path):
    a = np.full((4, 3, 3), 10, np.uint8)
    b = np.full((4, 3, 3), 200, np.uint8)
    Image.fromarray(join_aligned(a, b)).save(tmp_path / "ok.png")
    real_a, real_b = read_aligned(tmp_path / "ok.png")
    assert np.array_equal(np.asarray(real_a), a) and np.array_equal(np.asarray(real_b), b)
    assert oriented(real_a, real_b, "BtoA") == (real_b, real_a)
    Image.fromarray(np.zeros((4, 7, 3), np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(UserError, match=r"odd.png: .*width must be even; got 7x4"):
        read_aligned(tmp_path / "odd.png")
    with pytest.raises(UserError, match="where"):
        split_aligned(Image.new("RGB", (5, 2)), "where")
    with pytest.raises(UserError, match="direction"):
        oriented(real_a, real_b, "sideways")
    with pytest.raises(ValueError, match="same shape"):
        join_aligned(a, b[:, :2])
