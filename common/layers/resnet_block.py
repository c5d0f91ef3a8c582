"""The residual block of the CycleGAN ResNet generator."""
from __future__ import annotations

from torch import Tensor, nn

from common.layers.norm import get_norm_layer, uses_bias

PADDING_TYPES = ("reflect", "replicate", "zero")


def _padding(padding_type: str) -> tuple[list[nn.Module], int]:
    """Explicit pad module(s) and the conv's own padding for a 3x3 conv that keeps the size."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(1)], 0
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(1)], 0
    if padding_type == "zero":
        return [], 1
    raise ValueError(f"unknown padding_type {padding_type!r}; expected one of: {', '.join(PADDING_TYPES)}")


class ResnetBlock(nn.Module):
    """``x + [pad, conv3, norm, ReLU, (Dropout 0.5), pad, conv3, norm](x)``, no activation after the sum.

    The layers sit in ``self.conv_block`` in the official order, so the state_dict keys match official files:
    with reflect padding the convs are ``conv_block.1`` and ``conv_block.5`` (``conv_block.6`` with dropout,
    because the Dropout module takes an index). ``padding_type='zero'`` has no pad modules (the convs pad
    themselves), which shifts the indices exactly as upstream.
    """

    def __init__(self, dim: int, padding_type: str = "reflect", norm: str = "instance", dropout: bool = False):
        super().__init__()
        norm_layer = get_norm_layer(norm)
        bias = uses_bias(norm)
        layers: list[nn.Module] = []
        pad, conv_padding = _padding(padding_type)
        layers += [*pad, nn.Conv2d(dim, dim, 3, padding=conv_padding, bias=bias), norm_layer(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        pad, conv_padding = _padding(padding_type)
        layers += [*pad, nn.Conv2d(dim, dim, 3, padding=conv_padding, bias=bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)
