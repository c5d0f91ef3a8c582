"""pix2pix paired data: the aligned and two-folder formats, one transform for both sides, direction, and a
one-line error for each malformed dataset."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_cli
from PIL import Image
from pix2pix_helpers import make_aligned, make_folders, pair_arrays

from common.errors import UserError
from pix2pix.data import PairedDataset, paired_files, read_pair
from pix2pix.translate import input_half


def _dataset(root, **kw) -> PairedDataset:
    options = dict(preprocess="crop", load_size=32, crop_size=24, flip=True)
    options.update(kw)
    return PairedDataset(root, **options)


def test_both_halves_of_a_pair_get_the_same_crop_and_flip(tmp_path):
    make_aligned(tmp_path, 3, size=32)
    data = _dataset(tmp_path)
    crops = set()
    for seed in range(12):
        sample = data[(1, 1, seed)]
        assert sample["A"].shape == (3, 24, 24)
        # B = 255 - A pixel for pixel, so identical crops/flips of the halves sum to zero.
        torch.testing.assert_close(sample["A"] + sample["B"], torch.zeros(3, 24, 24), atol=1e-6, rtol=0)
        crops.add(sample["A"].numpy().tobytes())
    assert len(crops) > 4  # the crops and flips really vary with the seed
    # Bicubic resizing too: the halves are resized alike (inverting commutes with it up to one level).
    sample = _dataset(tmp_path, preprocess="resize_and_crop", load_size=36, crop_size=32)[(0, 0, 5)]
    assert (sample["A"] + sample["B"]).abs().max() <= 2 / 255 + 1e-6


def test_direction_swaps_input_and_target(tmp_path):
    make_aligned(tmp_path, 2)
    a_to_b = _dataset(tmp_path)[(0, 0, 3)]
    b_to_a = _dataset(tmp_path, direction="BtoA")[(0, 0, 3)]
    assert torch.equal(a_to_b["A"], b_to_a["B"]) and torch.equal(a_to_b["B"], b_to_a["A"])
    first_a = torch.from_numpy(pair_arrays(2)[0][0]).permute(2, 0, 1).float() / 127.5 - 1
    assert not torch.allclose(a_to_b["A"], b_to_a["A"])
    real_a, real_b = read_pair(tmp_path / "train" / "pair_000.png")  # full size, no transform
    torch.testing.assert_close(real_a, first_a)
    real_a_swapped, _ = read_pair(tmp_path / "train" / "pair_000.png", direction="BtoA", size=16)
    assert real_a_swapped.shape == (3, 16, 16)
    assert float(real_a_swapped.mean()) == pytest.approx(-float(first_a.mean()), abs=0.02)  # the B half


def test_two_folder_pairs_match_aligned_files(tmp_path):
    make_aligned(tmp_path / "aligned", 4)
    make_folders(tmp_path / "folders", 4)
    pairs = paired_files(tmp_path / "folders", format="folders")
    assert [(a.parent.parent.name, b.parent.parent.name, a.stem == b.stem) for a, b in pairs] == [("A", "B", True)] * 4
    aligned, folders = _dataset(tmp_path / "aligned"), _dataset(tmp_path / "folders", format="folders")
    for key in ((0, 0, 7), (3, 3, 1)):
        assert torch.equal(aligned[key]["A"], folders[key]["A"]) and torch.equal(aligned[key]["B"], folders[key]["B"])
    assert read_pair(*pairs[1])[0].shape == (3, 32, 32)
    assert len(paired_files(tmp_path / "folders", format="folders", max_dataset_size=2)) == 2


def _message(call) -> str:
    with pytest.raises(UserError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    return message


def test_odd_aligned_width_names_the_file(tmp_path):
    make_aligned(tmp_path, 1)
    odd = tmp_path / "train" / "odd.png"
    Image.new("RGB", (33, 16)).save(odd)
    data = _dataset(tmp_path, preprocess="none")
    index = [path for path, _ in data.pairs].index(odd)
    message = _message(lambda: data[(index, index, 0)])
    assert str(odd) in message and "width must be even" in message and "33x16" in message


def test_missing_partners_are_named_with_counts(tmp_path):
    root = make_folders(tmp_path, 5)
    (root / "B" / "train" / "pair_001.png").unlink()
    (root / "B" / "train" / "pair_003.png").unlink()
    Image.new("RGB", (32, 32)).save(root / "B" / "train" / "stray.png")
    message = _message(lambda: paired_files(root, format="folders"))
    assert "2 file(s) in" in message and "pair_001, pair_003" in message and "1 file(s) in" in message
    assert "stray" in message


def test_sides_of_different_sizes_are_named(tmp_path):
    root = make_folders(tmp_path, 2)
    Image.new("RGB", (30, 32)).save(root / "B" / "train" / "pair_001.png")
    message = _message(lambda: _dataset(root, format="folders")[(1, 1, 0)])
    assert "pair_001.png is 32x32 but its partner" in message and "is 30x32" in message


def test_empty_missing_and_ambiguous_folders(tmp_path):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    assert "contains no images" in _message(lambda: paired_files(tmp_path / "empty"))
    assert "not found" in _message(lambda: paired_files(tmp_path / "nothing", format="folders"))
    root = make_folders(tmp_path / "dup", 2)
    Image.new("RGB", (32, 32)).save(root / "A" / "train" / "pair_000.jpg")
    assert "two images with the name 'pair_000'" in _message(lambda: paired_files(root, format="folders"))


def test_skip_replaces_an_unreadable_pair_and_counts_it(tmp_path):
    paths = make_aligned(tmp_path, 3)
    paths[1].write_bytes(b"not a png")
    assert str(paths[1]) in _message(lambda: _dataset(tmp_path)[(1, 1, 0)])
    sample = _dataset(tmp_path, on_bad_image="skip")[(1, 1, 0)]
    assert sample["skipped"] == 1 and sample["A_path"] == str(paths[2])


def test_training_on_a_malformed_dataset_is_one_line_and_writes_nothing(tmp_path):
    root = make_folders(tmp_path / "data", 3)
    (root / "A" / "train" / "pair_002.png").unlink()
    tiny = Path(__file__).resolve().parents[1] / "configs" / "pix2pix" / "tiny.yaml"
    result = run_cli(["train", tiny, "--set", f"data.root={root}", "--set", "data.format=folders",
                      "--out", tmp_path / "runs", "--device", "cpu"], code=2)
    assert len(result.output.strip().splitlines()) == 1 and "pair_002" in result.output
    assert not (tmp_path / "runs").exists()


def test_translate_takes_the_input_half_of_an_aligned_batch_per_direction():
    aligned = torch.arange(16.0).view(1, 1, 2, 8)
    assert torch.equal(input_half(aligned, "AtoB"), aligned[..., :4])
    assert torch.equal(input_half(aligned, "BtoA"), aligned[..., 4:])
    assert "odd width" in _message(lambda: input_half(aligned[..., :7], "AtoB"))
