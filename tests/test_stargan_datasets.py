import logging
import random
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

import stargan.datasets
from common.errors import UserError
from stargan.datasets import (
    CelebADataset,
    CsvDataset,
    ImageFolderDataset,
    flip_from_seed,
    load_test_image,
    read_celeba_attrs,
    split_indices,
    stargan_transform,
)

ATTRS = ["5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
SELECTED = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
N_ROWS = 12


def make_image(path, seed, size=(40, 48)):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def row_values(i):
    rng = random.Random(i)
    return [rng.choice(["-1", "1"]) for _ in ATTRS]


@pytest.fixture
def celeba(tmp_path):
    img = tmp_path / "images"
    img.mkdir()
    lines = [f"{N_ROWS}", "  ".join(ATTRS)]
    for i in range(N_ROWS):
        name = f"{i:06d}.jpg" if i % 4 == 0 else f"{i:06d}.png"
        make_image(img / name, i)
        sep = "\t" if i % 2 else "   "
        lines.append(name + sep + " ".join(v.rjust(2) for v in row_values(i)) + ("  " if i % 3 else ""))
    attr = tmp_path / "list_attr_celeba.txt"
    attr.write_text("\n".join(lines) + "\n\n")
    return img, attr


def kw(**extra):
    base = {"image_size": 16, "crop_size": 32}
    base.update(extra)
    return base


# -- attribute file ----------------------------------------------------------------------------------------
def test_read_celeba_attrs_variable_whitespace(celeba):
    _, attr = celeba
    files, labels, names = read_celeba_attrs(attr, ["Young", "Black_Hair"])
    assert names == ATTRS
    assert len(files) == N_ROWS and files[1] == "000001.png" and files[0] == "000000.jpg"
    assert labels.dtype == torch.float32 and labels.shape == (N_ROWS, 2)
    for i in range(N_ROWS):
        v = row_values(i)
        assert labels[i].tolist() == [float(v[5] == "1"), float(v[1] == "1")]


def write_attr(tmp_path, text):
    p = tmp_path / "attrs.txt"
    p.write_text(text)
    return p


def test_read_celeba_attrs_errors(tmp_path):
    with pytest.raises(UserError, match="nope.txt: CelebA attribute file not found"):
        read_celeba_attrs(tmp_path / "nope.txt", ["A"])
    good = "2\nA B C\nx.jpg 1 -1 1\ny.jpg -1 -1 1\n"
    p = write_attr(tmp_path, good)
    with pytest.raises(UserError, match=r"attrs.txt: unknown attribute\(s\) Z; valid attributes: A, B, C"):
        read_celeba_attrs(p, ["A", "Z"])
    with pytest.raises(UserError, match="duplicates"):
        read_celeba_attrs(p, ["A", "A"])
    p = write_attr(tmp_path, "2\nA B C\nx.jpg 1 -1 1\ny.jpg -1 1\n")
    with pytest.raises(UserError, match="attrs.txt:4: expected a file name and 3 values, got 2"):
        read_celeba_attrs(p, ["A"])
    p = write_attr(tmp_path, "2\nA B C\nx.jpg 1 0 1\ny.jpg -1 1 1\n")
    with pytest.raises(UserError, match="attrs.txt:3: value '0' for B must be -1 or 1"):
        read_celeba_attrs(p, ["A"])
    p = write_attr(tmp_path, "two\nA B C\n")
    with pytest.raises(UserError, match="attrs.txt:1: expected the image count"):
        read_celeba_attrs(p, ["A"])
    p = write_attr(tmp_path, "2\n")
    with pytest.raises(UserError, match="attribute names on line 2"):
        read_celeba_attrs(p, ["A"])
    p = write_attr(tmp_path, "2\nA B A\n")
    with pytest.raises(UserError, match="attrs.txt:2: duplicate attribute names A"):
        read_celeba_attrs(p, ["B"])


@pytest.mark.parametrize("name, match", [
    ("../outside.png", r"attrs.txt:4: file name '../outside.png' points outside the image folder"),
    ("sub/../../outside.png", r"attrs.txt:4: file name 'sub/../../outside.png' points outside"),
    ("..", r"attrs.txt:4: file name '..' points outside"),
    ("/etc/hostname", r"attrs.txt:4: file name '/etc/hostname' must be relative to the image folder"),
    ("C:x.png", r"attrs.txt:4: file name 'C:x.png' must be relative"),
])
def test_read_celeba_attrs_refuses_names_outside_the_image_folder(tmp_path, name, match):
    """As in CSV label files: the attribute file may only name images inside the image folder."""
    p = write_attr(tmp_path, f"2\nA B\nsub/x.jpg 1 -1\n{name} -1 1\n")
    with pytest.raises(UserError, match=match):
        read_celeba_attrs(p, ["A"])


def test_read_celeba_attrs_count_mismatch_warns(tmp_path, caplog):
    p = write_attr(tmp_path, "5\nA B\nx.jpg 1 -1\ny.jpg -1 1\n")
    with caplog.at_level(logging.WARNING):
        files, labels, _ = read_celeba_attrs(p, ["B", "A"])
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert re.search("attrs.txt:1: header says 5 images but the file has 2 rows", warned[0].getMessage())
    assert files == ["x.jpg", "y.jpg"]
    assert labels.tolist() == [[0, 1], [1, 0]]


# -- split -------------------------------------------------------------------------------------------------
def test_split_matches_official_seeded_shuffle():
    n, k = 50, 7
    lines = [f"row{i}" for i in range(n)]
    random.seed(1234)  # the official rule, on the global RNG
    random.shuffle(lines)
    expected = [int(s[3:]) for s in lines]
    assert split_indices(n, "test", k) == expected[:k]
    assert split_indices(n, "train", k) == expected[k:]
    assert split_indices(n, "train", 0) == list(range(n)) == split_indices(n, "test", 0)
    assert split_indices(n, "test", k, seed=1) != expected[:k]


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_split_small_dataset_shrinks_test_set(caplog, monkeypatch):
    monkeypatch.setattr(stargan.datasets, "_shrink_warned", set())
    with caplog.at_level(logging.WARNING):
        test = split_indices(25, "test", 2000)
        assert _warnings(caplog) == ["only 25 rows for a test split of 2000; using 2 test rows and 23 training rows"]
        train = split_indices(25, "train", 2000)
        assert len(_warnings(caplog)) == 1  # the other split of the same data: said once
    assert len(test) == 2 and len(train) == 23 and set(test).isdisjoint(train)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert (len(split_indices(5, "test", 10)), len(split_indices(1, "test", 10))) == (1, 0)
        split_indices(25, "test", 2000, where="labels.csv")  # another file: its own warning
    warned = _warnings(caplog)
    assert len(warned) == 3 and "only 5 rows" in warned[0] and "only 1 rows" in warned[1]
    assert warned[2].startswith("labels.csv: only 25 rows")
    with pytest.raises(UserError, match="mode"):
        split_indices(5, "val", 1)


def test_small_celeba_split_is_logged_once_for_both_splits(celeba, caplog, monkeypatch):
    monkeypatch.setattr(stargan.datasets, "_shrink_warned", set())
    img, attr = celeba
    with caplog.at_level(logging.WARNING):
        for mode in ("train", "test"):
            CelebADataset(img, attr, SELECTED, mode=mode, test_count=2000, **kw())
    warned = _warnings(caplog)
    assert len(warned) == 1 and "list_attr_celeba.txt: only 12 rows for a test split of 2000" in warned[0]


def test_celeba_dataset_official_split(celeba):
    img, attr = celeba
    test = CelebADataset(img, attr, SELECTED, mode="test", test_count=3, **kw())
    train = CelebADataset(img, attr, SELECTED, mode="train", test_count=3, **kw())
    order = list(range(N_ROWS))
    random.seed(1234)
    random.shuffle(order)
    names = [f"{i:06d}.jpg" if i % 4 == 0 else f"{i:06d}.png" for i in range(N_ROWS)]
    assert test.filenames == [names[i] for i in order[:3]]
    assert train.filenames == [names[i] for i in order[3:]]
    assert len(test) == 3 and len(train) == N_ROWS - 3
    i = order[0]
    v = row_values(i)
    assert test.labels[0].tolist() == [float(v[ATTRS.index(a)] == "1") for a in SELECTED]
    assert test.schema.names == tuple(SELECTED)
    assert all(k == "binary" for k, _, _ in test.schema.slices())  # nothing hard-coded


def test_celeba_dataset_items_and_transform(celeba):
    img, attr = celeba
    ds = CelebADataset(img, attr, SELECTED, mode="test", test_count=3, **kw())
    x, y = ds[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert y.shape == (5,) and y.dtype == torch.float32
    # Same pixels as the official torchvision pipeline (CenterCrop, Resize, ToTensor, Normalize).
    official = transforms.Compose([
        transforms.CenterCrop(32), transforms.Resize(16), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])
    with Image.open(ds.files[0]) as im:
        ref = official(im.convert("RGB"))
    assert torch.allclose(x, ref, atol=1e-6)


def test_celeba_flip_is_a_function_of_the_seed(celeba):
    img, attr = celeba
    ds = CelebADataset(img, attr, SELECTED, mode="train", test_count=3, **kw())
    plain, _ = ds[2]
    assert torch.equal(ds[2][0], plain)  # int index: never flipped
    seeds = range(40)
    flips = [flip_from_seed(s) for s in seeds]
    assert any(flips) and not all(flips)
    for s, f in zip(seeds, flips):
        x, _ = ds[(2, s)]
        assert torch.equal(x, torch.flip(plain, dims=[-1]) if f else plain)
        assert torch.equal(x, ds[(2, s)][0])
    # Test mode and flip=False never flip.
    test = CelebADataset(img, attr, SELECTED, mode="test", test_count=3, **kw())
    noflip = CelebADataset(img, attr, SELECTED, mode="train", test_count=3, flip=False, **kw())
    s = flips.index(True)
    assert torch.equal(test[(0, s)][0], test[0][0])
    assert torch.equal(noflip[(2, s)][0], plain)


def test_celeba_exclusive_groups_from_config(celeba):
    img, attr = celeba
    ds = CelebADataset(img, attr, SELECTED, test_count=3, exclusive=[SELECTED[:3]], **kw())
    # Exclusive for targets; BCE for the classifier (official), since rows may set no or two hair colours.
    assert ds.schema.groups[0].kind == "exclusive" and ds.schema.groups[0].loss == "bce"
    assert ds.schema.slices() == [("binary", 0, 3), ("binary", 3, 4), ("binary", 4, 5)]
    assert (ds.labels[:, :3].sum(1) != 1).any()  # the fixture has such rows, and they are kept
    assert (ds.labels[:, :3].sum(1) > 1).any()
    msg = r"list_attr_celeba.txt: row \d+ \(0000\d\d\.(jpg|png)\): at most one of Black_Hair, Blond_Hair"
    with pytest.raises(UserError, match=msg):
        CelebADataset(img, attr, SELECTED, test_count=3, exclusive=[SELECTED[:3]], exclusive_loss="ce", **kw())
    with pytest.raises(UserError, match="celeba.txt: exclusive group .* unknown attribute 'Gray_Hair'"):
        CelebADataset(img, attr, SELECTED, test_count=3, exclusive=[["Black_Hair", "Gray_Hair"]], **kw())
    with pytest.raises(UserError, match="differ from selected_attrs"):
        CelebADataset(img, attr, SELECTED[::-1], test_count=3, schema=ds.schema, **kw())


def test_celeba_missing_image(celeba):
    img, attr = celeba
    (img / "000005.png").unlink()
    with pytest.raises(UserError, match=r"000005.png: image file not found \(listed in .*attr_celeba.txt\)"):
        CelebADataset(img, attr, SELECTED, test_count=3, **kw())
    (img / "000007.png").unlink()
    with pytest.raises(UserError, match="1 more missing"):
        CelebADataset(img, attr, SELECTED, test_count=3, **kw())
    with pytest.raises(UserError, match="image folder not found"):
        CelebADataset(img / "nope", attr, SELECTED, **kw())
    with pytest.raises(UserError, match="mode"):
        CelebADataset(img, attr, SELECTED, mode="val", **kw())


def test_a_split_needs_only_its_own_images(celeba):
    img, attr = celeba
    test = CelebADataset(img, attr, SELECTED, mode="test", test_count=3, **kw())
    held_out = {f.name for f in test.files}
    for f in img.iterdir():
        if f.name not in held_out:
            f.unlink()  # a folder with only the test split's images
    again = CelebADataset(img, attr, SELECTED, mode="test", test_count=3, **kw())
    assert again.filenames == test.filenames and torch.equal(again[0][0], test[0][0])
    with pytest.raises(UserError, match="image file not found"):
        CelebADataset(img, attr, SELECTED, mode="train", test_count=3, **kw())
    # A missing test image is still a one-line error naming the file and the list it came from.
    (img / test.filenames[1]).unlink()
    with pytest.raises(UserError) as err:
        CelebADataset(img, attr, SELECTED, mode="test", test_count=3, **kw())
    assert str(err.value) == f"{img / test.filenames[1]}: image file not found (listed in {attr})"


def test_csv_split_needs_only_its_own_images(tmp_path, csv_data):
    p = write_csv(tmp_path, "filename,smile\na.png,1\nb.jpg,0\nsub/c.png,1\nd.png,0\n")
    test = CsvDataset(csv_data, p, image_size=16, mode="test", test_fraction=0.25)
    CsvDataset(csv_data, p, image_size=16, mode="train", test_fraction=0.25).files[0].unlink()
    assert CsvDataset(csv_data, p, image_size=16, mode="test", test_fraction=0.25).files == test.files
    with pytest.raises(UserError, match=r"image file not found \(listed in .*labels.csv:\d\)"):
        CsvDataset(csv_data, p, image_size=16, mode="train", test_fraction=0.25)


def test_load_test_image_is_the_test_datasets_transform(celeba):
    img, attr = celeba
    ds = CelebADataset(img, attr, SELECTED, mode="test", test_count=3, **kw())
    for i in range(len(ds)):
        assert torch.equal(load_test_image(ds.files[i], 16, 32), ds[i][0])


# -- ImageFolder -------------------------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "rafd"
    for k, cls in enumerate(["sad", "angry", "happy"]):
        (root / cls).mkdir(parents=True)
        for j in range(2 + k):
            make_image(root / cls / f"{cls}_{j}.png", 100 * k + j)
    (root / "notes.txt").write_text("ignored")
    return root


def test_image_folder(folder):
    ds = ImageFolderDataset(folder, image_size=16, mode="test")  # default crop 256 > 40x48 -> central 40x40
    assert ds.classes == ["angry", "happy", "sad"]
    assert ds.schema.slices() == [("exclusive", 0, 3)]
    assert ds.schema.names == ("angry", "happy", "sad") and ds.schema.groups[0].name == "class"
    assert len(ds) == 3 + 4 + 2
    x, y = ds[0]
    assert x.shape == (3, 16, 16) and y.tolist() == [1, 0, 0]
    assert ds[len(ds) - 1][1].tolist() == [0, 0, 1]
    assert (ds.labels.sum(1) == 1).all()
    with Image.open(ds.files[0]) as im:
        ref = im.convert("RGB").crop((0, 4, 40, 44)).resize((16, 16), Image.BILINEAR)
    assert torch.allclose(x, torch.from_numpy(np.array(ref)).permute(2, 0, 1).float() / 127.5 - 1, atol=1e-6)
    named = ImageFolderDataset(folder, image_size=16, group_name="expression")
    assert named.schema.groups[0].name == "expression"


def test_image_folder_split(folder):
    test = ImageFolderDataset(folder, image_size=16, mode="test", test_fraction=0.25)
    train = ImageFolderDataset(folder, image_size=16, mode="train", test_fraction=0.25)
    assert len(test) == 2 and len(train) == 7
    assert set(test.files).isdisjoint(train.files)
    with pytest.raises(UserError, match="test_fraction"):
        ImageFolderDataset(folder, image_size=16, test_fraction=1.0)


def test_image_folder_errors(tmp_path, folder):
    with pytest.raises(UserError, match="missing: image folder not found"):
        ImageFolderDataset(tmp_path / "missing")
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    make_image(one / "only" / "a.png", 0)
    with pytest.raises(UserError, match=r"one: need at least 2 class subfolders, found 1 \(only\)"):
        ImageFolderDataset(one)
    (folder / "empty").mkdir()
    with pytest.raises(UserError, match="empty: class folder 'empty' contains no images"):
        ImageFolderDataset(folder)


# -- CSV ---------------------------------------------------------------------------------------------------
@pytest.fixture
def csv_data(tmp_path):
    img = tmp_path / "imgs"
    (img / "sub").mkdir(parents=True)
    for j, name in enumerate(["a.png", "b.jpg", "sub/c.png", "d.png"]):
        make_image(img / name, j)
    make_image(tmp_path / "evil.png", 9)
    return img


def write_csv(tmp_path, text):
    p = tmp_path / "labels.csv"
    p.write_text(text)
    return p


def test_csv_dataset(tmp_path, csv_data):
    p = write_csv(tmp_path, "filename,smile,glasses,red,blue\n"
                  "a.png,1,0,1,0\n"
                  "b.jpg,-1,1,-1,1\n"
                  "\n"
                  " sub/c.png , 1 , -1 , 0 , 1 \n"
                  "./d.png,0,1,1,0\n")
    ds = CsvDataset(csv_data, p, image_size=16, mode="test", exclusive=[["red", "blue"]])
    assert ds.schema.names == ("smile", "glasses", "red", "blue")
    assert ds.schema.slices() == [("binary", 0, 1), ("binary", 1, 2), ("exclusive", 2, 4)]
    assert ds.labels.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 0, 1], [0, 1, 1, 0]]
    x, y = ds[2]
    assert x.shape == (3, 16, 16) and y.tolist() == [1, 0, 0, 1]
    assert ds.files[2] == (csv_data / "sub" / "c.png").absolute()
    picked = CsvDataset(csv_data, p, image_size=16, selected_attrs=["blue", "smile"])
    assert picked.schema.names == ("blue", "smile")
    assert picked.labels.tolist() == [[0, 1], [1, 0], [1, 1], [0, 0]]
    train = CsvDataset(csv_data, p, image_size=16, crop_size=32, mode="train", test_fraction=0.25)
    test = CsvDataset(csv_data, p, image_size=16, crop_size=32, mode="test", test_fraction=0.25)
    assert len(train) == 3 and len(test) == 1 and set(train.files).isdisjoint(test.files)
    x, _ = train[(0, next(s for s in range(50) if flip_from_seed(s)))]
    assert torch.equal(x, torch.flip(train[0][0], dims=[-1]))


@pytest.mark.parametrize(
    "body, match",
    [
        ("../evil.png,1\n", r"labels.csv:3: file name '../evil.png' points outside the image folder"),
        ("sub/../../evil.png,1\n", r"labels.csv:3: file name .* points outside"),
        ("/etc/passwd,1\n", r"labels.csv:3: file name '/etc/passwd' must be relative"),
        ("a.png,1,0\n", r"labels.csv:3: expected 2 columns \(filename,smile\), got 3"),
        ("a.png,yes\n", r"labels.csv:3: value 'yes' for smile is not a number"),
        ("a.png,2\n", r"labels.csv:3: value '2' for smile must be 0/1 or -1/1"),
        ("zzz.png,1\n", r"zzz.png: image file not found \(listed in .*labels.csv:3\)"),
        (",1\n", r"labels.csv:3: empty file name"),
    ],
)
def test_csv_errors(tmp_path, csv_data, body, match):
    p = write_csv(tmp_path, "filename,smile\na.png,1\n" + body)
    with pytest.raises(UserError, match=match):
        CsvDataset(csv_data, p, image_size=16)


def test_csv_file_errors(tmp_path, csv_data):
    with pytest.raises(UserError, match="nope.csv: CSV label file not found"):
        CsvDataset(csv_data, tmp_path / "nope.csv")
    p = write_csv(tmp_path, "a.png,1\n")
    with pytest.raises(UserError, match="labels.csv:1: expected a header 'filename,attr1"):
        CsvDataset(csv_data, p)
    p = write_csv(tmp_path, "filename,x\n")
    with pytest.raises(UserError, match="no data rows"):
        CsvDataset(csv_data, p)
    p = write_csv(tmp_path, "filename,x,x\na.png,1,1\n")
    with pytest.raises(UserError, match="labels.csv:1: duplicate attribute names: x"):
        CsvDataset(csv_data, p)
    p = write_csv(tmp_path, "filename,x,y\na.png,1,1\n")
    with pytest.raises(UserError, match="labels.csv:1: exclusive group .*unknown attribute 'z'"):
        CsvDataset(csv_data, p, exclusive=[["x", "z"]])
    with pytest.raises(UserError, match="image folder not found"):
        CsvDataset(tmp_path / "noimgs", p)
    with pytest.raises(UserError, match="labels.csv:1: unknown attribute.* q; valid attributes: x, y"):
        CsvDataset(csv_data, p, selected_attrs=["x", "q"])
    p = write_csv(tmp_path, "filename,x,y,notes\na.png,1,0,hello\nb.jpg,0,0,\nd.png,1,1,\n")
    with pytest.raises(UserError, match=r"labels.csv:4: at most one of x, y may be 1 .*got \[1, 1\]"):
        CsvDataset(csv_data, p, selected_attrs=["x", "y"], exclusive=[["x", "y"]])
    # Unselected columns are not parsed; "bce" exclusive groups accept any combination.
    ds = CsvDataset(csv_data, p, selected_attrs=["x", "y"], exclusive=[["x", "y"]], exclusive_loss="bce")
    assert ds.labels.tolist() == [[1, 0], [0, 0], [1, 1]] and ds.schema.slices() == [("binary", 0, 2)]
    # "ce" accepts a row with no member set (no class; the trainer masks it out of the loss).
    p = write_csv(tmp_path, "filename,x,y\na.png,1,0\nb.jpg,0,0\n")
    ds = CsvDataset(csv_data, p, exclusive=[["x", "y"]])
    assert ds.labels.tolist() == [[1, 0], [0, 0]] and ds.schema.slices() == [("exclusive", 0, 2)]


# -- transform ---------------------------------------------------------------------------------------------
def test_transform_crop_none_and_clamp():
    arr = np.zeros((48, 40, 3), dtype=np.uint8)
    arr[4:44, :, 0] = 255  # the central 40x40 square is red
    im = Image.fromarray(arr)
    for crop in (None, 100):
        x = stargan_transform(im, 8, crop, flip=False)
        assert x.shape == (3, 8, 8)
        assert torch.equal(x[0], torch.ones(8, 8)) and torch.equal(x[1], -torch.ones(8, 8))


def test_no_warnings_on_clean_data(celeba, caplog):
    img, attr = celeba
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")
        CelebADataset(img, attr, SELECTED, test_count=3, **kw())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_count_mismatch_is_logged_once_for_both_splits(celeba, caplog):
    img, attr = celeba
    lines = attr.read_text().splitlines()
    attr.write_text("\n".join([str(N_ROWS + 3), *lines[1:]]) + "\n")
    with caplog.at_level(logging.WARNING):
        for mode in ("train", "test"):
            CelebADataset(img, attr, SELECTED, mode=mode, test_count=3, **kw())
        read_celeba_attrs(attr, SELECTED)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and f"header says {N_ROWS + 3} images but the file has {N_ROWS} rows" in warned[0]
