"""The training loop of the epoch-scheduled GANs of the official pytorch-CycleGAN-and-pix2pix code.

One G and one D optimizer take a step per batch; their LR schedulers step once per epoch (the official
schedule); checkpoints are written at epoch milestones, every ``log.save_every_steps`` and when the run is told
to stop; scalars, image grids and the progress bar follow ``log``. A family's trainer supplies the epoch's
sampler, how a batch becomes the networks' inputs, and :meth:`EpochTrainer.train_step`.
"""
from __future__ import annotations

import functools
import re
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler

from common.data.images import as_rgb
from common.data.loader import EpochSampler, loader_options, training_loader
from common.training import (
    Precision,
    StepMeter,
    TrainerBase,
    lr_factor,
    make_adam,
    make_scheduler,
    open_run,
    progress_bar,
)

# The start of torch's warning when an LR scheduler steps before its optimizer has (torch/optim/lr_scheduler.py).
SCHEDULER_ORDER_WARNING = re.escape("Detected call of `lr_scheduler.step()` before `optimizer.step()`")


class EpochTrainer(TrainerBase):
    """A subclass's constructor sets ``cfg`` (``seed``, ``data.batch_size``, ``optim``, ``run``, ``log``), builds
    ``nets``, calls :meth:`_setup_optimization` with the G and D parameters, sets ``dataset``, and ends with
    :meth:`_open`; it implements :meth:`epoch_sampler`, :meth:`inputs` and :meth:`train_step`."""

    # Progress-bar label -> logged loss shown beside it; the TensorBoard tag and column count of the grid of
    # the step's visuals (the first image of each).
    postfix: dict[str, str] = {"G": "G/total", "D": "D"}
    grid_tag: str = "train/visuals"
    grid_columns: int = 3

    def _setup_optimization(self, params_G: list, params_D: list) -> None:
        """One Adam per side with the config's LR and betas, the per-epoch LR schedule of ``optim.lr_policy``,
        ``total_epochs``, and mixed precision per ``run.precision``."""
        o = self.cfg.optim
        factor = functools.partial(lr_factor, o.lr_policy, n_constant=o.n_epochs, n_decay=o.n_epochs_decay,
                                   step_every=o.lr_decay_epochs)
        self.optimizers = {name: make_adam(params, o.lr, (o.beta1, o.beta2))
                           for name, params in (("G", params_G), ("D", params_D))}
        self.schedulers = {name: make_scheduler(opt, factor) for name, opt in self.optimizers.items()}
        self.total_epochs = o.n_epochs + o.n_epochs_decay
        self.precision = Precision(self.cfg.run.precision, self.device, ("G", "D"))

    def _open(self, out_root: str | Path, resume: str | None) -> None:
        """Zero the counters, open (or reopen) the run folder and load the state to resume from, if any."""
        self.counters = {"epoch": 0, "epoch_step": 0, "global_step": 0, "images_seen": 0}
        self.ctx = open_run(self.cfg, out_root, resume, self.dist)
        self.run_dir = self.ctx.run_dir
        if self.ctx.resume_from is not None:
            self.load_state(self.ctx.resume_from)

    def epoch_sampler(self, epoch: int, start: int) -> Sampler:
        """This rank's keys of ``epoch``, skipping the first ``start`` samples (a resume mid-epoch)."""
        raise NotImplementedError

    def inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(real_a, real_b)`` on the device (:meth:`to_device`), as the networks take them, from a batch."""
        raise NotImplementedError

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[dict, dict[str, torch.Tensor]]:
        """One G and one D update: ``(loss logs, {name: image batch})``."""
        raise NotImplementedError

    def steps_per_epoch(self) -> int:
        return -(-len(self.epoch_sampler(0, 0)) // self.cfg.data.batch_size)

    def load_state(self, ckpt: dict) -> None:
        super().load_state(ckpt)
        # The optimizer and scheduler states carry the LR and betas they were written with; the config given
        # now rules instead (e.g. a diverged run resumed with a lower optim.lr). Unchanged settings give the
        # very numbers the scheduler would have: base LR x the schedule factor of its epoch.
        o = self.cfg.optim
        for name, optimizer in self.optimizers.items():
            scheduler = self.schedulers[name]
            factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
            scheduler.base_lrs = [o.lr for _ in optimizer.param_groups]
            for group in optimizer.param_groups:
                group.update(initial_lr=o.lr, lr=o.lr * factor, betas=(o.beta1, o.beta2))

    def _log_point(self, meter: StepMeter, step: int, skipped: int, bar) -> None:
        means = self.log_means(meter, step)
        for name, optimizer in self.optimizers.items():
            means[f"lr/{name}"] = optimizer.param_groups[0]["lr"]
        means["data/skipped_images"] = float(skipped)
        self.ctx.logger.scalars(step, means, epoch=self.counters["epoch"] + 1)
        bar.set_postfix(epoch=self.counters["epoch"] + 1,
                        **{label: f"{means[key]:.3f}" for label, key in self.postfix.items()})

    def fit(self) -> Path:
        cfg, c = self.cfg, self.counters
        bs = cfg.data.batch_size
        total_steps = self.steps_per_epoch() * self.total_epochs
        bar = progress_bar(total_steps, c["global_step"], cfg.log.progress and self.dist.is_main, desc=cfg.name)
        for net in self.nets.values():
            net.train()
        meter, skipped = StepMeter(), 0
        stop = stepped_here = False
        started = time.perf_counter()
        # One loader for the run, its sampler swapped each epoch, so persistent workers live across epochs.
        epoch_keys = EpochSampler()
        loader = training_loader(self.dataset, loader_options(cfg.run, self.device), batch_size=bs,
                                 sampler=epoch_keys, drop_last=False)
        try:
            while c["epoch"] < self.total_epochs and not stop:
                epoch_keys.set(self.epoch_sampler(c["epoch"], c["epoch_step"] * bs))
                for batch in loader:
                    real_a, real_b = self.inputs(batch)
                    logs, visuals = self.train_step(real_a, real_b)
                    c["epoch_step"] += 1
                    c["global_step"] += 1
                    c["images_seen"] += real_a.shape[0] * self.dist.world_size
                    skipped += int(batch["skipped"].sum())
                    step = c["global_step"]
                    self.record_step(meter, step, logs, real_a.shape[0] * self.dist.world_size)
                    stepped_here = True
                    self._step_done(step)
                    bar.update(1)
                    if step % cfg.log.every_steps == 0:
                        self._log_point(meter, step, skipped, bar)
                    if step % cfg.log.image_every_steps == 0:
                        self.ctx.logger.image_grid(step, self.grid_tag, [as_rgb(v[:1]) for v in visuals.values()],
                                                   nrow=self.grid_columns)
                    stop = self.should_stop(step, started)
                    if stop or (cfg.log.save_every_steps and step % cfg.log.save_every_steps == 0):
                        self.save()
                    if stop:
                        break
                if stop:
                    break
                # End of epoch: the official schedule steps once per epoch.
                with warnings.catch_warnings():
                    if not stepped_here:
                        # Resumed from a checkpoint of an epoch's last step: this LR step is due although this
                        # process has run no optimizer step yet. torch's warning about that order guards
                        # against a misordered loop, which this is not.
                        warnings.filterwarnings("ignore", message=SCHEDULER_ORDER_WARNING, category=UserWarning)
                    for scheduler in self.schedulers.values():
                        scheduler.step()
                c["epoch"] += 1
                c["epoch_step"] = 0
                if c["epoch"] % cfg.log.save_every_epochs == 0 or c["epoch"] == self.total_epochs:
                    self.save()
        finally:
            bar.close()
            self.ctx.logger.close()
        return self.run_dir
