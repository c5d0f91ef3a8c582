import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.data import shapes
from common.data.shapes import (
    LARGE_RADIUS,
    NUISANCE_ATTRS,
    SHAPES_ATTRS,
    SHAPES_EXCLUSIVE,
    ShapesParams,
    change_attribute,
    load_counterfactuals,
    load_nuisance,
    load_params,
    load_schema,
    make_dataset,
    nuisance_label,
    object_mask,
    params_label,
    render,
    sample_params,
    write_cyclegan_view,
)
from common.errors import UserError

N, SIZE = 60, 32
COLOURS = SHAPES_EXCLUSIVE[0]
BINARIES = [a for a in SHAPES_ATTRS if a not in COLOURS]


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("shapes") / "ds"
    a, b = COLOURS[0], COLOURS[2]
    summary = make_dataset(out, n=N, size=SIZE, seed=3, cyclegan_views=[(a, b)])
    return out, summary


def _parse_attr_file(path: Path) -> tuple[list[str], dict[str, list[int]]]:
    lines = path.read_text().splitlines()
    count = int(lines[0])
    names = lines[1].split()
    rows = {}
    for ln in lines[2:]:
        parts = ln.split()
        assert len(parts) == len(names) + 1
        assert all(v in ("-1", "1") for v in parts[1:])
        rows[parts[0]] = [int(v == "1") for v in parts[1:]]
    assert len(rows) == count
    return names, rows


def _img(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_attr_file_and_schema(ds):
    out, summary = ds
    names, rows = _parse_attr_file(out / "list_attr_celeba.txt")
    # CelebA-style: more attributes than a model selects; the conditioned ones first, then the nuisance ones.
    assert names == SHAPES_ATTRS + NUISANCE_ATTRS
    assert sorted(rows) == sorted(p.name for p in (out / "images").iterdir())
    assert len(rows) == N == summary["n"]
    # Variable whitespace like the real CelebA file: a positive first value is preceded by two spaces.
    assert any("  1" in ln for ln in (out / "list_attr_celeba.txt").read_text().splitlines()[2:])
    assert load_schema(out) == {"attrs": SHAPES_ATTRS, "exclusive": SHAPES_EXCLUSIVE}
    ci = [SHAPES_ATTRS.index(c) for c in COLOURS]
    for lab in rows.values():
        assert sum(lab[j] for j in ci) == 1
    params = load_params(out)
    assert {f: params_label(p) + nuisance_label(p) for f, p in params.items()} == rows
    # The nuisance columns say what the scene parameters say, spelled out here independently.
    for f, p in params.items():
        nuisance = dict(zip(NUISANCE_ATTRS, rows[f][len(SHAPES_ATTRS):]))
        assert nuisance == {"Circle": p.shape == "circle", "Square": p.shape == "square",
                            "Triangle": p.shape == "triangle", "Left": p.cx < 0.5, "Top": p.cy < 0.5,
                            "Large": p.radius >= 0.205}
    assert load_nuisance(out) == {"attrs": ["Circle", "Square", "Triangle", "Left", "Top", "Large"],
                                  "exclusive": {"Shape": ["Circle", "Square", "Triangle"]}}
    meta = json.loads((out / "attributes.json").read_text())
    assert meta["version"] == 2 and meta["attrs"] == SHAPES_ATTRS
    assert summary["nuisance_counts"]["Left"] == sum(p.cx < 0.5 for p in params.values())
    # Every binary is set for some images and clear for others even in this tiny set.
    for j, a in enumerate(NUISANCE_ATTRS):
        assert 0 < sum(r[len(SHAPES_ATTRS) + j] for r in rows.values()) < N, a


def test_nuisance_attributes_are_balanced_and_never_changed_by_a_counterfactual():
    rng = np.random.default_rng(2)
    ps = [sample_params(rng) for _ in range(2000)]
    assert 0.45 < np.mean([p.cx < 0.5 for p in ps]) < 0.55 and 0.45 < np.mean([p.cy < 0.5 for p in ps]) < 0.55
    assert 0.45 < np.mean([p.radius >= LARGE_RADIUS for p in ps]) < 0.55
    for p in ps[:50]:
        for attr in SHAPES_ATTRS:
            if attr != p.colour:
                assert nuisance_label(change_attribute(p, attr)) == nuisance_label(p)


def test_images_are_rendered_params(ds):
    out, _ = ds
    params = load_params(out)
    for f in list(params)[:5]:
        img = _img(out / "images" / f)
        assert img.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(img, render(params[f], SIZE))


def test_attribute_balance():
    rng = np.random.default_rng(0)
    ps = [sample_params(rng) for _ in range(2000)]
    for c in COLOURS:
        assert 0.2 < sum(p.colour == c for p in ps) / len(ps) < 0.3
    assert 0.45 < np.mean([p.striped for p in ps]) < 0.55
    assert 0.45 < np.mean([p.dark_background for p in ps]) < 0.55
    for s in shapes.SHAPES:
        assert 0.28 < sum(p.shape == s for p in ps) / len(ps) < 0.39


def test_objects_inside_image():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = sample_params(rng)
        for s in (shapes.MIN_SIZE, SIZE):
            m = object_mask(p, s)
            assert m.sum() > 0.04 * s * s
            edge = np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]])
            assert edge.max() == 0


def test_test_split(ds):
    out, summary = ds
    test = (out / "test_files.txt").read_text().split()
    part = dict(ln.split() for ln in (out / "list_eval_partition.txt").read_text().splitlines())
    assert sorted(f for f, v in part.items() if v == "2") == sorted(test)
    assert set(part.values()) == {"0", "2"}
    assert len(test) == summary["n_test"] and 4 <= len(test) <= 12
    params = load_params(out)
    for c in COLOURS:  # stratified: every colour is tested
        assert any(params[f].colour == c for f in test)


def test_determinism(tmp_path):
    a = make_dataset(tmp_path / "a", n=N, size=SIZE, seed=5, cyclegan_views=[(COLOURS[1], COLOURS[3])])
    b = make_dataset(tmp_path / "b", n=N, size=SIZE, seed=5, cyclegan_views=[(COLOURS[1], COLOURS[3])])
    c = make_dataset(tmp_path / "c", n=N, size=SIZE, seed=6)
    ta, tb, tc = (_tree_bytes(tmp_path / x) for x in "abc")
    assert ta == tb
    assert a["n_test"] == b["n_test"]
    assert (tmp_path / "a" / "images" / "000001.png").read_bytes() != tc["images/000001.png"]
    assert ta["list_attr_celeba.txt"] != tc["list_attr_celeba.txt"]
    assert c["seconds"] >= 0


def _check_diff_region(src: ShapesParams, attr: str, before: np.ndarray, after: np.ndarray) -> None:
    cov = object_mask(src, SIZE)
    changed = np.any(before != after, axis=-1)
    if attr == shapes.DARK_BACKGROUND:
        allowed, target = cov < 1, cov == 0
    else:
        allowed, target = cov > 0, cov == 1
    # Antialiased border pixels (0 < coverage < 1) may change either way; nothing outside `allowed` may.
    assert not np.any(changed & ~allowed), attr
    if attr == shapes.STRIPED:
        stripes = shapes.stripe_mask(src, SIZE) == 1
        target = target & stripes
    assert changed[target].mean() > 0.95, attr
    # The change is large: colours/backgrounds move by tens of levels, not noise.
    delta = np.abs(before.astype(int) - after.astype(int)).max(axis=-1)
    assert np.median(delta[target]) > 40, attr


def test_counterfactuals_change_only_their_region(ds):
    out, summary = ds
    cf = load_counterfactuals(out)
    params = load_params(out)
    assert cf["attrs"] == SHAPES_ATTRS
    test = (out / "test_files.txt").read_text().split()
    assert sorted(cf["items"]) == sorted(Path(f).stem for f in test)
    n = 0
    for item in cf["items"].values():
        src = params[item["source"].name]
        assert item["label"] == params_label(src)
        assert src.colour not in item["targets"]
        assert sorted(item["targets"]) == sorted(a for a in SHAPES_ATTRS if a != src.colour)
        before = _img(item["source"])
        for attr, t in item["targets"].items():
            after = _img(t["path"])
            q = change_attribute(src, attr)
            assert t["label"] == params_label(q)
            # exactly one attribute differs (a colour change moves the 1 within the group)
            diff = [a for a, x, y in zip(SHAPES_ATTRS, item["label"], t["label"]) if x != y]
            assert set(diff) == ({src.colour, attr} if attr in COLOURS else {attr})
            np.testing.assert_array_equal(after, render(q, SIZE))
            _check_diff_region(src, attr, before, after)
            n += 1
    assert n == summary["n_counterfactuals"] == 5 * len(cf["items"])


def test_counterfactual_regions_all_shapes():
    rng = np.random.default_rng(7)
    seen = set()
    for _ in range(40):
        p = sample_params(rng)
        seen.add(p.shape)
        before = render(p, SIZE)
        for attr in SHAPES_ATTRS:
            if attr != p.colour:
                _check_diff_region(p, attr, before, render(change_attribute(p, attr), SIZE))
    assert seen == set(shapes.SHAPES)


def test_change_attribute_errors():
    p = sample_params(np.random.default_rng(0))
    with pytest.raises(ValueError):
        change_attribute(p, p.colour)
    with pytest.raises(ValueError):
        change_attribute(p, "Purple")
    with pytest.raises(ValueError):
        ShapesParams.from_dict({**p.__dict__, "colour": "Purple"})


def _view_counts(out: Path, a: str, b: str) -> None:
    _, rows = _parse_attr_file(out / "list_attr_celeba.txt")
    test = set((out / "test_files.txt").read_text().split())
    root = out / "cyclegan" / f"{a}2{b}"
    assert sorted(p.name for p in root.iterdir()) == ["testA", "testB", "trainA", "trainB"]
    for side, attr in (("A", a), ("B", b)):
        j = SHAPES_ATTRS.index(attr)
        for split, in_test in (("train", False), ("test", True)):
            d = root / f"{split}{side}"
            want = sorted(f for f, lab in rows.items() if lab[j] and (f in test) == in_test)
            got = sorted(p.name for p in d.iterdir())
            assert got == want and got, (split, side)
            for f in got:
                assert not (d / f).is_symlink()
                assert (d / f).read_bytes() == (out / "images" / f).read_bytes()


def test_cyclegan_views(ds):
    out, summary = ds
    a, b = COLOURS[0], COLOURS[2]
    _view_counts(out, a, b)
    v = summary["cyclegan_views"][f"{a}2{b}"]
    assert v["trainA"] + v["testA"] == summary["colour_counts"][a]
    c, d = COLOURS[3], COLOURS[1]
    counts = write_cyclegan_view(out, c, d)
    _view_counts(out, c, d)
    assert counts["testA"] + counts["trainA"] == summary["colour_counts"][c]
    with pytest.raises(UserError, match="exclusive group"):
        write_cyclegan_view(out, COLOURS[0], BINARIES[0])
    with pytest.raises(UserError, match="differ"):
        write_cyclegan_view(out, COLOURS[0], COLOURS[0])


def test_cyclegan_view_copies_when_links_fail(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    make_dataset(out, n=20, size=16, seed=0)

    def no_link(*args, **kwargs):
        raise OSError("cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    write_cyclegan_view(out, COLOURS[0], COLOURS[1])
    _view_counts(out, COLOURS[0], COLOURS[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 9}, "n: "),
        ({"n": 10.5}, "n: "),
        ({"size": 15}, "size: "),
        ({"size": True}, "size: "),
        ({"seed": -1}, "seed: "),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"cyclegan_views": [(COLOURS[0], BINARIES[1])]}, "exclusive group"),
        ({"cyclegan_views": [(COLOURS[0], "Purple")]}, "exclusive group"),
        ({"cyclegan_views": [COLOURS[0]]}, "pair"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    out = tmp_path / "ds"
    with pytest.raises(UserError, match=match):
        make_dataset(out, **{"n": 20, "size": 16, **kwargs})
    assert not out.exists()  # validated before anything is written


def test_refuses_foreign_folder_and_file(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a shapes dataset"):
        make_dataset(foreign, n=20, size=16)
    assert sorted(p.name for p in foreign.iterdir()) == ["precious.txt"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="file"):
        make_dataset(tmp_path / "afile", n=20, size=16)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert make_dataset(empty, n=20, size=16)["n"] == 20


def test_regenerates_previous_dataset(tmp_path):
    out = tmp_path / "ds"
    make_dataset(out, n=40, size=16, seed=1, cyclegan_views=[(COLOURS[0], COLOURS[1])])
    (out / "notes.txt").write_text("mine")
    make_dataset(out, n=20, size=16, seed=2)
    assert len(list((out / "images").iterdir())) == 20  # stale images from the larger run are gone
    assert not (out / "cyclegan").exists()
    assert (out / "notes.txt").read_text() == "mine"  # entries it does not own are left alone
    fresh = tmp_path / "fresh"
    make_dataset(fresh, n=20, size=16, seed=2)
    assert {k: v for k, v in _tree_bytes(out).items() if k != "notes.txt"} == _tree_bytes(fresh)


def test_interrupted_dataset_is_marked_incomplete(tmp_path):
    out = tmp_path / "ds"
    make_dataset(out, n=20, size=16)
    meta = json.loads((out / "attributes.json").read_text())
    assert meta["complete"] is True
    meta["complete"] = False
    (out / "attributes.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="incomplete"):
        load_counterfactuals(out)
    make_dataset(out, n=20, size=16)  # a half-written dataset may be regenerated
    assert load_schema(out)["attrs"] == SHAPES_ATTRS


def test_loaders_reject_non_datasets(tmp_path):
    for fn in (load_counterfactuals, load_params, load_schema):
        with pytest.raises(UserError, match="not a shapes dataset"):
            fn(tmp_path)
    with pytest.raises(UserError, match="not a shapes dataset"):
        write_cyclegan_view(tmp_path, COLOURS[0], COLOURS[1])


def test_render_sizes_and_purity():
    p = sample_params(np.random.default_rng(11))
    for s in (16, 32, 64, 97):
        img = render(p, s)
        assert img.shape == (s, s, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(img, render(p, s))
