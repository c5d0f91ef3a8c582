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
) -> nn.Module:
    """A freshly initialised generator; ``arch`` is one of :data:`GENERATOR_ARCHS`.

    ``init_type=None`` skips initialisation (PyTorch defaults remain), for nets whose weights are loaded next.
    """
    if arch in _RESNET_BLOCKS:
        net: nn.Module = ResnetGenerator(
            in_channels, out_channels, ngf, norm=norm, dropout=dropout, n_blocks=_RESNET_BLOCKS[arch]
        )
    elif arch in _UNET_DOWNS:
        net = UnetGenerator(in_channels, out_channels, _UNET_DOWNS[arch], ngf, norm=norm, dropout=dropout)
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


def count_parameters(net: nn.Module) -> int:
    """Number of parameters (buffers such as BatchNorm running stats excluded, like the official count)."""
    return sum(p.numel() for p in net.parameters())
