"""Building the four CycleGAN networks and recovering generators from checkpoints."""
from __future__ import annotations

from torch import nn

from common.checkpoint import load_weights
from common.config import from_dict
from common.ema import averaged_state
from common.errors import UserError
from common.networks.factory import define_discriminator, define_generator
from cyclegan.config import CycleGANConfig, NetworkConfig

# G_A: A -> B (judged by D_A, which sees domain B); G_B: B -> A (judged by D_B). Official naming.
DIRECTIONS = {"AtoB": "G_A", "BtoA": "G_B"}


def build_generator(net: NetworkConfig, in_channels: int, out_channels: int) -> nn.Module:
    return define_generator(
        net.netG, in_channels=in_channels, out_channels=out_channels, ngf=net.ngf, norm=net.norm,
        dropout=net.dropout, init_type=net.init_type, init_gain=net.init_gain, attention_mask=net.attention_mask,
        mask_guide_radius=net.mask_guide_radius, mask_guide_eps=net.mask_guide_eps,
        mask_guide_colour=net.mask_guide_colour, mask_hard=net.mask_hard, mask_snap_radius=net.mask_snap_radius,
        mask_snap_fill=net.mask_snap_fill,
    )


def build_networks(cfg: CycleGANConfig) -> dict[str, nn.Module]:
    net = cfg.network
    disc = dict(ndf=net.ndf, n_layers=net.n_layers_D, norm=net.norm, init_type=net.init_type,
                init_gain=net.init_gain)
    return {
        "G_A": build_generator(net, net.input_nc, net.output_nc),
        "G_B": build_generator(net, net.output_nc, net.input_nc),
        "D_A": define_discriminator(net.netD, in_channels=net.output_nc, **disc),
        "D_B": define_discriminator(net.netD, in_channels=net.input_nc, **disc),
    }


def _checkpoint_config(ckpt: dict, source: str) -> CycleGANConfig:
    return from_dict(CycleGANConfig, ckpt["config"], source=f"{source} (embedded config)")


def _load_generator(cfg: CycleGANConfig, name: str, state: dict, source: str) -> nn.Module:
    net = cfg.network
    in_ch, out_ch = (net.input_nc, net.output_nc) if name == "G_A" else (net.output_nc, net.input_nc)
    generator = build_generator(net, in_ch, out_ch)
    return load_weights(generator, state, source, name).eval()


def generator_from_checkpoint(ckpt: dict, direction: str, source: str) -> nn.Module:
    """The generator for ``AtoB``/``BtoA`` from a CycleGAN training or inference checkpoint, in eval mode."""
    if direction not in DIRECTIONS:
        raise UserError(f"--direction {direction!r}: expected one of {', '.join(DIRECTIONS)}")
    name = DIRECTIONS[direction]
    nets = ckpt.get("nets", {})
    if name not in nets:
        raise UserError(
            f"{source}: holds no {name} generator for direction {direction} (it has: {', '.join(nets) or 'none'})"
        )
    return _load_generator(_checkpoint_config(ckpt, source), name, averaged_state(nets, name), source)


def generators_from_checkpoint(ckpt: dict, source: str) -> tuple[CycleGANConfig, dict[str, nn.Module]]:
    """The config and every generator a checkpoint holds (``G_A`` and/or ``G_B``; their weight averages when
    the run kept them), in eval mode."""
    cfg = _checkpoint_config(ckpt, source)
    saved = ckpt.get("nets", {})
    nets = {name: _load_generator(cfg, name, averaged_state(saved, name), source)
            for name in DIRECTIONS.values() if name in saved}
    if not nets:
        raise UserError(f"{source}: holds no CycleGAN generator (expected G_A and/or G_B)")
    return cfg, nets


def required_multiple(netG: str) -> int:
    """Input sides the generator accepts directly: ResNet down/up-samples twice, U-Net 7 or 8 times."""
    return {"resnet_9blocks": 4, "resnet_6blocks": 4, "unet_128": 128, "unet_256": 256}[netG]

