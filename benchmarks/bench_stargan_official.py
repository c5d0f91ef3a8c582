"""The official StarGAN training step, timed on this machine: the baseline for bench_train.py's StarGAN figure.

    python benchmarks/bench_stargan_official.py --iters 5            # official vs ours, interleaved
    python benchmarks/bench_stargan_official.py --flops              # + FLOPs and this CPU's GEMM throughput
    python benchmarks/bench_stargan_official.py --precision amp_bf16 # ours in bf16 autocast

The official code cannot run here unchanged (it needs the CelebA files and a data loader), so this script
re-states its `Solver.train` step (yunjey/stargan, solver.py) on our `stargan.networks` Generator and
Discriminator, which have the official layers, parameter counts and key layout (tests assert both). What it
keeps from the official step, because that is what costs time:

- every D step runs G(x_real, c_trg) with autograd recording (G's parameters require grad);
- D is called three times per D step: on x_real, on x_fake.detach() and on the interpolates (gradient
  penalty with create_graph=True);
- every n_critic-th iteration the G step runs G(x_real, c_trg) again, D on it, and G on the result, and its
  backward also fills D's parameter gradients (they are zeroed, never used);
- both optimizers are zeroed before every backward (``reset_grad``), Adam(lr 1e-4, betas 0.5/0.999);
- labels are shuffled on the CPU and copied to the device, and every loss is read with ``.item()`` for the
  log dict each iteration (free on a CPU; on a GPU each read waits for the queued work).

One *amortised iteration* = n_critic iterations (n_critic - 1 D-only + 1 D+G), the unit bench_train.py uses.
Random tensors stand in for images and labels, as in bench_train.py, so disk speed does not count.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The repository root for the library and this folder for bench_train: run as a script Python puts only this
# folder on sys.path, run as ``python -m benchmarks.bench_stargan_official`` only the current one.
for folder in (ROOT, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_train import build  # noqa: E402

from common.layers.conv import Conv2d  # noqa: E402
from stargan.networks import Discriminator, Generator  # noqa: E402


def official_penalty(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    grad = torch.autograd.grad(y, x, torch.ones_like(y), retain_graph=True, create_graph=True)[0]
    return ((grad.flatten(1).pow(2).sum(1).sqrt() - 1) ** 2).mean()


def official_cls_loss(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logit, target, reduction="sum") / logit.size(0)


class OfficialStep:
    def __init__(self, c_dim: int, image_size: int, n_critic: int, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.G = Generator(c_dim, 64, 6).to(self.device)
        self.D = Discriminator(image_size, 64, c_dim, 6).to(self.device)
        for module in self.D.modules():  # the official D is built from plain nn.Conv2d (no CPU GEMM path)
            if isinstance(module, Conv2d):
                module.__class__ = torch.nn.Conv2d
        self.g_opt = torch.optim.Adam(self.G.parameters(), 1e-4, betas=(0.5, 0.999))
        self.d_opt = torch.optim.Adam(self.D.parameters(), 1e-4, betas=(0.5, 0.999))
        self.n_critic = n_critic

    def reset_grad(self) -> None:
        self.g_opt.zero_grad()
        self.d_opt.zero_grad()

    def iteration(self, i: int, x_real: torch.Tensor, label_org: torch.Tensor, gp_leaf: bool = True) -> None:
        """``label_org`` on the CPU, as the official loader gives it; the official step shuffles it there and
        copies the labels (and the penalty's alphas) to the device, and reads every loss with ``.item()`` for
        its log dict each iteration (each read waits for the GPU)."""
        G, D, device = self.G, self.D, self.device
        label_trg = label_org[torch.randperm(label_org.size(0))]
        c_org, c_trg = label_org.clone().to(device), label_trg.clone().to(device)
        label_org, label_trg = label_org.to(device), label_trg.to(device)

        out_src, out_cls = D(x_real)
        d_loss_real = -out_src.mean()
        d_loss_cls = official_cls_loss(out_cls, label_org)
        x_fake = G(x_real, c_trg)
        out_src, _ = D(x_fake.detach())
        d_loss_fake = out_src.mean()
        alpha = torch.rand(x_real.size(0), 1, 1, 1).to(device)
        x_hat = (alpha * x_real.data + (1 - alpha) * x_fake.data).requires_grad_(True)
        if not gp_leaf:  # FlopCounterMode cannot take a leaf as autograd.grad's input; same arithmetic
            x_hat = x_hat * 1.0
        out_src, _ = D(x_hat)
        d_loss_gp = official_penalty(out_src, x_hat)
        d_loss = d_loss_real + d_loss_fake + d_loss_cls + 10 * d_loss_gp
        self.reset_grad()
        d_loss.backward()
        self.d_opt.step()
        logs = {"D/loss_real": d_loss_real.item(), "D/loss_fake": d_loss_fake.item(),
                "D/loss_cls": d_loss_cls.item(), "D/loss_gp": d_loss_gp.item()}

        if (i + 1) % self.n_critic == 0:
            x_fake = G(x_real, c_trg)
            out_src, out_cls = D(x_fake)
            g_loss_fake = -out_src.mean()
            g_loss_cls = official_cls_loss(out_cls, label_trg)
            x_reconst = G(x_fake, c_org)
            g_loss_rec = (x_real - x_reconst).abs().mean()
            g_loss = g_loss_fake + 10 * g_loss_rec + g_loss_cls
            self.reset_grad()
            g_loss.backward()
            self.g_opt.step()
            logs.update({"G/loss_fake": g_loss_fake.item(), "G/loss_rec": g_loss_rec.item(),
                         "G/loss_cls": g_loss_cls.item()})

    def amortised(self, batch: int, size: int, c_dim: int, gp_leaf: bool = True) -> None:
        for i in range(self.n_critic):
            x = torch.rand(batch, 3, size, size, device=self.device) * 2 - 1
            label = (torch.rand(batch, c_dim) > 0.5).float()
            self.iteration(i, x, label, gp_leaf)


def gemm_gflops(dtype: torch.dtype, n: int = 4096, reps: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=3, help="timed rounds (each: one amortised iteration of each)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--c-dim", type=int, default=5)
    ap.add_argument("--n-critic", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--ours", default=str(ROOT / "configs" / "stargan" / "celeba.yaml"), metavar="CONFIG",
                    help="also time our trainer on this config, interleaved round by round with the official "
                         "step so both see the same machine load ('none': official only)")
    ap.add_argument("--precision", choices=["fp32", "amp_bf16"], default="fp32", help="our trainer's precision")
    ap.add_argument("--flops", action="store_true",
                    help="count the FLOPs of one official amortised iteration and measure fp32/bf16 GEMM throughput")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    step = OfficialStep(args.c_dim, args.size, args.n_critic)
    run = lambda leaf=True: step.amortised(args.batch_size, args.size, args.c_dim, leaf)  # noqa: E731
    methods = {"official": run}
    if args.ours != "none":
        # Same label width as the official step: --c-dim synthetic attributes instead of the config's own.
        attrs = ",".join(f"a{i}" for i in range(args.c_dim))
        ours = build(args.ours, [f"optim.n_critic={args.n_critic}", f"data.datasets.0.selected_attrs=[{attrs}]"],
                     "cpu", args.precision, args.size, args.batch_size)
        methods[f"ours ({args.precision})"] = ours.one_iteration

    print(f"StarGAN, CPU, size={args.size} batch={args.batch_size} c_dim={args.c_dim} n_critic={args.n_critic} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}; official = the re-stated official step, fp32")
    tflop = None
    if args.flops:
        with FlopCounterMode(display=False) as counter:
            run(leaf=False)
        tflop = counter.get_total_flops() / 1e12
        fp32, bf16 = gemm_gflops(torch.float32), gemm_gflops(torch.bfloat16)
        print(f"official FLOPs per amortised iteration: {tflop:.2f} TFLOP (convolutions and matmuls)")
        print(f"this CPU, 4096^2 GEMM: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s (at the fp32 GEMM rate the "
              f"official arithmetic alone takes {tflop * 1e3 / fp32:.1f} s)")
    for _ in range(args.warmup):
        for fn in methods.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.iters):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    for name, ts in times.items():
        per = statistics.median(ts)
        extra = f", {tflop * 1e3 / per:.0f} GFLOP/s of official work" if tflop and name == "official" else ""
        print(f"{name}: seconds per amortised iteration ({args.n_critic - 1} D-only + 1 D+G): median {per:.3f} "
              f"(min {min(ts):.3f}, max {max(ts):.3f}, n={len(ts)}){extra}")
    if len(times) == 2:
        (_, base), (name, other) = times.items()
        ratios = [o / b for o, b in zip(other, base)]
        print(f"{name} / official, per round: median {statistics.median(ratios):.3f} "
              f"({', '.join(f'{r:.3f}' for r in ratios)})")


if __name__ == "__main__":
    main()
