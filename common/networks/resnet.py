"""The CycleGAN ResNet generator (Johnson et al. style), official module layout."""
from __future__ import annotations

from torch import Tensor, nn

from common.layers.masked_output import AttentionMask
from common.layers.norm import get_norm_layer, uses_bias
from common.layers.resnet_block import ResnetBlock


class ResnetGenerator(nn.Module):
    """Two stride-2 downsamplings, ``n_blocks`` residual blocks at ``4 * ngf`` channels, two upsamplings.

    ``self.model`` is one ``nn.Sequential`` whose indices equal the official ones (``model.1`` first conv,
    ``model.10 ...`` the blocks, ``model.26`` last conv for 9 blocks), so official state_dicts load unchanged.
    Any input side divisible by 4 comes back at the same size. The outer 7x7 convs always reflect-pad;
    ``padding_type`` only concerns the residual blocks (as upstream).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
        attention_mask: bool = False,
        mask_guide_radius: int = 0,
        mask_guide_eps: float = 0.01,
        mask_guide_colour: bool = False,
        mask_hard: bool = False,
        mask_snap_radius: int = 0,
        mask_snap_fill: bool = False,
    ):
        """``attention_mask``: paint one more channel, the mask of
        :class:`~common.layers.masked_output.AttentionMask` (output = mask x colour + (1 - mask) x input);
        needs ``in_channels == out_channels``. Off is the official network. ``mask_guide_radius`` > 0 (with
        the mask): the mask passes through a guided filter with the input as the guide (its radius and
        regulariser ``mask_guide_eps``; :mod:`common.layers.guided_filter`), so its borders can sit on the
        input's edges; ``mask_guide_colour`` filters the painted colour the same way (the edges of what the mask
        blends in follow the input's too); ``mask_hard`` composes with the mask thresholded at 0.5 in eval mode
        (every pixel the input or the painted colour; training unchanged), and ``mask_snap_radius`` > 0 (with
        ``mask_hard``) moves that thresholded mask's border onto the input's edges (a guided filter of that
        radius, thresholded again); ``mask_snap_fill`` (with the snap) shows the pixels the snap opens in the
        painted colour of their neighbours the threshold opened
        (:func:`~common.layers.masked_output.fill_opened`)."""
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        norm_layer = get_norm_layer(norm)
        bias = uses_bias(norm)

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, padding=0, bias=bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, padding_type, norm, dropout) for _ in range(n_blocks)]
        for mult in (4, 2):
            # output_padding=1 makes each upsampling exactly undo a stride-2 downsampling.
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_layer(ngf * mult // 2),
                nn.ReLU(True),
            ]
        painted = out_channels + 1 if attention_mask else out_channels
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, painted, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.attention = AttentionMask(mask_guide_radius, mask_guide_eps, mask_guide_colour, mask_hard,
                                       mask_snap_radius, mask_snap_fill) if attention_mask else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return out if self.attention is None else self.attention(out, x)
