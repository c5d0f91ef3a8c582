"""The CycleGAN training loop with the official update order and semantics.

Per iteration: forward fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A);
G step with D frozen (adversarial + cycle + identity); then one D step for D_A on (real_B, pool(fake_B)) and
D_B on (real_A, pool(fake_A)), each D loss x 0.5. LR is stepped once per epoch.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import torch

from common.data.images import as_rgb, to_channels
from common.data.unpaired import UnpairedDataset, UnpairedSampler, make_loader
from common.distributed import allreduce_gradients
from common.losses import cycle_loss, discriminator_loss, gan_loss, gradient_penalty, identity_loss
from common.pool import ImagePool
from common.training import (
    Precision,
    StepMeter,
    TrainerBase,
    lr_factor,
    make_adam,
    make_scheduler,
    open_run,
    progress_bar,
    set_requires_grad,
)
from cyclegan.config import CycleGANConfig
from cyclegan.model import build_networks


class CycleGANTrainer(TrainerBase):
    """Holds the networks, optimizers and pools of one run; :meth:`fit` trains to the configured end."""

    def __init__(self, cfg: CycleGANConfig, out_root: str | Path = "runs", resume: str | None = None,
                 device: str | None = None):
        self.cfg = cfg
        self._setup_runtime(cfg, device)
        self.nets = {name: net.to(self.device) for name, net in build_networks(cfg).items()}
        self._after_networks_built(cfg.seed)

        o = cfg.optim
        self.params_G = list(self.nets["G_A"].parameters()) + list(self.nets["G_B"].parameters())
        self.params_D = list(self.nets["D_A"].parameters()) + list(self.nets["D_B"].parameters())
        self.opt_G = make_adam(self.params_G, o.lr, (o.beta1, o.beta2))
        self.opt_D = make_adam(self.params_D, o.lr, (o.beta1, o.beta2))
        factor = functools.partial(lr_factor, o.lr_policy, n_constant=o.n_epochs, n_decay=o.n_epochs_decay,
                                   step_every=o.lr_decay_epochs)
        self.sched_G = make_scheduler(self.opt_G, factor)
        self.sched_D = make_scheduler(self.opt_D, factor)
        self.optimizers = {"G": self.opt_G, "D": self.opt_D}
        self.schedulers = {"G": self.sched_G, "D": self.sched_D}
        pool_seed = cfg.seed * 7919 + 17 + self.dist.rank
        self.pools = {
            "fake_A": ImagePool(cfg.loss.pool_size, seed=pool_seed),
            "fake_B": ImagePool(cfg.loss.pool_size, seed=pool_seed + 1),
        }
        self.precision = Precision(cfg.run.precision, self.device, ("G", "D"))

        d = cfg.data
        self.dataset = UnpairedDataset(
            d.root, phase="train", preprocess=d.preprocess, load_size=d.load_size, crop_size=d.crop_size,
            flip=d.flip, max_dataset_size=d.max_dataset_size, on_bad_image=d.on_bad_image,
        )
        self.len_a, self.len_b = len(self.dataset.paths_a), len(self.dataset.paths_b)
        self.total_epochs = o.n_epochs + o.n_epochs_decay
        self.counters = {"epoch": 0, "epoch_step": 0, "global_step": 0, "images_seen": 0}

        self.ctx = open_run(cfg, out_root, resume, self.dist)
        self.run_dir = self.ctx.run_dir
        if self.ctx.resume_from is not None:
            self.load_state(self.ctx.resume_from)

    def load_state(self, ckpt: dict) -> None:
        super().load_state(ckpt)
        # The optimizer and scheduler states carry the LR and betas they were written with; the config given
        # now rules instead (e.g. a diverged run resumed with a lower optim.lr). Unchanged settings give the
        # very numbers the scheduler would have: base LR x the schedule factor of its epoch.
        o = self.cfg.optim
        for optimizer, scheduler in ((self.opt_G, self.sched_G), (self.opt_D, self.sched_D)):
            factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
            scheduler.base_lrs = [o.lr for _ in optimizer.param_groups]
            for group in optimizer.param_groups:
                group.update(initial_lr=o.lr, lr=o.lr * factor, betas=(o.beta1, o.beta2))

    # ------------------------------------------------------------------------------------------ step
    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[dict[str, float], dict]:
        cfg, nets, prec = self.cfg, self.nets, self.precision
        G_A, G_B, D_A, D_B = nets["G_A"], nets["G_B"], nets["D_A"], nets["D_B"]
        mode, lam = cfg.loss.gan_mode, cfg.loss
        logs: dict[str, float] = {}

        with prec.autocast():
            fake_b = G_A(real_a)
            rec_a = G_B(fake_b)
            fake_a = G_B(real_b)
            rec_b = G_A(fake_a)

        # G step. D's parameters are frozen so the adversarial terms do not fill D's .grad.
        set_requires_grad([D_A, D_B], False)
        self.opt_G.zero_grad(set_to_none=True)
        with prec.autocast():
            terms = []
            if lam.lambda_identity > 0:
                idt_a = G_A(real_b)
                idt_b = G_B(real_a)
                terms.append(identity_loss(idt_a, real_b, lam.lambda_B * lam.lambda_identity, name="G/idt_A"))
                terms.append(identity_loss(idt_b, real_a, lam.lambda_A * lam.lambda_identity, name="G/idt_B"))
            terms.append(gan_loss(D_A(fake_b), True, mode, name="G/gan_A"))
            terms.append(gan_loss(D_B(fake_a), True, mode, name="G/gan_B"))
            terms.append(cycle_loss(rec_a, real_a, lam.lambda_A, name="G/cycle_A"))
            terms.append(cycle_loss(rec_b, real_b, lam.lambda_B, name="G/cycle_B"))
            loss_g = sum(t[0] for t in terms)
        for _, values in terms:
            logs.update(values)
        logs["G/total"] = float(loss_g.detach())
        prec.backward("G", loss_g)
        prec.step("G", self.opt_G, lambda: allreduce_gradients(self.params_G, self.dist))
        set_requires_grad([D_A, D_B], True)

        # D step on pooled (history) fakes, as in the official code.
        self.opt_D.zero_grad(set_to_none=True)
        pooled_b = self.pools["fake_B"].query(fake_b.detach())
        pooled_a = self.pools["fake_A"].query(fake_a.detach())
        with prec.autocast():
            loss_da, values_da = discriminator_loss(D_A(real_b), D_A(pooled_b), mode, name="D_A")
            loss_db, values_db = discriminator_loss(D_B(real_a), D_B(pooled_a), mode, name="D_B")
        loss_d = loss_da + loss_db
        logs.update(values_da)
        logs.update(values_db)
        if mode == "wgangp":
            # The official code never applies its penalty; WGAN without it is not WGAN-GP.
            gp_a, v_a = gradient_penalty(D_A, real_b, pooled_b, weight=lam.lambda_gp, name="D_A/gp")
            gp_b, v_b = gradient_penalty(D_B, real_a, pooled_a, weight=lam.lambda_gp, name="D_B/gp")
            loss_d = loss_d + gp_a + gp_b
            logs.update(v_a)
            logs.update(v_b)
        prec.backward("D", loss_d)
        prec.step("D", self.opt_D, lambda: allreduce_gradients(self.params_D, self.dist))
        visuals = {"real_A": real_a, "fake_B": fake_b, "rec_A": rec_a, "real_B": real_b, "fake_A": fake_a,
                   "rec_B": rec_b}
        return logs, visuals

    # ------------------------------------------------------------------------------------------- fit
    def steps_per_epoch(self) -> int:
        per_rank = max(self.len_a, self.len_b) // self.dist.world_size
        bs = self.cfg.data.batch_size
        return (per_rank + bs - 1) // bs

    def fit(self) -> Path:
        cfg, c = self.cfg, self.counters
        bs = cfg.data.batch_size
        spe = self.steps_per_epoch()
        total_steps = spe * self.total_epochs
        bar = progress_bar(total_steps, c["global_step"], cfg.log.progress and self.dist.is_main,
                           desc=f"{cfg.name}")
        for net in self.nets.values():
            net.train()
        meter, skipped = StepMeter(), 0
        stop = False
        started = time.perf_counter()
        try:
            while c["epoch"] < self.total_epochs and not stop:
                sampler = UnpairedSampler(
                    self.len_a, self.len_b, seed=cfg.seed, epoch=c["epoch"], batch_size=bs,
                    serial_b=cfg.data.serial_batches, shuffle_a=not cfg.data.serial_batches,
                    start=c["epoch_step"] * bs, rank=self.dist.rank, world_size=self.dist.world_size,
                )
                loader = make_loader(self.dataset, sampler, bs, cfg.run.num_workers,
                                     pin_memory=self.device.type == "cuda")
                for batch in loader:
                    real_a = to_channels(batch["A"].to(self.device, non_blocking=True), cfg.network.input_nc)
                    real_b = to_channels(batch["B"].to(self.device, non_blocking=True), cfg.network.output_nc)
                    logs, visuals = self.train_step(real_a, real_b)
                    c["epoch_step"] += 1
                    c["global_step"] += 1
                    c["images_seen"] += real_a.shape[0] * self.dist.world_size
                    skipped += int(batch["skipped"].sum())
                    step = c["global_step"]
                    self.record_step(meter, step, logs, real_a.shape[0] * self.dist.world_size)
                    self._step_done(step)
                    bar.update(1)
                    if step % cfg.log.every_steps == 0:
                        means = self.log_means(meter, step)
                        means["lr/G"] = self.opt_G.param_groups[0]["lr"]
                        means["lr/D"] = self.opt_D.param_groups[0]["lr"]
                        means["data/skipped_images"] = float(skipped)
                        self.ctx.logger.scalars(step, means, epoch=c["epoch"] + 1)
                        bar.set_postfix(epoch=c["epoch"] + 1, G=f"{means['G/total']:.3f}",
                                        D_A=f"{means['D_A']:.3f}", D_B=f"{means['D_B']:.3f}")
                    if step % cfg.log.image_every_steps == 0:
                        self.ctx.logger.image_grid(step, "train/A_fakeB_recA__B_fakeA_recB", [
                            as_rgb(v[:1]) for v in visuals.values()], nrow=3)
                    at_stop = self.should_stop(step, started)
                    if at_stop or (cfg.log.save_every_steps and step % cfg.log.save_every_steps == 0):
                        self.save()
                    if at_stop:
                        stop = True
                        break
                if stop:
                    break
                # End of epoch: the official schedule steps once per epoch.
                self.sched_G.step()
                self.sched_D.step()
                c["epoch"] += 1
                c["epoch_step"] = 0
                if c["epoch"] % cfg.log.save_every_epochs == 0 or c["epoch"] == self.total_epochs:
                    self.save()
        finally:
            bar.close()
            self.ctx.logger.close()
        return self.run_dir


train = CycleGANTrainer.run_to_end
