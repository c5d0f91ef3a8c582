"""StarGAN label space (one dataset, or N with the mask vector), network building, checkpoint recovery."""
from __future__ import annotations

import torch

from common.checkpoint import load_weights
from common.config import from_dict
from common.ema import averaged_state
from common.errors import UserError
from common.labels.space import LabelSpace
from stargan.config import StarGANConfig
from stargan.networks import Discriminator, Generator


def build_networks(network, image_size: int, labels: LabelSpace) -> dict[str, torch.nn.Module]:
    return {
        "G": Generator(c_dim=labels.g_dim, conv_dim=network.g_conv_dim, repeat_num=network.g_repeat_num,
                       attention_mask=network.attention_mask, upsample=network.g_upsample, skip=network.g_skip,
                       mask_guide_radius=network.mask_guide_radius, mask_guide_eps=network.mask_guide_eps,
                       mask_guide_colour=network.mask_guide_colour, texture_features=network.texture_features,
                       texture_floor=network.texture_floor, texture_after_guide=network.texture_after_guide,
                       mask_hard=network.mask_hard, mask_snap_radius=network.mask_snap_radius,
                       texture_periods=network.texture_periods, texture_spread=network.texture_spread,
                       mask_snap_fill=network.mask_snap_fill),
        "D": Discriminator(image_size=image_size, conv_dim=network.d_conv_dim, c_dim=labels.d_dim,
                           repeat_num=network.d_repeat_num),
    }


def networks_from_checkpoint(ckpt: dict, source: str
                             ) -> tuple[StarGANConfig, dict[str, torch.nn.Module], LabelSpace]:
    """The embedded config, G (its weight average when the run kept one) and D when present, in eval mode,
    and the label space, from a StarGAN training/inference checkpoint."""
    try:
        labels = LabelSpace.from_dict(ckpt["extra"]["labels"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{source}: StarGAN checkpoint without a usable label schema ({err})") from None
    cfg = from_dict(StarGANConfig, ckpt["config"], source=f"{source} (embedded config)")
    nets = build_networks(cfg.network, cfg.data.image_size, labels)
    out = {}
    for name, net in nets.items():
        state = averaged_state(ckpt["nets"], name)
        if state is None:
            continue
        out[name] = load_weights(net, state, source, name).eval()
    if "G" not in out:
        raise UserError(f"{source}: holds no StarGAN generator 'G'")
    return cfg, out, labels
