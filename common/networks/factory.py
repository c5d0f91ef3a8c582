"""Build generators/discriminators by their official names (``--netG`` / ``--netD`` values)."""
from __future__ import annotations

from torch import nn

from common.layers.init import init_weights
from common.networks.patchgan import NLayerDiscriminator, PixelDiscriminator
from common.networks.resnet import ResnetGenerator
from common.networks.unet import UnetGenerator

GENERATOR_ARCHS = ("resnet_9blocks", "resnet_6blocks", "unet_128", "unet_256")
DISCRIMINATOR_ARCHS = ("basic", "n_layers", "pixel")

_RESNET_BLOCKS = {"resnet_9blocks": 9, "resnet_6blocks": 6}
_UNET_DOWNS = {"unet_128": 7, "unet_256": 8}


def define_generator(
    arch: str,
    in_channels: int = 3,
    out_channels: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
    init_type: str | None = "normal",
    init_gain: float = 0.02,
    attention_mask: bool = False,
    mask_guide_radius: int = 0,
    mask_guide_eps: float = 0.01,
    mask_guide_colour: bool = False,
    mask_hard: bool = False,
    mask_snap_radius: int = 0,
    mask_snap_fill: bool = False,
) -> nn.Module:
    """A freshly initialised generator; ``arch`` is one of :data:`GENERATOR_ARCHS`. ``attention_mask``,
    ``mask_guide_radius``, ``mask_guide_eps``, ``mask_guide_colour``, ``mask_hard``, ``mask_snap_radius``,
    ``mask_snap_fill``: see
    :class:`~common.networks.resnet.ResnetGenerator`.

    ``init_type=None`` skips initialisation (PyTorch defaults remain), for nets whose weights are loaded next.
    """
    if arch in _RESNET_BLOCKS:
        net: nn.Module = ResnetGenerator(
            in_channels, out_channels, ngf, norm=norm, dropout=dropout, n_blocks=_RESNET_BLOCKS[arch],
            attention_mask=attention_mask, mask_guide_radius=mask_guide_radius, mask_guide_eps=mask_guide_eps,
            mask_guide_colour=mask_guide_colour, mask_hard=mask_hard, mask_snap_radius=mask_snap_radius,
            mask_snap_fill=mask_snap_fill,
        )
    elif arch in _UNET_DOWNS:
        net = UnetGenerator(in_channels, out_channels, _UNET_DOWNS[arch], ngf, norm=norm, dropout=dropout,
                            attention_mask=attention_mask, mask_guide_radius=mask_guide_radius,
                            mask_guide_eps=mask_guide_eps, mask_guide_colour=mask_guide_colour,
                            mask_hard=mask_hard, mask_snap_radius=mask_snap_radius, mask_snap_fill=mask_snap_fill)
    else:
        raise ValueError(f"unknown generator arch {arch!r}; expected one of: {', '.join(GENERATOR_ARCHS)}")
    return net if init_type is None else init_weights(net, init_type, init_gain)


def define_discriminator(
    arch: str,
    in_channels: int = 3,
    ndf: int = 64,
    n_layers: int = 3,
    norm: str = "instance",
    init_type: str | None = "normal",
    init_gain: float = 0.02,
) -> nn.Module:
    """A freshly initialised discriminator; ``arch`` is one of :data:`DISCRIMINATOR_ARCHS`.

    ``basic`` is the 70x70 PatchGAN (always 3 layers, ``n_layers`` ignored), ``n_layers`` uses ``n_layers``,
    ``pixel`` is the 1x1 PatchGAN. ``init_type=None`` skips initialisation.
    """
    if arch == "basic":
        net: nn.Module = NLayerDiscriminator(in_channels, ndf, n_layers=3, norm=norm)
    elif arch == "n_layers":
        net = NLayerDiscriminator(in_channels, ndf, n_layers=n_layers, norm=norm)
    elif arch == "pixel":
        net = PixelDiscriminator(in_channels, ndf, norm=norm)
    else:
        raise ValueError(
            f"unknown discriminator arch {arch!r}; expected one of: {', '.join(DISCRIMINATOR_ARCHS)}"
        )
    return net if init_type is None else init_weights(net, init_type, init_gain)


def generator_input_sides(arch: str, norm: str) -> tuple[int, int]:
    """``(multiple, minimum)``: the input sides generator ``arch`` trains on. A ResNet comes back at the
    input's size for multiples of 4; its 4x smaller bottleneck must keep more than one pixel (the residual
    blocks' 1-pixel reflection padding needs 2, and so do instance/batch statistics in training, whatever the
    norm). A U-Net reaches 1x1 at the bottom
    for exactly ``2 ** num_downs`` and needs multiples of it."""
    if arch in _RESNET_BLOCKS:
        return 4, 8
    if arch in _UNET_DOWNS:
        side = 2 ** _UNET_DOWNS[arch]
        return side, side
    raise ValueError(f"unknown generator arch {arch!r}; expected one of: {', '.join(GENERATOR_ARCHS)}")


def discriminator_min_side(arch: str, n_layers: int = 3) -> int:
    """The smallest input side discriminator ``arch`` takes. A PatchGAN halves the side ``n_layers`` times
    (``basic``: 3) and its two stride-1 4x4 convs each take one pixel off, so at least 3 pixels must be left:
    ``3 * 2 ** n_layers``. The 1x1 ``pixel`` PatchGAN needs 2 (its norm needs more than one pixel)."""
    if arch == "pixel":
        return 2
    if arch in ("basic", "n_layers"):
        return 3 * 2 ** (3 if arch == "basic" else n_layers)
    raise ValueError(f"unknown discriminator arch {arch!r}; expected one of: {', '.join(DISCRIMINATOR_ARCHS)}")


def count_parameters(net: nn.Module) -> int:
    """Number of parameters (buffers such as BatchNorm running stats excluded, like the official count)."""
    return sum(p.numel() for p in net.parameters())
