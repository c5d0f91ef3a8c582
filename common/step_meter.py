"""The step meter: the loss logs of the steps since the last log point, kept on the device until they are logged.

A training step that turned each loss into a Python number (``loss.item()``, ``float(loss)``) would wait for
the device to finish everything queued so far, about fifteen times per StarGAN iteration; the GPU then idles
while Python prepares the next kernels. So the loss functions log detached tensors, and :class:`StepMeter`
only queues more device work for them: per set of log keys it stacks the step's values, adds them to running
sums and keeps, on the device, the first step whose values held a NaN or an infinity (for the divergence
guard). Nothing is read back until :meth:`StepMeter.read` (log time) or :meth:`StepMeter.first_non_finite`
(before a checkpoint), each one transfer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Union

import torch
from torch import Tensor

from common.distributed import DistInfo, allreduce_mean

LogValue = Union[float, Tensor]


@dataclass
class _TensorSums:
    """Running sums of the tensor logs of one key set (a StarGAN D-only step logs fewer keys than a G step)."""

    keys: tuple[str, ...]
    sums: Tensor  # (k,) float64
    count: int
    first_bad_step: Tensor  # () int64, -1 while every step was finite
    first_bad_values: Tensor  # (k,) float64, the values of that step


@dataclass
class MeterReading:
    """What :meth:`StepMeter.read` returns: the means (all ranks), and this rank's first step since the last
    read whose tensor logs held a NaN/inf, with those logs (``None`` when every step was finite)."""

    means: dict[str, float]
    first_non_finite: tuple[int, dict[str, float]] | None


def _stack(values: list[Tensor]) -> Tensor:
    # float() is free for the usual float32 losses; one cast of the stacked vector then gives float64 sums, which
    # equal the Python-float sums of the values read one by one.
    return torch.stack([v.detach().reshape(()).float() for v in values]).double()


class StepMeter:
    """Means of the per-step loss logs since the last log point, averaged over ranks, plus images/s.

    Log values may be Python floats or scalar tensors (any dtype, all on one device). Floats are summed in
    Python; tensors are summed on their device and never read in :meth:`add` (see the module docstring).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.float_sums: dict[str, float] = {}
        self.float_counts: dict[str, int] = {}
        self.tensor_sums: dict[tuple[str, ...], _TensorSums] = {}
        self.images = 0
        self.tick = time.perf_counter()

    def add(self, logs: Mapping[str, LogValue], n_images: int, step: int | None = None) -> None:
        """Add one step's logs. ``step`` (the global step) lets the meter remember the first step whose tensor
        values were not finite; the floats are the caller's to check (that costs no sync)."""
        tensors = {k: v for k, v in logs.items() if torch.is_tensor(v)}
        for key, value in logs.items():
            if key not in tensors:
                self.float_sums[key] = self.float_sums.get(key, 0.0) + float(value)
                self.float_counts[key] = self.float_counts.get(key, 0) + 1
        if tensors:
            self._add_tensors(tuple(tensors), _stack(list(tensors.values())), step)
        self.images += n_images

    def _add_tensors(self, keys: tuple[str, ...], values: Tensor, step: int | None) -> None:
        sums = self.tensor_sums.get(keys)
        if sums is None:
            sums = self.tensor_sums[keys] = _TensorSums(
                keys, torch.zeros_like(values), 0, torch.full((), -1, dtype=torch.int64, device=values.device),
                torch.zeros_like(values))
        sums.sums.add_(values)
        sums.count += 1
        if step is not None:
            first = torch.isfinite(values).all().logical_not() & (sums.first_bad_step < 0)
            sums.first_bad_step.masked_fill_(first, step)
            sums.first_bad_values = torch.where(first, values, sums.first_bad_values)

    def _read_tensors(self, with_sums: bool) -> list[tuple[_TensorSums, list[float], int, list[float]]]:
        """Every key set's (sums, first bad step, that step's values), read in one transfer."""
        groups = list(self.tensor_sums.values())
        if not groups:
            return []
        parts = []
        for g in groups:
            if with_sums:
                parts.append(g.sums)
            parts += [g.first_bad_step.double().reshape(1), g.first_bad_values]
        flat = torch.cat(parts).tolist()
        out, at = [], 0
        for g in groups:
            k = len(g.keys)
            sums = flat[at:at + k] if with_sums else []
            at += len(sums)
            out.append((g, sums, int(flat[at]), flat[at + 1:at + 1 + k]))
            at += 1 + k
        return out

    @staticmethod
    def _first_bad(read: list) -> tuple[int, dict[str, float]] | None:
        bad = [(step, dict(zip(g.keys, values))) for g, _, step, values in read if step >= 0]
        return min(bad, key=lambda item: item[0]) if bad else None

    def first_non_finite(self) -> tuple[int, dict[str, float]] | None:
        """This rank's first step since the last read whose tensor logs held a NaN/inf, with its logs; one
        device sync. The meter keeps its sums."""
        return self._first_bad(self._read_tensors(with_sums=False))

    def read(self, dist: DistInfo, device: torch.device) -> MeterReading:
        """The means since the last read (rank-averaged: a collective under torchrun, every rank must call it at
        the same step) and the first non-finite step; resets the meter. One device sync (two under torchrun)."""
        read = self._read_tensors(with_sums=True)
        sums, counts = dict(self.float_sums), dict(self.float_counts)
        for g, values, _, _ in read:
            for key, value in zip(g.keys, values):
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + g.count
        means = allreduce_mean({k: v / counts[k] for k, v in sums.items()}, dist, device)
        means["speed/images_per_s"] = self.images / max(time.perf_counter() - self.tick, 1e-9)
        first_bad = self._first_bad(read)
        self.reset()
        return MeterReading(means, first_bad)

    def means(self, dist: DistInfo, device: torch.device) -> dict[str, float]:
        """:meth:`read`'s means (a collective under torchrun); resets the meter."""
        return self.read(dist, device).means

