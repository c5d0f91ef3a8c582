"""Normalisation-layer factory and the official conv-bias rule.

The official CycleGAN/pix2pix networks pick the norm by name and derive each conv's ``bias`` flag from it.
Both choices change the ``state_dict`` (which keys exist), so they live here, in one place, and every network
asks this module instead of deciding on its own.
"""
from __future__ import annotations

import functools
from typing import Callable

from torch import nn

NORMS = ("instance", "batch", "none")

NormFactory = Callable[[int], nn.Module]


def _check(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of: {', '.join(NORMS)}")


def get_norm_layer(norm: str) -> NormFactory:
    """A ``num_features -> nn.Module`` factory for ``'instance'``, ``'batch'`` or ``'none'``.

    - ``instance``: ``InstanceNorm2d(affine=False, track_running_stats=False)``: no parameters and no buffers,
      so instance-norm checkpoints hold conv weights/biases only.
    - ``batch``: ``BatchNorm2d(affine=True, track_running_stats=True)``.
    - ``none``: ``nn.Identity``. A placeholder module (rather than nothing) keeps the ``nn.Sequential`` indices,
      and therefore the state_dict keys, identical to the other norms, as in the official code.
    """
    _check(norm)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    return lambda num_features: nn.Identity()


def uses_bias(norm: str) -> bool:
    """Whether convs followed by ``norm`` get a bias: True iff the norm is instance norm (official rule).

    BatchNorm's affine shift makes a conv bias redundant. InstanceNorm here has no affine part, so the official
    code keeps conv biases there even though the mean subtraction cancels them. For ``'none'`` the official
    test (``norm_layer == InstanceNorm2d``) is False as well, so norm-free nets have bias-free convs too; we keep
    that so that such checkpoints load. Layers the official code always gives a bias (the first conv of the
    discriminators, the last conv of every network) do not consult this rule.
    """
    _check(norm)
    return norm == "instance"
