"""common.layers.conv: the CPU GEMM path is the convolution (values, gradients, double backward, keys)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.layers import conv as conv_module
from common.layers.conv import Conv2d, conv2d_as_gemm
from stargan.networks import Discriminator


@pytest.mark.parametrize("shape, out_channels, kernel, stride, padding, dilation, bias", [
    ((3, 8, 4, 4), 16, (4, 4), (2, 2), (1, 1), (1, 1), True),   # StarGAN D's last main layer, 2x2 output
    ((2, 8, 2, 2), 1, (3, 3), (1, 1), (1, 1), (1, 1), False),   # its source head
    ((2, 8, 2, 2), 5, (2, 2), (1, 1), (0, 0), (1, 1), False),   # its class head, 1x1 output
    ((2, 4, 7, 5), 6, (3, 2), (2, 1), (0, 1), (2, 1), True),    # non-square everything
])
def test_gemm_equals_conv2d_with_first_and_second_order_gradients(shape, out_channels, kernel, stride, padding,
                                                                   dilation, bias):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    w = torch.randn(out_channels, shape[1], *kernel, generator=gen, dtype=torch.float64)
    b = torch.randn(out_channels, generator=gen, dtype=torch.float64) if bias else None

    def grads(fn):
        xs, ws = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        bs = b.clone().requires_grad_(True) if b is not None else None
        y = fn(xs, ws, bs, stride, padding, dilation)
        # A gradient-penalty-shaped loss: needs the gradient w.r.t. the input and its derivative.
        (gx,) = torch.autograd.grad(y.square().sum(), xs, create_graph=True)
        (y.sum() + gx.square().sum()).backward()
        return [y.detach(), xs.grad, ws.grad] + ([bs.grad] if bs is not None else [])

    expected, got = grads(F.conv2d), grads(conv2d_as_gemm)
    assert expected[0].shape == got[0].shape
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)


def test_module_keeps_conv2d_keys_and_takes_the_gemm_path_only_for_small_outputs(monkeypatch):
    monkeypatch.setattr(conv_module, "GEMM_MIN_WEIGHTS", 0)
    calls = []
    real = conv_module.conv2d_as_gemm
    monkeypatch.setattr(conv_module, "conv2d_as_gemm", lambda *a: calls.append(a[0].shape) or real(*a))
    layer = Conv2d(4, 6, kernel_size=4, stride=2, padding=1)
    assert list(layer.state_dict()) == list(nn.Conv2d(4, 6, 4, 2, 1).state_dict()) == ["weight", "bias"]
    out = layer(torch.randn(2, 4, 4, 4))    # 2x2 output: GEMM
    assert calls == [torch.Size([2, 4, 4, 4])]
    assert out.shape == (2, 6, 2, 2) and out.is_contiguous()
    assert layer(torch.randn(0, 4, 4, 4)).shape == (0, 6, 2, 2)  # an empty batch, as nn.Conv2d allows
    calls.clear()
    layer(torch.randn(2, 4, 16, 16))  # 8x8 output: convolution
    layer(torch.randn(2, 4, 8, 8))    # 4x4 output: convolution in fp32 ...
    assert calls == []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(2, 4, 8, 8))  # ... GEMM under bf16 autocast
    assert calls == [torch.Size([2, 4, 8, 8])] and out.dtype == torch.bfloat16
    assert not layer._uses_gemm(torch.randn(1, 4, 1, 1))  # no output positions: nn.Conv2d's own error
    assert not Conv2d(4, 6, 3, padding=1, padding_mode="reflect")._uses_gemm(torch.randn(1, 4, 2, 2))
    assert not Conv2d(4, 6, 3, padding=1, groups=2)._uses_gemm(torch.randn(1, 4, 2, 2))
    monkeypatch.setattr(conv_module, "GEMM_MIN_WEIGHTS", 4 * 6 * 4 * 4 + 1)  # one weight more than this layer
    assert not layer._uses_gemm(torch.randn(2, 4, 4, 4))


def test_stargan_discriminator_at_official_size_takes_the_gemm_path_on_its_last_layer_only():
    with torch.device("meta"):  # 44.8M parameters; only the layer shapes matter
        D = Discriminator(image_size=128)
    main = [m for m in D.main if isinstance(m, Conv2d)]
    inputs = [torch.empty(1, m.in_channels, 128 >> i, 128 >> i) for i, m in enumerate(main)]
    head_input = torch.empty(1, 2048, 2, 2)
    taken = [m._uses_gemm(x) for m, x in zip(main, inputs)] + [D.conv1._uses_gemm(head_input),
                                                               D.conv2._uses_gemm(head_input)]
    assert taken == [False] * 5 + [True, False, False]  # 1024 -> 2048 on a 2x2 map; the heads are small
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert [m._uses_gemm(x) for m, x in zip(main, inputs)] == [False] * 4 + [True, True]


def test_discriminator_with_gemm_layers_scores_like_plain_convolutions(monkeypatch):
    monkeypatch.setattr(conv_module, "GEMM_MIN_WEIGHTS", 0)
    calls = []
    real = conv_module.conv2d_as_gemm
    monkeypatch.setattr(conv_module, "conv2d_as_gemm", lambda *a: calls.append(a[0].shape) or real(*a))
    torch.manual_seed(0)
    ours = Discriminator(image_size=64, conv_dim=4, c_dim=3, repeat_num=5)  # last main layer: 2x2 output
    plain = copy.deepcopy(ours)
    for module in plain.modules():
        if isinstance(module, Conv2d):
            module.__class__ = nn.Conv2d
    x = torch.randn(3, 3, 64, 64, requires_grad=True)
    for a, b in zip(ours(x), plain(x)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert len(calls) == 3  # the last main layer and both heads
    assert sum(isinstance(m, Conv2d) for m in ours.modules()) == 7
    assert ours._modules.keys() == plain._modules.keys()
    assert ours.state_dict().keys() == plain.state_dict().keys()
