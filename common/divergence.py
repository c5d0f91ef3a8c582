"""The divergence guard: a NaN/inf loss or network tensor stops a run with one line, before it is saved.

Losses are checked without a device sync per step: the step meter keeps, on the device, the first step whose
losses were not finite, and it is read at each log point and before each save (the message still names that
step); the networks and optimizer moments are checked once per save. A diverged run writes no checkpoint, so
``latest.pt`` stays the last good one and ``keep_last`` prunes nothing.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import torch
import torch.distributed as tdist
from torch import nn

from common.distributed import DistInfo
from common.errors import UserError

# Keys named in the message; more are counted.
_SHOWN = 4


class TrainingDiverged(UserError):
    """A loss, or a tensor about to be checkpointed, became NaN or infinite. The run stops with one line
    naming the step and what went bad (exit status 2, as for every UserError) and writes no checkpoint of that
    state."""


def non_finite(values: Mapping[str, float]) -> list[str]:
    """The keys of ``values`` (Python floats, e.g. a step's loss logs) that are NaN or infinite."""
    return [key for key, value in values.items() if not math.isfinite(value)]


def check_losses(step: int, logs: Mapping[str, float], last_good: Path | None) -> None:
    """Raise :class:`TrainingDiverged` naming every NaN/inf loss of ``logs`` (the first few, then a count)."""
    bad = non_finite(logs)
    if bad:
        shown = ", ".join(f"{key} is {logs[key]}" for key in bad[:_SHOWN])
        more = f" (and {len(bad) - _SHOWN} more)" if len(bad) > _SHOWN else ""
        raise diverged(step, f"loss {shown}{more}", last_good)


def check_state(step: int, nets: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                dist: DistInfo, last_good: Path | None) -> None:
    """Raise :class:`TrainingDiverged` if a network (parameters and buffers) or an optimizer (its moments)
    holds a NaN/inf; one device sync per network or optimizer. Rank 0 decides for every rank (BatchNorm
    statistics may differ across ranks), so all of them stop together."""
    groups = {f"network {name}": list(net.state_dict().values()) for name, net in nets.items()}
    for name, optimizer in optimizers.items():
        groups[f"optimizer {name}"] = [t for state in optimizer.state.values() for t in state.values()
                                       if torch.is_tensor(t)]
    bad = []
    for name, tensors in groups.items():
        flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
        if flags and not bool(torch.stack([f.to(flags[0].device) for f in flags]).all()):
            bad.append(name)
    if dist.enabled:
        holder = [bad]
        tdist.broadcast_object_list(holder, src=0)
        bad = holder[0]
    if bad:
        raise diverged(step, f"{', '.join(bad)} hold{'s' if len(bad) == 1 else ''} NaN/inf values", last_good)


def diverged(step: int, what: str, last_good: Path | None) -> TrainingDiverged:
    where = f"last good checkpoint: {last_good}" if last_good else "no checkpoint was written"
    return TrainingDiverged(f"step {step}: {what}; the run diverged and stopped without saving ({where}); "
                            "lower the learning rate or check the data")
