"""benchmarks/gpu_check.py: plain words and exit 0 without a GPU; its peak table and report on any machine."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
    out = tmp_path / "report"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # no GPU, even on a machine that has one
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no CUDA GPU: nothing to check"
    assert not out.exists()  # nothing measured, nothing written


@pytest.mark.parametrize("name, bf16, fp32", [("NVIDIA H200", 989.0, 494.7), ("NVIDIA H100 PCIe", 756.0, 378.0),
                                              ("NVIDIA H100 80GB HBM3", 989.0, 494.7),
                                              ("NVIDIA A100-SXM4-80GB", 312.0, 156.0)])
def test_peak_table_by_device_name(name, bf16, fp32):
    peaks, source = gpu_check.peak_table(name, None)
    assert peaks["amp_bf16"] == bf16 and peaks["fp32"] == fp32 and "table entry" in source


def test_peak_override_and_unknown_devices():
    assert gpu_check.peak_table("Some Future GPU", None) == ({}, "unknown GPU: pass --peak-tflops for MFU")
    peaks, source = gpu_check.peak_table("NVIDIA H200", "bf16=1000,fp32=500")
    assert peaks["amp_bf16"] == 1000.0 and peaks["fp32"] == 500.0 and peaks["amp_fp16"] == 989.0
    assert source == "--peak-tflops bf16=1000,fp32=500"


def test_report_keeps_failed_and_skipped_cells():
    meta = {"device": "GPU", "date": "2030-01-01 00:00 UTC", "commit": "abc123", "torch": "2.x", "cuda": "13",
            "cudnn": 9, "cpus": 16, "peak_source": "table"}
    rows = [{"model": "m", "size": 256, "batch": 1, "precision": "fp32", "channels_last": False, "compile": False,
             "official": True, "when": "before", "s_per_iter": 0.1, "images_per_s": 10.0},
            {"model": "m", "size": 256, "batch": 8, "precision": "amp_bf16", "channels_last": True, "compile": True,
             "official": False, "s_per_iter": 0.05, "images_per_s": 160.0, "vs_official": 16.0, "mfu": 0.31},
            {"model": "m", "size": 256, "batch": 8, "precision": "amp_fp16", "channels_last": True,
             "compile": True, "official": False, "error": "OutOfMemoryError: CUDA out of memory"}]
    text = gpu_check.markdown(meta, {"summary": "23 passed", "exit_code": 0}, rows, None)
    assert "commit abc123" in text and "CUDA tests: 23 passed (exit 0)" in text
    assert "| m (official, before) | 256 | 1 | fp32 | off | off | 0.1000 | 10.0 | baseline |" in text
    assert "| 16.00x |" in text and "31.0%" in text
    assert "OutOfMemoryError: CUDA out of memory |" in text


def test_ratio_to_the_official_step_is_given_over_before_and_after():
    def row(official, images_per_s=None, model="stargan", when=None, error=None):
        r = {"model": model, "size": 128, "batch": 16, "precision": "fp32", "channels_last": False,
             "compile": False, "official": official}
        r.update({k: v for k, v in (("images_per_s", images_per_s), ("when", when), ("error", error)) if v})
        if images_per_s:
            r["s_per_iter"] = 16 / images_per_s
        return r

    rows = [row(True, 800.0, when="before"), row(True, 600.0, when="after"), row(False, 1400.0),
            row(True, 10.0, model="cyclegan", when="before"), row(False, error="skipped: time budget used up")]
    gpu_check.add_ratios(rows)
    ours = rows[2]
    assert ours["vs_official"] == 2.0  # over the mean of the two official timings (700 images/s)
    assert ours["vs_official_range"] == [1.75, 1400.0 / 600.0]
    assert "vs_official" not in rows[4] and "vs_official" not in rows[0]
    text = gpu_check.markdown({"device": "GPU", "date": "d", "commit": "c", "torch": "t", "cuda": "c", "cudnn": 9,
                               "cpus": 16, "peak_source": "table"}, {}, rows, None)
    assert "| 2.00x (1.75-2.33) |" in text
    # A cell with the official step timed right before and right after it is compared with those two alone.
    bracketed = dict(row(False, 1400.0), official_bracket=[1000.0, 400.0])
    gpu_check.add_ratios(rows + [bracketed])
    assert bracketed["vs_official"] == 2.0 and bracketed["vs_official_range"] == [1.4, 3.5]


def test_each_cell_is_timed_between_two_official_timings(monkeypatch):
    """Table.run on stand-ins (no GPU): each of our timed cells is bracketed by the official timings right before
    and right after it, cells cut by the budget get none, and the last official timing of each model closes
    the table as its "after" row."""
    import argparse
    import itertools
    import types

    clock = itertools.count(1)
    events = []  # (kind, model) in the order they were timed

    def timed(fn, min_seconds, max_units=200):
        fn()
        return float(next(clock)), 1  # a distinct "duration" per timing, so each can be told apart

    class Stand:
        def __init__(self, kind, model):
            self.kind, self.model = kind, model

        def __call__(self):
            events.append((self.kind, self.model))

    def official_unit(family, size):
        return Stand("official", family.name), 1, 1

    def build(config, overrides, device, precision, size, batch):
        family = gpu_check.STARGAN if "stargan" in str(config) else gpu_check.CYCLEGAN
        trainer = types.SimpleNamespace(cfg=types.SimpleNamespace(optim=types.SimpleNamespace(n_critic=1)),
                                        close=lambda: None)
        return types.SimpleNamespace(trainer=trainer, one_iteration=Stand("ours", family.name), images=1)

    for name, value in (("_timed", timed), ("official_unit", official_unit), ("build", build),
                        ("_release", lambda: None)):
        monkeypatch.setattr(gpu_check, name, value)
    for name in ("synchronize", "reset_peak_memory_stats"):
        monkeypatch.setattr(gpu_check.torch.cuda, name, lambda *a, **k: None)
    monkeypatch.setattr(gpu_check.torch.cuda, "max_memory_allocated", lambda *a, **k: 0)
    monkeypatch.setattr(gpu_check, "PRECISIONS", ("fp32",))
    table = gpu_check.Table(argparse.Namespace(budget_s=1e6, cell_seconds=0.0, compile="off"), {})
    table.run()

    ours = [r for r in table.rows if not r["official"]]
    assert len(ours) == 6 and all(len(r["official_bracket"]) == 2 for r in ours)
    timings = table.official_timings
    for row in ours:
        before, after = row["official_bracket"]
        i = next(k for k, t in enumerate(timings) if t.get("images_per_s") == before)
        assert timings[i + 1]["images_per_s"] == after  # nothing else of the official timed in between
        assert timings[i]["model"] == timings[i + 1]["model"] == row["model"]
    runs = [event for event, _ in itertools.groupby(events)]  # what ran, repeated calls of one unit merged
    for k, (kind, model) in enumerate(runs):
        if kind == "ours":  # the official step of the same model ran right before and right after it
            assert runs[k - 1] == ("official", model) and runs[k + 1] == ("official", model), runs
    closing = [r for r in table.rows if r["official"] and r["when"] == "after"]
    assert {r["model"] for r in closing} == {"cyclegan", "stargan"}
    for r in closing:
        assert r["images_per_s"] == [t for t in timings if t["model"] == r["model"]][-1]["images_per_s"]

    # A budget used up before the cells: none is timed, no official step is timed for them, no "after" row.
    table = gpu_check.Table(argparse.Namespace(budget_s=0, cell_seconds=0.0, compile="off"), {})
    table.run()
    assert all("skipped" in r.get("error", "") for r in table.rows if not r["official"])
    assert [t["when"] for t in table.official_timings] == ["before", "before"]
    assert not [r for r in table.rows if r["official"] and r["when"] == "after"]
