"""The official CycleGAN training step, re-stated on any device: the baseline for the CycleGAN throughput figures.

    python benchmarks/bench_cyclegan_official.py --size 128 --iters 3            # official vs ours, interleaved
    python benchmarks/bench_cyclegan_official.py --device cuda --size 256 --batch-size 8 --precision amp_bf16

The official code (junyanz/pytorch-CycleGAN-and-pix2pix, ``CycleGANModel.optimize_parameters``) needs its
data loader and option parser, so this file re-states its step on our networks built as the official ones
(ResNet-9 G, 70x70 PatchGAN D, instance norm; plain ``nn.Conv2d``, our CPU GEMM path switched off), with what
costs time kept as the official code does it:

- forward fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A);
- G step with D frozen: identity G_A(B), G_B(A); LSGAN against ``real_label.expand_as(pred)``; L1 terms;
  one backward; Adam (torch's default implementation, as the official code constructs it);
- D step: the official image pool (Python ``random``, ``torch.cat``), then D_A and D_B each scored on real and
  on the pooled fake and back-propagated separately (``backward_D_A``, ``backward_D_B``); one Adam step.

Random tensors stand in for images, as in bench_train.py, so disk speed does not count. The official code has
no mixed precision: the baseline is fp32 at the official batch (1).
"""
from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for folder in (ROOT, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_train import build, sync  # noqa: E402

from common.layers.conv import Conv2d  # noqa: E402
from common.networks.factory import define_discriminator, define_generator  # noqa: E402


def plain_convs(net: torch.nn.Module) -> torch.nn.Module:
    """The official networks are built from ``nn.Conv2d``: switch off our CPU GEMM path."""
    for module in net.modules():
        if isinstance(module, Conv2d):
            module.__class__ = torch.nn.Conv2d
    return net


class OfficialPool:
    """``util/image_pool.py``: Python ``random`` draws, images kept as (1, C, H, W) slices, ``torch.cat`` out."""

    def __init__(self, pool_size: int = 50, seed: int = 0):
        self.pool_size, self.images, self.rng = pool_size, [], random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images:
            image = torch.unsqueeze(image.data, 0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif self.rng.uniform(0, 1) > 0.5:
                index = self.rng.randint(0, self.pool_size - 1)
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


class OfficialCycleGANStep:
    def __init__(self, device: torch.device | str = "cpu", ngf: int = 64, ndf: int = 64,
                 blocks: str = "resnet_9blocks"):
        self.device = torch.device(device)
        self.G_A, self.G_B = (plain_convs(define_generator(blocks, ngf=ngf)).to(self.device) for _ in range(2))
        self.D_A, self.D_B = (plain_convs(define_discriminator("basic", ndf=ndf)).to(self.device) for _ in range(2))
        self.opt_G = torch.optim.Adam(itertools.chain(self.G_A.parameters(), self.G_B.parameters()), lr=2e-4,
                                      betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=2e-4,
                                      betas=(0.5, 0.999))
        self.real_label = torch.tensor(1.0, device=self.device)
        self.fake_label = torch.tensor(0.0, device=self.device)
        self.pool_A, self.pool_B = OfficialPool(seed=1), OfficialPool(seed=2)
        self.lambda_A = self.lambda_B = 10.0
        self.lambda_idt = 0.5

    def gan(self, prediction: torch.Tensor, real: bool) -> torch.Tensor:
        target = (self.real_label if real else self.fake_label).expand_as(prediction)
        return F.mse_loss(prediction, target)

    @staticmethod
    def set_requires_grad(nets, flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    def backward_D_basic(self, net, real, fake) -> torch.Tensor:
        loss = (self.gan(net(real), True) + self.gan(net(fake.detach()), False)) * 0.5
        loss.backward()
        return loss

    def iteration(self, real_A: torch.Tensor, real_B: torch.Tensor) -> None:
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(fake_B)
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(fake_A)
        self.set_requires_grad([self.D_A, self.D_B], False)
        self.opt_G.zero_grad()
        idt_A = self.G_A(real_B)
        loss_idt_A = F.l1_loss(idt_A, real_B) * self.lambda_B * self.lambda_idt
        idt_B = self.G_B(real_A)
        loss_idt_B = F.l1_loss(idt_B, real_A) * self.lambda_A * self.lambda_idt
        loss_G = (self.gan(self.D_A(fake_B), True) + self.gan(self.D_B(fake_A), True)
                  + F.l1_loss(rec_A, real_A) * self.lambda_A + F.l1_loss(rec_B, real_B) * self.lambda_B
                  + loss_idt_A + loss_idt_B)
        loss_G.backward()
        self.opt_G.step()
        self.set_requires_grad([self.D_A, self.D_B], True)
        self.opt_D.zero_grad()
        self.backward_D_basic(self.D_A, real_B, self.pool_B.query(fake_B))
        self.backward_D_basic(self.D_B, real_A, self.pool_A.query(fake_A))
        self.opt_D.step()

    def random_iteration(self, batch: int, size: int) -> None:
        a = torch.rand(batch, 3, size, size, device=self.device) * 2 - 1
        b = torch.rand(batch, 3, size, size, device=self.device) * 2 - 1
        self.iteration(a, b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=1, help="our trainer's batch (the official one is 1)")
    ap.add_argument("--iters", type=int, default=3, help="timed rounds (each: one iteration of each)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--precision", choices=["fp32", "amp_fp16", "amp_bf16"], default="fp32")
    ap.add_argument("--ours", default=str(ROOT / "configs" / "cyclegan" / "horse2zebra.yaml"), metavar="CONFIG")
    args = ap.parse_args()
    torch.manual_seed(0)
    official = OfficialCycleGANStep(args.device)
    ours = build(args.ours, [], args.device, args.precision, args.size, args.batch_size)
    methods = {"official (fp32, batch 1)": (lambda: official.random_iteration(1, args.size), 1),
               f"ours ({args.precision}, batch {args.batch_size})": (ours.one_iteration, ours.images)}
    device = torch.device(args.device)
    for _ in range(args.warmup):
        for fn, _images in methods.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.iters):
        for name, (fn, _images) in methods.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    ours.trainer.close()
    rates = {}
    for name, ts in times.items():
        per = statistics.median(ts)
        rates[name] = methods[name][1] / per
        print(f"{name}: {per:.4f} s per iteration (min {min(ts):.4f}, max {max(ts):.4f}, n={len(ts)}), "
              f"{rates[name]:.2f} images/s")
    (base, base_rate), (name, rate) = rates.items()
    print(f"{name} / {base}, images/s: {rate / base_rate:.3f} (measured side by side; only ratios carry over "
          "between machines or days)")


if __name__ == "__main__":
    main()
