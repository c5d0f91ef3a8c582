"""Weight initialisation with the official CycleGAN/pix2pix semantics."""
from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialise ``net`` in place and return it.

    Conv (incl. transposed) and Linear weights: ``normal`` N(0, gain), ``xavier`` xavier-normal with ``gain``,
    ``kaiming`` kaiming-normal (a=0, fan_in; ``gain`` unused, as upstream), ``orthogonal`` with ``gain``; their
    biases are 0. BatchNorm weights are N(1, gain) and biases 0, as upstream: drawing the scale around 1 instead of
    fixing it is what the published models were trained with. Uses the global torch RNG, so seeding it makes the
    result reproducible.
    """
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown init_type {init_type!r}; expected one of: {', '.join(INIT_TYPES)}")

    def init_module(module: nn.Module) -> None:
        if isinstance(module, (_ConvNd, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(module.weight, 0.0, init_gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(module.weight, gain=init_gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(module.weight, gain=init_gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _BatchNorm) and module.affine:
            nn.init.normal_(module.weight, 1.0, init_gain)
            nn.init.zeros_(module.bias)

    net.apply(init_module)
    return net
