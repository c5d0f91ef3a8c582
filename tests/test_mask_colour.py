"""G's painted colour pulled to the input where the attention mask is closed (``loss.lambda_mask_colour``, issue
11): its value, that it moves the colour and never the mask, that under descent the colour under a closed mask
becomes the input while under an open one it is left alone, its place in StarGAN's and CycleGAN's G loss, and
its one-line errors."""
from __future__ import annotations

import pytest
import torch
from mask_term_helpers import (
    CYCLEGAN,
    STARGAN,
    assert_cyclegan_logs_the_term,
    assert_one_line_config_error,
    assert_stargan_logs_the_term_and_trains_on_it,
)

from common.layers.masked_output import AttentionMask, mask_colour_penalty, mask_loss


def test_its_value_weighs_each_pixels_change_by_how_closed_the_mask_is():
    mask = torch.tensor([0.0, 0.25, 1.0]).view(1, 1, 1, 3)
    change = torch.tensor([0.4, 0.8, 2.0]).view(1, 1, 1, 3)
    expected = 3.0 * (1.0 * 0.4 + 0.75 * 0.8 + 0.0 * 2.0) / 3
    assert mask_colour_penalty(mask, change, 3.0).item() == pytest.approx(expected)


def test_it_moves_the_colour_and_never_the_mask():
    torch.manual_seed(0)
    raw = (torch.rand(2, 4, 6, 6) * 2 - 1).requires_grad_()
    head = AttentionMask().train()
    head(raw, torch.rand(2, 3, 6, 6) * 2 - 1)
    total, logs = mask_loss([head.last_mask], 0.0, 0.0, changes=[head.last_change], weight_colour=1.0)
    total.backward()
    assert logs["G/mask_colour"].item() == pytest.approx(total.item()) and total.item() > 0
    assert raw.grad[:, 3].abs().max() == 0 and raw.grad[:, :3].abs().max() > 0


def test_descent_paints_the_input_under_a_closed_mask_and_leaves_the_open_part_alone():
    torch.manual_seed(1)
    image = torch.rand(1, 3, 4, 8) * 2 - 1
    # The mask's channel of the raw output: closed (tanh -1 -> 0) on the left half, open (1 -> 1) on the right.
    mask_raw = torch.cat([torch.full((1, 1, 4, 4), -1.0), torch.full((1, 1, 4, 4), 1.0)], dim=3)
    colour = (torch.rand(1, 3, 4, 8) * 2 - 1).requires_grad_()
    start = colour.detach().clone()
    head = AttentionMask().train()
    for _ in range(300):
        colour.grad = None
        head(torch.cat([colour, mask_raw], 1), image)
        mask_colour_penalty(head.last_mask, head.last_change, 1.0).backward()
        with torch.no_grad():
            colour -= 2.0 * colour.grad
    closed, open_ = (slice(None), slice(None), slice(None), slice(0, 4)), (slice(None),) * 3 + (slice(4, 8),)
    assert (colour[closed] - image[closed]).abs().max() < 0.05 < (start[closed] - image[closed]).abs().max()
    assert torch.equal(colour.detach()[open_], start[open_])


def test_stargan_trains_with_it_logs_it_and_it_changes_the_result(tmp_path, shapes):
    assert_stargan_logs_the_term_and_trains_on_it(tmp_path, shapes, ["loss.lambda_mask_colour=0.5"], "G/mask_colour",
                                                  2 * 0.5 * 2)  # two masks, change <= 2


def test_cyclegan_logs_it(tmp_path, unpaired_root):
    assert_cyclegan_logs_the_term(tmp_path, unpaired_root, ["loss.lambda_mask_colour=0.2"], "G/mask_colour",
                                  4 * 0.2 * 2)  # four masks


@pytest.mark.parametrize("config, sets, named", [
    (STARGAN, ["loss.lambda_mask_colour=0.1"], "network.attention_mask"),
    (STARGAN, ["network.attention_mask=true", "loss.lambda_mask_colour=-1"], "loss.lambda_mask_colour"),
    (CYCLEGAN, ["loss.lambda_mask_colour=0.1"], "network.attention_mask"),
    (CYCLEGAN, ["network.attention_mask=true", "loss.lambda_mask_colour=-0.5"], "loss.lambda_mask_colour"),
])
def test_bad_values_are_one_line_errors(tmp_path, shapes, config, sets, named):
    assert_one_line_config_error(tmp_path, shapes, config, sets, named)
