"""Building the pix2pix generator and conditional discriminator, and recovering the generator from checkpoints."""
from __future__ import annotations

from torch import nn

from common.checkpoint import load_weights
from common.config import from_dict
from common.ema import averaged_state
from common.errors import UserError
from common.networks.factory import define_discriminator, define_generator, generator_input_sides
from pix2pix.config import NetworkConfig, Pix2PixConfig


def build_generator(net: NetworkConfig, init: bool = True) -> nn.Module:
    """G: input_nc -> output_nc. ``init=False`` keeps PyTorch's default init, for weights loaded next."""
    return define_generator(net.netG, in_channels=net.input_nc, out_channels=net.output_nc, ngf=net.ngf,
                            norm=net.norm, dropout=net.dropout, init_type=net.init_type if init else None,
                            init_gain=net.init_gain, attention_mask=net.attention_mask,
                            mask_guide_radius=net.mask_guide_radius, mask_guide_eps=net.mask_guide_eps,
                            mask_guide_colour=net.mask_guide_colour, mask_hard=net.mask_hard,
                            mask_snap_radius=net.mask_snap_radius, mask_snap_fill=net.mask_snap_fill)


def build_discriminator(net: NetworkConfig) -> nn.Module:
    """The conditional D: it judges (input, output) pairs, concatenated along the channels."""
    return define_discriminator(net.netD, in_channels=net.input_nc + net.output_nc, ndf=net.ndf,
                                n_layers=net.n_layers_D, norm=net.norm, init_type=net.init_type,
                                init_gain=net.init_gain)


def build_networks(cfg: Pix2PixConfig) -> dict[str, nn.Module]:
    return {"G": build_generator(cfg.network), "D": build_discriminator(cfg.network)}


def input_sides(net: NetworkConfig) -> tuple[int, int]:
    """``(multiple, minimum)`` of the input sides G takes: a ResNet any multiple of 4 from 8, a U-Net
    multiples of 128 (unet_128) or 256 (unet_256), its bottom reaching 1x1."""
    return generator_input_sides(net.netG, net.norm)


def generator_from_checkpoint(ckpt: dict, source: str) -> tuple[Pix2PixConfig, nn.Module]:
    """The config and generator ``G`` of a pix2pix training or inference checkpoint, in eval mode on the CPU."""
    cfg = from_dict(Pix2PixConfig, ckpt["config"], source=f"{source} (embedded config)")
    state = averaged_state(ckpt.get("nets", {}), "G")  # the weight average when the run kept one
    if state is None:
        raise UserError(f"{source}: holds no pix2pix generator G (it has: {', '.join(ckpt.get('nets', {})) or 'none'})")
    generator = build_generator(cfg.network, init=False)
    return cfg, load_weights(generator, state, source, "G").eval()
