"""History of generated images shown to the discriminator (Shrivastava et al. 2017, as used by CycleGAN).

Feeding D a mix of current and older fakes keeps it from over-fitting to the generator's latest output and
damps oscillation. The rule matches official CycleGAN; the difference is that every random draw comes from
the pool's own ``torch.Generator``, so the pool is reproducible and its full state (images + RNG) can be
checkpointed and resumed exactly.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from common.errors import UserError


class ImagePool:
    """Buffer of up to ``pool_size`` past images.

    ``query(images)`` with ``pool_size == 0`` returns ``images`` unchanged. Otherwise, per image in the batch:
    while the pool is not full, the image is stored and returned; once full, with probability 0.5 a uniformly
    chosen stored image is returned and replaced by the new one, else the new one is returned. The output is
    detached (D's loss must not reach G through the pool, and stored images carry no graph anyway).

    Randomness: ``generator`` (a CPU ``torch.Generator``) if given; else one seeded with ``seed``; else one
    seeded from a draw of the torch global RNG, so ``torch.manual_seed`` alone makes a run reproducible while
    two pools still get different streams.
    """

    def __init__(self, pool_size: int = 50, generator: torch.Generator | None = None, seed: int | None = None):
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        if generator is not None and seed is not None:
            raise ValueError("pass either generator or seed to ImagePool, not both")
        if generator is None:
            if seed is None:
                seed = int(torch.randint(0, 2**62, (1,)).item())
            generator = torch.Generator(device="cpu").manual_seed(seed)
        elif generator.device.type != "cpu":
            # get_state()/set_state() of a CPU generator is a plain ByteTensor that any machine can restore.
            raise ValueError(f"ImagePool needs a CPU torch.Generator, got one on {generator.device}")
        self.pool_size = int(pool_size)
        self.generator = generator
        self.images: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator).item())

    def _index(self) -> int:
        return int(torch.randint(self.pool_size, (), generator=self.generator).item())

    def query(self, images: Tensor) -> Tensor:
        """Return a batch of the same shape as ``images`` ``(N, C, H, W)`` drawn from the history."""
        if self.pool_size == 0:
            return images
        images = images.detach()
        # Images restored by load_state_dict sit on the CPU until we know where training runs.
        if self.images and self.images[0].device != images.device:
            self.images = [im.to(images.device) for im in self.images]
        out: list[Tensor] = []
        for image in images:
            if len(self.images) < self.pool_size:
                # clone(): the caller may reuse or modify the batch tensor in place.
                self.images.append(image.clone())
                out.append(image)
            elif self._uniform() > 0.5:
                idx = self._index()
                out.append(self.images[idx].to(dtype=images.dtype))
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.stack(out, dim=0)

    def state_dict(self) -> dict[str, Any]:
        """Images (on the CPU), generator state and size; loadable with ``torch.load(weights_only=True)``."""
        return {
            "images": [im.detach().cpu() for im in self.images],
            "rng_state": self.generator.get_state(),
            "pool_size": self.pool_size,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; later queries continue exactly as the saved pool would have."""
        size = int(state_dict["pool_size"])
        if size != self.pool_size:
            # A different size changes which image is drawn for the same random numbers, so the resumed
            # run would silently diverge from the interrupted one.
            raise UserError(
                f"image pool size mismatch: checkpoint has pool_size={size}, config has {self.pool_size}"
            )
        images = list(state_dict["images"])
        if len(images) > self.pool_size:
            raise UserError(f"image pool checkpoint holds {len(images)} images, more than pool_size={size}")
        self.images = [im.detach().clone() for im in images]
        self.generator.set_state(state_dict["rng_state"].cpu())
