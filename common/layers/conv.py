"""A ``Conv2d`` that computes convolutions with very few output positions as one matrix product on the CPU.

Deep discriminator layers (StarGAN's D at 128 px: 1024 -> 2048 channels, 4x4 kernel, a 2x2 output map) have
huge weights and almost no spatial extent. oneDNN's convolution kernels handle that shape poorly on the CPU:
measured on a 2-core AMD EPYC (Zen 5) with torch 2.14 at batch 16, that layer's forward + backward took
265 ms as a convolution and 127 ms as im2col + GEMM (bf16 autocast: 282 vs 97 ms), and the double backward
of a gradient penalty 513 vs 304 ms in fp32 (the trainers compute the penalty outside autocast).
``benchmarks/bench_conv_gemm.py`` prints these for your machine. The GEMM path is the same arithmetic
summed in another order, so results agree to float rounding; autograd (double backward included) works
through it; parameters, ``state_dict`` keys and shapes are those of ``nn.Conv2d``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# At most this many output positions per sample (H_out * W_out) take the GEMM path. The measured crossover on
# the machine above: 4 positions (2x2) are ~2x faster as GEMM in fp32 and bf16; at 16 (4x4) the two are level
# in fp32 but GEMM is ~2x faster under bf16 autocast; at 64 and more the convolution is 1.5-6x faster.
GEMM_MAX_POSITIONS = 4
GEMM_MAX_POSITIONS_AUTOCAST = 16
# ... and only layers with at least this many weights: for small ones the unfold costs more than it saves
# (a 32 px, width-16 StarGAN D step took 8.2 ms with the GEMM path on its last layer and heads, 6.0 ms without).
GEMM_MIN_WEIGHTS = 1 << 20


def _output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_as_gemm(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int],
                   padding: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, dilation)`` (groups 1, zero padding) as im2col + one GEMM.

    The patches of every sample are stacked into one (N * L, C * kh * kw) matrix so that the weight gradient is
    a single matrix product as well, not a sum over per-sample products.
    """
    n, _, h, w = x.shape
    out_channels, _, kh, kw = weight.shape
    h_out = _output_size(h, kh, stride[0], padding[0], dilation[0])
    w_out = _output_size(w, kw, stride[1], padding[1], dilation[1])
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # (N, C*kh*kw, L)
    # 2-D on purpose: with a 3-D (N, L, K) input, autograd's double backward broadcasts the weight to
    # (N, O, K) and multiplies batch-wise (measured: 2.4 s of copies for one gradient penalty at 128 px).
    k = weight[0].numel()
    cols = cols.transpose(1, 2).reshape(n * h_out * w_out, k)
    out = F.linear(cols, weight.reshape(out_channels, k), bias)  # (N * L, O)
    # Contiguous NCHW like F.conv2d's output, so the next layer sees the memory format it would have seen.
    return out.view(n, h_out * w_out, out_channels).transpose(1, 2).reshape(n, out_channels, h_out, w_out).contiguous()


def _cpu_autocast_enabled() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` with the CPU GEMM path for outputs of at most ``GEMM_MAX_POSITIONS`` positions
    (``GEMM_MAX_POSITIONS_AUTOCAST`` under CPU autocast) and weights of at least ``GEMM_MIN_WEIGHTS``.

    Takes exactly ``nn.Conv2d``'s arguments. Other devices, grouped convs, non-zero padding modes and larger
    outputs use the ordinary convolution.
    """

    def _uses_gemm(self, x: Tensor) -> bool:
        if x.device.type != "cpu" or self.groups != 1 or self.padding_mode != "zeros" or x.dim() != 4:
            return False
        if isinstance(self.padding, str) or self.weight.numel() < GEMM_MIN_WEIGHTS:
            return False
        kh, kw = self.kernel_size
        h_out = _output_size(x.shape[2], kh, self.stride[0], self.padding[0], self.dilation[0])
        w_out = _output_size(x.shape[3], kw, self.stride[1], self.padding[1], self.dilation[1])
        limit = GEMM_MAX_POSITIONS_AUTOCAST if _cpu_autocast_enabled() else GEMM_MAX_POSITIONS
        return h_out > 0 and w_out > 0 and h_out * w_out <= limit

    def forward(self, x: Tensor) -> Tensor:
        if self._uses_gemm(x):
            return conv2d_as_gemm(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        return super().forward(x)
