"""benchmarks/recipe_sweep.py end to end on a tiny shapes set: every (variant, seed) is trained with its overrides
and scored, its row lands in results.jsonl and the summary counts the seeds per target (the figures of so short
a run mean nothing; the plumbing is what is checked)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from common.config import load_config
from stargan.families import config_classes

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "recipe_sweep.py"
sys.path.insert(0, str(SCRIPT.parent))
import recipe_sweep  # noqa: E402


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))


@pytest.mark.slow  # makes data, a classifier and two tiny trainings in subprocesses: about a minute on 2 cores
def test_each_variant_and_seed_is_trained_with_its_overrides_and_scored(tmp_path):
    variants = tmp_path / "variants.yaml"
    variants.write_text("plain: []\n"
                        "masked: [network.attention_mask=true, loss.lambda_mask=0.05]\n")
    out = tmp_path / "sweep"
    proc = _run("--variants", str(variants), "--out", str(out), "--config", "configs/stargan/tiny.yaml",
                "--seeds", "3", "--steps", "2", "--parallel", "2", "--device", "cpu", "--n-images", "40",
                "--size", "32", "--classifier-epochs", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["variant"] for r in rows) == ["masked", "plain"]
    for row in rows:
        assert row["error"] is None and row["seed"] == 3 and row["steps"] == 2
        assert set(row["acc"]) == {"Red", "Green", "Blue", "Yellow", "Striped"}
        assert all(ratio > 0 for ratio in row["ratio"].values())
        assert set(row["meets"]) == {"colour acc >= 99%", "colours <= 0.5x", "Striped >= 90%", "shape >= 95%"}
        config = (out / "runs" / f"{row['variant']}-s3" / "00000-tiny" / "config.yaml").read_text()
        assert "seed: 3" in config
        assert ("attention_mask: true" in config) == (row["variant"] == "masked")
        assert (row["g_mask"] is None) == (row["variant"] == "plain")  # only the masked G logs its mask
        assert (row["mask_kept"] is None) == (row["variant"] == "plain")  # and only its evaluation measures it
        if row["mask_kept"] is not None:
            assert all(0 <= v <= 1 for v in row["mask_kept"].values() if v is not None), row["mask_kept"]
    summary = (out / "summary.md").read_text()
    assert "| variant | seeds scored | colour acc >= 99% | colours <= 0.5x | Striped >= 90% | shape >= 95% |" in summary
    assert summary.count("| plain | 1 |") == 1 and summary.count("| masked | 1 |") == 1

    again = _run("--variants", str(variants), "--out", str(out), "--seeds", "3", "--device", "cpu")
    assert again.returncode == 2 and "already there" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"a": ["no equals sign"]}', "KEY=VALUE"),
])
def test_a_bad_variants_file_is_one_line_and_exit_2(tmp_path, text, message):
    variants = tmp_path / "variants.json"
    variants.write_text(text)
    proc = _run("--variants", str(variants), "--out", str(tmp_path / "out"), "--dry-run")
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def _plain(value):
    """A config value and the YAML it came from in one form: numbers as floats, tuples as lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return str(value).lower()


@pytest.mark.parametrize("sweep", sorted((ROOT / "benchmarks" / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_committed_sweep_variant_is_a_valid_override_of_the_shapes64_config(sweep):
    variants = yaml.safe_load(sweep.read_text())
    assert variants
    for name, overrides in variants.items():
        cfg = load_config(ROOT / "configs" / "stargan" / "shapes64.yaml", overrides, config_classes())
        for override in overrides:  # each override reached the config (a typo'd key would already have failed)
            key, value = override.split("=", 1)
            node = cfg
            for part in key.split("."):
                node = getattr(node, part)
            assert _plain(node) == _plain(yaml.safe_load(value)), (name, override)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a killed orphan nobody has reaped yet is gone all the same


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_job_the_budget_stops_takes_its_children_with_it(tmp_path):
    pid_file = tmp_path / "pid"
    child = f"{shlex.quote(sys.executable)} -c " + shlex.quote(
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)")
    proc = recipe_sweep.start_job(f"{child} && echo done", dict(os.environ), tmp_path / "log.txt")
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    assert _alive(pid)
    recipe_sweep.stop_job(proc)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and proc.returncode is not None
