"""The pix2pix U-Net generator, official (recursive) module layout."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from common.layers.masked_output import AttentionMask
from common.layers.norm import get_norm_layer, uses_bias


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: ``down -> submodule -> up``, with the level's input concatenated to its output.

    ``self.model`` holds the layers in the official order, which fixes the state_dict keys:

    - outermost: ``[conv_down, submodule, ReLU, convT_up (bias), Tanh]`` (no skip; this is the network output)
    - innermost: ``[LeakyReLU, conv_down, ReLU, convT_up, norm]``
    - middle:    ``[LeakyReLU, conv_down, norm, submodule, ReLU, convT_up, norm, (Dropout 0.5)]``

    Skip semantics: upstream's leading LeakyReLU is in-place, so it overwrites the block input before the
    concatenation and the skip actually carries ``LeakyReLU(x)``, not ``x``. Published pix2pix weights were
    trained that way, so we reproduce it explicitly (without mutating the caller's tensor).
    """

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        dropout: bool = False,
    ):
        super().__init__()
        if outermost and innermost:
            raise ValueError("a U-Net block cannot be both outermost and innermost")
        if (submodule is None) != innermost:
            raise ValueError("exactly the innermost U-Net block has no submodule")
        self.outermost = outermost
        norm_layer = get_norm_layer(norm)
        bias = uses_bias(norm)
        in_channels = outer_channels if in_channels is None else in_channels

        down_conv = nn.Conv2d(in_channels, inner_channels, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up_conv = nn.ConvTranspose2d(inner_channels * 2, outer_channels, 4, stride=2, padding=1)
            layers = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        elif innermost:
            up_conv = nn.ConvTranspose2d(inner_channels, outer_channels, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), down_conv, nn.ReLU(True), up_conv, norm_layer(outer_channels)]
        else:
            up_conv = nn.ConvTranspose2d(inner_channels * 2, outer_channels, 4, stride=2, padding=1, bias=bias)
            layers = [
                nn.LeakyReLU(0.2), down_conv, norm_layer(inner_channels), submodule,
                nn.ReLU(True), up_conv, norm_layer(outer_channels),
            ]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        skip = self.model[0](x)
        out = skip
        for layer in self.model[1:]:
            out = layer(out)
        return torch.cat([skip, out], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` stride-2 levels; an input side of ``2 ** num_downs`` reaches 1x1 at the bottom.

    Widths ``ngf, 2ngf, 4ngf, 8ngf, 8ngf, ...``; the ``num_downs - 5`` extra 8ngf levels get Dropout(0.5) when
    ``dropout`` (the innermost and the four outer levels never do). ``unet_256`` is ``num_downs=8``,
    ``unet_128`` is 7. The input side must be a multiple of ``2 ** num_downs``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = False,
        attention_mask: bool = False,
        mask_guide_radius: int = 0,
        mask_guide_eps: float = 0.01,
        mask_guide_colour: bool = False,
        mask_hard: bool = False,
        mask_snap_radius: int = 0,
        mask_snap_fill: bool = False,
    ):
        """``attention_mask``, ``mask_guide_radius``, ``mask_guide_eps``, ``mask_guide_colour``, ``mask_hard``,
        ``mask_snap_radius``, ``mask_snap_fill``: as :class:`~common.networks.resnet.ResnetGenerator`'s."""
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm)
        painted = out_channels + 1 if attention_mask else out_channels
        self.model = UnetSkipConnectionBlock(
            painted, ngf, in_channels=in_channels, submodule=block, outermost=True, norm=norm
        )
        self.attention = AttentionMask(mask_guide_radius, mask_guide_eps, mask_guide_colour, mask_hard,
                                       mask_snap_radius, mask_snap_fill) if attention_mask else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return out if self.attention is None else self.attention(out, x)
