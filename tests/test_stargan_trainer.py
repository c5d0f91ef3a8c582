"""StarGANTrainer.train_step through the API: official losses, and none of the official code's wasted work."""
import copy
from pathlib import Path

import pytest
import torch
from conftest import shapes_overrides

from common.config import load_config
from common.labels.targets import shuffle_targets
from common.losses import gradient_penalty, grouped_cls_loss
from stargan.families import config_classes
from stargan.trainer import StarGANTrainer

TINY = Path(__file__).resolve().parents[1] / "configs" / "stargan" / "tiny.yaml"


def make_trainer(shapes, out):
    cfg = load_config(TINY, [*shapes_overrides(shapes), "run.device=cpu"], config_classes())
    return StarGANTrainer(cfg, out_root=out)


def batch(trainer, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
    colours = torch.nn.functional.one_hot(torch.arange(4) % 4, 4).float()
    striped = torch.tensor([[1.0], [0.0], [0.0], [1.0]])
    return x, torch.cat([colours, striped], dim=1)


def test_step_equals_the_official_step(shapes, tmp_path):
    """The fused step (one G forward serving D and G steps, real+fake in one D batch, D frozen in the G step,
    fused Adam) gives the losses and the gradients of the official step written out plainly: G run in the D
    step and twice in the G step, D called separately on real, fake and interpolates, plain Adam."""
    trainer = make_trainer(shapes, tmp_path)
    start = {name: copy.deepcopy(net) for name, net in trainer.nets.items()}
    G0, D0 = copy.deepcopy(trainer.nets["G"]), copy.deepcopy(trainer.nets["D"])
    opt_g, opt_d = (torch.optim.Adam(net.parameters(), lr=trainer.optimizers[k].param_groups[0]["lr"],
                                     betas=trainer.optimizers[k].param_groups[0]["betas"], foreach=False)
                    for k, net in (("G", G0), ("D", D0)))
    x, label_org = batch(trainer)
    target_state, global_state = trainer.target_gen.get_state(), torch.get_rng_state()
    logs = trainer.train_step(x, label_org, 0, g_step=True)

    trainer.target_gen.set_state(target_state)
    torch.set_rng_state(global_state)
    label_trg = shuffle_targets(label_org, trainer.target_gen)
    assert not torch.equal(label_trg, label_org)  # the check below must involve a real change
    slices = trainer.labels.cls_slices(0)
    out_src, out_cls = D0(x)
    x_fake = G0(x, label_trg)
    expected = {
        "D/real": -out_src.mean(),
        "D/cls": grouped_cls_loss(out_cls, label_org, slices)[0],
        "D/fake": D0(x_fake.detach())[0].mean(),
        "D/gp": gradient_penalty(D0, x, x_fake, weight=10.0)[0],
    }
    opt_g.zero_grad(), opt_d.zero_grad()
    sum(expected.values()).backward()
    official_grads = {"D": [p.grad.clone() for p in D0.parameters()]}  # the G step below refills D's .grad
    opt_d.step()

    x_fake = G0(x, label_trg)
    out_src, out_cls = D0(x_fake)  # D after its update: the G step scores against it
    g_losses = {"G/fake": -out_src.mean(), "G/cls": grouped_cls_loss(out_cls, label_trg, slices)[0],
                "G/rec": 10.0 * (G0(x_fake, label_org) - x).abs().mean()}
    opt_g.zero_grad(), opt_d.zero_grad()
    sum(g_losses.values()).backward()
    official_grads["G"] = [p.grad.clone() for p in G0.parameters()]
    opt_g.step()
    expected.update(g_losses)

    for key, value in expected.items():
        assert logs[key] == pytest.approx(float(value.detach()), rel=1e-4, abs=1e-5), key
    # The gradients each optimizer stepped with (still in .grad: the D step's for D, the G step's for G).
    # Compared as gradients, not as updated weights: Adam's first step is ~lr * sign(grad), which turns the
    # rounding noise of the few near-zero entries (~1e-8 next to a typical 0.04) into full-size differences.
    for name, grads in official_grads.items():
        for (key, ours), theirs in zip(trainer.nets[name].named_parameters(), grads):
            torch.testing.assert_close(ours.grad, theirs, rtol=1e-3, atol=1e-5, msg=f"{name}.{key}.grad")
        assert all(not torch.equal(a, b) for a, b in zip(trainer.nets[name].parameters(), start[name].parameters()))


def test_no_wasted_generator_or_discriminator_work(shapes, tmp_path):
    trainer = make_trainer(shapes, tmp_path)
    G, D = trainer.nets["G"], trainer.nets["D"]
    g_calls: list[bool] = []
    G.register_forward_hook(lambda module, args, out: g_calls.append(out.requires_grad))
    d_grads = {"count": 0}

    def count(grad):
        d_grads["count"] += 1

    for p in D.parameters():
        p.register_hook(count)
    n_params = len(list(D.parameters()))
    x, label_org = batch(trainer)

    trainer.train_step(x, label_org, 0, g_step=False)
    assert g_calls == [False]  # D-only step: G's forward builds no graph
    assert d_grads["count"] == n_params

    g_calls.clear()
    d_grads["count"] = 0
    trainer.train_step(x, label_org, 0, g_step=True)
    # One forward for x_fake (shared by the D and G steps) and one for the reconstruction, not three.
    assert g_calls == [True, True]
    # D's parameter gradients are computed once (its own step), never in the G step's backward.
    assert d_grads["count"] == n_params
    assert all(p.requires_grad for p in D.parameters())
