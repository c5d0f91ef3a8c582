"""The pix2pix training loop with the official update order and losses (``models/pix2pix_model.py``).

Per iteration: fake_B = G(real_A); D step on the fake pair (detached) and the real pair,
D = 0.5 * (GAN(D(A, G(A)), fake) + GAN(D(A, B), real)); then the G step with D frozen,
G = GAN(D(A, G(A)), real) + lambda_L1 * L1(G(A), B). No image pool. The LR is stepped once per epoch.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as tdist
from torch.utils.data import Sampler

from common.data.images import to_channels
from common.data.unpaired import UnpairedSampler
from common.distributed import allreduce_gradients
from common.epoch_trainer import EpochTrainer
from common.losses import discriminator_loss, gan_loss, gradient_penalty, l1_loss
from common.training import set_requires_grad
from pix2pix.config import Pix2PixConfig
from pix2pix.data import PairedDataset
from pix2pix.model import build_networks


class Pix2PixTrainer(EpochTrainer):
    """Holds G, the conditional D and their optimizers for one run; :meth:`fit` trains to the configured end."""

    postfix = {"G": "G/total", "D": "D"}
    grid_tag = "train/real_A__fake_B__real_B"
    grid_columns = 3

    def __init__(self, cfg: Pix2PixConfig, out_root: str | Path = "runs", resume: str | None = None,
                 device: str | None = None):
        self.cfg = cfg
        self._setup_runtime(cfg, device)
        self.nets = {name: net.to(self.device) for name, net in build_networks(cfg).items()}
        self._after_networks_built(cfg.seed)
        self._setup_ema(("G",))

        self.params_G = list(self.nets["G"].parameters())
        self.params_D = list(self.nets["D"].parameters())
        self._setup_optimization(self.params_G, self.params_D)
        self.opt_G, self.opt_D = self.optimizers["G"], self.optimizers["D"]

        d = cfg.data
        self.dataset = PairedDataset(
            d.root, phase=d.phase, format=d.format, direction=d.direction, preprocess=d.preprocess,
            load_size=d.load_size, crop_size=d.crop_size, flip=d.flip, max_dataset_size=d.max_dataset_size,
            on_bad_image=d.on_bad_image, decoder=d.decoder,
        )
        self._open(out_root, resume)

    def epoch_sampler(self, epoch: int, start: int) -> Sampler:
        # Pairs: one index for both sides (serial B), shuffled unless serial_batches, as the official loader.
        n = len(self.dataset)
        return UnpairedSampler(n, n, seed=self.cfg.seed, epoch=epoch, batch_size=self.cfg.data.batch_size,
                               serial_b=True, shuffle_a=not self.cfg.data.serial_batches, start=start,
                               rank=self.dist.rank, world_size=self.dist.world_size)

    def inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.cfg.network
        return (to_channels(self.to_device(batch["A"]), net.input_nc),
                to_channels(self.to_device(batch["B"]), net.output_nc))

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[dict, dict[str, torch.Tensor]]:
        cfg, prec, nets = self.cfg, self.precision, self.step_nets
        G, D = nets["G"], nets["D"]
        mode = cfg.loss.gan_mode
        real_a, real_b = nets.input(real_a), nets.input(real_b)

        with prec.autocast():
            fake_b = G(real_a)
        real_ab = nets.input(torch.cat([real_a, real_b], 1))
        fake_ab = nets.input(torch.cat([real_a, fake_b], 1))

        # D step first, fake pair then real pair (the order matters to D's batch-norm running statistics).
        self.opt_D.zero_grad(set_to_none=True)
        with prec.autocast():
            pred_fake = D(fake_ab.detach())
            pred_real = D(real_ab)
            loss_d, logs = discriminator_loss(pred_real, pred_fake, mode, name="D")
        if mode == "wgangp":
            # The official code never applies its penalty; WGAN without it is not WGAN-GP.
            penalty, values = gradient_penalty(nets.penalty_critic("D", real_ab), real_ab, fake_ab,
                                               weight=cfg.loss.lambda_gp, name="D/gp")
            loss_d = loss_d + penalty
            logs.update(values)
        prec.backward("D", loss_d)
        prec.step("D", self.opt_D, lambda: allreduce_gradients(self.params_D, self.dist))

        # G step. D's parameters are frozen so the adversarial term does not fill D's .grad.
        set_requires_grad([self.nets["D"]], False)
        self.opt_G.zero_grad(set_to_none=True)
        with prec.autocast():
            loss_gan, gan_logs = gan_loss(D(fake_ab), True, mode, name="G/gan")
            loss_l1, l1_logs = l1_loss(fake_b, real_b, cfg.loss.lambda_L1, name="G/L1")
        logs.update(gan_logs)
        logs.update(l1_logs)
        # Summed from the logged terms (which carry their weights), whatever type the loss logs have.
        logs["G/total"] = gan_logs["G/gan"] + l1_logs["G/L1"]
        prec.backward("G", loss_gan + loss_l1)
        prec.step("G", self.opt_G, lambda: allreduce_gradients(self.params_G, self.dist))
        set_requires_grad([self.nets["D"]], True)
        self._share_buffers()
        self.update_ema()  # after the buffers are shared: the average copies them
        return logs, {"real_A": real_a, "fake_B": fake_b, "real_B": real_b}

    def _share_buffers(self) -> None:
        """Under torchrun, rank 0's batch-norm running statistics for every rank (what DDP's buffer broadcast
        does): the checkpoint, written by rank 0, then holds every rank's state and a resume continues it."""
        if not self.dist.enabled:
            return
        for net in self.nets.values():
            for buffer in net.buffers():
                tdist.broadcast(buffer, src=0)


train = Pix2PixTrainer.run_to_end
