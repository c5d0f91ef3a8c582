"""The editor's settings -> translate mapping, through its API: for given page settings the editor's PNG is the
one `stargan translate` writes for the same input and the flags the page shows (StarGAN --target, --strength and
--dataset, CycleGAN --direction, pix2pix --eval/--aligned, a safetensors export), and bad settings and uploads are
one-line errors. The page itself: test_editor_browser.py."""
import shlex
import socket
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_folder
from conftest import run_cli as run
from PIL import Image
from pix2pix_helpers import make_aligned
from test_translate_safety import _cyclegan_checkpoint

from common.checkpoint import atomic_save, new_checkpoint
from common.config import from_dict, to_dict
from common.data.shapes import SHAPES_ATTRS, SHAPES_EXCLUSIVE
from common.errors import UserError
from common.labels.schema import LabelSchema
from common.labels.space import LabelSpace
from stargan.cli import cli
from stargan.config import StarGANConfig
from stargan.editor import session as session_module
from stargan.editor.session import KEEP, EditorSession, check_image
from stargan.model import build_networks

PIX2PIX_TINY = Path(__file__).resolve().parents[1] / "configs" / "pix2pix" / "tiny.yaml"
SHAPES = LabelSchema.from_attrs(SHAPES_ATTRS, SHAPES_EXCLUSIVE, "bce")
EXPRESSIONS = LabelSchema.from_attrs(["happy", "sad", "neutral"], [["happy", "sad", "neutral"]])


def stargan_checkpoint(path: Path, labels: LabelSpace, with_d: bool = True) -> Path:
    """A tiny random StarGAN (width 4) over ``labels``; without its D when ``with_d`` is False."""
    cfg = from_dict(StarGANConfig, {
        "name": "tiny",
        "data": {"image_size": 32, "datasets": [{"name": labels.names[0], "format": "celeba",
                                                 "selected_attrs": SHAPES_ATTRS, "exclusive": SHAPES_EXCLUSIVE,
                                                 "crop_size": None}]},
        "network": {"g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 3},
    })
    torch.manual_seed(0)
    nets = {k: n.state_dict() for k, n in build_networks(cfg.network, 32, labels).items() if with_d or k == "G"}
    atomic_save(new_checkpoint(cfg.model, to_dict(cfg), nets, kind="inference", extra={"labels": labels.to_dict()}),
                path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "stargan": stargan_checkpoint(root / "stargan.pt", LabelSpace(["shapes"], [SHAPES])),
        "no_d": stargan_checkpoint(root / "no_d.pt", LabelSpace(["shapes"], [SHAPES]), with_d=False),
        "no_d_exclusive": stargan_checkpoint(root / "no_d_exclusive.pt", LabelSpace(["faces"], [EXPRESSIONS]),
                                             with_d=False),
        "multi": stargan_checkpoint(root / "multi.pt", LabelSpace(["shapes", "faces"], [SHAPES, EXPRESSIONS])),
        "cyclegan": _cyclegan_checkpoint(root / "cyclegan.pt", "resnet_6blocks"),
    }


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    # 27x21: no multiple of 4, so the page pads and crops as translate does.
    return make_image_folder(tmp_path_factory.mktemp("inputs"), 1, size=(27, 21), seed=3)[0]


def editor_png(session: EditorSession, image: Path, options: dict) -> Path:
    return session.save_result(session.translate(image, options), image.name)


def translate_png(tmp_path: Path, command: str) -> Path:
    """Run the command line the page shows (its output folder moved into tmp_path) and return its PNG."""
    args = shlex.split(command)
    assert args[:2] == ["stargan", "translate"], command
    args = args[1:]
    out = tmp_path / f"cli-{len(list(tmp_path.glob('cli-*')))}"
    args[args.index("--output") + 1] = str(out)
    run(args)
    [png] = out.iterdir()
    return png


def assert_same_png(editor: Path, cli_png: Path) -> None:
    assert editor.name == cli_png.name
    assert np.array_equal(np.asarray(Image.open(editor)), np.asarray(Image.open(cli_png)))
    assert editor.read_bytes() == cli_png.read_bytes()  # same writer, same settings: the same file


def same_as_translate(session: EditorSession, image: Path, options: dict, tmp_path: Path) -> Path:
    """The editor's PNG for ``options``, checked to be the one its shown command line writes."""
    png = editor_png(session, image, options)
    assert_same_png(png, translate_png(tmp_path, session.command(str(image), options)))
    return png


def other_member(group_names, reading_values) -> str:
    return next(n for n, v in zip(group_names, reading_values) if v < 0.5)


def test_stargan_target_and_strength_give_translates_png(models, image, tmp_path):
    with closing(EditorSession.open(models["stargan"], "cpu")) as session:
        [reading] = session.read(image)
        assert reading.confidence is not None and len(reading.decided) == len(SHAPES_ATTRS)
        assert all(0.0 <= p <= 1.0 for p in reading.confidence)
        values = session.initial_values(0, reading)
        assert [type(v) for v in values] == [str, bool, bool]  # colour group as one choice, binaries as toggles
        colour = other_member(SHAPES.groups[0].names, reading.decided[:4])
        striped = not values[1]
        values = [colour, striped, values[2]]

        options = session.options(0, values, reading, strength=0.35)
        assert options == {"target": f"{colour}=1,Striped={int(striped)}", "strength": 0.35}
        command = session.command(str(image), options)
        assert "--strength 0.35" in command and f"--target {colour}=1,Striped={int(striped)}" in command
        first = same_as_translate(session, image, options, tmp_path)
        assert Image.open(first).size == (27, 21)

        full = session.options(0, values, reading)  # strength 1 is translate's default: not on the line
        assert "strength" not in full
        second = same_as_translate(session, image, full, tmp_path)
        assert not np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(second)))

        # Nothing changed: every stated attribute is named, which reproduces the reading.
        initial = session.initial_values(0, reading)
        unchanged = session.options(0, initial, reading)
        stated = ([f"{initial[0]}=1"] if initial[0] != KEEP else []) + [f"Striped={int(initial[1])}",
                                                                          f"Dark_Background={int(initial[2])}"]
        assert unchanged == {"target": ",".join(stated)}
        same_as_translate(session, image, unchanged, tmp_path)


def test_multi_dataset_choice_sets_dataset(models, image, tmp_path):
    with closing(EditorSession.open(models["multi"], "cpu")) as session:
        assert session.dataset_names == ("shapes", "faces")
        readings = session.read(image)
        assert len(readings) == 2 and len(readings[1].decided) == 3
        values = session.initial_values(1, readings[1])
        assert values[0] in EXPRESSIONS.names  # a cross-entropy group always reads one member
        target = other_member(EXPRESSIONS.names, readings[1].decided)
        options = session.options(1, [target], readings[1])
        assert options == {"target": f"{target}=1", "dataset": "faces"}
        same_as_translate(session, image, options, tmp_path)


def test_without_d_attributes_start_at_zero(models, image, tmp_path):
    with closing(EditorSession.open(models["no_d"], "cpu")) as session:
        [reading] = session.read(image)
        assert reading.confidence is None and set(reading.decided) == {0.0}
        assert session.initial_values(0, reading) == [KEEP, False, False]
        options = session.options(0, ["Green", False, True], reading)
        assert options == {"target": "Green=1,Dark_Background=1"}
        same_as_translate(session, image, options, tmp_path)
    with closing(EditorSession.open(models["no_d_exclusive"], "cpu")) as only_exclusive:
        [reading] = only_exclusive.read(image)
        assert only_exclusive.initial_values(0, reading) == [KEEP]
        with pytest.raises(UserError, match="set at least one attribute"):
            only_exclusive.options(0, [KEEP], reading)
        assert only_exclusive.options(0, ["sad"], reading) == {"target": "sad=1"}


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_cyclegan_direction_gives_translates_png(models, image, tmp_path, direction):
    with closing(EditorSession.open(models["cyclegan"], "cpu")) as session:
        assert session.read(image) == [] and not session.has_strength
        [control] = session.option_controls
        assert control.flag == "--direction" and control.choices == ("AtoB", "BtoA") and control.default == "AtoB"
        options = session.options(extra={"direction": direction})
        assert options == {"direction": direction}
        same_as_translate(session, image, options, tmp_path)


def test_pix2pix_paper_eval_and_aligned_modes_give_translates_png(tmp_path):
    pairs = make_aligned(tmp_path / "data", 4)
    run(["train", PIX2PIX_TINY, "--set", f"data.root={tmp_path / 'data'}", "--out", tmp_path / "runs",
         "--device", "cpu"])
    with closing(EditorSession.open(tmp_path / "runs" / "00000-tiny", "cpu")) as session:
        assert [(c.flag, c.is_flag) for c in session.option_controls] == [("--eval", True), ("--aligned", True)]
        assert session.labels is None and not session.has_strength
        plain = tmp_path / "a.png"
        Image.open(pairs[0]).crop((0, 0, 32, 32)).save(plain)
        for extra, picture in [({}, plain), ({"eval": True}, plain), ({"aligned": True}, pairs[0])]:
            options = session.options(extra=extra)
            assert options == {k: True for k in extra}
            same_as_translate(session, picture, options, tmp_path)


def test_export_folder_opens_like_its_checkpoint(models, image, tmp_path):
    run(["export", "--checkpoint", models["stargan"], "--out", tmp_path / "exported", "--with-classifier"])
    with closing(EditorSession.open(tmp_path / "exported", "cpu")) as exported, \
            closing(EditorSession.open(models["stargan"], "cpu")) as original:
        assert exported.read(image) == original.read(image)
        [reading] = exported.read(image)
        options = exported.options(0, ["Yellow", True, True], reading, strength=1.5)
        from_export = same_as_translate(exported, image, options, tmp_path)
        assert_same_png(from_export, editor_png(original, image, options))


def test_bad_settings_are_one_line_errors(models, image):
    with closing(EditorSession.open(models["stargan"], "cpu")) as session:
        [reading] = session.read(image)
        with pytest.raises(UserError, match="'Purple' is none of Red, Green, Blue, Yellow"):
            session.options(0, ["Purple", False, False], reading)
        with pytest.raises(UserError, match="2 attribute values for 3 groups"):
            session.options(0, [KEEP, False], reading)
        with pytest.raises(UserError, match="--direction does not apply"):
            session.translate(image, {"direction": "BtoA", "target": "Blue=1"})
        with pytest.raises(UserError, match="not finite|finite number"):
            session.translate(image, {"target": "Blue=1", "strength": float("nan")})
    with closing(EditorSession.open(models["cyclegan"], "cpu")) as cyclegan:
        with pytest.raises(UserError, match="--direction 'sideways'"):
            cyclegan.options(extra={"direction": "sideways"})


def test_uploads_over_the_limits_or_unreadable_are_refused(tmp_path, monkeypatch):
    wide = tmp_path / "wide.png"
    Image.new("RGB", (4097, 2)).save(wide)
    with pytest.raises(UserError, match=r"^photo.png: 4097x2 pixels; the editor takes up to 4096"):
        check_image(wide, "photo.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(UserError, match=r"^broken.png: cannot read image \(not an image format PIL can read\)"):
        check_image(broken, "broken.png")
    ok = tmp_path / "ok.png"
    Image.new("RGB", (8, 8)).save(ok)
    check_image(ok, "ok.png")
    monkeypatch.setattr(session_module, "MAX_UPLOAD_BYTES", 10)
    with pytest.raises(UserError, match=r"^ok.png: 0.0 MB; the editor takes images up to 0 MB"):
        check_image(ok, "ok.png")


def test_results_are_kept_in_bounds(models, image):
    with closing(EditorSession.open(models["cyclegan"], "cpu")) as session:
        picture = Image.new("RGB", (4, 4))
        paths = [session.save_result(picture, "a.jpg") for _ in range(session_module.KEPT_RESULTS + 3)]
        assert all(p.name == "a.png" for p in paths)
        assert [p.exists() for p in paths] == [False] * 3 + [True] * session_module.KEPT_RESULTS
    assert not session.results_dir.exists()


def test_edit_without_gradio_says_how_to_install(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    monkeypatch.delitem(sys.modules, "stargan.editor.app", raising=False)
    result = CliRunner().invoke(cli, ["edit", "--checkpoint", str(models["stargan"])])
    assert result.exit_code == 2, result.output
    assert 'pip install -e ".[app]"' in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.slow  # imports Gradio (seconds)
def test_edit_refuses_a_bad_checkpoint_in_one_line(tmp_path):
    pytest.importorskip("gradio", reason="the app extra (gradio) is not installed")
    result = CliRunner().invoke(cli, ["edit", "--checkpoint", str(tmp_path / "missing.pt")])
    assert result.exit_code == 2 and "checkpoint file not found" in result.output, result.output


@pytest.mark.slow  # imports Gradio (seconds)
def test_a_taken_port_is_one_line(models):
    pytest.importorskip("gradio", reason="the app extra (gradio) is not installed")
    from stargan.editor.app import build_app, serve

    with closing(EditorSession.open(models["cyclegan"], "cpu")) as session, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = rf"^--host 127.0.0.1 --port {port}: cannot serve there \(the port is in use\); choose another"
        with pytest.raises(UserError, match=message):
            serve(build_app(session), "127.0.0.1", port)
