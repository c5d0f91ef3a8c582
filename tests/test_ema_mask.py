"""Building blocks of identity-preserving translation: the EMA of a generator's weights and the attention-mask
output (issue 11)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from common.ema import ModelEMA, ema_decay
from common.layers.masked_output import compose, mask_penalties
from common.networks.factory import define_generator


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 3, 1))


def test_ema_update_is_the_exponential_average():
    model = _net()
    ema = ModelEMA(model, decay=0.9)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(2, 3, 8, 8))  # moves the batch-norm running statistics
    ema.update(model)
    for name, param in model.named_parameters():
        expected = 0.9 * start[name] + 0.1 * param.detach()
        torch.testing.assert_close(dict(ema.module.named_parameters())[name], expected)
    # Buffers are copied, not averaged.
    for name, buffer in model.named_buffers():
        assert torch.equal(dict(ema.module.named_buffers())[name], buffer)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_warmup_lowers_the_decay_early_only():
    assert ema_decay(0.999, 1, warmup=10) == 2 / 11
    assert ema_decay(0.999, 10**6, warmup=10) == 0.999
    assert ema_decay(0.999, 1, warmup=0) == 0.999


def test_ema_state_round_trip_continues_identically():
    model = _net()
    a = ModelEMA(model, decay=0.5, warmup=3)
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.1)
        a.update(model)
    b = ModelEMA(_net(seed=1), decay=0.5, warmup=3)
    b.load_state_dict(a.state_dict())
    assert b.updates == 3
    a.update(model)
    b.update(model)
    for (name, x), (_, y) in zip(a.module.state_dict().items(), b.module.state_dict().items()):
        assert torch.equal(x, y), name


def test_mask_zero_returns_the_input_exactly_and_one_the_colour():
    image = torch.rand(2, 3, 5, 7) * 2 - 1
    colour = torch.rand(2, 3, 5, 7) * 2 - 1
    assert torch.equal(compose(colour, torch.zeros(2, 1, 5, 7), image), image)
    torch.testing.assert_close(compose(colour, torch.ones(2, 1, 5, 7), image), colour)
    half = compose(colour, torch.full((2, 1, 5, 7), 0.5), image)
    torch.testing.assert_close(half, (colour + image) / 2)


@pytest.mark.parametrize("arch", ["resnet_6blocks", "unet_128"])
def test_masked_generator_keeps_the_input_where_its_mask_is_zero(arch):
    generator = define_generator(arch, 3, 3, ngf=8, attention_mask=True)
    plain = define_generator(arch, 3, 3, ngf=8)
    assert set(generator.state_dict()) == set(plain.state_dict())  # same keys, one more output channel
    last = [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    assert last.weight.shape[0 if isinstance(last, nn.Conv2d) else 1] == 4
    with torch.no_grad():  # the mask channel's pre-activation at -1e4: tanh -1, mask 0
        if isinstance(last, nn.Conv2d):
            last.weight[3].zero_()
        else:
            last.weight[:, 3].zero_()
        last.bias[3].fill_(-1e4)
    image = torch.rand(1, 3, 128, 128) * 2 - 1
    out = generator.eval()(image)
    assert torch.equal(generator.attention.last_mask, torch.zeros(1, 1, 128, 128))
    assert torch.equal(out, image)


def test_stargan_generator_with_attention_mask():
    from stargan.networks import Generator

    torch.manual_seed(0)
    generator = Generator(c_dim=2, conv_dim=8, repeat_num=1, attention_mask=True)
    assert set(generator.state_dict()) == set(Generator(2, 8, 1).state_dict())
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    out = generator(image, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    mask = generator.attention.last_mask
    assert mask.shape == (2, 1, 16, 16) and 0 < mask.min() and mask.max() < 1
    colour = (out - (1 - mask) * image) / mask  # recover the painted colour: it lies in [-1, 1]
    assert colour.abs().max() <= 1 + 1e-4


def test_mask_penalties():
    flat = torch.full((1, 1, 4, 4), 0.25)
    sparsity, smooth = mask_penalties(flat, 2.0, 3.0)
    assert sparsity.item() == 0.5 and smooth.item() == 0.0
    stripes = torch.tensor([[0.0, 1.0] * 2] * 4).view(1, 1, 4, 4)
    _, smooth = mask_penalties(stripes, 1.0, 1.0)
    assert smooth.item() == 1.0  # every horizontal neighbour differs by 1, vertical ones by 0
