"""Pieces every trainer shares: LR schedules, mixed precision, run folders + resume, progress."""
from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as tdist
from tqdm import tqdm

from common.checkpoint import (
    CheckpointManager,
    check_nets_fit,
    check_resumable,
    continue_from,
    load_checkpoint,
    new_checkpoint,
    newest_loadable,
    run_dir_of,
)
from common.config import dump_yaml, to_dict
from common.device import resolve_device
from common.distributed import (
    DistInfo,
    broadcast_parameters,
    init_distributed,
    shutdown_distributed,
)
from common.divergence import check_losses, check_state
from common.ema import ModelEMA, ema_name
from common.errors import UserError
from common.files import remove_temp_files, write_text_atomic
from common.logger import STATS_FILE, RunLogger, drop_stats_after
from common.perf import StepNets, configure_backends
from common.rng import capture_rng_state, restore_rng_state, seed_everything
from common.runs import CHECKPOINTS_DIR, RunLock, latest_run_with_checkpoint, new_run_dir
from common.step_meter import LogValue, StepMeter

LR_POLICIES = ("linear", "step", "cosine", "constant")

log = logging.getLogger(__name__)


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


class RunContext:
    """The run folder a process trains in, locked for it (rank 0 holds ``RUN/.lock``), and the checkpoint it
    continues from (``resume_from``, ``resume_path``; None for a new run).

    A resumed run's folder is left exactly as it was until :meth:`start`, which runs on first use of ``logger``
    or ``checkpoints``: the trainer first checks the checkpoint against its config (label schema, network
    shapes), and a resume refused there must not have rewritten the run's record. Only then are temp files of
    a killed save removed, checkpoints an earlier continuation wrote past the resumed step moved aside,
    ``stats.jsonl`` rows past it dropped, and ``config.yaml`` written. :meth:`close` releases the lock."""

    def __init__(self, run_dir: Path, cfg: Any, is_main: bool, lock: RunLock | None,
                 resume_from: dict | None = None, resume_path: Path | None = None):
        self.run_dir = run_dir
        self.resume_from = resume_from
        self.resume_path = resume_path
        self._cfg = cfg
        self._is_main = is_main
        self._lock = lock
        self._logger: RunLogger | None = None
        self._checkpoints: CheckpointManager | None = None

    @property
    def resumed_step(self) -> int | None:
        return None if self.resume_from is None else self.resume_from["counters"]["global_step"]

    @property
    def logger(self) -> RunLogger:
        self.start()
        return self._logger

    @property
    def checkpoints(self) -> CheckpointManager:
        self.start()
        return self._checkpoints

    def start(self) -> None:
        """Make the folder this run's (see the class); idempotent."""
        if self._logger is not None:
            return
        step = self.resumed_step
        if self._is_main:
            if step is not None:
                checkpoints = self.run_dir / CHECKPOINTS_DIR
                removed = remove_temp_files(self.run_dir) + remove_temp_files(checkpoints)
                if removed:
                    log.info("%s: removed %d temp file(s) left by an interrupted write (%s)", self.run_dir,
                             len(removed), ", ".join(p.name for p in removed[:3]))
                continue_from(self.run_dir, self.resume_path, step)
                dropped = drop_stats_after(self.run_dir / STATS_FILE, step)
                if dropped:
                    log.info("%s: dropped %d %s row(s) past the resumed step %d", self.run_dir, dropped,
                             STATS_FILE, step)
            write_text_atomic(self.run_dir / "config.yaml", dump_yaml(self._cfg))
        self._checkpoints = CheckpointManager(self.run_dir, self._cfg.log.keep_last)
        self._logger = RunLogger(self.run_dir, enabled=self._is_main,
                                 purge_step=None if step is None else step + 1)

    def close(self) -> None:
        """Close the logs and release the run folder's lock (idempotent)."""
        if self._logger is not None:
            self._logger.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None


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


def _claim_run(cfg: Any, out_root: str | Path, resume: str | None) -> tuple[Path, RunLock, Path | None, dict | None]:
    """Rank 0's part of :func:`open_run`: the run folder, locked, and the checked checkpoint to resume from.
    A folder resume takes ``latest.pt``, the newest state by write order."""
    target = resolve_resume(resume, out_root, cfg.name)
    if target is None:
        run_dir = new_run_dir(out_root, cfg.name)
        return run_dir, RunLock.acquire(run_dir), None, None
    run_dir = target if target.is_dir() else run_dir_of(target)
    lock = RunLock.acquire(run_dir)  # before reading: the holder may be writing checkpoints
    try:
        if target.is_dir():
            found = newest_loadable(target)
            if found is None:
                raise UserError(f"--resume {target}: the run folder has no complete checkpoint")
            ckpt_path, ckpt = found
        else:
            ckpt_path, ckpt = target, load_checkpoint(target)
        check_resumable(ckpt, ckpt_path, cfg.model)
    except BaseException:
        lock.release()
        raise
    return run_dir, lock, ckpt_path, ckpt


# The run lists of the :func:`closing_runs_on_failure` blocks being executed, innermost last.
_opening: list[list[RunContext]] = []


@contextlib.contextmanager
def closing_runs_on_failure() -> Iterator[None]:
    """Close (and so unlock) every run :func:`open_run` opens inside the block, if the block fails. A trainer
    constructor that refuses a resume after opening the run would otherwise keep the run locked for as long as
    its exception is kept (by a caller in this process, e.g. a test)."""
    opened: list[RunContext] = []
    _opening.append(opened)
    try:
        yield
    except BaseException:
        for ctx in opened:
            ctx.close()
        raise
    finally:
        _opening.pop()


def open_run(cfg: Any, out_root: str | Path, resume: str | None, dist: DistInfo) -> RunContext:
    """Create or reopen the run folder (rank 0 locks it; a folder another live process trains in is a one-line
    error naming its pid) and load the checkpoint to resume from. A new run writes ``config.yaml`` now; a
    resumed one leaves its folder untouched until :meth:`RunContext.start`."""
    run_dir = lock = ckpt_path = ckpt = None
    failure = None
    if dist.is_main:
        try:
            run_dir, lock, ckpt_path, ckpt = _claim_run(cfg, out_root, resume)
        except UserError as err:
            if not dist.enabled:
                raise
            failure = str(err)
    if dist.enabled:
        # Every rank needs the same folder and checkpoint file, or rank 0's refusal (else they would wait forever).
        holder = [(failure, str(run_dir) if run_dir else None, str(ckpt_path) if ckpt_path else None)]
        tdist.broadcast_object_list(holder, src=0)
        failure, shared_dir, shared_ckpt = holder[0]
        if failure is not None:
            raise UserError(failure)
        run_dir = Path(shared_dir)
        if not dist.is_main and shared_ckpt is not None:
            ckpt_path = Path(shared_ckpt)
            ckpt = load_checkpoint(ckpt_path)
    ctx = RunContext(run_dir, cfg, dist.is_main, lock, ckpt, ckpt_path)
    if _opening:
        _opening[-1].append(ctx)
    if ckpt is None:
        ctx.start()  # nothing to check a new run against
    return ctx


def progress_bar(total: int, initial: int, enabled: bool, desc: str):
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True,
                unit="it", leave=True)


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
        configure_backends(cfg.run, self.device)
        if cfg.run.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        seed_everything(cfg.seed)
        self.nets: dict[str, torch.nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        self.pools: dict[str, Any] = {}
        self.counters: dict[str, Any] = {}
        self.step_callbacks: list[Callable[[int], None]] = []
        self.last_saved: Path | None = None
        self._meter: StepMeter | None = None
        self.ema: dict[str, ModelEMA] = {}

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` on the training device, copied without making the host wait for the GPU: a CPU tensor is
        page-locked first (a no-op for the loader's pinned batches), since a copy from ordinary memory waits
        for everything queued on the device."""
        if tensor.device == self.device:
            return tensor
        if self.device.type == "cuda" and tensor.device.type == "cpu" and not tensor.is_pinned():
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

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
        # After the broadcast (it needs the modules) and before the optimizers (their state follows the layout).
        self.step_nets = StepNets(self.nets, self.cfg.run.channels_last, self.cfg.run.compile)

    def _setup_ema(self, names: tuple[str, ...]) -> None:
        """Keep an average of the networks ``names`` (the generators) when ``ema.decay`` > 0; call after
        :meth:`_after_networks_built`, and :meth:`update_ema` after each of their optimizer steps."""
        e = self.cfg.ema
        self.ema = {name: ModelEMA(self.nets[name], e.decay, e.warmup) for name in names} if e.decay > 0 else {}

    def update_ema(self) -> None:
        for name, average in self.ema.items():
            average.update(self.nets[name])

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
        nets = {k: n.state_dict() for k, n in self.nets.items()}
        nets.update({ema_name(k): average.module.state_dict() for k, average in self.ema.items()})
        return new_checkpoint(
            self.cfg.model, to_dict(self.cfg), nets,
            optimizers={k: o.state_dict() for k, o in self.optimizers.items()},
            schedulers={k: s.state_dict() for k, s in self.schedulers.items()},
            pools=pools, scalers=self.precision.state_dict(), counters=dict(self.counters), rng=rng,
            extra={"world_size": self.dist.world_size, **self.checkpoint_extra(),
                   **({"ema_updates": {k: average.updates for k, average in self.ema.items()}} if self.ema else {})},
        )

    def load_state(self, ckpt: dict) -> None:
        check_nets_fit(self.nets, ckpt, self.ctx.resume_path, to_dict(self.cfg))  # one line, not load_state_dict's
        for name, net in self.nets.items():
            net.load_state_dict(ckpt["nets"][name])
        updates = ckpt.get("extra", {}).get("ema_updates", {})
        for name, average in self.ema.items():
            if ema_name(name) in ckpt["nets"] and name in updates:
                average.load_state_dict({"updates": updates[name], "module": ckpt["nets"][ema_name(name)]})
            else:  # EMA switched on at this resume: start the average from the resumed weights
                average.module.load_state_dict(self.nets[name].state_dict())
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

    # ------------------------------------------------------------------------------ divergence guard
    def record_step(self, meter: StepMeter, step: int, logs: dict[str, LogValue], n_images: int) -> None:
        """Add a step's loss logs (Python floats or detached tensors) to ``meter``. Tensors are not read here
        (that would stall the device every step): the meter keeps, on the device, the first step whose values
        were NaN/inf, and :meth:`log_means` and :meth:`save` stop the run naming that step. Float logs are
        checked now, which costs nothing. Under torchrun a NaN on one rank only would let the other ranks run
        on into the next collective and hang, so there only :meth:`log_means` checks, on the all-reduced means
        that every rank shares."""
        if not self.dist.enabled:
            check_losses(step, {k: v for k, v in logs.items() if not torch.is_tensor(v)}, self.last_good_checkpoint)
        meter.add(logs, n_images, step)
        self._meter = meter

    def log_means(self, meter: StepMeter, step: int) -> dict[str, float]:
        """``meter``'s means (a collective: every rank calls it at the same step; one device sync), stopping on
        the first NaN/inf step since the last log point, or on a NaN/inf mean."""
        reading = meter.read(self.dist, self.device)
        if reading.first_non_finite is not None and not self.dist.enabled:
            check_losses(*reading.first_non_finite, self.last_good_checkpoint)
        check_losses(step, reading.means, self.last_good_checkpoint)
        return reading.means

    def _check_recorded_losses(self) -> None:
        """Stop on a NaN/inf loss recorded since the last log point (one device sync; one process only, see
        :meth:`record_step`)."""
        if self._meter is not None and not self.dist.enabled:
            bad = self._meter.first_non_finite()
            if bad is not None:
                check_losses(*bad, self.last_good_checkpoint)

    @property
    def last_good_checkpoint(self) -> Path | None:
        """The newest checkpoint of this run that passed the guard: saved by this process, or resumed from."""
        return self.last_saved or self.ctx.resume_path

    def save(self) -> Path | None:
        """Checkpoint the full state, unless a loss since the last log point, a network or an optimizer holds a
        NaN/inf: then nothing is written (nor pruned) and :class:`~common.divergence.TrainingDiverged` stops
        the run."""
        step = self.counters["global_step"]
        self._check_recorded_losses()
        check_state(step, self.nets, self.optimizers, self.dist, self.last_good_checkpoint)
        state = self.state()  # every rank takes part in the gathers
        if self.dist.is_main:
            self.last_saved = self.ctx.checkpoints.save(state, step)
            return self.last_saved
        return None

    def close(self) -> None:
        self.ctx.close()  # releases the run folder's lock
        shutdown_distributed()

    @classmethod
    def run_to_end(cls, cfg: Any, out_root: str | Path = "runs", resume: str | None = None,
                   device: str | None = None) -> Path:
        """Build the trainer, ``fit()`` it and release the process group; returns the run folder."""
        with closing_runs_on_failure():
            trainer = cls(cfg, out_root=out_root, resume=resume, device=device)
        try:
            return trainer.fit()
        finally:
            trainer.close()
