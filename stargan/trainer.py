"""The StarGAN training loop (official semantics), on one dataset or several with the mask vector.

Iteration i: take a batch of dataset ``i % N``; D step on real (src + classification) and on
x_fake = G(x, c_trg) (+ gradient penalty); every ``n_critic`` iterations a G step (adversarial +
classification of the target + reconstruction L1). LR follows the linear decay over the last
``num_iters_decay`` iterations.

The losses are the official ones; the work is not (see docs/deviations.md, "StarGAN speed"):
- on D-only iterations G's forward runs without a graph;
- on a G-step iteration x_fake is computed once, with a graph, and serves both steps (the official code runs
  G(x, c_trg) twice; the D step does not change G, so both are the same tensor);
- D scores real and fake in one batch (D has no normalisation, so each sample's output is unchanged);
- the G step runs with D's parameters frozen, so no D gradients are computed or accumulated.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import torch

from common.data.loader import loader_options, training_loader
from common.distributed import allreduce_gradients
from common.errors import UserError
from common.labels.space import LabelSpace
from common.labels.targets import mix_targets, random_targets, shuffle_targets, single_group_targets
from common.layers.masked_output import mask_loss
from common.losses import gan_loss, gradient_penalty, grouped_cls_loss, l1_loss, spectrum_match_loss
from common.train_config import MASK_PENALTIES
from common.training import (
    Precision,
    StepMeter,
    TrainerBase,
    lr_factor,
    make_adam,
    open_run,
    progress_bar,
    set_requires_grad,
)
from stargan.config import StarGANConfig
from stargan.data import BatchStream, build_dataset
from stargan.model import build_networks

GRID_IMAGES = 4


class StarGANTrainer(TrainerBase):
    def __init__(self, cfg: StarGANConfig, out_root: str | Path = "runs", resume: str | None = None,
                 device: str | None = None):
        self.cfg = cfg
        self._setup_runtime(cfg, device)
        self.datasets = [build_dataset(entry, cfg.data, "train") for entry in cfg.data.datasets]
        self.labels = LabelSpace([e.name for e in cfg.data.datasets], [d.schema for d in self.datasets])
        self.spectrum_columns = self._spectrum_columns()
        self.nets = {k: n.to(self.device) for k, n in build_networks(cfg.network, cfg.data.image_size,
                                                                     self.labels).items()}
        self._after_networks_built(cfg.seed)
        self._setup_ema(("G",))
        o = cfg.optim
        self.optimizers = {
            "G": make_adam(self.nets["G"].parameters(), o.g_lr, (o.beta1, o.beta2)),
            "D": make_adam(self.nets["D"].parameters(), o.d_lr, (o.beta1, o.beta2)),
        }
        # The LR is a pure function of the iteration, so it needs no scheduler state to resume.
        self.lr_factor = functools.partial(lr_factor, "linear", n_constant=o.num_iters - o.num_iters_decay,
                                           n_decay=o.num_iters_decay)
        self.base_lr = {"G": o.g_lr, "D": o.d_lr}
        self.precision = Precision(cfg.run.precision, self.device, ("G", "D"))
        self.target_gen = torch.Generator().manual_seed(cfg.seed * 31 + 7 + self.dist.rank)
        self.counters = {"global_step": 0, "images_seen": 0, "batches": [0] * len(self.datasets)}
        self.ctx = open_run(cfg, out_root, resume, self.dist)
        self.run_dir = self.ctx.run_dir
        if self.ctx.resume_from is not None:
            saved = self.ctx.resume_from.get("extra", {}).get("labels")
            if saved is not None and saved != self.labels.to_dict():
                raise UserError(f"{self.ctx.resume_path}: the checkpoint's label schema differs from the config's "
                                "datasets; resume with the config it was trained with")
            self.load_state(self.ctx.resume_from)
        self.grid_batches = self._grid_batches()

    def _spectrum_columns(self) -> list[list[int]]:
        """Per dataset, the label columns of ``loss.spectrum_attrs`` (none while ``lambda_spectrum`` is 0, so a
        config that turns the term off runs on any data); each name must be in some dataset's labels."""
        if not self.cfg.loss.lambda_spectrum:
            return [[] for _ in self.labels.schemas]
        wanted = self.cfg.loss.spectrum_attrs
        names = [schema.names for schema in self.labels.schemas]
        known = sorted({name for attrs in names for name in attrs})
        for name in wanted:
            if name not in known:
                raise UserError(f"loss.spectrum_attrs names {name!r}, which no dataset has; "
                                f"expected some of {', '.join(known)}")
        return [[i for i, name in enumerate(attrs) if name in wanted] for attrs in names]

    def checkpoint_extra(self) -> dict:
        # The target generator is part of the exact-resume state.
        return {"labels": self.labels.to_dict(), "target_rng": self._gather(self.target_gen.get_state())}

    def load_state(self, ckpt: dict) -> None:
        super().load_state(ckpt)
        # The config's betas rule a resumed run (the LR is set from the config every iteration anyway).
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["betas"] = (self.cfg.optim.beta1, self.cfg.optim.beta2)
        states = ckpt["extra"]["target_rng"]
        self.target_gen.set_state(states[self.dist.rank if self.dist.rank < len(states) else 0])

    def _grid_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A few fixed images per dataset (test split when it has any) for the TensorBoard grids."""
        out = []
        for entry, train_set in zip(self.cfg.data.datasets, self.datasets):
            try:
                source = build_dataset(entry, self.cfg.data, "test")
            except UserError:
                source = None
            if source is None or len(source) == 0:
                source = train_set
            items = [source[i] for i in range(min(GRID_IMAGES, len(source)))]
            out.append((torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])))
        return out

    # ------------------------------------------------------------------------------------------ step
    def targets_for(self, label_org: torch.Tensor, dataset: int) -> torch.Tensor:
        """Target labels on ``label_org``'s device, drawn on the CPU from the target generator. Given CPU labels
        (as :meth:`fit` does) nothing here waits for the GPU; the caller moves them without blocking."""
        schema, gen = self.labels.schemas[dataset], self.target_gen
        draw = {
            "shuffle": lambda: shuffle_targets(label_org, gen),
            "random": lambda: random_targets(schema, label_org.shape[0], gen).to(label_org.device),
            "single": lambda: single_group_targets(schema, label_org, gen),
        }
        label_trg = draw[self.cfg.loss.target]()
        share = self.cfg.loss.target_single_share
        if share:
            label_trg = mix_targets(label_trg, single_group_targets(schema, label_org, gen), share, gen)
        return label_trg

    def train_step(self, x_real: torch.Tensor, label_org: torch.Tensor, dataset: int, g_step: bool) -> dict:
        """One iteration on a batch; ``label_org`` may be on the CPU (best: the targets are then drawn there and
        the step makes no host-device synchronisation). Returns the loss logs as detached device tensors."""
        cfg, prec, labels = self.cfg, self.precision, self.labels
        G, D = self.step_nets["G"], self.step_nets["D"]
        mode, lam = cfg.loss.gan_mode, cfg.loss
        label_trg = self.to_device(self.targets_for(label_org, dataset))
        label_org = self.to_device(label_org)
        x_real = self.step_nets.input(self.to_device(x_real))
        c_org = labels.g_label(dataset, label_org)
        c_trg = labels.g_label(dataset, label_trg)
        slices = labels.cls_slices(dataset)
        logs: dict[str, torch.Tensor] = {}

        with prec.autocast(), torch.set_grad_enabled(g_step):
            x_fake = G(x_real, c_trg)
        attention = self.nets["G"].attention
        # The translation's mask, change map and input, kept before the reconstruction's G call replaces them.
        masks = [(attention.last_mask, attention.last_change, x_real)] if attention is not None else []

        opt_d = self.optimizers["D"]
        opt_d.zero_grad(set_to_none=True)
        n = x_real.shape[0]
        mask_org = labels.cls_mask(dataset, c_org)
        with prec.autocast():
            out_src, out_cls = D(torch.cat([x_real, x_fake.detach().to(x_real.dtype)]))
            d_real, v_real = gan_loss(out_src[:n], True, mode, name="D/real")
            d_cls, v_cls = grouped_cls_loss(out_cls[:n].float(), c_org, slices, name="D/cls", sample_mask=mask_org)
            d_fake, v_fake = gan_loss(out_src[n:], False, mode, name="D/fake")
            d_loss = d_real + d_fake + lam.lambda_cls * d_cls
            if lam.lambda_cls_fake:
                # D's classifier also learns the translations, as showing the labels they were made from: G's
                # classification term is then earned only by changes D cannot tell from real ones, not by the
                # cheapest cue of the target on real images (docs/fidelity.md).
                d_cls_fake, v_cls_fake = grouped_cls_loss(out_cls[n:].float(), c_org, slices, name="D/cls_fake",
                                                          sample_mask=mask_org)
                d_loss = d_loss + lam.lambda_cls_fake * d_cls_fake
                logs.update(v_cls_fake)
        logs.update(v_real)
        logs.update(v_cls)
        logs.update(v_fake)
        if mode == "wgangp":
            gp, v_gp = gradient_penalty(self.step_nets.penalty_critic("D", x_real), x_real, x_fake,
                                        weight=lam.lambda_gp, name="D/gp")
            d_loss = d_loss + gp
            logs.update(v_gp)
        logs["D/total"] = d_loss.detach()
        prec.backward("D", d_loss)
        prec.step("D", opt_d, lambda: allreduce_gradients(list(D.parameters()), self.dist))

        if g_step:
            opt_g = self.optimizers["G"]
            opt_g.zero_grad(set_to_none=True)
            set_requires_grad([self.nets["D"]], False)  # the G step must not fill D's .grad
            with prec.autocast():
                out_src, out_cls = D(x_fake)
                g_fake, v_fake = gan_loss(out_src, True, mode, name="G/fake")
                g_cls, v_cls = grouped_cls_loss(out_cls.float(), c_trg, slices, name="G/cls",
                                                sample_mask=labels.cls_mask(dataset, c_trg))
                x_rec = G(x_fake, c_org)
                g_rec, v_rec = l1_loss(x_rec, x_real, lam.lambda_rec, name="G/rec")
                g_loss = g_fake + lam.lambda_cls * g_cls + g_rec
                extra_terms = self._preserving_terms(G, x_real, x_fake, c_org, masks)
                if lam.lambda_spectrum and self.spectrum_columns[dataset]:
                    extra_terms.append(spectrum_match_loss(x_fake, x_real, label_trg, label_org, lam.lambda_spectrum,
                                                           self.spectrum_columns[dataset], name="G/spectrum"))
                g_loss = g_loss + sum(term for term, _ in extra_terms)
            set_requires_grad([self.nets["D"]], True)
            for values in (v_fake, v_cls, v_rec, *(v for _, v in extra_terms)):
                logs.update(values)
            logs["G/total"] = g_loss.detach()
            prec.backward("G", g_loss)
            prec.step("G", opt_g, lambda: allreduce_gradients(list(G.parameters()), self.dist))
            self.update_ema()
        return logs

    def _preserving_terms(self, G, x_real: torch.Tensor, x_fake: torch.Tensor, c_org: torch.Tensor,
                          masks: list[tuple[torch.Tensor, ...]]) -> list[tuple[torch.Tensor, dict]]:
        """The G terms that are not in the official code, each off at weight 0: identity (translating to the
        input's own labels changes nothing) and the attention-mask penalties (on the translation's mask and
        change map and input, given in ``masks``, and the reconstruction's, the last G call's, whose input was
        ``x_fake``)."""
        lam, terms = self.cfg.loss, []
        if self.cfg.network.attention_mask and any(getattr(lam, k) for k in MASK_PENALTIES):
            attention = self.nets["G"].attention
            masks = masks + [(attention.last_mask, attention.last_change, x_fake)]
            terms.append(mask_loss([m for m, _, _ in masks], lam.lambda_mask, lam.lambda_mask_tv,
                                   lam.lambda_mask_binary, changes=[c for _, c, _ in masks],
                                   weight_idle=lam.lambda_mask_idle, idle_tol=lam.mask_idle_tol,
                                   images=[x for _, _, x in masks], weight_edge_tv=lam.lambda_mask_edge_tv,
                                   edge_sigma=lam.mask_edge_sigma, weight_colour=lam.lambda_mask_colour))
        if lam.lambda_id > 0:
            terms.append(l1_loss(G(x_real, c_org), x_real, lam.lambda_id, name="G/id"))
        return terms

    @torch.no_grad()
    def log_grids(self, step: int) -> None:
        G = self.nets["G"]
        G.eval()  # no-op for InstanceNorm without running stats; explicit for dropout-free clarity
        for i, (images, label) in enumerate(self.grid_batches):
            x = images.to(self.device)
            columns = [x] + [G(x, t.to(self.device)) for _, t in self.labels.grid_targets(i, label.to(self.device))]
            rows = torch.stack(columns, dim=1).flatten(0, 1)
            self.ctx.logger.image_grid(step, f"samples/{self.labels.names[i]}", [rows], nrow=len(columns))
        G.train()

    # ------------------------------------------------------------------------------------------- fit
    def fit(self) -> Path:
        cfg, c = self.cfg, self.counters
        o = cfg.optim
        loaders = []
        options = loader_options(cfg.run, self.device, n_loaders=len(self.datasets))
        for k, dataset in enumerate(self.datasets):
            stream = BatchStream(len(dataset), cfg.data.batch_size, cfg.seed, stream=k, start=c["batches"][k],
                                 rank=self.dist.rank, world_size=self.dist.world_size,
                                 what=f"dataset '{cfg.data.datasets[k].name}'")
            loaders.append(iter(training_loader(dataset, options, seed=cfg.seed + k, batch_sampler=stream)))
        bar = progress_bar(o.num_iters, c["global_step"], cfg.log.progress and self.dist.is_main, desc=cfg.name)
        for net in self.nets.values():
            net.train()
        meter = StepMeter()
        started = time.perf_counter()
        try:
            while c["global_step"] < o.num_iters:
                i = c["global_step"]
                k = i % len(self.datasets)
                for name, opt in self.optimizers.items():
                    for group in opt.param_groups:
                        group["lr"] = self.base_lr[name] * self.lr_factor(i)
                x_real, label_org = next(loaders[k])
                c["batches"][k] += 1
                # The labels stay on the CPU: train_step draws the targets there before moving both.
                x_real = self.to_device(x_real)
                logs = self.train_step(x_real, label_org, k, g_step=(i + 1) % o.n_critic == 0)
                c["global_step"] = step = i + 1
                n_images = x_real.shape[0] * self.dist.world_size
                c["images_seen"] += n_images
                self.record_step(meter, step, logs, n_images)
                self._step_done(step)
                bar.update(1)
                if step % cfg.log.every_steps == 0:
                    means = self.log_means(meter, step)
                    means["lr/G"] = self.optimizers["G"].param_groups[0]["lr"]
                    means["lr/D"] = self.optimizers["D"].param_groups[0]["lr"]
                    self.ctx.logger.scalars(step, means)
                    post = {"D": f"{means['D/total']:.3f}"}
                    if "G/total" in means:
                        post["G"] = f"{means['G/total']:.3f}"
                    bar.set_postfix(post)
                if step % cfg.log.image_every_steps == 0 or step == o.num_iters:
                    if self.dist.is_main:
                        self.log_grids(step)
                at_stop = self.should_stop(step, started)
                periodic = cfg.log.save_every_steps and step % cfg.log.save_every_steps == 0
                if at_stop or periodic or step == o.num_iters:
                    self.save()
                if at_stop:
                    break
        finally:
            bar.close()
            self.ctx.logger.close()
        return self.run_dir


train = StarGANTrainer.run_to_end
