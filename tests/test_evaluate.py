"""`stargan evaluate` / `train-classifier` / `make-dataset`, and the metric core with stub generators."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import stargan.family
from common.checkpoint import atomic_save, new_checkpoint
from common.config import from_dict, load_config, to_dict
from common.data.shapes import NUISANCE_ATTRS, SHAPES_ATTRS, SHAPES_EXCLUSIVE, load_counterfactuals
from common.errors import UserError
from common.labels.schema import LabelSchema
from common.labels.space import LabelSpace
from common.labels.targets import single_changes
from common.metrics import AttributeClassifier, save_classifier
from common.metrics.image_error import changed_region
from stargan.cli.eval_commands import evaluate as evaluate_cmd
from stargan.cli.eval_commands import make_dataset as make_dataset_cmd
from stargan.cli.eval_commands import train_classifier as train_classifier_cmd
from stargan.config import StarGANConfig
from stargan.datasets import CelebADataset, load_test_image
from stargan.evaluation.evaluate import evaluate, evaluate_generator, format_table
from stargan.evaluation.split import load_test_split
from stargan.families import CYCLEGAN, config_classes
from stargan.model import build_networks

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COLOURS = SHAPES_EXCLUSIVE[0]
SCHEMA = LabelSchema.from_attrs(SHAPES_ATTRS, SHAPES_EXCLUSIVE, "bce")
METRIC_KEYS = {"checkpoint", "data_dir", "dataset", "attributes", "schema", "image_size", "crop_size", "split",
               "classifier", "fid_weights", "counts", "target_accuracy", "preserve_accuracy", "real_accuracy",
               "counterfactual", "cycle_reconstruction", "fid", "nuisance", "skipped", "outputs", "seconds"}


def invoke(cmd, args, code=0):
    result = CliRunner().invoke(cmd, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def _tiny_checkpoint(path, network=None, **entry):
    """An untrained tiny StarGAN on the shapes attributes; ``entry`` sets keys of its dataset entry, ``network``
    of its network config."""
    cfg = from_dict(StarGANConfig, {
        "name": "tiny",
        "data": {"image_size": 32, "datasets": [{
            "name": "shapes", "format": "celeba", "selected_attrs": SHAPES_ATTRS,
            "exclusive": SHAPES_EXCLUSIVE, "crop_size": None, **entry}]},
        "network": {"g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1, "d_repeat_num": 3, **(network or {})},
    })
    labels = LabelSpace(["shapes"], [SCHEMA])
    torch.manual_seed(0)
    nets = build_networks(cfg.network, 32, labels)
    ckpt = new_checkpoint("stargan", to_dict(cfg), {k: n.state_dict() for k, n in nets.items()},
                          kind="inference", extra={"labels": labels.to_dict()})
    atomic_save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained tiny StarGAN in a run folder layout (RUN/checkpoints/latest.pt), trained (as its config says)
    on a shapes folder with its list_eval_partition.txt; tests move that folder with --data."""
    return _tiny_checkpoint(tmp_path_factory.mktemp("run") / "checkpoints" / "latest.pt",
                            image_dir="shapes/images", attr_path="shapes/list_attr_celeba.txt",
                            partition_path="shapes/list_eval_partition.txt")


@pytest.fixture
def no_fid_weights(monkeypatch, tmp_path):
    monkeypatch.delenv("STARGAN_FID_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


# -------------------------------------------------------------------------------------- the metric core
def _coded_batches(labels, size=4, batch=3):
    """Images that carry their labels in pixel row 0 (+1 set, -1 unset), so :func:`_reader` classifies them
    perfectly: identity translations then have exactly predictable accuracies."""
    images = torch.zeros(labels.shape[0], 3, size, SCHEMA.dim)
    images[:, 0, 0, :] = labels * 2 - 1
    stems = [f"img{i}" for i in range(labels.shape[0])]
    return images, [(images[i:i + batch], labels[i:i + batch], stems[i:i + batch])
                    for i in range(0, labels.shape[0], batch)]


def _reader(images):
    return images[:, 0, 0, :]


def _labels(colours, striped, dark):
    rows = []
    for c, s, d in zip(colours, striped, dark):
        rows.append([float(c == k) for k in range(len(COLOURS))] + [float(s), float(d)])
    return torch.tensor(rows)


def test_identity_generator_metrics_are_exact():
    labels = _labels([0, 1, 2, 3, 0, 1, 2], [0, 1, 0, 1, 1, 0, 0], [1, 1, 0, 0, 0, 1, 0])
    images, batches = _coded_batches(labels)
    # Ground truth for every (image, attribute) except the own colour, as in the shapes dataset.
    cf = {}
    for i in range(len(labels)):
        own = COLOURS[int(labels[i, :4].argmax())]
        cf[f"img{i}"] = {a: torch.rand(3, 4, SCHEMA.dim) * 2 - 1 for a in SHAPES_ATTRS if a != own}
    result = evaluate_generator(lambda x, t: x.clone(), batches, SCHEMA, classify=_reader, counterfactuals=cf,
                                sample_rows=5)
    m = result.metrics
    n = len(labels)
    assert m["counts"] == {"test_images": n, "targets_per_image": 6, "translations": 6 * n,
                           "counterfactual_pairs": 5 * n}
    ta = m["target_accuracy"]["per_attribute"]
    # Doing nothing achieves no change. Only real changes count: a colour target is left out for the
    # images that already have that colour (it asks for nothing).
    assert ta["Striped"] == {"accuracy": 0.0, "n": n} and ta["Dark_Background"] == {"accuracy": 0.0, "n": n}
    for k, colour in enumerate(COLOURS):
        assert ta[colour] == {"accuracy": 0.0, "n": n - int((labels[:, k] == 1).sum())}
    assert m["target_accuracy"]["overall"]["n"] == 5 * n
    # Doing nothing preserves everything: 2 untouched groups per colour target, 2 per binary target.
    assert m["preserve_accuracy"]["overall"] == {"accuracy": 1.0, "n": 6 * n * 2}
    assert m["real_accuracy"]["overall"] == {"accuracy": 1.0, "n": 3 * n}
    assert m["real_accuracy"]["per_attribute"]["Red"]["n"] == 2
    for a, row in m["counterfactual"]["per_attribute"].items():
        assert row["l1"] == pytest.approx(row["baseline_l1"], abs=0) and row["psnr"] == row["baseline_psnr"]
        assert row["n"] == sum(a in cf[s] for s in cf)
    assert m["cycle_reconstruction"]["overall"] == {"l1": 0.0, "n": 6 * n}
    assert m["fid"] is None
    grid = result.grids["samples"]
    assert grid.shape == (3, 5 * 4, 7 * SCHEMA.dim)
    assert torch.equal(grid[:, :4, :SCHEMA.dim], images[0])
    truth = result.grids["counterfactuals"]
    # Image 0 is red: its Red column is the input itself, its Blue column the given counterfactual.
    assert torch.equal(truth[:, :4, SCHEMA.dim:2 * SCHEMA.dim], images[0])
    assert torch.equal(truth[:, :4, 3 * SCHEMA.dim:4 * SCHEMA.dim], cf["img0"]["Blue"])
    table = format_table({**m, "attributes": SHAPES_ATTRS, "dataset": "toy", "split": "all", "image_size": 4})
    assert "n=7" in table and "overall" in table


def test_oracle_generator_hits_every_target_and_the_counterfactual():
    labels = _labels([0, 2, 3, 1], [1, 0, 0, 1], [0, 0, 1, 1])
    _, batches = _coded_batches(labels, batch=2)

    def oracle(x, target):
        y = x.clone()
        y[:, 0, 0, :] = target * 2 - 1
        return y

    cf: dict = {}
    for x, lab, stems in batches:
        for name, target in single_changes(SCHEMA, lab):
            for stem, y in zip(stems, oracle(x, target)):
                cf.setdefault(stem, {})[name] = y
    result = evaluate_generator(oracle, batches, SCHEMA, classify=_reader, counterfactuals=cf,
                                features=lambda im: im.flatten(1)[:, :8] + torch.randn(im.shape[0], 8))
    m = result.metrics
    assert m["target_accuracy"]["overall"] == {"accuracy": 1.0, "n": 20}  # 4 images x 5 real changes
    assert m["preserve_accuracy"]["overall"]["accuracy"] == 1.0
    assert m["counterfactual"]["overall"]["l1"] == 0.0 and m["counterfactual"]["overall"]["n"] == 24
    assert m["counterfactual"]["overall"]["baseline_l1"] > 0
    assert m["cycle_reconstruction"]["overall"]["l1"] == 0.0
    fid = m["fid"]
    assert fid["overall"]["n_real"] == 4 and fid["overall"]["n_fake"] == 24 and fid["overall"]["fid"] >= 0
    assert fid["overall"]["kid"] is not None and fid["per_attribute"]["Red"]["n_fake"] == 4


# -------------------------------------------------------------------------------------------- the CLI
def test_make_dataset_cli(tmp_path):
    out = tmp_path / "ds"
    r = invoke(make_dataset_cmd, ["shapes", "--out", out, "--n", 24, "--size", 16, "--cyclegan-view", "Red,Blue"])
    assert "24 images" in r.output and "counterfactuals:" in r.output
    assert (out / "list_attr_celeba.txt").is_file() and (out / "counterfactuals" / "index.json").is_file()
    assert (out / "cyclegan" / "Red2Blue" / "trainA").is_dir()
    for bad in (["circles", "--out", tmp_path / "x"], ["shapes", "--out", tmp_path / "y", "--n", 1],
                ["shapes", "--out", tmp_path / "z", "--cyclegan-view", "Red"],
                ["shapes", "--out", tmp_path / "w", "--cyclegan-view", "Red,Striped"]):
        r = invoke(make_dataset_cmd, bad, code=2)
        assert "Traceback" not in r.output


def test_train_classifier_cli(tmp_path, shapes):
    out = tmp_path / "clf.pt"
    r = invoke(train_classifier_cmd, ["--data", shapes, "--out", out, "--image-size", 32, "--epochs", 1,
                                      "--batch-size", 16, "--width", 8, "--device", "cpu"])
    assert "test accuracy:" in r.output and "Striped:" in r.output and "(n=" in r.output and "Left:" in r.output
    from common.metrics import load_classifier

    # Without --attrs: the dataset's attributes and its nuisance ones (shape, position, size), for evaluate.
    model, meta = load_classifier(out)
    assert meta["attribute_names"] == SHAPES_ATTRS + NUISANCE_ATTRS and meta["image_size"] == 32
    assert meta["groups"][0] == ("exclusive", 0, 4) and meta["groups"][3] == ("exclusive", 6, 9)
    assert meta["test_accuracy"]["overall"]["n"] > 0
    invoke(train_classifier_cmd, ["--data", shapes, "--out", out, "--attrs", ",".join(SHAPES_ATTRS), "--epochs", 1,
                                  "--image-size", 16, "--width", 8, "--device", "cpu"])
    assert load_classifier(out)[1]["attribute_names"] == SHAPES_ATTRS
    invoke(train_classifier_cmd, ["--data", shapes, "--out", out, "--attrs", "Red,Nope"], code=2)
    invoke(train_classifier_cmd, ["--data", tmp_path / "missing", "--out", out], code=2)


def test_evaluate_cli_end_to_end(tmp_path, shapes, checkpoint, no_fid_weights):
    clf = AttributeClassifier(SCHEMA.dim, 32, width=8, groups=[("exclusive", 0, 4), ("binary", 4, 6)],
                              attribute_names=SHAPES_ATTRS)
    save_classifier(tmp_path / "clf.pt", clf)
    r = invoke(evaluate_cmd, ["--checkpoint", checkpoint, "--data", shapes, "--classifier", tmp_path / "clf.pt",
                              "--batch-size", 2, "--max-images", 3, "--device", "cpu"])
    assert r.output.count("FID/KID skipped") == 1 and "overall" in r.output
    out = checkpoint.parent.parent / "eval"  # RUN/checkpoints/latest.pt -> RUN/eval
    m = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(m)
    assert m["counts"]["test_images"] == 3 and m["counts"]["translations"] == 18
    assert m["split"] == "list_eval_partition.txt"
    assert m["target_accuracy"]["overall"]["n"] == 15 and m["real_accuracy"]["overall"]["n"] == 9
    assert m["cycle_reconstruction"]["overall"]["n"] == 18 and m["fid"] is None
    cf = m["counterfactual"]
    assert cf["overall"]["n"] == 15 and cf["per_attribute"]["Striped"]["n"] == 3
    assert all(cf["overall"][k] is not None for k in ("l1", "psnr", "baseline_l1", "baseline_psnr"))
    assert Image.open(out / "samples.png").size == (7 * 32, 3 * 32)
    assert Image.open(out / "counterfactuals.png").size == (7 * 32, 3 * 32)

    # Without a classifier: one line says so, the rest still runs.
    r = invoke(evaluate_cmd, ["--checkpoint", checkpoint, "--data", shapes, "--out", tmp_path / "e2",
                              "--max-images", 2, "--device", "cpu"])
    assert "attribute accuracy skipped" in r.output
    assert json.loads((tmp_path / "e2" / "metrics.json").read_text())["target_accuracy"] is None


def _replace_g(monkeypatch, G):
    """Checkpoints load as usual, with ``G`` in place of their generator."""
    load = stargan.family.networks_from_checkpoint

    def loaded_with_g(ckpt, source):
        *rest, nets, labels = load(ckpt, source)
        return (*rest, {**nets, "G": G}, labels)

    monkeypatch.setattr(stargan.family, "networks_from_checkpoint", loaded_with_g)
    return G


class _CounterfactualOracle(torch.nn.Module):
    """Returns the ground-truth counterfactual PNG for a test image and a single change, read with PIL (not
    with the evaluation's loader): a perfect translator, to check that every translation is compared with the
    counterfactual of its own image and attribute."""

    def __init__(self, items):
        super().__init__()
        self.by_pixels = {}
        for e in items.values():
            key = load_test_image(e["source"], 32, None).numpy().tobytes()
            self.by_pixels[key] = (torch.tensor(e["label"], dtype=torch.float32), e["targets"])

    def forward(self, x, c):
        out = x.clone()
        for i in range(x.shape[0]):
            hit = self.by_pixels.get(x[i].numpy().tobytes())
            if hit is None:
                continue  # the cycle pass: a counterfactual going back
            label, targets = hit
            changed = [SHAPES_ATTRS[j] for j in range(len(label)) if c[i, j] != label[j]]
            attr = next((a for a in changed if label[SHAPES_ATTRS.index(a)] == 0 or a not in COLOURS), None)
            if attr is not None:
                arr = np.asarray(Image.open(targets[attr]["path"]).convert("RGB"), dtype=np.float32)
                out[i] = torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1
        return out


def test_evaluate_with_a_perfect_translator_matches_every_counterfactual(shapes, checkpoint, tmp_path,
                                                                         monkeypatch, no_fid_weights):
    items = load_counterfactuals(shapes)["items"]
    _replace_g(monkeypatch, _CounterfactualOracle(items))
    m = evaluate(checkpoint, shapes, out_dir=tmp_path / "e", device="cpu", batch_size=4, progress=False)
    cf = m["counterfactual"]["overall"]
    assert m["counts"]["test_images"] == len(items) and cf["n"] == sum(len(e["targets"]) for e in items.values())
    assert cf["l1"] == 0.0 and cf["psnr"] == 100.0 and cf["baseline_l1"] > 0.01
    assert cf["l1_ratio"] == 0.0 and cf["l1_changed"] == 0.0 and cf["l1_kept"] == 0.0
    for attr, row in m["counterfactual"]["per_attribute"].items():
        assert row["l1"] == 0.0 or row["n"] == 0, attr


class _MaskedOracle(_CounterfactualOracle):
    """The perfect translator with an attention mask that is open exactly where its output differs from the
    input (so on the cycle pass, which returns the input, it is closed everywhere)."""

    def __init__(self, items):
        super().__init__(items)
        self.attention = SimpleNamespace(last_mask=None)

    def forward(self, x, c):
        out = super().forward(x, c)
        self.attention.last_mask = changed_region(x, out).float()
        return out


def test_evaluate_reports_the_attention_mask_where_the_truth_changes_and_where_it_must_stay(
        shapes, checkpoint, tmp_path, monkeypatch, no_fid_weights):
    _replace_g(monkeypatch, _MaskedOracle(load_counterfactuals(shapes)["items"]))
    m = evaluate(checkpoint, shapes, out_dir=tmp_path / "e", device="cpu", batch_size=4, progress=False)
    rows = [row for row in m["counterfactual"]["per_attribute"].values() if row["n"]]
    assert rows
    for row in rows:  # the translation's mask, not the cycle pass's (closed everywhere)
        assert row["mask_changed"] == 1.0 and row["mask_kept"] == 0.0, row
    assert "mask changed / kept" in format_table(m)


def test_evaluate_cli_reports_an_attention_generators_mask(shapes, tmp_path, no_fid_weights):
    ckpt = _tiny_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt", network={"attention_mask": True},
                            image_dir="shapes/images", attr_path="shapes/list_attr_celeba.txt",
                            partition_path="shapes/list_eval_partition.txt")
    r = invoke(evaluate_cmd, ["--checkpoint", ckpt, "--data", shapes, "--max-images", 3, "--device", "cpu"])
    assert "mask changed / kept" in r.output
    cf = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())["counterfactual"]
    for row in [cf["overall"], *cf["per_attribute"].values()]:
        if row["n"]:
            assert 0 < row["mask_changed"] < 1 and 0 < row["mask_kept"] < 1, row  # an untrained G's mask


def test_evaluate_reports_no_mask_for_a_generator_without_one(shapes, checkpoint, tmp_path, no_fid_weights):
    m = evaluate(checkpoint, shapes, out_dir=tmp_path / "e", device="cpu", batch_size=4, progress=False)
    assert "mask_kept" not in m["counterfactual"]["overall"]
    assert "mask changed" not in format_table(m)


class _Identity(torch.nn.Module):
    def forward(self, x, c):
        return x.clone()


def test_evaluate_splits_the_error_into_the_region_to_change_and_the_region_to_keep(shapes, checkpoint, tmp_path,
                                                                                    monkeypatch, no_fid_weights):
    """Doing nothing: all of its error lies in the region the edit should change (where the truth differs from
    the input), none in the rest, and its ratio to the do-nothing baseline is exactly 1."""
    _replace_g(monkeypatch, _Identity())
    m = evaluate(checkpoint, shapes, out_dir=tmp_path / "e", device="cpu", batch_size=4, progress=False)
    two_levels = 2 * 2 / 255
    for attr, row in m["counterfactual"]["per_attribute"].items():
        if not row["n"]:
            continue
        assert row["l1_ratio"] == 1.0, attr
        assert row["l1_kept"] <= two_levels, (attr, row)  # the truth equals the input there, up to rounding
        # The changed region is part of the image, so its mean error is larger than the whole image's.
        assert row["l1_changed"] > row["l1"] > 0, (attr, row)
        assert row.get("l1_changed_n", row["n"]) == row["n"], (attr, row)  # every real edit changes pixels
    table = format_table({**m, "attributes": m["attributes"]})
    assert "x1.00" in table and "kept" in table


def test_evaluate_user_errors(tmp_path, shapes, checkpoint, no_fid_weights):
    r = invoke(evaluate_cmd, ["--checkpoint", checkpoint, "--data", tmp_path / "nope"], code=2)
    assert r.output.strip().count("\n") == 0 and "nope" in r.output
    other = AttributeClassifier(2, 32, width=8, attribute_names=["Smiling", "Male"])
    save_classifier(tmp_path / "other.pt", other)
    r = invoke(evaluate_cmd, ["--checkpoint", checkpoint, "--data", shapes, "--classifier", tmp_path / "other.pt",
                              "--device", "cpu"], code=2)
    assert r.output.strip().count("\n") == 0 and "Smiling" in r.output
    # A folder without one of the model's attributes names the attribute and the file.
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "list_attr_celeba.txt").write_text("1\nRed Green\n000001.png 1 -1\n")
    r = invoke(evaluate_cmd, ["--checkpoint", checkpoint, "--data", bad, "--device", "cpu"], code=2)
    assert "Blue" in r.output and "list_attr_celeba.txt" in r.output
    r = invoke(evaluate_cmd, ["--checkpoint", checkpoint, "--data", shapes, "--dataset", "celeba"], code=2)
    assert "shapes" in r.output


# ------------------------------------------------------------------------------------- the trainer's split
class _Recorder(torch.nn.Module):
    """An identity G that keeps every image it is given (the cycle pass gives it the same images again)."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def forward(self, x, c):
        self.seen.update(image.numpy().tobytes() for image in x)
        return x.clone()


def _record_inputs(monkeypatch):
    return _replace_g(monkeypatch, _Recorder())


def _pixels(files):
    return {load_test_image(f, 32, None).numpy().tobytes() for f in files}


@pytest.fixture
def data_copy(tmp_path, shapes):
    """The shapes folder (images linked) with its own list_eval_partition.txt, which none of these trainers used."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "images").symlink_to(shapes / "images")
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        (data / name).write_text((shapes / name).read_text())
    return data


def test_evaluate_scores_exactly_the_partition_the_trainer_held_out(tmp_path, shapes, data_copy, monkeypatch,
                                                                   no_fid_weights):
    files = sorted((shapes / "images").iterdir())
    own_test = {line.split()[0] for line in (shapes / "list_eval_partition.txt").read_text().splitlines()
                if line.split()[1] == "2"}
    chosen = [f.name for f in files if f.name not in own_test][:5]
    (data_copy / "my_partition.txt").write_text("".join(f"{f.name} {2 if f.name in chosen else 0}\n" for f in files))
    recorder = _record_inputs(monkeypatch)
    expected = _pixels(data_copy / "images" / name for name in chosen)

    # Trained here: the config's own paths.
    here = _tiny_checkpoint(tmp_path / "here.pt", image_dir=str(data_copy / "images"),
                            attr_path=str(data_copy / "list_attr_celeba.txt"),
                            partition_path=str(data_copy / "my_partition.txt"))
    m = evaluate(here, out_dir=tmp_path / "e1", device="cpu", batch_size=4, progress=False)
    assert m["split"] == "my_partition.txt" and m["counts"]["test_images"] == 5
    assert m["data_dir"] == str(data_copy)
    assert recorder.seen == expected

    # Trained elsewhere: --data takes the place of the folder that held the entry's files.
    recorder.seen.clear()
    moved = _tiny_checkpoint(tmp_path / "moved.pt", image_dir="/gone/celeba/images",
                             attr_path="/gone/celeba/list_attr_celeba.txt",
                             partition_path="/gone/celeba/my_partition.txt")
    m = evaluate(moved, data_copy, out_dir=tmp_path / "e2", device="cpu", batch_size=4, progress=False)
    assert m["split"] == "my_partition.txt" and m["counts"]["test_images"] == 5
    assert recorder.seen == expected


def test_evaluate_uses_the_trainers_seeded_split(tmp_path, data_copy, monkeypatch, no_fid_weights):
    """An entry without partition_path was split by test_count/split_seed, whatever files the folder also has."""
    recorder = _record_inputs(monkeypatch)
    ckpt = _tiny_checkpoint(tmp_path / "seeded.pt", test_count=6, split_seed=7)
    m = evaluate(ckpt, data_copy, out_dir=tmp_path / "e", device="cpu", batch_size=4, progress=False)
    held_out = CelebADataset(data_copy / "images", data_copy / "list_attr_celeba.txt", SHAPES_ATTRS, mode="test",
                             test_count=6, split_seed=7)
    assert m["split"] == "seeded split (test_count=6, split_seed=7)" and m["counts"]["test_images"] == 6
    assert recorder.seen == _pixels(held_out.files)


def test_evaluate_refuses_a_model_without_target_labels(tmp_path):
    ckpt = new_checkpoint(CYCLEGAN.name, to_dict(CYCLEGAN.config_class()), {}, kind="inference")
    atomic_save(ckpt, tmp_path / "cg.pt")
    r = invoke(evaluate_cmd, ["--checkpoint", tmp_path / "cg.pt", "--device", "cpu"], code=2)
    assert r.output.strip().count("\n") == 0 and "cg.pt" in r.output and CYCLEGAN.title in r.output


def _partition_test_names(data):
    return [line.split()[0] for line in (data / "list_eval_partition.txt").read_text().splitlines()
            if line.split()[1] == "2"]


def test_evaluate_needs_only_the_test_images(tmp_path, shapes, checkpoint, monkeypatch, no_fid_weights):
    """The test split's images are all evaluation reads: a folder without the training images evaluates."""
    data = tmp_path / "only_test"
    (data / "images").mkdir(parents=True)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        (data / name).write_text((shapes / name).read_text())
    test_names = _partition_test_names(shapes)
    for name in test_names:
        (data / "images" / name).symlink_to(shapes / "images" / name)
    assert len(test_names) < len(list((shapes / "images").iterdir()))
    recorder = _record_inputs(monkeypatch)
    m = evaluate(checkpoint, data, out_dir=tmp_path / "e", device="cpu", batch_size=4, progress=False)
    assert m["counts"]["test_images"] == len(test_names)
    assert recorder.seen == _pixels(shapes / "images" / name for name in test_names)
    # A missing test image is a one-line error naming it.
    (data / "images" / test_names[-1]).unlink()
    r = invoke(evaluate_cmd, ["--checkpoint", checkpoint, "--data", data, "--out", tmp_path / "e2", "--device",
                              "cpu"], code=2)
    assert r.output.strip().count("\n") == 0 and f"{test_names[-1]}: image file not found" in r.output


def test_evaluate_refuses_an_entry_that_held_nothing_out_without_data(tmp_path, data_copy, monkeypatch,
                                                                      no_fid_weights):
    """test_count=0: the trainer used the whole folder, so without --data the "test split" would be the training
    images."""
    ckpt = _tiny_checkpoint(tmp_path / "all.pt", image_dir=str(data_copy / "images"),
                            attr_path=str(data_copy / "list_attr_celeba.txt"), test_count=0)
    r = invoke(evaluate_cmd, ["--checkpoint", ckpt, "--out", tmp_path / "e0", "--device", "cpu"], code=2)
    assert r.output.strip().count("\n") == 0
    assert "dataset 'shapes'" in r.output and "test_count=0" in r.output and "--data <folder" in r.output
    assert not (tmp_path / "e0").exists()
    # With --data the folder given is the test data, used whole (as before).
    recorder = _record_inputs(monkeypatch)
    m = evaluate(ckpt, data_copy, out_dir=tmp_path / "e", device="cpu", batch_size=8, progress=False)
    n_images = len(list((data_copy / "images").iterdir()))
    assert m["split"] == "the whole folder (test_count=0)" and m["counts"]["test_images"] == n_images
    assert recorder.seen == _pixels((data_copy / "images").iterdir())


def test_rafd_config_needs_data_for_its_test_folder(tmp_path):
    """configs/stargan/rafd.yaml trains on data/rafd/train with test_fraction 0: its test images live elsewhere."""
    cfg = load_config(CONFIGS / "stargan" / "rafd.yaml", [], config_classes())
    entry = cfg.data.datasets[0]
    assert entry.test_fraction == 0
    with pytest.raises(UserError, match=rf"^dataset '{entry.name}': .*\(test_fraction=0\); pass --data <folder "
                                        r"with the test images>$"):
        load_test_split(entry, cfg.data)
    test_dir = tmp_path / "rafd_test"
    for k, cls in enumerate(("angry", "happy")):
        (test_dir / cls).mkdir(parents=True)
        Image.new("RGB", (40, 40), (80 * k, 0, 0)).save(test_dir / cls / f"{cls}.png")
    split = load_test_split(entry, cfg.data, test_dir)
    assert len(split) == 2 and split.description == "the whole folder (test_fraction=0)"
    assert split.root == test_dir
