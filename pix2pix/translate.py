"""pix2pix inference in the paper's test-time mode or in eval mode, on plain images or aligned files.

The paper and the official ``test.py`` (without ``--eval``) run G as in training: batch norm normalises with
the statistics of the image itself (the official test batch is one image) and dropout stays on, as the noise
the paper's generator takes. ``--eval`` is the official ``--eval``: running statistics, no dropout.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from common.data.aligned import oriented
from common.data.images import as_rgb, to_channels
from common.errors import UserError
from common.family import Translator
from common.inference import pad_to_fit
from common.layers.masked_output import heads_to_inference
from pix2pix.config import Pix2PixConfig
from pix2pix.model import input_sides


@contextlib.contextmanager
def seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Within the block, the RNG that ``device``'s ops (dropout) draw from starts at ``seed``; after it, that
    RNG continues as if the block had not run."""
    if device.type == "cuda":
        with torch.random.fork_rng(devices=[device], device_type="cuda"), torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
            yield
    else:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield


@torch.no_grad()
def generate(generator: nn.Module, real_a: Tensor, paper: bool = True, seed: int = 0) -> Tensor:
    """G's output for a batch. ``paper``: one image at a time in training mode (its own batch-norm
    statistics, dropout on), the dropout noise seeded with ``seed`` for each image, so an image gives the same
    output on every run and wherever it stands in a folder. Otherwise eval mode (running statistics, no
    dropout), deterministic. Neither updates the weights; paper mode moves the running statistics, which it
    does not use."""
    generator.train(paper)
    heads_to_inference(generator)  # paper mode is still inference: a mask_hard head thresholds
    if not paper:
        return generator(real_a)
    outputs = []
    for image in real_a.split(1):
        with seeded(image.device, seed):
            outputs.append(generator(image))
    return torch.cat(outputs)


def input_half(aligned: Tensor, direction: str) -> Tensor:
    """The input side of a batch of aligned images (A | B side by side): A for ``AtoB``, B for ``BtoA``."""
    h, w = aligned.shape[-2:]
    if w % 2:
        raise UserError(f"--aligned: an input is {w}x{h} pixels, an odd width; an aligned file holds A and B "
                        "side by side, so its width is even")
    return oriented(aligned[..., : w // 2], aligned[..., w // 2:], direction)[0]


def make_translator(generator: nn.Module, cfg: Pix2PixConfig, eval_mode: bool = False,
                    aligned: bool = False) -> Translator:
    """The ``translate`` function of a pix2pix generator (on its device). ``aligned``: inputs are aligned
    files; the half the model takes as input (per ``cfg.data.direction``) is translated, so outputs are half
    as wide as the inputs."""
    net = cfg.network
    multiple, min_side = input_sides(net)

    def run(x: Tensor) -> Tensor:
        return as_rgb(generate(generator, to_channels(x, net.input_nc), paper=not eval_mode, seed=cfg.seed))

    if not aligned:
        return Translator(lambda x, _size: run(x), multiple, min_side)

    def run_aligned(x: Tensor, size: tuple[int, int]) -> Tensor:
        # Unpadded aligned images arrive (multiple 1); their input half is padded to what G takes.
        padded, (h, w) = pad_to_fit(input_half(x[..., : size[0], : size[1]], cfg.data.direction), multiple,
                                    min_side)
        return run(padded)[..., :h, :w]

    return Translator(run_aligned, 1)
