"""CycleGAN data pipeline: image reading, preprocess modes, the unpaired dataset, sampler and loader."""
from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch
from conftest import make_image_folder
from PIL import Image

from common.data.images import find_images, load_rgb, tensor_to_image, to_tensor
from common.data.transforms import PREPROCESS_MODES, make_multiple, preprocess
from common.data.unpaired import UnpairedDataset, UnpairedSampler, epoch_length, make_loader
from common.errors import UserError


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


# ----------------------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("mode, size, expected_hw", [
    ("resize_and_crop", (40, 30), (32, 32)),
    ("crop", (40, 34), (32, 32)),
    ("scale_width", (40, 30), (32, 36)),  # height floored at crop_size: int(36 * 30 / 40) = 27 < 32
    ("scale_width", (40, 60), (54, 36)),
    ("scale_width_and_crop", (40, 30), (32, 32)),
    ("none", (41, 30), (32, 40)),  # nearest multiples of 4; round(7.5) = 8
])
def test_preprocess_shapes_and_range(mode, size, expected_hw):
    out = preprocess(noise(*size), mode, load_size=36, crop_size=32, flip=True, rng=random.Random(0))
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, *expected_hw)
    assert out.min() >= -1 and out.max() <= 1 and out.min() < -0.9 and out.max() > 0.9


def test_preprocess_covers_all_modes_and_rejects_unknown():
    assert set(PREPROCESS_MODES) == {"resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"}
    with pytest.raises(ValueError, match="resize_and_crop, crop, scale_width"):
        preprocess(noise(8, 8), "resize", 8, 8, False, random.Random(0))


def test_crop_larger_than_image_explains():
    with pytest.raises(ValueError, match=r"crop_size 32 is larger than the image \(20x40"):
        preprocess(noise(20, 40), "crop", 286, 32, False, random.Random(0))


def test_make_multiple_keeps_tiny_images_valid():
    assert make_multiple(noise(1, 9), 4).size == (4, 8)
    img = noise(8, 12)
    assert make_multiple(img, 4) is img


def test_preprocess_is_a_function_of_the_seed():
    img = noise(48, 48)
    outs = [preprocess(img, "resize_and_crop", 40, 32, True, random.Random(s)) for s in range(12)]
    again = [preprocess(img, "resize_and_crop", 40, 32, True, random.Random(s)) for s in range(12)]
    assert all(torch.equal(a, b) for a, b in zip(outs, again))
    assert len({o.numpy().tobytes() for o in outs}) > 6


def test_flip_flips_half_the_time_and_only_when_enabled():
    img = noise(32, 32)
    plain = to_tensor(img)
    flipped = [torch.equal(preprocess(img, "crop", 32, 32, True, random.Random(s)), plain.flip(-1))
               for s in range(40)]
    for s, f in enumerate(flipped):
        assert f or torch.equal(preprocess(img, "crop", 32, 32, True, random.Random(s)), plain)
    assert 8 < sum(flipped) < 32
    assert all(torch.equal(preprocess(img, "crop", 32, 32, False, random.Random(s)), plain) for s in range(10))


def test_tensor_round_trip():
    img = noise(8, 6)
    t = to_tensor(img)
    assert t.shape == (3, 6, 8) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(np.asarray(tensor_to_image(t)), np.asarray(img))
    ramp = np.asarray(tensor_to_image(torch.tensor([[[-1.0, 0.0, 1.0, 3.0]]]).expand(3, 1, 4)))
    assert ramp.shape == (1, 4, 3) and ramp[0, :, 0].tolist() == [0, 128, 255, 255]


# ---------------------------------------------------------------------------------------------- images
GRAY = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
RGB = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)


def _write_mode(path, mode):
    g = Image.fromarray(GRAY)
    if mode == "L":
        g.save(path)
    elif mode == "LA":
        Image.merge("LA", [g, g]).save(path)
    elif mode == "RGBA":
        Image.fromarray(np.dstack([RGB, GRAY])).save(path)
    elif mode == "P":
        Image.fromarray(RGB).quantize(256).save(path)
    elif mode == "P_transparency":
        Image.fromarray(RGB).quantize(256).save(path, transparency=0)
    elif mode == "I;16":
        Image.fromarray(GRAY.astype(np.uint16) * 257).save(path)
    elif mode == "I":
        Image.fromarray(GRAY.astype(np.int32) * 257).save(path)
    elif mode == "F":
        Image.fromarray(GRAY.astype(np.float32) / 255).save(path)
    elif mode in ("CMYK_jpg", "CMYK_tif"):
        Image.fromarray(RGB).convert("CMYK").save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))


@pytest.mark.parametrize("mode, suffix, expected, tol", [
    ("L", ".png", "gray", 0), ("LA", ".png", "gray", 0), ("RGBA", ".png", "rgb", 0),
    ("P", ".png", "rgb", 8), ("P_transparency", ".png", "rgb", 8), ("P_transparency", ".gif", "rgb", 8),
    ("I;16", ".png", "gray", 0), ("I", ".tif", "gray", 0), ("F", ".tif", "gray", 0),
    ("CMYK_jpg", ".jpg", "rgb", 12), ("CMYK_tif", ".tif", "rgb", 1),
])
def test_every_mode_loads_as_rgb_uint8(tmp_path, mode, suffix, expected, tol):
    path = tmp_path / f"img{suffix}"
    _write_mode(path, mode)
    with Image.open(path) as raw:
        assert raw.mode == mode.split("_")[0]  # the file really has the mode under test
    arr = np.asarray(load_rgb(path))
    assert arr.dtype == np.uint8 and arr.shape == (8, 8, 3)
    want = np.repeat(GRAY[..., None], 3, -1) if expected == "gray" else RGB
    assert np.abs(arr.astype(int) - want).mean() <= tol


def test_unreadable_files_name_the_file(tmp_path):
    good = make_image_folder(tmp_path, 1, size=(64, 64))[0]
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-200])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for path in (truncated, text, tmp_path / "missing.png"):
        with pytest.raises(UserError, match=str(path.name)) as err:
            load_rgb(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_find_images_recursive_and_case_insensitive(tmp_path):
    make_image_folder(tmp_path / "a" / "b", 2)
    shutil.copy(tmp_path / "a" / "b" / "img_000.png", tmp_path / "UPPER.JPG")
    (tmp_path / "readme.txt").write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert found == ["UPPER.JPG", "a/b/img_000.png", "a/b/img_001.png"]


# --------------------------------------------------------------------------------------------- dataset
def small_dataset(root, **kw):
    return UnpairedDataset(root, preprocess=kw.pop("preprocess", "resize_and_crop"), load_size=36,
                           crop_size=32, **kw)


def test_dataset_items(unpaired_root):
    ds = small_dataset(unpaired_root)
    assert len(ds) == 5 and len(ds.paths_a) == 5 and len(ds.paths_b) == 3
    item = ds[(6, 4, 123)]  # indices wrap: A[1], B[1]
    assert item["A_path"] == ds.paths_a[1] and item["B_path"] == ds.paths_b[1] and item["skipped"] == 0
    assert item["A"].shape == item["B"].shape == (3, 32, 32)
    again = ds[(1, 1, 123)]
    assert torch.equal(item["A"], again["A"]) and torch.equal(item["B"], again["B"])
    assert not torch.equal(ds[(1, 1, 124)]["A"], item["A"])
    test = UnpairedDataset(unpaired_root, phase="test", preprocess="none", flip=False, max_dataset_size=1)
    assert len(test) == 1 and test[(0, 0, 0)]["A"].shape == (3, 32, 32)


def test_dataset_option_errors(unpaired_root, tmp_path):
    with pytest.raises(UserError, match=str(unpaired_root / "valA")):
        UnpairedDataset(unpaired_root, phase="val")
    (tmp_path / "empty" / "trainA").mkdir(parents=True)
    make_image_folder(tmp_path / "empty" / "trainB", 1)
    with pytest.raises(UserError, match=f"{tmp_path / 'empty' / 'trainA'}.*no images"):
        UnpairedDataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="error, skip"):
        small_dataset(unpaired_root, on_bad_image="ignore")
    with pytest.raises(ValueError, match="resize_and_crop"):
        small_dataset(unpaired_root, preprocess="bogus")
    with pytest.raises(ValueError, match="crop_size"):
        UnpairedDataset(unpaired_root, load_size=16, crop_size=32)
    with pytest.raises(UserError, match=r"img_000.png: crop_size 64 is larger"):
        UnpairedDataset(unpaired_root, preprocess="crop", crop_size=64)[(0, 0, 0)]


def test_bad_images_error_or_skip(unpaired_root):
    bad = unpaired_root / "trainA" / "img_001.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(UserError, match=str(bad)):
        small_dataset(unpaired_root)[(1, 0, 0)]
    ds = small_dataset(unpaired_root, on_bad_image="skip")
    item = ds[(1, 0, 0)]
    assert item["skipped"] == 1 and item["A_path"] == ds.paths_a[2]
    assert torch.equal(item["A"], ds[(2, 0, 0)]["A"])  # substitute gets the same crop/flip as its own key
    assert ds[(0, 0, 0)]["skipped"] == 0
    for path in ds.paths_b:
        open(path, "wb").close()
    with pytest.raises(UserError, match=f"{unpaired_root / 'trainB'}: none of the 3 images"):
        ds[(0, 0, 0)]


# --------------------------------------------------------------------------------------------- sampler
def keys(*args, **kw):
    return list(UnpairedSampler(*args, **kw))


def test_sampler_official_semantics_and_determinism():
    assert epoch_length(5, 3, 1) == 5 and epoch_length(3, 8, 3) == 2
    ks = keys(5, 3, seed=1, epoch=0)
    assert len(ks) == 5 and [k[0] for k in ks] == [0, 1, 2, 3, 4]
    assert all(0 <= k[1] < 3 for k in ks) and len({k[2] for k in ks}) == 5
    assert keys(5, 3, seed=1, epoch=0) == ks
    assert keys(5, 3, seed=1, epoch=1) != ks and keys(5, 3, seed=2, epoch=0) != ks
    # B is uniform over all of B, across epochs.
    assert {k[1] for e in range(10) for k in keys(5, 3, seed=1, epoch=e)} == {0, 1, 2}
    long_b = keys(2, 6, seed=0, epoch=0)
    assert [k[0] for k in long_b] == [0, 1, 0, 1, 0, 1]
    assert [k[1] for k in keys(5, 3, seed=0, epoch=0, serial_b=True)] == [0, 1, 2, 0, 1]
    shuffled = keys(50, 3, seed=0, epoch=0, shuffle_a=True)
    assert sorted(k[0] for k in shuffled) == list(range(50)) and [k[0] for k in shuffled] != list(range(50))
    # B draws and seeds do not depend on whether A is shuffled.
    plain = keys(50, 3, seed=0, epoch=0)
    assert [k[1:] for k in shuffled] == [k[1:] for k in plain]


def test_sampler_start_and_shards():
    full = keys(11, 4, seed=3, epoch=2, shuffle_a=True)
    s = UnpairedSampler(11, 4, seed=3, epoch=2, shuffle_a=True, start=4, batch_size=3)
    assert list(s) == full[4:] and len(s) == 7 and s.num_batches == 3
    shards = [keys(11, 4, seed=3, epoch=2, shuffle_a=True, rank=r, world_size=3) for r in range(3)]
    assert all(len(sh) == 3 for sh in shards)
    assert sorted(k for sh in shards for k in sh) == sorted(full[:9])
    assert shards[1] == full[1:9:3]
    assert keys(11, 4, seed=3, epoch=2, shuffle_a=True, rank=1, world_size=3, start=2) == shards[1][2:]
    with pytest.raises(UserError, match="fewer than the 4 processes"):
        UnpairedSampler(3, 2, seed=0, epoch=0, world_size=4)


def test_loader_same_batches_for_any_worker_count(unpaired_root):
    ds = small_dataset(unpaired_root)
    runs = []
    for workers in (0, 2):
        sampler = UnpairedSampler(len(ds.paths_a), len(ds.paths_b), seed=5, epoch=1, shuffle_a=True)
        runs.append(list(make_loader(ds, sampler, batch_size=2, num_workers=workers)))
    assert [len(b["A"]) for b in runs[0]] == [2, 2, 1]
    for b0, b1 in zip(*runs):
        assert torch.equal(b0["A"], b1["A"]) and torch.equal(b0["B"], b1["B"])
        assert b0["A_path"] == b1["A_path"] and b0["B_path"] == b1["B_path"]
        assert b0["skipped"].tolist() == [0] * len(b0["A"])


def test_loader_reports_a_bad_image_alike_for_any_worker_count(unpaired_root):
    """A worker's UserError arrives as the message the dataset raised (torch wraps it in a traceback text)."""
    bad = unpaired_root / "trainA" / "img_001.png"
    bad.write_bytes(b"garbage")
    ds = small_dataset(unpaired_root)
    messages = []
    for workers in (0, 2):
        sampler = UnpairedSampler(len(ds.paths_a), len(ds.paths_b), seed=5, epoch=1)
        batches = iter(make_loader(ds, sampler, batch_size=2, num_workers=workers))
        with pytest.raises(UserError) as caught:
            list(batches)
        messages.append(str(caught.value))
        assert next(batches, None) is None  # the error ended the stream (and stopped its workers)
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"{bad}: cannot read image") and "\n" not in messages[0]
