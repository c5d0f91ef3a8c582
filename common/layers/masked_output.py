"""Attention-mask output (GANimation, Pumarola et al., ECCV 2018): the generator paints a colour image and a
mask, and the result keeps the input wherever the mask is 0::

    output = mask * colour + (1 - mask) * input

An edit that should change one object then has an easy way to leave everything else exactly as it was, and
the mask's penalties (small, smooth) push it to. Any generator whose last layer is ``tanh`` works unchanged:
build it with one more output channel and wrap it; the extra channel's ``tanh`` value ``t`` becomes the mask
``(t + 1) / 2``, i.e. ``sigmoid(2 z)`` of the pre-activation ``z``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def compose(colour: Tensor, mask: Tensor, image: Tensor) -> Tensor:
    """``mask * colour + (1 - mask) * image``; ``mask`` is (N, 1, H, W) in [0, 1]. A mask of 0 returns
    ``image`` exactly (``image + 0``), a mask of 1 returns ``colour`` up to float rounding."""
    return torch.lerp(image, colour, mask)


class MaskedOutput(nn.Module):
    """Wraps a generator built with ``out_channels + 1`` outputs in [-1, 1]. ``forward(image, *args)`` calls
    ``generator(image, *args)`` and returns the composed image; :attr:`last_mask` holds the mask of the last
    call for the penalties (see :func:`common.layers.masked_output.mask_penalties`).

    The input image must have ``out_channels`` channels (the mask blends output with input)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.last_mask: Tensor | None = None

    def forward(self, image: Tensor, *args) -> Tensor:
        raw = self.generator(image, *args)
        colour, mask = raw[:, :-1], (raw[:, -1:] + 1) / 2
        self.last_mask = mask
        return compose(colour, mask, image)


def mask_penalties(mask: Tensor, weight_sparsity: float, weight_smooth: float) -> tuple[Tensor, Tensor]:
    """``(sparsity, smoothness)`` penalties of a (N, 1, H, W) mask, already weighted: the mean mask value
    (GANimation's L1 attention loss, pushing edits to be local) and its total variation (squared differences
    of neighbours, as GANimation's, pushing the mask to be smooth)."""
    sparsity = mask.mean()
    tv = (mask[:, :, 1:, :] - mask[:, :, :-1, :]).pow(2).mean() + (mask[:, :, :, 1:] - mask[:, :, :, :-1]).pow(2).mean()
    return weight_sparsity * sparsity, weight_smooth * tv
