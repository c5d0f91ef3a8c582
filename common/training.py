"""Pieces every trainer shares: LR schedules, mixed precision, run folders + resume, progress."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as tdist
from tqdm import tqdm

from common.checkpoint import CheckpointManager, load_checkpoint, new_checkpoint, newest_loadable
from common.config import dump_yaml, to_dict
from common.device import resolve_device
from common.distributed import (
    DistInfo,
    allreduce_mean,
    broadcast_parameters,
    init_distributed,
    shutdown_distributed,
)
from common.errors import UserError
from common.files import write_text_atomic
from common.logger import RunLogger
from common.rng import capture_rng_state, restore_rng_state, seed_everything
from common.runs import latest_run_with_checkpoint, new_run_dir

LR_POLICIES = ("linear", "step", "cosine", "constant")


def lr_factor(policy: str, t: int, n_constant: int, n_decay: int, step_every: int = 1) -> float:
    """LR multiplier after ``t`` scheduler steps (epochs for CycleGAN, iterations for StarGAN).

    ``linear`` follows the official CycleGAN formula ``1 - max(0, t + 1 - n_constant) / (n_decay + 1)``: flat
    for ``n_constant`` steps, then linear towards 0 over ``n_decay``. ``cosine`` is flat for ``n_constant``
    steps and then a half cosine over the same ``n_decay + 1`` span (the official cosine ignores the decay
    phase). ``step`` multiplies by 0.1 every ``step_every`` steps.
    """
    if policy == "constant":
        return 1.0
    if policy == "linear":
        return 1.0 - max(0, t + 1 - n_constant) / float(n_decay + 1)
    if policy == "cosine":
        progress = max(0, t + 1 - n_constant) / float(n_decay + 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    if policy == "step":
        return 0.1 ** (t // step_every)
    raise ValueError(f"unknown lr policy {policy!r}; valid values: {', '.join(LR_POLICIES)}")


def make_adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused single-kernel update where this torch has it for the parameters' device, else the
    default implementation. Same update rule and state layout; load checkpointed state with
    :func:`load_optimizer_state` so the implementation chosen here survives a resume. On CPU the fused step of
    StarGAN's 44.8M-parameter D takes ~0.02 s instead of ~0.15 s (docs/deviations.md, "StarGAN speed")."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, ValueError):  # torch < 2.4 has no fused CPU Adam
        return torch.optim.Adam(params, lr=lr, betas=betas)


# Param-group entries that say how this process computes the step, not what the step is.
_IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)``, keeping the optimizer's own implementation flags.

    ``load_state_dict`` would otherwise also restore the writer's ``fused``/``foreach`` choice: a checkpoint
    from plain Adam would switch a fused optimizer back to the slow path (and a GradScaler would then hand
    the loss scale to an optimizer that no longer takes it), and a fused checkpoint would make the first
    step fail where this torch has no fused kernel for the device.
    """
    groups = [{**saved, **{k: current[k] for k in _IMPLEMENTATION_KEYS if k in current}}
              for saved, current in zip(state["param_groups"], optimizer.param_groups)]
    optimizer.load_state_dict({**state, "param_groups": groups})


def make_scheduler(optimizer: torch.optim.Optimizer, factor: Callable[[int], float]):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)


class Precision:
    """Autocast + (for fp16) a GradScaler per optimizer. ``fp32`` makes every call a no-op."""

    def __init__(self, precision: str, device: torch.device, names: tuple[str, ...]):
        self.precision = precision
        self.device = device
        if precision != "fp32" and device.type != "cuda" and precision == "amp_fp16":
            raise UserError(f"run.precision=amp_fp16 needs a CUDA device (got {device}); use amp_bf16 or fp32")
        self.dtype = {"amp_fp16": torch.float16, "amp_bf16": torch.bfloat16}.get(precision)
        use_scaler = precision == "amp_fp16"
        self.scalers = {n: torch.amp.GradScaler(device.type, enabled=use_scaler) for n in names}

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, name: str, loss: torch.Tensor) -> None:
        self.scalers[name].scale(loss).backward()

    def step(self, name: str, optimizer: torch.optim.Optimizer, before_step: Callable[[], None] | None = None) -> None:
        scaler = self.scalers[name]
        if before_step is not None:
            # Gradients are all-reduced while still scaled; unscaling after is equivalent.
            before_step()
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict:
        return {n: s.state_dict() for n, s in self.scalers.items()}

    def load_state_dict(self, state: dict) -> None:
        for n, s in self.scalers.items():
            if n in state and state[n]:
                s.load_state_dict(state[n])


@dataclass
class RunContext:
    run_dir: Path
    logger: RunLogger
    checkpoints: CheckpointManager
    resume_from: dict | None
    resume_path: Path | None


def resolve_resume(resume: str | None, out_root: str | Path, name: str) -> Path | None:
    """``--resume auto``: newest run named ``name`` under ``out_root`` with a checkpoint (None: start fresh).
    ``--resume PATH``: a checkpoint file or a run folder."""
    if resume is None:
        return None
    if resume == "auto":
        return latest_run_with_checkpoint(out_root, name)
    path = Path(resume)
    if not path.exists():
        raise UserError(f"--resume {resume}: no such checkpoint file or run folder")
    return path


def open_run(cfg: Any, out_root: str | Path, resume: str | None, dist: DistInfo) -> RunContext:
    """Create or reopen the run folder, load the resume checkpoint, write ``config.yaml`` beside results."""
    model = cfg.model
    target = resolve_resume(resume, out_root, cfg.name)
    ckpt, ckpt_path = None, None
    if target is not None:
        if target.is_dir():
            found = newest_loadable(target)
            if found is None:
                raise UserError(f"--resume {target}: the run folder has no complete checkpoint")
            ckpt_path, ckpt = found
            run_dir = target
        else:
            ckpt_path, ckpt = target, load_checkpoint(target)
            run_dir = target.parent.parent if target.parent.name == "checkpoints" else target.parent
        if ckpt.get("model") != model or ckpt.get("kind") != "training":
            raise UserError(
                f"{ckpt_path}: cannot resume a {model} training run from a "
                f"{ckpt.get('model')} {ckpt.get('kind')} checkpoint"
            )
    elif dist.is_main:
        run_dir = new_run_dir(out_root, cfg.name)
    else:
        run_dir = None
    if dist.enabled:
        holder = [str(run_dir) if run_dir else None]
        tdist.broadcast_object_list(holder, src=0)
        run_dir = Path(holder[0])
    if dist.is_main:
        write_text_atomic(run_dir / "config.yaml", dump_yaml(cfg))
    logger = RunLogger(run_dir, enabled=dist.is_main)
    return RunContext(run_dir, logger, CheckpointManager(run_dir, cfg.log.keep_last), ckpt, ckpt_path)


def progress_bar(total: int, initial: int, enabled: bool, desc: str):
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True,
                unit="it", leave=True)


class StepMeter:
    """Means of the per-step loss logs since the last log point, averaged over ranks, plus images/s."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.images = 0
        self.tick = time.perf_counter()

    def add(self, logs: dict[str, float], n_images: int) -> None:
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1
        self.images += n_images

    def means(self, dist: DistInfo, device: torch.device) -> dict[str, float]:
        """Collective under torchrun (every rank must call it at the same step); resets the meter."""
        means = allreduce_mean({k: v / self.counts[k] for k, v in self.sums.items()}, dist, device)
        means["speed/images_per_s"] = self.images / max(time.perf_counter() - self.tick, 1e-9)
        self.reset()
        return means


def set_requires_grad(modules, flag: bool) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(flag)


class TrainerBase:
    """Runtime + checkpoint plumbing shared by the trainers (device, torchrun ranks, seeding, full-state
    save/restore). Subclasses fill ``nets``, ``optimizers``, ``schedulers``, ``pools`` and ``counters``."""

    def _setup_runtime(self, cfg: Any, device: str | None) -> None:
        requested = device or cfg.run.device
        wants_cuda = requested.startswith("cuda") or (requested == "auto" and torch.cuda.is_available())
        self.dist = init_distributed("cuda" if wants_cuda else "cpu")
        self.device = resolve_device(requested, self.dist.local_rank if self.dist.enabled else None)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.run.deterministic
        if cfg.run.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        seed_everything(cfg.seed)
        self.nets: dict[str, torch.nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        self.pools: dict[str, Any] = {}
        self.counters: dict[str, Any] = {}
        self.step_callbacks: list[Callable[[int], None]] = []

    def add_step_callback(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(global_step)`` right after every optimisation step (before logging and saving), e.g.
        to time steps. Callbacks are not part of the checkpointed state."""
        self.step_callbacks.append(callback)

    def _step_done(self, step: int) -> None:
        for callback in self.step_callbacks:
            callback(step)

    def _after_networks_built(self, seed: int) -> None:
        broadcast_parameters(self.nets.values(), self.dist)
        if self.dist.enabled:
            # Ranks share the initial weights but draw different dropout/GP/target noise.
            torch.manual_seed(seed + 1_000_003 * self.dist.rank)

    def _gather(self, obj: Any) -> list:
        """Every rank's ``obj`` (rank order), so rank 0 checkpoints all ranks' RNG and pool states."""
        if not self.dist.enabled:
            return [obj]
        out = [None] * self.dist.world_size
        tdist.all_gather_object(out, obj)
        return out

    def should_stop(self, step: int, started: float) -> bool:
        """``run.stop_after_steps`` reached or ``run.max_seconds`` used up. Rank 0's clock decides, so every
        rank stops at the same step (the checkpoint gathers need all of them)."""
        run = self.cfg.run
        stop = run.stop_after_steps is not None and step >= run.stop_after_steps
        if run.max_seconds is not None:
            over = time.perf_counter() - started >= run.max_seconds
            if self.dist.enabled:
                flag = torch.tensor([float(over)], device=self.device)
                tdist.broadcast(flag, src=0)
                over = bool(flag.item())
            stop = stop or over
        return stop

    def checkpoint_extra(self) -> dict:
        return {}

    def state(self) -> dict:
        rng = self._gather(capture_rng_state())
        pools = self._gather({k: p.state_dict() for k, p in self.pools.items()})
        return new_checkpoint(
            self.cfg.model, to_dict(self.cfg), {k: n.state_dict() for k, n in self.nets.items()},
            optimizers={k: o.state_dict() for k, o in self.optimizers.items()},
            schedulers={k: s.state_dict() for k, s in self.schedulers.items()},
            pools=pools, scalers=self.precision.state_dict(), counters=dict(self.counters), rng=rng,
            extra={"world_size": self.dist.world_size, **self.checkpoint_extra()},
        )

    def load_state(self, ckpt: dict) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(ckpt["nets"][name])
        for name, opt in self.optimizers.items():
            load_optimizer_state(opt, ckpt["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(ckpt["schedulers"][name])
        self.precision.load_state_dict(ckpt.get("scalers", {}))
        self.counters = dict(ckpt["counters"])
        rank = self.dist.rank if self.dist.rank < len(ckpt["rng"]) else 0
        for key, pool in self.pools.items():
            pool.load_state_dict(ckpt["pools"][rank][key])
        # Last: everything above may consume randomness, the continued run must not see that.
        restore_rng_state(ckpt["rng"][rank])

    def save(self) -> Path | None:
        state = self.state()  # every rank takes part in the gathers
        if self.dist.is_main:
            return self.ctx.checkpoints.save(state, self.counters["global_step"])
        return None

    def close(self) -> None:
        shutdown_distributed()

    @classmethod
    def run_to_end(cls, cfg: Any, out_root: str | Path = "runs", resume: str | None = None,
                   device: str | None = None) -> Path:
        """Build the trainer, ``fit()`` it and release the process group; returns the run folder."""
        trainer = cls(cfg, out_root=out_root, resume=resume, device=device)
        try:
            return trainer.fit()
        finally:
            trainer.close()
