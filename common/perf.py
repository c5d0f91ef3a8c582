"""Running a trainer's networks fast without changing the maths: ``run.channels_last``, ``run.compile`` and
``run.cudnn_benchmark``.

- channels_last (NHWC) lets cuDNN use its tensor-core convolution kernels without transposing every layer's
  input and output; the parameters are stored NHWC too, which checkpoints keep (loading copies values, so a
  checkpoint loads into either layout).
- ``torch.compile`` fuses the element-wise work around the convolutions (InstanceNorm, activations, padding).
  The compiled wrappers share the networks' parameters; checkpoints keep saving the networks themselves (a
  compiled module's ``state_dict`` keys carry an ``_orig_mod.`` prefix). torch.compile has no double
  backward, which the WGAN gradient penalty needs: :meth:`StepNets.penalty_critic` tries once and otherwise
  takes the penalty through the plain module, saying so in one log line.
- cudnn.benchmark times the convolution algorithms once per input shape; training shapes are fixed, so that
  is paid once.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


def configure_backends(run: Any, device: torch.device) -> None:
    """Set cuDNN's autotuner from ``run.cudnn_benchmark`` (``None``: on for CUDA unless ``run.deterministic``).
    A deterministic CUDA run also gets the cuBLAS workspace setting its deterministic mode needs, unless the
    environment sets one (it must be in place before the first cuBLAS call, as it is here)."""
    if device.type != "cuda":
        return
    if run.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    benchmark = not run.deterministic if run.cudnn_benchmark is None else run.cudnn_benchmark
    torch.backends.cudnn.benchmark = bool(benchmark)


def _critic_score(out: Tensor | tuple) -> Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def double_backward_works(critic: Callable, eager: nn.Module, sample: Tensor) -> tuple[bool, str]:
    """Whether a gradient penalty can be taken through ``critic`` (a compiled ``eager``): the gradient of the
    input gradient's norm with respect to a parameter. Leaves no trace: no RNG is drawn, no ``.grad`` is
    filled, and buffers (BatchNorm statistics) are restored. Returns ``(works, why not)``."""
    saved = {name: buf.detach().clone() for name, buf in eager.named_buffers()}
    x = sample.detach().clone().requires_grad_(True)
    params = [p for p in eager.parameters() if p.requires_grad]
    try:
        (grad,) = torch.autograd.grad(_critic_score(critic(x)).sum(), x, create_graph=True)
        # Seen with torch 2.14: autograd.grad through the compiled backward returns None ("unused") for every
        # parameter, where backward() raises; both mean no penalty gradient reaches D. (Some parameters may
        # truly not reach the score, e.g. StarGAN's classification head, but the trunk's do.)
        second = torch.autograd.grad(grad.square().sum(), params or [x], allow_unused=True)
        if all(g is None for g in second):
            return False, "the penalty's gradient does not reach the parameters through the compiled graph"
        return True, ""
    except Exception as err:  # noqa: BLE001 - any failure means: take the penalty without compiling
        return False, (str(err).strip().splitlines() or [type(err).__name__])[0]
    finally:
        with torch.no_grad():
            for name, buf in eager.named_buffers():
                buf.copy_(saved[name])


class StepNets:
    """The modules a training step calls, by name: the networks themselves, or ``torch.compile`` wrappers that
    share their parameters. Builds them per ``run.channels_last`` and ``run.compile``."""

    def __init__(self, nets: dict[str, nn.Module], channels_last: bool = False, compile: bool = False):
        self.channels_last = channels_last
        self.compiled = compile
        self.eager = nets
        if channels_last:
            for net in nets.values():
                net.to(memory_format=torch.channels_last)
        # dynamic=False: training shapes are fixed, and a specialised graph per shape is the fastest (StarGAN's
        # D sees 2N images in its own step and N in G's; each gets its own graph instead of a dynamic one).
        self.modules: dict[str, Callable] = (
            {name: torch.compile(net, dynamic=False) for name, net in nets.items()} if compile else dict(nets))
        self._penalty_through_compiled: dict[str, bool] = {}

    def __getitem__(self, name: str) -> Callable:
        return self.modules[name]

    def input(self, images: Tensor) -> Tensor:
        """A batch in the networks' memory format (NHWC storage under channels_last; same values)."""
        if self.channels_last and images.dim() == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def penalty_critic(self, name: str, sample: Tensor) -> Callable:
        """The module to take network ``name``'s gradient penalty through: the compiled one if its double
        backward works (tried once, on ``sample``), else the plain one, with one log line saying so."""
        if not self.compiled:
            return self.eager[name]
        works = self._penalty_through_compiled.get(name)
        if works is None:
            works, why = double_backward_works(self.modules[name], self.eager[name], self.input(sample))
            self._penalty_through_compiled[name] = works
            if not works:
                log.info("run.compile: the gradient penalty of %s runs uncompiled (torch.compile cannot take its "
                         "double backward: %s); its other calls stay compiled", name, why)
        return self.modules[name] if works else self.eager[name]
