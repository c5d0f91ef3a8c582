"""benchmarks/bench_data.py runs end to end on a few images: every data source and decoder gets its row (the
figures themselves are the lead's to measure; nothing here is timed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a subprocess that imports torch and writes JPEGs: about 10 s on two busy cores
def test_rows_for_the_original_and_the_resized_copy_with_both_decoders(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_data.py"), "--n", "24", "--seconds",
                           "0.05", "--workers", "0", "--sources", "original,resized", "--out", str(out),
                           "--step-images-per-s", "100"],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert proc.returncode == 0, proc.stderr
    assert "resized copy: 24 images" in proc.stdout
    rows = json.loads((out / "bench_data.json").read_text())["rows"]
    assert [(r["data"], r["decoder"], r["workers"]) for r in rows] == [
        ("original", "pil", 0), ("original", "torchvision", 0), ("resized", "pil", 0), ("resized", "torchvision", 0)]
    assert all(r["images_per_s"] > 0 and r["vs_step"] == r["images_per_s"] / 100 for r in rows)
    table = (out / "bench_data.md").read_text()
    assert "| data | decoder | workers | images/s | loader / step | note |" in table
    assert table.count("| resized |") == 2
