"""``--mask-hard/--mask-soft`` (issue 11): ``translate``, ``evaluate``, ``export`` and ``edit`` compose with the
attention mask thresholded or soft whatever the checkpoint's ``network.mask_hard`` says. Training never
thresholds, so two runs that differ only in that option have the same weights, and each run with the flag gives
the other's outputs. Without an attention mask either flag is a one-line error that writes nothing."""
from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest
import torch
from conftest import run_cli, shapes_overrides, train_cli, translate_pngs

from common.checkpoint import atomic_save, load_checkpoint, new_checkpoint, with_mask_options
from common.config import to_dict
from stargan.editor.session import EditorSession
from stargan.families import FAMILIES

STARGAN = Path(__file__).resolve().parents[1] / "configs" / "stargan" / "tiny.yaml"
TARGET = ["--target-vector", "0,1,0,0,1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shapes) -> dict[str, Path]:
    """configs/stargan/tiny.yaml with an attention mask, trained as it is (soft) and with ``mask_hard``."""
    root = tmp_path_factory.mktemp("runs")
    base = shapes_overrides(shapes) + ["network.attention_mask=true", "loss.lambda_mask=0.02"]
    for name in ("soft", "hard"):
        train_cli(STARGAN, root / name, base + [f"network.mask_hard={name == 'hard'}"])
    return {name: root / name / "00000-tiny" for name in ("soft", "hard")}


def _translate(source: Path, inputs: Path, out: Path, *flags: str) -> dict[str, bytes]:
    return translate_pngs(source, inputs, out, *TARGET, *flags)


def test_the_two_runs_share_their_weights(runs):
    soft, hard = (load_checkpoint(runs[name]) for name in ("soft", "hard"))
    assert soft["config"]["network"]["mask_hard"] is False and hard["config"]["network"]["mask_hard"] is True
    for net in ("G", "D"):
        assert soft["nets"][net].keys() == hard["nets"][net].keys()
        assert all(torch.equal(soft["nets"][net][k], hard["nets"][net][k]) for k in soft["nets"][net])


def test_translate_with_the_flag_writes_what_the_other_run_writes(runs, two_inputs, tmp_path):
    soft = _translate(runs["soft"], two_inputs, tmp_path / "soft")
    hard = _translate(runs["hard"], two_inputs, tmp_path / "hard")
    assert soft != hard  # the threshold changes the PNGs, so the equalities below say something
    assert _translate(runs["soft"], two_inputs, tmp_path / "soft-hard", "--mask-hard") == hard
    assert _translate(runs["hard"], two_inputs, tmp_path / "hard-soft", "--mask-soft") == soft
    assert _translate(runs["hard"], two_inputs, tmp_path / "hard-hard", "--mask-hard") == hard


def test_evaluate_with_the_flag_scores_as_the_other_run_in_a_folder_of_its_own(runs):
    scores = {}
    for name, run, flags in (("soft", runs["soft"], []), ("hard", runs["hard"], []),
                             ("hard as soft", runs["hard"], ["--mask-soft"])):
        result = run_cli(["evaluate", "--checkpoint", run, "--device", "cpu", "--max-images", "6", *flags])
        folder = run / ("eval-mask-soft" if flags else "eval")
        assert f"metrics: {folder / 'metrics.json'}" in result.output, result.output
        assert ("the attention mask thresholded at 0.5" in result.output) == (name == "hard"), result.output
        scores[name] = json.loads((folder / "metrics.json").read_text())
    assert [scores[n]["mask_hard"] for n in scores] == [False, True, False]
    assert [scores[n]["mask_hard_from"] for n in scores] == ["checkpoint", "checkpoint", "--mask-soft"]
    assert scores["hard as soft"]["counterfactual"] == scores["soft"]["counterfactual"]
    assert scores["hard"]["counterfactual"] != scores["soft"]["counterfactual"]
    assert json.loads((runs["hard"] / "eval" / "metrics.json").read_text())["mask_hard"] is True  # not replaced


def test_export_with_the_flag_carries_it(runs, two_inputs, tmp_path):
    run_cli(["export", "--checkpoint", runs["soft"], "--out", tmp_path / "export", "--mask-hard"])
    config = json.loads((tmp_path / "export" / "export.json").read_text())["config"]
    assert config["network"]["mask_hard"] is True
    assert _translate(tmp_path / "export", two_inputs, tmp_path / "exported") == \
        _translate(runs["hard"], two_inputs, tmp_path / "hard")


def test_the_editor_with_the_flag_shows_it_in_its_command_and_gives_its_png(runs, two_inputs, tmp_path):
    image = sorted(two_inputs.glob("*.png"))[0]
    options = {"target_vector": TARGET[1]}
    pngs = {}
    for flag in (None, True):
        with closing(EditorSession.open(runs["soft"], "cpu", mask_hard=flag)) as session:
            command = session.command(str(image), options)
            assert ("--mask-hard" in command) == (flag is True), command
            png = session.save_result(session.translate(image, options), image.name)
            pngs[flag] = png.read_bytes()
    assert pngs[True] == _translate(runs["hard"], two_inputs, tmp_path / "hard")[image.name]
    assert pngs[None] != pngs[True]


@pytest.fixture(scope="module")
def no_mask(tmp_path_factory, runs) -> Path:
    """The soft run's checkpoint without its attention mask (random weights of that shape): an inference one."""
    ckpt = load_checkpoint(runs["soft"])
    family = FAMILIES["stargan"]
    cfg = family.load(ckpt, "soft").config
    cfg.network.attention_mask = False
    from stargan.model import build_networks

    nets = build_networks(cfg.network, cfg.data.image_size, family.load(ckpt, "soft").labels)
    path = tmp_path_factory.mktemp("no_mask") / "no_mask.pt"
    atomic_save(new_checkpoint(cfg.model, to_dict(cfg), {k: n.state_dict() for k, n in nets.items()},
                               kind="inference", extra=ckpt.get("extra", {})), path)
    return path


@pytest.mark.parametrize("flag", ["--mask-hard", "--mask-soft"])
def test_without_an_attention_mask_each_command_refuses_in_one_line(no_mask, two_inputs, tmp_path, flag):
    commands = {
        "translate": ["translate", "--checkpoint", no_mask, "--input", two_inputs, "--output", tmp_path / "out",
                      "--device", "cpu", *TARGET, flag],
        "evaluate": ["evaluate", "--checkpoint", no_mask, "--out", tmp_path / "eval", "--device", "cpu", flag],
        "export": ["export", "--checkpoint", no_mask, "--out", tmp_path / "export", flag],
    }
    for args in commands.values():
        result = run_cli(args, code=2)
        assert result.output.count("\n") == 1 and "Traceback" not in result.output, result.output
        assert str(no_mask) in result.output and flag in result.output and "attention mask" in result.output
    assert not any((tmp_path / name).exists() for name in ("out", "eval", "export"))
    from common.errors import UserError

    with pytest.raises(UserError, match="attention mask"):
        EditorSession.open(no_mask, "cpu", mask_hard=flag == "--mask-hard")


def test_the_helper_leaves_the_checkpoint_it_was_given_as_it_was(runs):
    ckpt = load_checkpoint(runs["soft"])
    hard = with_mask_options(ckpt, True, "soft")
    assert hard["config"]["network"]["mask_hard"] is True and ckpt["config"]["network"]["mask_hard"] is False
    assert with_mask_options(ckpt, None, "soft") is ckpt
    assert FAMILIES["stargan"].load(hard, "soft").nets["G"].attention.hard
    assert not FAMILIES["stargan"].load(ckpt, "soft").nets["G"].attention.hard
