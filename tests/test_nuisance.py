"""Issue 11, "measure what must stay": `evaluate` reports whether translations keep the nuisance factors of the
shapes dataset (shape, position, size), read by the attribute classifier.

A stub classifier stands in for a trained one: a deterministic function of the pixels (the object is where the
colour channels differ; its centroid gives Left/Top, its area Large, its farthest pixel over its area the shape),
so generators that move or redraw the object are caught by an honest reading, not by a lookup of known images."""
import json
import logging
import math
import shutil

import numpy as np
import pytest
import torch
from test_evaluate import _CounterfactualOracle, _Identity, _replace_g, _tiny_checkpoint, invoke

import stargan.evaluation.evaluate as evaluate_module
from common.data.celeba_attrs import attr_file_text, read_attr_file
from common.data.shapes import (
    NUISANCE_ATTRS,
    SHAPES_ATTRS,
    ShapesParams,
    load_counterfactuals,
    load_nuisance,
    load_params,
    render,
    write_cyclegan_view,
)
from common.labels.schema import LabelSchema
from common.metrics import AttributeClassifier, save_classifier
from stargan.cli.eval_commands import evaluate as evaluate_cmd
from stargan.evaluation.evaluate import evaluate
from stargan.evaluation.table import format_table

NAMES = SHAPES_ATTRS + NUISANCE_ATTRS
GROUPS = [("exclusive", 0, 4), ("binary", 4, 5), ("binary", 5, 6), ("exclusive", 6, 9), ("binary", 9, 10),
          ("binary", 10, 11), ("binary", 11, 12)]
KEPT = ("Shape", "Left", "Top", "Large")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained tiny StarGAN on the shapes attributes, in a run folder; evaluated with --data."""
    return _tiny_checkpoint(tmp_path_factory.mktemp("run") / "checkpoints" / "latest.pt",
                            image_dir="shapes/images", attr_path="shapes/list_attr_celeba.txt",
                            partition_path="shapes/list_eval_partition.txt")


@pytest.fixture(autouse=True)
def no_fid_weights(monkeypatch, tmp_path):
    monkeypatch.delenv("STARGAN_FID_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


class _PixelReader(torch.nn.Module):
    """Reads the nuisance attributes of a shapes image from its pixels (logits +-1; the model's attributes 0)."""

    image_size = 32
    groups = GROUPS

    def forward(self, images):
        out = torch.zeros(images.shape[0], len(NAMES))
        for i, image in enumerate(images):
            levels = (image.float() + 1) * 127.5
            ys, xs = torch.nonzero(levels.amax(0) - levels.amin(0) > 40, as_tuple=True)
            if len(xs) == 0:
                out[i, 6:] = -1
                continue
            x, y = xs.double() + 0.5, ys.double() + 0.5
            cx, cy, area = x.mean(), y.mean(), len(xs)
            # Farthest pixel over the equal-area radius: circle ~1.08, square ~1.27, triangle ~1.53.
            ratio = (float(torch.hypot(x - cx, y - cy).max()) + 0.5) / math.sqrt(area / math.pi)
            shape = 0 if ratio < 1.15 else (1 if ratio < 1.35 else 2)
            # A triangle of the same circumradius reach covers less: the dataset's triangle is ~0.75 of the circle.
            radius = math.sqrt(area / (math.pi * (0.754 if shape == 2 else 1.0))) / image.shape[-1]
            out[i, 6:9] = -1
            out[i, 6 + shape] = 1
            size = image.shape[-1]
            out[i, 9:] = torch.tensor([cx < size / 2, cy < size / 2, radius >= 0.205]).float() * 2 - 1
        return out


@pytest.fixture
def stub_classifier(tmp_path, monkeypatch):
    """A classifier file knowing every attribute; loading it gives the pixel reader."""
    path = tmp_path / "clf.pt"
    save_classifier(path, AttributeClassifier(len(NAMES), 32, width=8, groups=GROUPS, attribute_names=NAMES))
    meta = {"attribute_names": NAMES, "groups": GROUPS, "test_accuracy": None}
    monkeypatch.setattr(evaluate_module, "load_classifier", lambda p, device: (_PixelReader(), meta))
    return path


def _evaluate(checkpoint, data, classifier, tmp_path, name):
    return evaluate(checkpoint, data, out_dir=tmp_path / name, classifier=classifier, device="cpu", batch_size=4,
                    progress=False)


def _acc(block, group):
    return block[group]["accuracy"], block[group]["n"]


class _Mirror(torch.nn.Module):
    def forward(self, x, c):
        return x.flip(-1)


class _FixedCircle(torch.nn.Module):
    """Every translation is the same big circle in the lower right."""

    def __init__(self):
        super().__init__()
        scene = ShapesParams(colour="Red", striped=False, dark_background=False, shape="circle", cx=0.7, cy=0.7,
                             radius=0.24, rotation=0.0, stripe_phase=0.0, gradient_angle=0.0, noise_seed=1)
        self.image = torch.from_numpy(render(scene, 32)).permute(2, 0, 1).float() / 127.5 - 1

    def forward(self, x, c):
        return self.image.expand_as(x).clone()


def test_identity_and_oracle_keep_what_the_classifier_reads_on_real_images(shapes, checkpoint, stub_classifier,
                                                                           tmp_path, monkeypatch):
    _replace_g(monkeypatch, _Identity())
    m = _evaluate(checkpoint, shapes, stub_classifier, tmp_path, "identity")
    nuisance = m["nuisance"]
    assert m["skipped"]["nuisance"] is None and nuisance["attributes"] == NUISANCE_ATTRS
    assert list(nuisance["groups"]) == list(KEPT) and nuisance["groups"]["Shape"] == ["Circle", "Square", "Triangle"]
    n_test = m["counts"]["test_images"]
    real = nuisance["real"]
    assert all(real[g]["n"] == n_test for g in KEPT)
    assert real["Shape"]["accuracy"] == 1.0 and real["Left"]["accuracy"] == 1.0  # the stub reads these well
    # Doing nothing keeps whatever the classifier reads: for the binary targets (every test image counts) the
    # figures equal the real-image ones exactly; a colour target leaves out the images already of that colour.
    for target in ("Striped", "Dark_Background"):
        assert nuisance["per_target"][target] == real, target
    for colour in SHAPES_ATTRS[:4]:
        own = sum(e["label"][SHAPES_ATTRS.index(colour)] for e in load_counterfactuals(shapes)["items"].values())
        assert nuisance["per_target"][colour]["Shape"]["n"] == n_test - own
    assert nuisance["overall"]["Shape"]["n"] == m["target_accuracy"]["overall"]["n"] == 5 * n_test
    table = format_table(m)
    assert "Shape kept" in table and "kept, not conditioned on" in table
    assert max(len(line) for line in table.splitlines()) <= 120, table

    # The true counterfactual changes colour, stripes or background, never shape, place or size: kept at the
    # real-image rate, up to the odd object on a threshold (one test object lies 0.02 px left of the middle, and
    # adding stripes moves its rim pixels).
    items = load_counterfactuals(shapes)["items"]
    _replace_g(monkeypatch, _CounterfactualOracle(items))
    m = _evaluate(checkpoint, shapes, stub_classifier, tmp_path, "oracle")
    assert m["nuisance"]["real"] == real
    for g in KEPT:
        kept = m["nuisance"]["overall"][g]
        assert kept["n"] == 5 * n_test and abs(kept["accuracy"] - real[g]["accuracy"]) <= 0.1, (g, kept)


def test_a_mirror_loses_left_and_a_fixed_circle_loses_the_shape(shapes, checkpoint, stub_classifier, tmp_path,
                                                                monkeypatch):
    _replace_g(monkeypatch, _Mirror())
    m = _evaluate(checkpoint, shapes, stub_classifier, tmp_path, "mirror")
    nuisance = m["nuisance"]
    real, striped = nuisance["real"], nuisance["per_target"]["Striped"]
    assert _acc(striped, "Left") == (0.0, real["Left"]["n"])  # every object changes sides
    # A mirror image keeps the height, the shape and the size.
    for g in ("Top", "Shape", "Large"):
        assert striped[g] == real[g], g
    assert nuisance["overall"]["Left"]["accuracy"] == 0.0

    _replace_g(monkeypatch, _FixedCircle())
    assert _PixelReader()(_FixedCircle().image[None])[0, 6:].tolist() == [1, -1, -1, -1, -1, 1]
    m = _evaluate(checkpoint, shapes, stub_classifier, tmp_path, "circle")
    test_files = (shapes / "test_files.txt").read_text().split()
    scenes = load_params(shapes)
    circles = sum(scenes[f].shape == "circle" for f in test_files) / len(test_files)
    right = sum(scenes[f].cx >= 0.5 for f in test_files) / len(test_files)
    striped = m["nuisance"]["per_target"]["Striped"]
    assert striped["Shape"]["accuracy"] == pytest.approx(circles) and circles < 0.7
    assert striped["Left"]["accuracy"] == pytest.approx(right)
    assert "Shape kept" in format_table(m)


def _old_format(shapes, tmp_path):
    """The shapes folder as make-dataset wrote it before the nuisance attributes existed (format version 1)."""
    old = tmp_path / "old"
    shutil.copytree(shapes, old, symlinks=True)
    meta = json.loads((old / "attributes.json").read_text())
    meta = {k: v for k, v in meta.items() if not k.startswith("nuisance")} | {"version": 1}
    (old / "attributes.json").write_text(json.dumps(meta))
    table = read_attr_file(old / "list_attr_celeba.txt", SHAPES_ATTRS)
    (old / "list_attr_celeba.txt").write_text(attr_file_text(SHAPES_ATTRS, table.files, table.labels))
    return old


def test_an_old_dataset_without_nuisance_still_evaluates(shapes, checkpoint, stub_classifier, tmp_path, monkeypatch,
                                                         caplog):
    old = _old_format(shapes, tmp_path)
    assert load_nuisance(old) is None and read_attr_file(old / "list_attr_celeba.txt").names == SHAPES_ATTRS
    assert write_cyclegan_view(old, "Red", "Blue")["testA"] > 0
    _replace_g(monkeypatch, _Identity())
    with caplog.at_level(logging.INFO, logger="stargan.evaluation.evaluate"):
        m = _evaluate(checkpoint, old, stub_classifier, tmp_path, "old")
    assert m["nuisance"] is None and "declares no nuisance attributes" in m["skipped"]["nuisance"]
    assert sum("nuisance preservation skipped" in r.getMessage() for r in caplog.records) == 1
    assert m["target_accuracy"]["overall"]["n"] == 5 * m["counts"]["test_images"]  # the rest is measured
    assert "Shape kept" not in format_table(m) and "nuisance: skipped" in format_table(m)


def test_evaluate_cli_reports_nuisance_with_a_saved_classifier(tmp_path, shapes, checkpoint):
    """Through the CLI, an untrained classifier file: the figures are meaningless, the layout and counts are not."""
    clf = tmp_path / "clf.pt"
    save_classifier(clf, AttributeClassifier(len(NAMES), 32, width=8, groups=GROUPS, attribute_names=NAMES))
    r = invoke(evaluate_cmd, ["--checkpoint", checkpoint, "--data", shapes, "--classifier", clf, "--out",
                              tmp_path / "e", "--max-images", 3, "--device", "cpu"])
    assert "Shape kept" in r.output and "kept, not conditioned on" in r.output
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["nuisance"]["real"]["Left"]["n"] == 3 and m["nuisance"]["overall"]["Left"]["n"] == 15
    assert m["nuisance"]["per_target"]["Striped"]["Shape"]["n"] == 3

    # A classifier trained on the model's attributes only: one line says why nuisance is skipped.
    small = tmp_path / "small.pt"
    save_classifier(small, AttributeClassifier(6, 32, width=8, groups=GROUPS[:3], attribute_names=SHAPES_ATTRS))
    r = invoke(evaluate_cmd, ["--checkpoint", checkpoint, "--data", shapes, "--classifier", small, "--out",
                              tmp_path / "e2", "--max-images", 2, "--device", "cpu"])
    assert r.output.count("nuisance preservation skipped: the classifier does not know Circle") == 1
    assert json.loads((tmp_path / "e2" / "metrics.json").read_text())["nuisance"] is None


def test_nuisance_schema_is_the_datasets(shapes):
    declared = load_nuisance(shapes)
    schema = LabelSchema.from_attrs(declared["attrs"], declared["exclusive"])
    assert [g.name for g in schema.groups] == list(KEPT)
    labels = read_attr_file(shapes / "list_attr_celeba.txt", NUISANCE_ATTRS).labels
    assert (labels[:, :3].sum(axis=1) == 1).all()  # one shape per image
    assert np.isin(labels[:, 3:], [0, 1]).all()
