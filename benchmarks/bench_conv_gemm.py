"""Convolution vs im2col + GEMM (common.layers.conv) for every stride-2 layer of StarGAN's D on this CPU.

    python benchmarks/bench_conv_gemm.py                      # 128 px, batch 16, fp32 and bf16 autocast
    python benchmarks/bench_conv_gemm.py --size 256 --batch-size 32

Per layer it prints milliseconds for forward + backward (input and weight gradients) and for the double
backward a gradient penalty needs, for both paths, and which one ``common.layers.conv.Conv2d`` takes. Use it
to check ``GEMM_MAX_POSITIONS`` on a new CPU.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.layers.conv import (  # noqa: E402
    GEMM_MAX_POSITIONS,
    GEMM_MAX_POSITIONS_AUTOCAST,
    GEMM_MIN_WEIGHTS,
    Conv2d,
    conv2d_as_gemm,
)


def timed_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def layer_times(fn, x, w, b, autocast, reps: int) -> tuple[float, float]:
    """(forward + backward, double backward) milliseconds of one stride-2 4x4 layer computed by ``fn``."""
    def first():
        with autocast():
            y = fn(x, w, b, (2, 2), (1, 1))
        y.float().sum().backward()

    def second():
        with autocast():
            y = fn(x, w, b, (2, 2), (1, 1))
        (gx,) = torch.autograd.grad(y.float().square().sum(), x, create_graph=True)
        gx.square().sum().backward()

    return timed_ms(first, reps), timed_ms(second, reps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128, help="D input size")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--conv-dim", type=int, default=64)
    ap.add_argument("--repeat-num", type=int, default=6)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"batch={args.batch_size} size={args.size} threads={torch.get_num_threads()} torch={torch.__version__}; "
          f"GEMM path when H_out * W_out <= {GEMM_MAX_POSITIONS} (fp32), "
          f"<= {GEMM_MAX_POSITIONS_AUTOCAST} (bf16 autocast), and >= {GEMM_MIN_WEIGHTS} weights")
    print("precision  layer              out   conv fwd+bwd  gemm fwd+bwd   conv 2nd-order  gemm 2nd-order  taken")
    for precision in ("fp32", "bf16"):
        autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" \
            else contextlib.nullcontext
        cin, cout, hw = 3, args.conv_dim, args.size
        for _ in range(args.repeat_num):
            x = torch.randn(args.batch_size, cin, hw, hw, requires_grad=True)
            w = (torch.randn(cout, cin, 4, 4) * 0.02).requires_grad_(True)
            b = torch.zeros(cout, requires_grad=True)
            row = [layer_times(fn, x, w, b, autocast, args.reps) for fn in (F.conv2d, conv2d_as_gemm)]
            out = hw // 2
            with autocast():
                taken = "gemm" if Conv2d(cin, cout, 4, 2, 1)._uses_gemm(x) else "conv"
            print(f"{precision:9s}  {cin:4d} -> {cout:4d} @{hw:3d}  {out:3d}^2  {row[0][0]:12.1f}  {row[1][0]:12.1f}"
                  f"  {row[0][1]:14.1f}  {row[1][1]:14.1f}  {taken}")
            cin, cout, hw = cout, cout * 2, out


if __name__ == "__main__":
    main()
