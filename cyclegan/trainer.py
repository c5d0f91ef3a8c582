"""The CycleGAN training loop with the official update order and semantics.

Per iteration: forward fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A);
G step with D frozen (adversarial + cycle + identity); then one D step for D_A on (real_B, pool(fake_B)) and
D_B on (real_A, pool(fake_A)), each D loss x 0.5. LR is stepped once per epoch.
"""
from __future__ import annotations

from pathlib import Path

import torch

from common.data.images import to_channels
from common.data.unpaired import UnpairedDataset, UnpairedSampler
from common.distributed import allreduce_gradients
from common.epoch_trainer import EpochTrainer
from common.layers.masked_output import mask_loss
from common.losses import cycle_loss, discriminator_loss, gan_loss, gradient_penalty, identity_loss
from common.pool import ImagePool
from common.train_config import MASK_PENALTIES
from common.training import set_requires_grad
from cyclegan.config import CycleGANConfig
from cyclegan.model import build_networks


class CycleGANTrainer(EpochTrainer):
    """Holds the networks, optimizers and pools of one run; :meth:`fit` trains to the configured end."""

    postfix = {"G": "G/total", "D_A": "D_A", "D_B": "D_B"}
    grid_tag = "train/A_fakeB_recA__B_fakeA_recB"
    grid_columns = 3

    def __init__(self, cfg: CycleGANConfig, out_root: str | Path = "runs", resume: str | None = None,
                 device: str | None = None):
        self.cfg = cfg
        self._setup_runtime(cfg, device)
        self.nets = {name: net.to(self.device) for name, net in build_networks(cfg).items()}
        self._after_networks_built(cfg.seed)
        self._setup_ema(("G_A", "G_B"))

        self.params_G = list(self.nets["G_A"].parameters()) + list(self.nets["G_B"].parameters())
        self.params_D = list(self.nets["D_A"].parameters()) + list(self.nets["D_B"].parameters())
        self._setup_optimization(self.params_G, self.params_D)
        self.opt_G, self.opt_D = self.optimizers["G"], self.optimizers["D"]
        pool_seed = cfg.seed * 7919 + 17 + self.dist.rank
        self.pools = {
            "fake_A": ImagePool(cfg.loss.pool_size, seed=pool_seed),
            "fake_B": ImagePool(cfg.loss.pool_size, seed=pool_seed + 1),
        }

        d = cfg.data
        self.dataset = UnpairedDataset(
            d.root, phase="train", preprocess=d.preprocess, load_size=d.load_size, crop_size=d.crop_size,
            flip=d.flip, max_dataset_size=d.max_dataset_size, on_bad_image=d.on_bad_image, decoder=d.decoder,
        )
        self.len_a, self.len_b = len(self.dataset.paths_a), len(self.dataset.paths_b)
        self._open(out_root, resume)

    # ------------------------------------------------------------------------------------------ step
    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict]:
        """One G and one D update; returns the loss logs (detached device tensors) and the step's images."""
        cfg, nets, prec = self.cfg, self.step_nets, self.precision
        G_A, G_B, D_A, D_B = nets["G_A"], nets["G_B"], nets["D_A"], nets["D_B"]
        mode, lam = cfg.loss.gan_mode, cfg.loss
        real_a, real_b = nets.input(real_a), nets.input(real_b)
        frozen = [self.nets["D_A"], self.nets["D_B"]]
        logs: dict[str, torch.Tensor] = {}

        masks = []  # each translation's attention mask, taken before the next call of its G replaces it
        changes = []  # and how far its painted colour was from its input
        inputs = []  # and that input

        def translated(G, name: str, x: torch.Tensor) -> torch.Tensor:
            y = G(x)
            if cfg.network.attention_mask:
                masks.append(self.nets[name].attention.last_mask)
                changes.append(self.nets[name].attention.last_change)
                inputs.append(x)
            return y

        with prec.autocast():
            fake_b = translated(G_A, "G_A", real_a)
            rec_a = translated(G_B, "G_B", fake_b)
            fake_a = translated(G_B, "G_B", real_b)
            rec_b = translated(G_A, "G_A", fake_a)

        # G step. D's parameters are frozen so the adversarial terms do not fill D's .grad.
        set_requires_grad(frozen, False)
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
            if masks and any(getattr(lam, k) for k in MASK_PENALTIES):
                terms.append(mask_loss(masks, lam.lambda_mask, lam.lambda_mask_tv, lam.lambda_mask_binary,
                                       changes=changes, weight_idle=lam.lambda_mask_idle,
                                       idle_tol=lam.mask_idle_tol, images=inputs,
                                       weight_edge_tv=lam.lambda_mask_edge_tv, edge_sigma=lam.mask_edge_sigma,
                                       weight_colour=lam.lambda_mask_colour))
            loss_g = sum(t[0] for t in terms)
        for _, values in terms:
            logs.update(values)
        logs["G/total"] = loss_g.detach()
        prec.backward("G", loss_g)
        prec.step("G", self.opt_G, lambda: allreduce_gradients(self.params_G, self.dist))
        self.update_ema()
        set_requires_grad(frozen, True)

        # D step on pooled (history) fakes, as in the official code.
        self.opt_D.zero_grad(set_to_none=True)
        pooled_b = nets.input(self.pools["fake_B"].query(fake_b.detach()))
        pooled_a = nets.input(self.pools["fake_A"].query(fake_a.detach()))
        with prec.autocast():
            loss_da, values_da = discriminator_loss(D_A(real_b), D_A(pooled_b), mode, name="D_A")
            loss_db, values_db = discriminator_loss(D_B(real_a), D_B(pooled_a), mode, name="D_B")
        loss_d = loss_da + loss_db
        logs.update(values_da)
        logs.update(values_db)
        if mode == "wgangp":
            # The official code never applies its penalty; WGAN without it is not WGAN-GP.
            gp_a, v_a = gradient_penalty(nets.penalty_critic("D_A", real_b), real_b, pooled_b, weight=lam.lambda_gp,
                                         name="D_A/gp")
            gp_b, v_b = gradient_penalty(nets.penalty_critic("D_B", real_a), real_a, pooled_a, weight=lam.lambda_gp,
                                         name="D_B/gp")
            loss_d = loss_d + gp_a + gp_b
            logs.update(v_a)
            logs.update(v_b)
        prec.backward("D", loss_d)
        prec.step("D", self.opt_D, lambda: allreduce_gradients(self.params_D, self.dist))
        visuals = {"real_A": real_a, "fake_B": fake_b, "rec_A": rec_a, "real_B": real_b, "fake_A": fake_a,
                   "rec_B": rec_b}
        return logs, visuals

    # ---------------------------------------------------------------------------------------- epochs
    def epoch_sampler(self, epoch: int, start: int) -> UnpairedSampler:
        d = self.cfg.data
        return UnpairedSampler(self.len_a, self.len_b, seed=self.cfg.seed, epoch=epoch, batch_size=d.batch_size,
                               serial_b=d.serial_batches, shuffle_a=not d.serial_batches, start=start,
                               rank=self.dist.rank, world_size=self.dist.world_size)

    def inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.cfg.network
        return (to_channels(self.to_device(batch["A"]), net.input_nc),
                to_channels(self.to_device(batch["B"]), net.output_nc))

train = CycleGANTrainer.run_to_end
