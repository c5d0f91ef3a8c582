"""What every family's training config shares: the top-level keys (:class:`TrainConfig`) and the ``run`` and
``log`` sections."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from common.config import check_value
from common.errors import UserError

# Derived seeds such as ``seed * 7919 + 17 + rank`` must stay below 2**64 for torch generators; 48 bits keep
# them there (and take any seed that trained before, e.g. a millisecond timestamp).
SEED_BITS = 48


def check_adam(where: str, section: str, lrs: dict[str, float], betas: tuple[float, float]) -> None:
    """Learning rates > 0 and Adam betas in [0, 1) (what ``torch.optim.Adam`` accepts), named by key."""
    for key, lr in lrs.items():
        check_value(where, f"{section}.{key}", lr, lr > 0, "> 0")
    for key, beta in zip(("beta1", "beta2"), betas):
        check_value(where, f"{section}.{key}", beta, 0 <= beta < 1, "in [0, 1)")


def check_non_negative(where: str, section: str, obj: Any, keys: tuple[str, ...]) -> None:
    """Loss weights and sizes for which 0 means "off" and a negative value has no meaning."""
    for key in keys:
        value = getattr(obj, key)
        check_value(where, f"{section}.{key}", value, value >= 0, ">= 0")


MASK_PENALTIES = ("lambda_mask", "lambda_mask_tv", "lambda_mask_binary", "lambda_mask_idle",
                  "lambda_mask_edge_tv", "lambda_mask_colour")


def check_mask_penalties(where: str, loss: Any, attention_mask: bool) -> None:
    """The attention-mask penalties (:data:`MASK_PENALTIES` of a ``loss`` section) need the mask; the error names
    the keys that are set and their values; ``loss.mask_idle_tol`` and ``loss.mask_edge_sigma`` must be > 0."""
    check_value(where, "loss.mask_idle_tol", loss.mask_idle_tol, loss.mask_idle_tol > 0, "> 0")
    check_value(where, "loss.mask_edge_sigma", loss.mask_edge_sigma, loss.mask_edge_sigma > 0, "> 0")
    terms = {k: getattr(loss, k) for k in MASK_PENALTIES if getattr(loss, k)}
    if terms and not attention_mask:
        named = ", ".join(f"'loss.{k}' ({v})" for k, v in terms.items())
        raise UserError(f"{where}: {named} need network.attention_mask: true (they penalise the attention mask); "
                        "set them to 0 or switch the mask on")


def check_mask_guide(where: str, radius: int, eps: float, attention_mask: bool, colour: bool = False) -> None:
    """``network.mask_guide_radius`` (>= 0, 0 = off) and ``network.mask_guide_eps`` (> 0); the guide filters the
    attention mask, so a radius needs the mask, and ``network.mask_guide_colour`` needs a radius."""
    check_value(where, "network.mask_guide_radius", radius, isinstance(radius, int) and radius >= 0,
                "an integer >= 0 (0 = off)")
    check_value(where, "network.mask_guide_eps", eps, eps > 0, "> 0")
    check_value(where, "network.mask_guide_radius", radius, not radius or attention_mask,
                "0 without network.attention_mask: true (it filters the attention mask)")
    check_value(where, "network.mask_guide_colour", colour, not colour or radius,
                "false without network.mask_guide_radius > 0 (it uses that filter)")


def check_mask_snap(where: str, radius: int, mask_hard: bool, fill: bool = False) -> None:
    """``network.mask_snap_radius``: an integer >= 0 (0 = off); it snaps the thresholded mask, so it needs
    ``network.mask_hard``. ``network.mask_snap_fill`` (``fill``) fills what the snap opens, so it needs the
    radius."""
    check_value(where, "network.mask_snap_radius", radius, isinstance(radius, int) and radius >= 0,
                "an integer >= 0 (0 = off)")
    check_value(where, "network.mask_snap_radius", radius, not radius or mask_hard,
                "0 without network.mask_hard: true (it snaps the thresholded mask)")
    check_value(where, "network.mask_snap_fill", fill, isinstance(fill, bool), "true or false")
    check_value(where, "network.mask_snap_fill", fill, not fill or radius,
                "false without network.mask_snap_radius > 0 (it fills the pixels the snap opens)")


@dataclass
class RunConfig:
    """Where and how a run executes.

    device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N`` (``--device`` overrides it).
    precision: ``fp32``; ``amp_fp16`` (CUDA autocast + GradScaler) or ``amp_bf16`` (autocast, no scaler).
    stop_after_steps: end the run (with a checkpoint) after this global step; ``--resume`` continues it
        exactly. max_seconds: the same, once this process has trained for that long (wall clock), e.g. to fit
        a time slot or a demo budget.
    channels_last: networks and batches in NHWC memory (same values; faster convolutions on tensor cores).
    compile: ``torch.compile`` the networks for the training step (the first steps compile; the WGAN gradient
        penalty runs uncompiled where torch cannot compile its double backward).
    cudnn_benchmark: let cuDNN time its convolution algorithms for the (fixed) training sizes; null: on for
        CUDA unless ``deterministic``.
    num_workers: data-loader processes per process (per rank under torchrun); ``auto``: the CPUs this process
        may use, shared by the ranks on the node and the run's loaders, minus one for the training process
        (at most 16).
    pin_memory: page-locked batches, copied to the GPU without blocking the step; null: on for CUDA.
    persistent_workers: keep the loader processes alive between epochs. prefetch_factor: batches each worker
        prepares ahead. Both only apply with workers.
    """

    device: str = "auto"
    precision: Literal["fp32", "amp_fp16", "amp_bf16"] = "fp32"
    num_workers: int | Literal["auto"] = "auto"
    stop_after_steps: int | None = None
    max_seconds: float | None = None
    deterministic: bool = False
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool | None = None
    pin_memory: bool | None = None
    persistent_workers: bool = True
    prefetch_factor: int = 2

    def validate(self, where: str) -> None:
        if self.num_workers != "auto" and self.num_workers < 0:
            raise UserError(f"{where}: key 'run.num_workers' must be >= 0 or 'auto', got {self.num_workers}")
        if self.stop_after_steps is not None and self.stop_after_steps < 1:
            raise UserError(f"{where}: key 'run.stop_after_steps' must be >= 1 or null")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise UserError(f"{where}: key 'run.max_seconds' must be > 0 or null")
        check_value(where, "run.prefetch_factor", self.prefetch_factor, self.prefetch_factor >= 1, ">= 1")
        if self.deterministic and self.cudnn_benchmark:
            raise UserError(f"{where}: key 'run.cudnn_benchmark' must be false or null when run.deterministic is "
                            "true (autotuning picks algorithms by timing, so results could differ between runs)")


@dataclass
class LogConfig:
    """every_steps: scalars to TensorBoard + stats.jsonl; image_every_steps: image grids;
    save_every_steps: mid-epoch checkpoints (null: only at epoch ends / iteration milestones);
    keep_last: numbered checkpoints kept besides ``latest.pt``."""

    every_steps: int = 100
    image_every_steps: int = 1000
    save_every_steps: int | None = None
    save_every_epochs: int = 5
    keep_last: int = 3
    progress: bool = True

    def validate(self, where: str) -> None:
        for key in ("every_steps", "image_every_steps", "save_every_epochs", "keep_last"):
            if getattr(self, key) < 1:
                raise UserError(f"{where}: key 'log.{key}' must be >= 1, got {getattr(self, key)}")
        if self.save_every_steps is not None and self.save_every_steps < 1:
            raise UserError(f"{where}: key 'log.save_every_steps' must be >= 1 or null")


@dataclass
class EmaConfig:
    """An exponential moving average of the generator's weights (StarGAN v2, StyleGAN), kept beside it and used
    by ``translate``, ``evaluate``, ``compare``, ``export`` and the editor when the checkpoint has one.

    decay: weight of the old average per generator step, in [0, 1); 0 (the default, as the official code)
    keeps no average. StarGAN v2 uses 0.999. warmup: lower the decay early on as ``(1 + n) / (warmup + n)``
    after n updates, so a short run's average is not dominated by the random initial weights."""

    decay: float = 0.0
    warmup: int = 10

    def validate(self, where: str) -> None:
        check_value(where, "ema.decay", self.decay, 0 <= self.decay < 1, "in [0, 1) (0: off)")
        check_value(where, "ema.warmup", self.warmup, self.warmup >= 0, ">= 0")


@dataclass
class TrainConfig:
    """The top level of a family's config, in the order configs are written: ``model`` (the family name, a
    ``Literal``), ``name`` (of the run folders), ``seed``, the family's own ``data``/``network``/``loss``/
    ``optim`` sections, then the shared ``run`` and ``log``. A family's config subclasses this and redeclares
    the fields it types or defaults differently; a redeclared field keeps its place in this order, so dumped
    configs read the same for every family."""

    model: str
    name: str
    seed: int = 0
    data: Any = None
    network: Any = None
    loss: Any = None
    optim: Any = None
    ema: EmaConfig = field(default_factory=EmaConfig)
    run: RunConfig = field(default_factory=RunConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def validate(self, where: str) -> None:
        """Checks of the shared keys; a family's ``validate`` calls this first."""
        check_value(where, "seed", self.seed, 0 <= self.seed < 2**SEED_BITS, f"an integer in [0, 2**{SEED_BITS})")
