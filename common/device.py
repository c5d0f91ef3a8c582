"""Choosing the device: CUDA when present, CPU otherwise."""
from __future__ import annotations

import torch

from common.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` -> ``cuda`` if available else ``cpu``; ``cuda`` without a GPU is a UserError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA was requested but no CUDA device is available; use cpu or auto")
        if name == "cuda" and local_rank is not None:
            return torch.device("cuda", local_rank)
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device {name!r}: expected one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
