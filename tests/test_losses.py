import math

import pytest
import torch
from torch import nn

from common.losses import (
    GAN_MODES,
    cycle_loss,
    discriminator_loss,
    gan_loss,
    gradient_penalty,
    grouped_cls_loss,
    identity_loss,
    l1_loss,
)

PRED = torch.tensor([[0.5, -1.0], [2.0, 0.0]])


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_lsgan_values():
    real, logs = gan_loss(PRED, True, "lsgan", name="G")
    fake, _ = gan_loss(PRED, False, "lsgan")
    assert real.item() == pytest.approx((0.25 + 4.0 + 1.0 + 1.0) / 4)
    assert fake.item() == pytest.approx((0.25 + 1.0 + 4.0 + 0.0) / 4)
    assert logs == {"G": pytest.approx(real.item())}


def test_vanilla_values():
    real, _ = gan_loss(PRED, True, "vanilla")
    fake, _ = gan_loss(PRED, False, "vanilla")
    xs = [0.5, -1.0, 2.0, 0.0]
    # BCE-with-logits: -log(sigmoid(x)) = softplus(-x) for target 1, softplus(x) for target 0.
    assert real.item() == pytest.approx(sum(_softplus(-x) for x in xs) / 4)
    assert fake.item() == pytest.approx(sum(_softplus(x) for x in xs) / 4)


def test_wgangp_values():
    real, _ = gan_loss(PRED, True, "wgangp")
    fake, _ = gan_loss(PRED, False, "wgangp")
    assert real.item() == pytest.approx(-0.375)
    assert fake.item() == pytest.approx(0.375)


def test_invalid_mode_lists_valid_modes():
    with pytest.raises(ValueError) as err:
        gan_loss(PRED, True, "hinge")
    for mode in GAN_MODES:
        assert mode in str(err.value)
    assert "hinge" in str(err.value)


@pytest.mark.parametrize("mode", GAN_MODES)
def test_gan_loss_keeps_dtype_and_grad(mode):
    pred = PRED.clone().double().requires_grad_(True)
    loss, _ = gan_loss(pred, True, mode)
    assert loss.dtype == torch.float64
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["lsgan", "vanilla"])
def test_gan_loss_under_autocast(mode):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = nn.Linear(3, 1)(torch.randn(4, 3))
        loss, _ = gan_loss(pred, False, mode)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("mode", GAN_MODES)
def test_discriminator_loss_half_factor(mode):
    pred_real = torch.tensor([0.3, 1.2])
    pred_fake = torch.tensor([-0.4, 0.1])
    loss, logs = discriminator_loss(pred_real, pred_fake, mode, name="D_A")
    r, _ = gan_loss(pred_real, True, mode)
    f, _ = gan_loss(pred_fake, False, mode)
    assert loss.item() == pytest.approx(0.5 * (r.item() + f.item()))
    assert logs == {
        "D_A": pytest.approx(loss.item()),
        "D_A/real": pytest.approx(r.item()),
        "D_A/fake": pytest.approx(f.item()),
    }


class LinearCritic(nn.Module):
    """critic(x)_i = sum(w * x_i): its input gradient is w for every x, so ||g|| = ||w|| exactly."""

    def __init__(self, shape, as_tuple=False):
        super().__init__()
        self.w = nn.Parameter(torch.randn(*shape))
        self.as_tuple = as_tuple

    def forward(self, x):
        src = (self.w * x).flatten(1).sum(1)
        return (src, torch.zeros(x.size(0), 3)) if self.as_tuple else src


@pytest.mark.parametrize("as_tuple", [False, True])
def test_gradient_penalty_closed_form(as_tuple):
    torch.manual_seed(0)
    critic = LinearCritic((3, 4, 4), as_tuple=as_tuple)
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    loss, logs = gradient_penalty(critic, real, fake, weight=10.0, name="D/gp")
    norm = critic.w.detach().norm().item()
    assert loss.item() == pytest.approx(10.0 * (norm - 1.0) ** 2, rel=1e-5)
    assert logs["D/gp"] == pytest.approx(loss.item())
    assert logs["D/gp/grad_norm"] == pytest.approx(norm, rel=1e-5)

    loss.backward()
    # d/dw [10 (||w|| - 1)^2] = 20 (||w|| - 1) w / ||w||
    expected = 20.0 * (norm - 1.0) * critic.w.detach() / norm
    torch.testing.assert_close(critic.w.grad, expected, rtol=1e-4, atol=1e-6)


def test_gradient_penalty_constant_and_no_grad_to_inputs():
    torch.manual_seed(1)
    critic = LinearCritic((2, 3, 3))
    real = torch.randn(4, 2, 3, 3, requires_grad=True)
    fake = torch.randn(4, 2, 3, 3, requires_grad=True)
    loss, _ = gradient_penalty(critic, real, fake, weight=2.0, constant=0.5)
    norm = critic.w.detach().norm().item()
    assert loss.item() == pytest.approx(2.0 * (norm - 0.5) ** 2, rel=1e-5)
    loss.backward()
    assert real.grad is None and fake.grad is None


def test_gradient_penalty_trains_conv_critic_and_uses_global_rng():
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.01), nn.Conv2d(4, 1, 3))
    real, fake = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8)
    torch.manual_seed(7)
    a, _ = gradient_penalty(critic, real, fake)
    torch.manual_seed(7)
    b, _ = gradient_penalty(critic, real, fake)
    torch.manual_seed(8)
    c, _ = gradient_penalty(critic, real, fake)
    assert a.item() == b.item() != c.item()
    a.backward()
    # Biases of the last layer do not change the input gradient, so only weights are checked.
    for name, p in critic.named_parameters():
        if name.endswith("weight"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_l1_weights_and_names():
    a = torch.tensor([1.0, 2.0, 3.0])
    b = torch.tensor([1.5, 2.0, 1.0])
    base = (0.5 + 0.0 + 2.0) / 3
    loss, logs = l1_loss(a, b, weight=3.0, name="rec")
    assert loss.item() == pytest.approx(3 * base) and logs == {"rec": pytest.approx(3 * base)}
    loss, logs = cycle_loss(a, b, 10.0)
    assert loss.item() == pytest.approx(10 * base) and set(logs) == {"cycle"}
    loss, logs = identity_loss(a, b, 5.0, name="idt_A")
    assert loss.item() == pytest.approx(5 * base) and set(logs) == {"idt_A"}


def official_celeba_cls(logits, targets):
    """The official StarGAN CelebA classification loss, written out: BCE summed over attributes, batch mean."""
    return nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / logits.size(0)


def official_rafd_cls(logits, target_index):
    """The official StarGAN RaFD classification loss: cross-entropy to class indices, batch mean."""
    return nn.functional.cross_entropy(logits, target_index)


def test_one_binary_group_is_the_official_celeba_loss():
    torch.manual_seed(0)
    logits = torch.randn(4, 5)
    targets = (torch.rand(4, 5) > 0.5).float()
    loss, logs = grouped_cls_loss(logits, targets, [("binary", 0, 5)], name="D/cls")
    assert loss.item() == pytest.approx(official_celeba_cls(logits, targets).item())
    elementwise = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert loss.item() == pytest.approx(elementwise.sum(1).mean().item())
    assert loss.item() == pytest.approx(5 * elementwise.mean().item())
    assert logs == {"D/cls": pytest.approx(loss.item()), "D/cls/0:5": pytest.approx(loss.item())}


def test_one_exclusive_group_is_the_official_rafd_loss():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([0, 2])
    loss, _ = grouped_cls_loss(logits, nn.functional.one_hot(target, 3).float(), [("exclusive", 0, 3)])
    assert loss.item() == pytest.approx(official_rafd_cls(logits, target).item())
    lse0 = math.log(math.exp(2.0) + 1.0 + math.exp(-1.0))
    expected = ((lse0 - 2.0) + math.log(3.0)) / 2
    assert loss.item() == pytest.approx(expected)


# StarGAN CelebA+RaFD layout: 5 binary attributes | 8 one-hot expressions | 2-column mask (not predicted).
GROUPS = [("binary", 0, 5), ("exclusive", 5, 13)]


def _multi_dataset_batch():
    torch.manual_seed(3)
    logits = torch.randn(6, 13)
    targets = torch.zeros(6, 15)
    targets[:3, :5] = (torch.rand(3, 5) > 0.5).float()
    targets[:3, 13] = 1
    cls = torch.tensor([1, 4, 7])
    targets[3:, 5:13] = nn.functional.one_hot(cls, 8).float()
    targets[3:, 14] = 1
    return logits, targets, cls


def test_grouped_without_mask_matches_single_losses():
    logits, targets, _ = _multi_dataset_batch()
    targets[:, 5:13] = nn.functional.one_hot(torch.arange(6) % 8, 8).float()
    loss, logs = grouped_cls_loss(logits, targets, GROUPS)
    b = official_celeba_cls(logits[:, :5], targets[:, :5])
    e = official_rafd_cls(logits[:, 5:13], torch.arange(6) % 8)
    assert loss.item() == pytest.approx(b.item() + e.item())
    assert logs["cls/0:5"] == pytest.approx(b.item())
    assert logs["cls/5:13"] == pytest.approx(e.item())
    assert logs["cls"] == pytest.approx(loss.item())


def test_grouped_per_group_mask_uses_only_contributing_samples():
    logits, targets, cls = _multi_dataset_batch()
    logits.requires_grad_(True)
    mask = targets[:, 13:15]  # column g says whether the sample has labels for group g
    loss, logs = grouped_cls_loss(logits, targets, GROUPS, sample_mask=mask.bool())
    b = official_celeba_cls(logits[:3, :5], targets[:3, :5])
    e = official_rafd_cls(logits[3:, 5:13], cls)
    assert loss.item() == pytest.approx(b.item() + e.item())
    assert logs["cls/0:5"] == pytest.approx(b.item())
    assert logs["cls/5:13"] == pytest.approx(e.item())

    loss.backward()
    # Samples without labels for a group receive no gradient on that group's logits.
    assert logits.grad[3:, :5].abs().sum() == 0
    assert logits.grad[:3, 5:13].abs().sum() == 0
    assert logits.grad[:3, :5].abs().sum() > 0 and logits.grad[3:, 5:13].abs().sum() > 0


def test_grouped_single_mask_selects_samples():
    logits, targets, _ = _multi_dataset_batch()
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    loss, _ = grouped_cls_loss(logits, targets, GROUPS[:1], sample_mask=mask)
    idx = torch.tensor([0, 2])
    b = official_celeba_cls(logits[idx, :5], targets[idx, :5])
    assert loss.item() == pytest.approx(b.item())


def test_grouped_all_masked_out_is_zero_and_backward_works():
    logits, targets, _ = _multi_dataset_batch()
    logits = logits.clone().requires_grad_(True)
    targets[:, :5] = float("nan")  # meaningless labels must not leak in through 0 * nan
    loss, logs = grouped_cls_loss(logits, targets, GROUPS, sample_mask=torch.zeros(6, dtype=torch.bool))
    assert loss.item() == 0.0 and logs["cls"] == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_grouped_validation():
    logits, targets, _ = _multi_dataset_batch()
    with pytest.raises(ValueError, match="binary, exclusive"):
        grouped_cls_loss(logits, targets, [("multi", 0, 5)])
    with pytest.raises(ValueError, match="outside"):
        grouped_cls_loss(logits, targets, [("binary", 0, 14)])
    with pytest.raises(ValueError, match="sample_mask"):
        grouped_cls_loss(logits, targets, GROUPS, sample_mask=torch.ones(6, 3))
