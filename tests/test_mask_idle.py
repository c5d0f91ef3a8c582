"""The idle-mask penalty (``loss.lambda_mask_idle``, issue 11): the mask where G paints the input back. Its
values and gradient, the change map the attention head keeps, its place in StarGAN's and CycleGAN's G loss, and
its one-line errors."""
from __future__ import annotations

import math

import pytest
import torch
from mask_term_helpers import (
    CYCLEGAN,
    STARGAN,
    assert_cyclegan_logs_the_term,
    assert_one_line_config_error,
    assert_stargan_logs_the_term_and_trains_on_it,
)

from common.layers.masked_output import AttentionMask, mask_idle_penalty, mask_loss


def test_the_penalty_weighs_the_mask_by_how_little_opening_it_changes():
    mask = torch.ones(1, 1, 1, 4)
    change = torch.tensor([0.0, 0.2, 0.4, 2.0]).view(1, 1, 1, 4)
    expected = 3.0 * -math.log(1 - 0.99) * sum(math.exp(-(d / 0.2) ** 2) for d in (0.0, 0.2, 0.4, 2.0)) / 4
    assert mask_idle_penalty(mask, change, 3.0, 0.2).item() == pytest.approx(expected)
    assert mask_idle_penalty(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), 3.0, 0.2).item() == 0.0


def test_the_gradient_closes_the_mask_only_where_it_changes_nothing_and_never_reaches_the_change():
    mask = torch.full((1, 1, 1, 2), 0.9, requires_grad=True)
    change = torch.tensor([0.0, 1.5]).view(1, 1, 1, 2).requires_grad_()
    mask_idle_penalty(mask, change, 1.0, 0.2).backward()
    idle, edited = mask.grad.view(-1).tolist()
    assert idle > 0.4 and 0 <= edited < 1e-12  # descent lowers the idle pixel, leaves the edited one
    assert change.grad is None  # the colour is not pushed away from the input to escape the term


def test_its_gradient_does_not_vanish_where_the_tanh_that_makes_the_mask_saturates():
    # mask = (tanh(z) + 1) / 2: near 1 its gradient in z is about 2 m (1 - m); the log undoes that.
    logits = torch.tensor([0.0, 2.5], requires_grad=True)
    mask = ((torch.tanh(logits) + 1) / 2).view(1, 1, 1, 2)
    mask_idle_penalty(mask, torch.zeros(1, 1, 1, 2), 1.0, 0.2).backward()
    half, saturated = logits.grad.tolist()
    assert mask[0, 0, 0, 1] > 0.99 and saturated > 0.5 * half > 0


def test_it_overcomes_the_binarisation_latch_where_the_mask_changes_nothing():
    # The recipe's sparsity 0.1 and binarisation 0.05 hold a mask pixel above 0.75 open (docs/fidelity.md);
    # with the idle term at 0.5 the same pixel closes when the painted colour equals the input.
    def grad(weight_idle: float) -> float:
        mask = torch.full((1, 1, 1, 1), 0.95, requires_grad=True)
        total, _ = mask_loss([mask], 0.1, 0.0, 0.05, changes=[torch.zeros(1, 1, 1, 1)], weight_idle=weight_idle)
        total.backward()
        return mask.grad.item()
    assert grad(0.0) < 0 < grad(0.5)


def test_mask_loss_sums_it_over_the_masks_logs_it_and_needs_a_change_per_mask():
    mask = torch.full((1, 1, 2, 2), 0.5)
    total, logs = mask_loss([mask, mask], 0.0, 0.0, changes=[torch.zeros_like(mask)] * 2, weight_idle=2.0)
    assert logs["G/mask_idle"].item() == pytest.approx(2 * 2.0 * -math.log(1 - 0.99 * 0.5)) == total.item()
    assert "G/mask_idle" not in mask_loss([mask], 0.1, 0.0)[1]  # off at weight 0, no change maps needed
    with pytest.raises(ValueError, match="change map per mask"):
        mask_loss([mask, mask], 0.0, 0.0, changes=[torch.zeros_like(mask)], weight_idle=1.0)


def test_the_attention_head_keeps_how_far_its_colour_is_from_the_input():
    torch.manual_seed(0)
    raw, image = torch.rand(2, 4, 5, 5) * 2 - 1, torch.rand(2, 3, 5, 5) * 2 - 1
    head = AttentionMask()
    head(raw, image)
    assert torch.allclose(head.last_change, (raw[:, :3] - image).abs().mean(1, keepdim=True))
    assert head.last_change.requires_grad == raw.requires_grad  # the colour penalty pulls through it


def test_stargan_trains_with_the_idle_penalty_logs_it_and_it_changes_the_result(tmp_path, shapes):
    most = 2 * 0.5 * -math.log(1 - 0.99)  # two masks, each at most the weight times -log(0.01)
    assert_stargan_logs_the_term_and_trains_on_it(
        tmp_path, shapes, ["loss.lambda_mask_idle=0.5", "loss.mask_idle_tol=0.5"], "G/mask_idle", most)


def test_cyclegan_logs_the_idle_penalty(tmp_path, unpaired_root):
    most = 4 * 0.2 * -math.log(1 - 0.99)  # four masks
    assert_cyclegan_logs_the_term(tmp_path, unpaired_root, ["loss.lambda_mask_idle=0.2"], "G/mask_idle", most)


@pytest.mark.parametrize("config, sets, named", [
    (STARGAN, ["loss.lambda_mask_idle=0.1"], "network.attention_mask"),
    (STARGAN, ["network.attention_mask=true", "loss.lambda_mask_idle=-1"], "loss.lambda_mask_idle"),
    (STARGAN, ["network.attention_mask=true", "loss.mask_idle_tol=0"], "loss.mask_idle_tol"),
    (CYCLEGAN, ["loss.lambda_mask_idle=0.1"], "network.attention_mask"),
    (CYCLEGAN, ["network.attention_mask=true", "loss.mask_idle_tol=-0.1"], "loss.mask_idle_tol"),
])
def test_bad_values_are_one_line_errors(tmp_path, shapes, config, sets, named):
    assert_one_line_config_error(tmp_path, shapes, config, sets, named)
