"""Modulated Fourier features: a basis of plane waves a generator can mix into fine periodic texture.

A convolutional generator that halves the resolution twice has no cheap way to paint a regular pattern finer
than its bottleneck grid (a stripe period of a few pixels): within a flat region every position looks the same
to it, so it cannot choose a phase, and its stride-2 upsampling offers a checkerboard instead. This layer
gives the full-resolution stage ``features`` plane waves ``sin(w . p + b)`` over the pixel coordinates ``p``,
with learned frequencies ``w`` and phases ``b`` (Fourier features as in Tancik et al., NeurIPS 2020, learned as
in CIPS, Anokhin et al., CVPR 2021), each multiplied by an amplitude map the generator computes from its own
features (a 1x1 conv). A conv after it can then switch a texture on where, and only where, the image needs it.

Coordinates are in pixels from the image centre, so a wave keeps its period in pixels at any input size.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# Initial periods (pixels), log-uniform: from just above the Nyquist limit to a coarse pattern.
PERIOD_RANGE = (3.0, 32.0)


class FourierTexture(nn.Module):
    """``sin(w . p + b) * amplitude(h)``: (N, C, H, W) features -> (N, features, H, W) modulated waves.

    Args:
        in_channels: channels of the feature map ``h`` the amplitudes are computed from.
        features: number of plane waves (output channels).
    """

    def __init__(self, in_channels: int, features: int) -> None:
        super().__init__()
        if in_channels < 1 or features < 1:
            raise ValueError(f"FourierTexture needs in_channels >= 1 and features >= 1; got {in_channels}, {features}")
        self.features = features
        angle = torch.rand(features) * (2 * math.pi)
        lo, hi = (math.log(p) for p in PERIOD_RANGE)
        period = torch.exp(lo + torch.rand(features) * (hi - lo))
        # Radians per pixel along x and y.
        self.frequency = nn.Parameter(torch.stack([angle.cos(), angle.sin()], dim=1) * (2 * math.pi / period)[:, None])
        self.phase = nn.Parameter(torch.rand(features) * (2 * math.pi))
        self.amplitude = nn.Conv2d(in_channels, features, kernel_size=1)

    def waves(self, height: int, width: int) -> Tensor:
        """The unmodulated waves, (1, features, height, width)."""
        device, dtype = self.frequency.device, self.frequency.dtype
        y = torch.arange(height, device=device, dtype=dtype) - (height - 1) / 2
        x = torch.arange(width, device=device, dtype=dtype) - (width - 1) / 2
        arg = (self.frequency[:, 0, None, None] * x[None, None, :] + self.frequency[:, 1, None, None] * y[None, :, None]
               + self.phase[:, None, None])
        return torch.sin(arg).unsqueeze(0)

    def forward(self, h: Tensor) -> Tensor:
        return self.waves(h.shape[2], h.shape[3]).to(h.dtype) * self.amplitude(h)
