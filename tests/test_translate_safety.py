"""`stargan translate` never loses or corrupts anything: inputs untouched, existing outputs kept unless
--overwrite, name collisions and unreadable inputs refused before any write, any image size, clear lines for
a full disk or an unwritable folder."""
import errno
import hashlib
import io
import os
import tempfile
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_folder
from conftest import run_cli as run
from PIL import Image

import common.data.images
import common.inference
from common.checkpoint import atomic_save, new_checkpoint
from common.config import from_dict, to_dict
from common.data.shapes import SHAPES_ATTRS, SHAPES_EXCLUSIVE
from common.inference import pad_to_fit
from common.labels.schema import LabelSchema
from common.labels.space import LabelSpace
from cyclegan.config import CycleGANConfig
from cyclegan.model import build_networks as build_cyclegan
from stargan.cli import cli
from stargan.cli.common import user_errors
from stargan.config import StarGANConfig
from stargan.model import build_networks as build_stargan

TINY_SIZES = [(1, 1), (2, 2), (3, 3), (4, 4), (3, 5), (1, 100), (100, 1)]  # (width, height)


def _cyclegan_checkpoint(path: Path, netG: str) -> Path:
    cfg = from_dict(CycleGANConfig, {"name": "tiny", "network": {"netG": netG, "ngf": 4, "ndf": 4}})
    torch.manual_seed(0)
    nets = build_cyclegan(cfg)
    atomic_save(new_checkpoint(cfg.model, to_dict(cfg), {k: nets[k].state_dict() for k in ("G_A", "G_B")},
                               kind="inference"), path)
    return path


def _stargan_checkpoint(path: Path) -> Path:
    cfg = from_dict(StarGANConfig, {
        "name": "tiny",
        "data": {"image_size": 32, "datasets": [{"name": "shapes", "format": "celeba", "selected_attrs": SHAPES_ATTRS,
                                                 "exclusive": SHAPES_EXCLUSIVE, "crop_size": None}]},
        "network": {"g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 3},
    })
    labels = LabelSpace(["shapes"], [LabelSchema.from_attrs(SHAPES_ATTRS, SHAPES_EXCLUSIVE, "bce")])
    torch.manual_seed(0)
    nets = build_stargan(cfg.network, 32, labels)
    atomic_save(new_checkpoint(cfg.model, to_dict(cfg), {k: n.state_dict() for k, n in nets.items()},
                               kind="inference", extra={"labels": labels.to_dict()}), path)
    return path


@pytest.fixture(scope="module")
def cyclegan_ckpt(tmp_path_factory) -> Path:
    return _cyclegan_checkpoint(tmp_path_factory.mktemp("ckpt") / "cyclegan.pt", "resnet_6blocks")


@pytest.fixture(scope="module")
def stargan_ckpt(tmp_path_factory) -> Path:
    return _stargan_checkpoint(tmp_path_factory.mktemp("ckpt") / "stargan.pt")


def translate(ckpt, inputs, output, *extra, code=0):
    return run(["translate", "--checkpoint", ckpt, "--input", inputs, "--output", output, "--device", "cpu",
                *extra], code=code)


def refused(ckpt, inputs, output, *extra) -> str:
    """Run a translate that must fail with one clean line (exit 2); return that line."""
    result = CliRunner().invoke(cli, [str(a) for a in ["translate", "--checkpoint", ckpt, "--input", inputs,
                                                       "--output", output, "--device", "cpu", *extra]])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("translate:")]  # tqdm
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (symlinks not followed) and a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


# 1. Inputs are never modified.

def _unsafe_outputs(tmp_path: Path):
    """(--input, --output, expected message part) where the output folder is or holds an input."""
    inputs = tmp_path / "in"
    make_image_folder(inputs, 2)
    make_image_folder(inputs / "sub", 1, seed=1)
    (tmp_path / "alias").symlink_to(inputs, target_is_directory=True)
    elsewhere = tmp_path / "elsewhere"
    make_image_folder(elsewhere, 1, seed=2)
    (inputs / "linked").symlink_to(elsewhere, target_is_directory=True)
    return {
        "same folder": (inputs, inputs, "is the input folder"),
        "same folder, relative": (inputs, inputs / "sub" / "..", "is the input folder"),
        "same folder through a symlink": (inputs, tmp_path / "alias", "is the input folder"),
        "inside the input folder": (inputs, inputs / "out", "lies inside the input folder"),
        "an input sub-folder": (inputs, inputs / "sub", "lies inside the input folder"),
        "inside a symlinked input sub-folder": (inputs, elsewhere / "out", "lies inside the input folder"),
        "the folder of a single input file": (inputs / "img_000.png", inputs, "holds the input file"),
        "the folder of a single input file, relative": (inputs / "img_000.png", inputs / "sub" / "..",
                                                         "holds the input file"),
    }


@pytest.mark.parametrize("case", [
    "same folder", "same folder, relative", "same folder through a symlink", "inside the input folder",
    "an input sub-folder", "inside a symlinked input sub-folder", "the folder of a single input file",
    "the folder of a single input file, relative"])
def test_output_folder_that_is_or_holds_an_input_is_refused(tmp_path, cyclegan_ckpt, case):
    inputs, output, message = _unsafe_outputs(tmp_path)[case]
    before = snapshot(tmp_path)
    line = refused(cyclegan_ckpt, inputs, output)
    assert message in line and str(output) in line
    assert snapshot(tmp_path) == before  # nothing modified, nothing written
    assert not (tmp_path / "in" / "out").exists() and not (tmp_path / "elsewhere" / "out").exists()


def test_output_beside_a_single_input_file_is_fine(tmp_path, cyclegan_ckpt, monkeypatch):
    # A relative --output next to the input (the usual `--input face.jpg --output out`) is not refused.
    make_image_folder(tmp_path, 1)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    translate(cyclegan_ckpt, "img_000.png", "out")
    assert (tmp_path / "out" / "img_000.png").is_file()
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("out")} == before


# 2. Existing outputs are never silently overwritten.

def test_existing_outputs_are_kept_unless_overwrite(tmp_path, cyclegan_ckpt):
    inputs, out = tmp_path / "in", tmp_path / "out"
    make_image_folder(inputs, 3)
    result = translate(cyclegan_ckpt, inputs, out)
    assert "wrote 3 image(s)" in result.output and "skipped" not in result.output
    marker = b"user's own file"
    (out / "img_001.png").write_bytes(marker)
    make_image_folder(tmp_path / "more", 4)  # img_003.png is new
    (tmp_path / "more" / "img_003.png").rename(inputs / "img_003.png")

    result = translate(cyclegan_ckpt, inputs, out)
    assert "wrote 1 image(s)" in result.output
    assert "skipped 3 input(s) whose output already exists (--overwrite replaces them)" in result.output
    assert (out / "img_001.png").read_bytes() == marker
    assert Image.open(out / "img_003.png").size == (32, 32)

    result = translate(cyclegan_ckpt, inputs, out, "--overwrite")
    assert "wrote 4 image(s)" in result.output and "replaced 4 existing output(s)" in result.output
    assert Image.open(out / "img_001.png").size == (32, 32)
    assert not temp_files(out)


def test_rerun_into_a_sibling_folder_does_not_grow(tmp_path, cyclegan_ckpt):
    # The case: outputs inside the input folder were re-read on each rerun (7, 14, 21 PNGs).
    inputs = tmp_path / "in"
    make_image_folder(inputs, 2)
    for _ in range(3):
        translate(cyclegan_ckpt, inputs, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_000.png", "img_001.png"]
    assert sorted(p.name for p in inputs.iterdir()) == ["img_000.png", "img_001.png"]


# 3. Name collisions.

def test_two_inputs_with_one_output_are_refused_before_writing(tmp_path, cyclegan_ckpt):
    inputs = tmp_path / "in"
    make_image_folder(inputs, 1)
    Image.open(inputs / "img_000.png").save(inputs / "good.png")
    Image.open(inputs / "img_000.png").save(inputs / "good.jpg")
    line = refused(cyclegan_ckpt, inputs, tmp_path / "out")
    assert str(inputs / "good.jpg") in line and str(inputs / "good.png") in line
    assert str(tmp_path / "out" / "good.png") in line
    assert not (tmp_path / "out").exists()


def test_names_differing_in_case_collide_where_the_file_system_ignores_case(tmp_path, cyclegan_ckpt,
                                                                             monkeypatch):
    inputs = tmp_path / "in"
    make_image_folder(inputs, 1)
    Image.open(inputs / "img_000.png").save(inputs / "Good.png")
    Image.open(inputs / "img_000.png").save(inputs / "good.jpg")
    # This machine's file system is case-sensitive: both outputs can exist side by side.
    assert not common.inference.ignores_case(tmp_path / "out")
    translate(cyclegan_ckpt, inputs, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Good.png", "good.png", "img_000.png"]
    # On macOS/Windows defaults they would be one file: refused before anything is written.
    monkeypatch.setattr(common.inference, "ignores_case", lambda folder: True)
    line = refused(cyclegan_ckpt, inputs, tmp_path / "out2")
    assert str(inputs / "Good.png") in line and str(inputs / "good.jpg") in line
    assert not (tmp_path / "out2").exists()


def test_help_documents_the_output_rules():
    text = " ".join(run(["translate", "--help"]).output.split())
    for part in ("--overwrite", "--skip-bad", "good.png and good.jpg", "never written", "Any size works"):
        assert part in text, part


# 4. Any input size works.

def _tiny_inputs(folder: Path, sizes) -> None:
    rng = np.random.default_rng(0)
    for w, h in sizes:
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{w}x{h}.png")
    # Two of one size, so a batch of tiny images goes through the padding together.
    Image.open(folder / "1x1.png").save(folder / "1x1_again.png")


@pytest.mark.parametrize("family", ["cyclegan", "stargan"])
def test_every_tiny_size_comes_back_at_its_size(tmp_path, cyclegan_ckpt, stargan_ckpt, family):
    inputs = tmp_path / "in"
    inputs.mkdir()
    _tiny_inputs(inputs, TINY_SIZES)
    ckpt, extra = (cyclegan_ckpt, []) if family == "cyclegan" else (stargan_ckpt, ["--target", "Blue=1"])
    result = translate(ckpt, inputs, tmp_path / "out", "--batch-size", "2", *extra)
    assert f"wrote {len(TINY_SIZES) + 1} image(s)" in result.output
    for w, h in TINY_SIZES:
        assert Image.open(tmp_path / "out" / f"{w}x{h}.png").size == (w, h)
    if family == "stargan":
        translate(ckpt, inputs, tmp_path / "grid", "--all-targets")
        columns = 1 + len(SHAPES_ATTRS)  # the input, then one single change per attribute
        assert Image.open(tmp_path / "grid" / "3x5.png").size == (3 * columns, 5)


def test_unet_takes_tiny_sizes(tmp_path):
    ckpt = _cyclegan_checkpoint(tmp_path / "unet.pt", "unet_128")
    inputs = tmp_path / "in"
    inputs.mkdir()
    sizes = [(1, 1), (3, 5), (100, 1)]
    _tiny_inputs(inputs, sizes)
    translate(ckpt, inputs, tmp_path / "out")
    for w, h in sizes:
        assert Image.open(tmp_path / "out" / f"{w}x{h}.png").size == (w, h)


def test_padding_reflects_where_it_can_and_repeats_the_edge_elsewhere():
    x = torch.arange(15, dtype=torch.float32).view(1, 1, 3, 5)
    padded, size = pad_to_fit(x, multiple=4, min_side=8)
    assert size == (3, 5) and padded.shape[-2:] == (8, 8)
    assert torch.equal(padded[..., :3, :5], x)
    assert torch.equal(padded[0, 0, 0, 5:], x[0, 0, 0, [3, 2, 1]])  # width 5 -> 8: reflected
    assert torch.equal(padded[0, 0, 3:, :5], x[0, 0, 2:3, :].expand(5, 5))  # height 3 -> 8: edge repeated
    same, _ = pad_to_fit(torch.zeros(1, 3, 8, 12), multiple=4, min_side=8)
    assert same.shape[-2:] == (8, 12)


# 5. Unreadable inputs.

def _bad_folder(tmp_path: Path) -> Path:
    inputs = tmp_path / "in"
    make_image_folder(inputs, 2)
    (inputs / "garbage.png").write_bytes(b"not an image at all")
    data = (inputs / "img_000.png").read_bytes()
    (inputs / "truncated.png").write_bytes(data[: len(data) // 2])
    return inputs


def test_unreadable_inputs_refuse_the_run_before_writing(tmp_path, cyclegan_ckpt):
    inputs = _bad_folder(tmp_path)
    line = refused(cyclegan_ckpt, inputs, tmp_path / "out")
    assert "2 unreadable input file(s)" in line and "nothing written" in line and "--skip-bad" in line
    assert str(inputs / "garbage.png") in line and str(inputs / "truncated.png") in line
    assert not (tmp_path / "out").exists()


def test_skip_bad_translates_the_others_and_reports_the_bad(tmp_path, cyclegan_ckpt):
    inputs = _bad_folder(tmp_path)
    result = translate(cyclegan_ckpt, inputs, tmp_path / "out", "--skip-bad")
    assert "wrote 2 image(s)" in result.output
    assert "skipped 2 unreadable input(s)" in result.output and "garbage.png" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_000.png", "img_001.png"]


def _truncated_jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) * 6 // 10])  # the header is whole: only decoding finds it


def test_input_failing_only_when_decoded_does_not_stop_the_others(tmp_path, cyclegan_ckpt):
    inputs = tmp_path / "in"
    make_image_folder(inputs, 2)
    _truncated_jpeg(inputs / "cut.jpg")
    line = refused(cyclegan_ckpt, inputs, tmp_path / "out")
    assert "1 input file(s) could not be decoded" in line and "cut.jpg" in line
    assert "other 2 image(s) were written" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_000.png", "img_001.png"]
    result = translate(cyclegan_ckpt, inputs, tmp_path / "out2", "--skip-bad")
    assert "wrote 2 image(s)" in result.output and "skipped 1 unreadable input(s)" in result.output


# 6. Non-finite strength.

@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_strength_is_refused(tmp_path, stargan_ckpt, value):
    make_image_folder(tmp_path / "in", 1)
    line = refused(stargan_ckpt, tmp_path / "in", tmp_path / "out", "--target", "Blue=1", "--strength", value)
    assert "--strength" in line and "finite" in line
    assert not (tmp_path / "out").exists()


# 7. A full disk and an unwritable folder.

class _FailingImage:
    """Stands in for the PIL image of one output: writes part of a PNG, then fails as the OS would."""

    def __init__(self, code: int):
        self.code = code

    def save(self, handle, *args, **kwargs):
        handle.write(b"\x89PNG\r\n\x1a\n partial")
        raise OSError(self.code, os.strerror(self.code))


def _fail_second_write(monkeypatch, code: int) -> None:
    real = common.data.images.tensor_to_image
    calls = []

    def tensor_to_image(t):
        calls.append(1)
        return _FailingImage(code) if len(calls) == 2 else real(t)

    monkeypatch.setattr(common.data.images, "tensor_to_image", tensor_to_image)


def test_full_disk_is_one_line_and_leaves_no_partial_png(tmp_path, cyclegan_ckpt, monkeypatch):
    inputs, out = tmp_path / "in", tmp_path / "out"
    make_image_folder(inputs, 3)
    _fail_second_write(monkeypatch, errno.ENOSPC)
    line = refused(cyclegan_ckpt, inputs, out, "--batch-size", "1")
    assert line == f"error: no space left on the device writing {out / 'img_001.png'}"
    assert sorted(p.name for p in out.iterdir()) == ["img_000.png"]  # no truncated PNG, no temp file
    assert Image.open(out / "img_000.png").size == (32, 32)
    monkeypatch.undo()
    result = translate(cyclegan_ckpt, inputs, out)  # after freeing space: the rest, nothing redone
    assert "wrote 2 image(s)" in result.output and "skipped 1 input(s)" in result.output


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_unwritable_output_is_one_line(tmp_path, cyclegan_ckpt, monkeypatch, code):
    inputs, out = tmp_path / "in", tmp_path / "out"
    make_image_folder(inputs, 2)
    _fail_second_write(monkeypatch, code)
    line = refused(cyclegan_ckpt, inputs, out, "--batch-size", "1")
    assert f"write {out / 'img_001.png'}" in line and os.strerror(code).lower() in line.lower()
    assert sorted(p.name for p in out.iterdir()) == ["img_000.png"]


@pytest.mark.parametrize("nested", [False, True], ids=["folder", "sub-folder"])
def test_read_only_output_folder(tmp_path, cyclegan_ckpt, monkeypatch, nested):
    inputs, out = tmp_path / "in", tmp_path / "out"
    make_image_folder(inputs / "sub" if nested else inputs, 1)
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):  # root: permissions do not stop us, so the OS's refusal is simulated
            real_mkstemp, real_mkdir = tempfile.mkstemp, Path.mkdir

            def mkstemp(*args, dir=None, **kwargs):
                if dir is not None and Path(dir).is_relative_to(out):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(Path(dir) / ".x.tmp"))
                return real_mkstemp(*args, dir=dir, **kwargs)

            def mkdir(self, *args, **kwargs):
                if self.is_relative_to(out) and not self.exists():
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
                return real_mkdir(self, *args, **kwargs)

            monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
            monkeypatch.setattr(Path, "mkdir", mkdir)
        line = refused(cyclegan_ckpt, inputs, out)
    finally:
        out.chmod(0o755)
    target = out / "sub" / "img_000.png" if nested else out / "img_000.png"
    assert f"write {target}" in line and "permission denied" in line.lower()
    assert not list(out.rglob("*"))


@pytest.mark.parametrize("err, expected", [
    (OSError(errno.ENOSPC, "No space left on device", "/x/model.pt"),
     "no space left on the device writing /x/model.pt"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "no space left on the device"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/.model.pt.k3j_x8z1.tmp"),
     "cannot write /ro/model.pt: Permission denied"),
    (OSError(errno.EROFS, "Read-only file system", "/tmp/a", None, "/ro/b.png"),
     "cannot write /ro/b.png: Read-only file system"),
    (PermissionError(errno.EPERM, "Operation not permitted", "/x/y"), "cannot write /x/y: Operation not permitted"),
])
def test_every_command_reports_disk_and_permission_errors_in_one_line(err, expected):
    @click.command()
    @user_errors
    def command():
        raise err

    result = CliRunner().invoke(command, [])
    assert result.exit_code == 2 and result.output == f"error: {expected}\n"


def test_other_os_errors_are_not_disguised():
    @click.command()
    @user_errors
    def command():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/x")

    result = CliRunner().invoke(command, [])
    assert isinstance(result.exception, FileNotFoundError)
