"""Generators as ONNX files: dynamic batch and spatial axes, inputs ``image`` (and ``labels`` for a label-conditioned
generator), output ``output``. Uses PyTorch's ``torch.export``-based exporter (the default since 2.9; the
TorchScript one is deprecated), which needs the ``onnx`` and ``onnxscript`` packages: the ``export`` extra."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
from pathlib import Path

import torch
from torch import nn

from common.errors import UserError

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[export]"'
IMAGE_INPUT = "image"
LABELS_INPUT = "labels"
OUTPUT = "output"
# The largest |onnx - torch| difference an export is expected to keep (float32 kernels differ in summation order).
TOLERANCE = 1e-4


def require_onnx() -> None:
    """Refuse, in one line, an ONNX export where its packages are missing."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"--format onnx needs the {' and '.join(missing)} package(s): {INSTALL_HINT}")
    if not hasattr(torch.export, "Dim") or not hasattr(torch.export.Dim, "AUTO"):
        raise UserError(f"--format onnx needs torch >= 2.6 (torch.export with automatic dynamic shapes); this is "
                        f"torch {torch.__version__}")


def sample_inputs(channels: int, multiple: int, min_side: int, label_width: int | None,
                  scale: tuple[int, int] = (2, 3)) -> dict[str, torch.Tensor]:
    """Random inputs the generator takes: batch 2 and unequal sides (equal sizes would tie the axes together
    in the exported graph), ``scale`` times the smallest side it takes."""
    base = -(-max(min_side, multiple) // multiple) * multiple
    gen = torch.Generator().manual_seed(0)
    inputs = {IMAGE_INPUT: torch.rand(2, channels, scale[0] * base, scale[1] * base, generator=gen) * 2 - 1}
    if label_width is not None:
        inputs[LABELS_INPUT] = torch.rand(2, label_width, generator=gen)
    return inputs


def export_onnx(net: nn.Module, inputs: dict[str, torch.Tensor], path: Path) -> None:
    """Write ``net`` (in eval mode) called as ``net(*inputs.values())`` to ``path``. Every input's batch axis
    and the image's height and width are dynamic."""
    auto = torch.export.Dim.AUTO
    dynamic = tuple({0: auto, 2: auto, 3: auto} if name == IMAGE_INPUT else {0: auto} for name in inputs)
    # The exporter prints its progress on stdout; the CLI reports the result instead.
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(net.eval(), tuple(inputs.values()), str(path), input_names=list(inputs),
                          output_names=[OUTPUT], dynamic_shapes=dynamic, dynamo=True, external_data=False,
                          verbose=False)


def onnx_difference(net: nn.Module, path: Path, inputs: dict[str, torch.Tensor]) -> float | None:
    """Max |onnxruntime - PyTorch| on ``inputs``; None where onnxruntime is not installed."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime  # optional dependency

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run([OUTPUT], {name: value.numpy() for name, value in inputs.items()})
    with torch.no_grad():
        expected = net.eval()(*inputs.values())
    return float((torch.from_numpy(output) - expected).abs().max())
