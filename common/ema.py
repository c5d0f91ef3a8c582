"""An exponential moving average of a network's weights (Polyak averaging), as StarGAN v2 and StyleGAN keep
of their generators: ``ema = decay * ema + (1 - decay) * weights`` after every optimizer step of the network.

The averaged copy is what inference should use: it smooths the step-to-step jitter of adversarial training,
which shows as colour casts and flicker in single snapshots. Buffers (e.g. batch-norm statistics) are copied,
not averaged. The copy lives on the same device and is never trained; it goes into checkpoints as a network
of its own (``G_ema`` beside ``G``), so resume is exact and inference can pick either.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


def ema_name(name: str) -> str:
    """The checkpoint's name for the average of network ``name`` (``G`` -> ``G_ema``)."""
    return f"{name}_ema"


def averaged_state(nets: Mapping[str, Any], name: str) -> Any:
    """The weights inference should use for network ``name`` of a checkpoint's ``nets``: its average when the
    run kept one, else the trained weights (None when neither is there)."""
    return nets.get(ema_name(name), nets.get(name))


def ema_decay(decay: float, updates: int, warmup: int) -> float:
    """The decay for update number ``updates`` (1-based): ``decay``, lowered early on as
    ``(1 + n) / (warmup + n)`` so the average is not dominated by the random initial weights in a short run
    (TensorFlow's ``ExponentialMovingAverage(num_updates=...)`` rule with a tunable constant)."""
    if warmup <= 0:
        return decay
    return min(decay, (1 + updates) / (warmup + updates))


class ModelEMA:
    """Keeps ``self.module``, an averaged copy of ``model``; call :meth:`update` after each step of ``model``.

    Args:
        model: the trained network (its current weights start the average).
        decay: weight of the old average per update, in [0, 1); 0.999 is StarGAN v2's value.
        warmup: see :func:`ema_decay`; 0 uses ``decay`` from the first update.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = ema_decay(self.decay, self.updates, self.warmup)
        averaged = dict(self.module.named_parameters())
        for name, param in model.named_parameters():
            averaged[name].lerp_(param.detach(), 1.0 - decay)
        own_buffers = dict(self.module.named_buffers())
        for name, buffer in model.named_buffers():
            own_buffers[name].copy_(buffer)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["module"])
