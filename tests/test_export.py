"""`stargan export`: safetensors folders that translate reads bit for bit like the checkpoint (no pickle), ONNX
files that onnxruntime runs like PyTorch, clear one-line errors for damaged exports, nothing overwritten."""
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_folder, shapes_overrides
from conftest import run_cli as run
from test_import_cli_stargan import _save_official

from common.checkpoint import load_checkpoint
from stargan.cli import cli
from stargan.families import FAMILIES, family_of_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _train(config: str, out: Path, *overrides: str) -> Path:
    args = [arg for kv in overrides for arg in ("--set", kv)]
    run(["train", ROOT / "configs" / config, *args, "--set", "run.stop_after_steps=2", "--out", out,
         "--device", "cpu"])
    return out / "00000-tiny"


@pytest.fixture(scope="module")
def stargan_run(tmp_path_factory, shapes) -> Path:
    """A tiny StarGAN training run (G and D, optimizers, RNG state in the checkpoint's extra section)."""
    return _train("stargan/tiny.yaml", tmp_path_factory.mktemp("stargan"), *shapes_overrides(shapes))


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unpaired")
    for seed, name in enumerate(("trainA", "trainB")):
        make_image_folder(root / name, 4, seed=seed)
    return _train("cyclegan/tiny.yaml", tmp_path_factory.mktemp("cyclegan"), f"data.root={root}")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Images of several sizes, including ones the generators must pad (not multiples of 4, below 8)."""
    root = tmp_path_factory.mktemp("inputs")
    for i, size in enumerate([(32, 32), (21, 13), (6, 5)]):
        make_image_folder(root / f"s{i}", 1, size=size, seed=10 + i)
    return root


def _error(args, *fragments: str) -> str:
    """Run a command that must fail as a user error: exit 2 and one line naming ``fragments``."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def _translate(checkpoint: Path, inputs: Path, out: Path, *flags: str) -> dict[str, bytes]:
    run(["translate", "--checkpoint", checkpoint, "--input", inputs, "--output", out, "--device", "cpu", *flags])
    written = _outputs(out)
    assert len(written) == 3
    return written


@pytest.fixture
def no_pickle(monkeypatch):
    """Make every unpickling path fail, to show that reading an export never unpickles."""
    def refuse(*args, **kwargs):
        raise AssertionError("an export must load without pickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)


def test_stargan_export_translates_bit_for_bit(tmp_path, stargan_run, inputs, request):
    plain, with_d = tmp_path / "g", tmp_path / "gd"
    result = run(["export", "--checkpoint", stargan_run, "--out", plain])
    assert "left out the classifier D" in result.output
    run(["export", "--checkpoint", stargan_run, "--out", with_d, "--with-classifier"])
    assert sorted(p.name for p in plain.iterdir()) == ["export.json", "generator.safetensors"]
    assert sorted(p.name for p in with_d.iterdir()) == ["classifier.safetensors", "export.json",
                                                        "generator.safetensors"]
    doc = json.loads((plain / "export.json").read_text())
    assert doc["model"] in FAMILIES and doc["weights"] == "safetensors" and list(doc["nets"]) == ["G"]
    assert doc["config"]["network"]["g_conv_dim"] == 8 and doc["image"]["multiple"] == 4
    assert "target_rng" not in doc["extra"] and doc["extra"]["labels"]["datasets"][0]["schema"]["groups"]
    assert [e["name"] for e in doc["labels"]["vector"]] == ["Red", "Green", "Blue", "Yellow", "Striped"]
    assert {e["kind"] for e in doc["labels"]["vector"][:4]} == {"exclusive"}

    ckpt = stargan_run / "checkpoints" / "latest.pt"
    by_ckpt = {name: _translate(ckpt, inputs, tmp_path / f"ckpt-{name}", *flags) for name, flags in {
        "target": ("--target", "Blue=1,Striped=1"), "vector": ("--target-vector", "0,0,1,0,1"),
        "grid": ("--all-targets",), "strength": ("--target", "Green=1", "--strength", "0.5")}.items()}
    request.getfixturevalue("no_pickle")
    # D reads the input's own attributes: with it every mode matches; without it a raw vector still does.
    assert _translate(with_d, inputs, tmp_path / "gd-target", "--target", "Blue=1,Striped=1") == by_ckpt["target"]
    assert _translate(with_d, inputs, tmp_path / "gd-grid", "--all-targets") == by_ckpt["grid"]
    assert _translate(with_d, inputs, tmp_path / "gd-strength", "--target", "Green=1", "--strength",
                      "0.5") == by_ckpt["strength"]
    assert _translate(plain, inputs, tmp_path / "g-vector", "--target-vector", "0,0,1,0,1") == by_ckpt["vector"]


def test_cyclegan_export_translates_both_directions_bit_for_bit(tmp_path, cyclegan_run, inputs, request):
    out = tmp_path / "export"
    run(["export", "--checkpoint", cyclegan_run, "--out", out])
    doc = json.loads((out / "export.json").read_text())
    assert sorted(doc["nets"]) == ["G_A", "G_B"] and doc["labels"] is None
    assert doc["image"]["min_side"] == 8 and doc["image"]["channels"] == {"G_A": 3, "G_B": 3}
    by_ckpt = {d: _translate(cyclegan_run, inputs, tmp_path / f"c-{d}", "--direction", d) for d in ("AtoB", "BtoA")}
    assert by_ckpt["AtoB"] != by_ckpt["BtoA"]  # the two generators really are different networks
    request.getfixturevalue("no_pickle")
    for direction, expected in by_ckpt.items():
        assert _translate(out, inputs, tmp_path / f"e-{direction}", "--direction", direction) == expected


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory) -> Path:
    from pix2pix_helpers import make_aligned

    root = tmp_path_factory.mktemp("paired")
    make_aligned(root, 4)
    return _train("pix2pix/tiny.yaml", tmp_path_factory.mktemp("pix2pix"), f"data.root={root}")


def test_pix2pix_export_translates_bit_for_bit_in_both_modes(tmp_path, pix2pix_run, inputs, request):
    out = tmp_path / "export"
    run(["export", "--checkpoint", pix2pix_run, "--out", out])
    doc = json.loads((out / "export.json").read_text())
    assert list(doc["nets"]) == ["G"] and doc["config"]["network"]["norm"] == "batch" and doc["labels"] is None
    assert doc["image"]["min_side"] == 8 and doc["image"]["channels"] == {"G": 3}  # tiny: resnet_6blocks
    # The paper's mode (batch statistics, dropout on, seeded) and --eval both run the exported weights alike.
    by_ckpt = {mode: _translate(pix2pix_run, inputs, tmp_path / f"c{i}", *flags)
               for i, (mode, flags) in enumerate({"paper": (), "eval": ("--eval",)}.items())}
    assert by_ckpt["paper"] != by_ckpt["eval"]
    request.getfixturevalue("no_pickle")
    assert _translate(out, inputs, tmp_path / "e0") == by_ckpt["paper"]
    assert _translate(out, inputs, tmp_path / "e1", "--eval") == by_ckpt["eval"]


def test_export_is_deterministic_and_reexport_is_identical(tmp_path, stargan_run):
    run(["export", "--checkpoint", stargan_run, "--out", tmp_path / "a", "--with-classifier"])
    run(["export", "--checkpoint", tmp_path / "a", "--out", tmp_path / "b", "--with-classifier"])
    for name in ("export.json", "generator.safetensors", "classifier.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_mask_vector_model_exports_its_layout(tmp_path, inputs):
    _save_official(tmp_path, 2 + 3 + 2, 2 + 3, conv_dim=4, image_size=64)
    ckpt = tmp_path / "both.pt"
    run(["import-official", tmp_path / "200000-G.ckpt", "--out", ckpt, "--datasets", "2,3",
         "--dataset-names", "faces,moods", "--attrs", "Old,Male,Happy,Sad,Calm", "--exclusive", "Happy,Sad,Calm"])
    out = tmp_path / "export"
    run(["export", "--checkpoint", ckpt, "--out", out, "--with-classifier"])
    labels = json.loads((out / "export.json").read_text())["labels"]
    assert labels["width"] == 7 and labels["datasets"] == ["faces", "moods"]
    assert [(e["index"], e["dataset"], e["name"], e["kind"]) for e in labels["vector"]] == [
        (0, "faces", "Old", "binary"), (1, "faces", "Male", "binary"), (2, "moods", "Happy", "exclusive"),
        (3, "moods", "Sad", "exclusive"), (4, "moods", "Calm", "exclusive"), (5, "faces", "mask:faces", "mask"),
        (6, "moods", "mask:moods", "mask")]
    flags = ("--target", "Sad=1", "--dataset", "moods")
    assert _translate(out, inputs, tmp_path / "e", *flags) == _translate(ckpt, inputs, tmp_path / "c", *flags)


# ---- ONNX ---------------------------------------------------------------------------------------------------

def _onnx_matches_pytorch(export_dir: Path, checkpoint: Path, sizes) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[export]')")
    ckpt = load_checkpoint(checkpoint)
    loaded = family_of_checkpoint(ckpt, str(checkpoint)).load(ckpt, str(checkpoint))
    doc = json.loads((export_dir / "export.json").read_text())
    gen = torch.Generator().manual_seed(1)
    for name, entry in doc["nets"].items():
        session = ort.InferenceSession(str(export_dir / entry["file"]), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == entry["inputs"]
        for batch, (h, w) in zip((1, 3), sizes):
            feeds = {"image": torch.rand(batch, doc["image"]["channels"][name], h, w, generator=gen) * 2 - 1}
            if doc["labels"] is not None:
                feeds["labels"] = torch.rand(batch, doc["labels"]["width"], generator=gen)
            (output,) = session.run(["output"], {k: v.numpy() for k, v in feeds.items()})
            with torch.no_grad():
                expected = loaded.nets[name](*feeds.values())
            assert output.shape == tuple(expected.shape)
            assert np.abs(output - expected.numpy()).max() <= 1e-4, (name, h, w)


def _require_onnx_export():
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[export]')")


@pytest.mark.slow  # the torch.export-based exporter takes 5-20 s per network on a CPU
def test_stargan_onnx_matches_pytorch_at_two_sizes(tmp_path, stargan_run, inputs):
    _require_onnx_export()
    out = tmp_path / "onnx"
    result = run(["export", "--checkpoint", stargan_run, "--out", out, "--format", "onnx"])
    assert "max abs difference" in result.output and "(ok)" in result.output
    doc = json.loads((out / "export.json").read_text())
    assert doc["nets"]["G"]["inputs"] == ["image", "labels"] and doc["nets"]["G"]["outputs"] == ["output"]
    _onnx_matches_pytorch(out, stargan_run, [(16, 40), (36, 20)])
    _error(["translate", "--checkpoint", out, "--input", inputs, "--output", tmp_path / "t"],
           "is an ONNX export", "onnxruntime")


@pytest.mark.slow
def test_cyclegan_onnx_matches_pytorch_at_two_sizes(tmp_path, cyclegan_run):
    _require_onnx_export()
    out = tmp_path / "onnx"
    run(["export", "--checkpoint", cyclegan_run, "--out", out, "--format", "onnx"])
    assert sorted(p.name for p in out.iterdir()) == ["G_A.onnx", "G_B.onnx", "export.json"]
    _onnx_matches_pytorch(out, cyclegan_run, [(8, 12), (28, 20)])


@pytest.mark.slow
def test_pix2pix_onnx_is_its_eval_mode_generator(tmp_path, pix2pix_run):
    _require_onnx_export()
    out = tmp_path / "onnx"
    run(["export", "--checkpoint", pix2pix_run, "--out", out, "--format", "onnx"])
    _onnx_matches_pytorch(out, pix2pix_run, [(8, 16), (24, 12)])


def test_onnx_without_its_packages_says_how_to_get_them(tmp_path, cyclegan_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # find_spec then reports it missing
    _error(["export", "--checkpoint", cyclegan_run, "--out", tmp_path / "o", "--format", "onnx"],
           "onnxscript", 'pip install -e ".[export]"')
    assert not (tmp_path / "o").exists()


# ---- refusals and damaged exports ---------------------------------------------------------------------------

def test_out_is_never_silently_overwritten(tmp_path, cyclegan_run, stargan_run):
    out = tmp_path / "export"
    run(["export", "--checkpoint", cyclegan_run, "--out", out])
    before = (out / "export.json").read_bytes()
    _error(["export", "--checkpoint", stargan_run, "--out", out], f"--out {out}", "--overwrite")
    assert (out / "export.json").read_bytes() == before
    run(["export", "--checkpoint", stargan_run, "--out", out, "--overwrite"])
    assert json.loads((out / "export.json").read_text())["nets"] == {
        "G": {"role": "generator", "file": "generator.safetensors"}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temp or old folders left
    # A file of the user's inside an export folder is never taken with it.
    (out / "mynotes.txt").write_text("keep me")
    _error(["export", "--checkpoint", cyclegan_run, "--out", out, "--overwrite"], "mynotes.txt")
    assert (out / "mynotes.txt").read_text() == "keep me"
    assert json.loads((out / "export.json").read_text())["nets"] == {
        "G": {"role": "generator", "file": "generator.safetensors"}}
    (out / "mynotes.txt").unlink()

    other = make_image_folder(tmp_path / "pictures", 1)[0].parent
    _error(["export", "--checkpoint", cyclegan_run, "--out", other, "--overwrite"], "no export.json")
    assert [p.name for p in other.iterdir()] == ["img_000.png"]
    (tmp_path / "file").write_text("x")
    refused = CliRunner().invoke(cli, ["export", "--checkpoint", str(cyclegan_run), "--out", str(tmp_path / "file")])
    assert refused.exit_code == 2 and "is a file" in refused.output
    assert (tmp_path / "file").read_text() == "x"
    _error(["export", "--checkpoint", cyclegan_run, "--out", tmp_path / "x", "--with-classifier"],
           "has no classifier network")
    empty = tmp_path / "empty"
    empty.mkdir()
    run(["export", "--checkpoint", cyclegan_run, "--out", empty])
    assert (empty / "generator.safetensors").is_file()


@pytest.fixture(scope="module")
def good_export(tmp_path_factory, stargan_run) -> Path:
    out = tmp_path_factory.mktemp("good") / "export"
    run(["export", "--checkpoint", stargan_run, "--out", out])
    return out


def _edit_json(folder: Path, edit) -> None:
    doc = json.loads((folder / "export.json").read_text())
    edit(doc)
    (folder / "export.json").write_text(json.dumps(doc))


def _tensor_file(folder: Path, tensors: dict) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(folder / "generator.safetensors"))


DAMAGE = {
    "not json": (lambda d: (d / "export.json").write_text('{"format": '), ["export.json", "not valid JSON"]),
    "not an object": (lambda d: (d / "export.json").write_text("[1]"), ["export.json", "JSON object"]),
    "wrong format": (lambda d: _edit_json(d, lambda j: j.update(format="other")), ["export.json", "'format'"]),
    "newer version": (lambda d: _edit_json(d, lambda j: j.update(format_version=99)),
                      ["'format_version'", "newer", "upgrade"]),
    "missing key": (lambda d: _edit_json(d, lambda j: j.pop("config")), ["export.json", "missing key(s) config"]),
    "unknown key": (lambda d: _edit_json(d, lambda j: j.update(colour="red")), ["unknown key(s) colour"]),
    "bad weights kind": (lambda d: _edit_json(d, lambda j: j.update(weights="pickle")), ["'weights'", "pickle"]),
    "net without file": (lambda d: _edit_json(d, lambda j: j["nets"]["G"].pop("file")), ["missing key(s) nets.G.file"]),
    "path as file": (lambda d: _edit_json(d, lambda j: j["nets"]["G"].update(file="../x.safetensors")),
                     ["'nets.G.file'", "plain file name"]),
    "no generator": (lambda d: _edit_json(d, lambda j: j["nets"]["G"].update(role="classifier")),
                     ["'nets'", "generator"]),
    "bad image side": (lambda d: _edit_json(d, lambda j: j["image"].update(multiple=0)), ["'image.multiple'"]),
    "label width": (lambda d: _edit_json(d, lambda j: j["labels"].update(width=9)), ["'labels.vector'", "9"]),
    "missing weights": (lambda d: (d / "generator.safetensors").unlink(),
                        ["generator.safetensors: file not found", "'nets.G.file'"]),
    "corrupt weights": (lambda d: (d / "generator.safetensors").write_bytes(b"\x10\x00garbage"),
                        ["generator.safetensors: not a readable safetensors file"]),
    "foreign tensor": (lambda d: _tensor_file(d, {"H.weight": torch.zeros(1)}), ["tensor 'H.weight'"]),
    "no json": (lambda d: (d / "export.json").unlink(), ["without", "export.json"]),
    "weights of another config": (lambda d: _edit_json(d, lambda j: j["config"]["network"].update(g_conv_dim=16)),
                                  ["G weights do not match its config"]),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_export_is_one_clear_line(tmp_path, good_export, inputs, damage):
    import shutil

    folder = tmp_path / "export"
    shutil.copytree(good_export, folder)
    make_damage, fragments = DAMAGE[damage]
    make_damage(folder)
    _error(["translate", "--checkpoint", folder, "--input", inputs, "--output", tmp_path / "out", "--target-vector",
            "0,0,1,0,1"], str(folder), *fragments)
    assert not (tmp_path / "out").exists()


def test_cli_formats_are_the_schemas():
    # The CLI spells the formats itself so that `stargan --help` loads no torch; they must stay the same.
    from common.export.schema import WEIGHT_FORMATS
    from stargan.cli.export import FORMATS

    assert FORMATS == WEIGHT_FORMATS
