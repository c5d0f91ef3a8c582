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
