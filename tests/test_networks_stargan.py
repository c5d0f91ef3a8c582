"""StarGAN networks: exact official sizes and keys, head shapes, label conditioning, input validation."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stargan.networks import Discriminator, Generator, count_parameters

REFERENCE = Path(__file__).resolve().parent / "data" / "stargan_official_keys.txt"
STALE = ("running_mean", "running_var", "num_batches_tracked")


def reference_shapes(net: str, include_buffers: bool = False) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` for ``net`` ('G' or 'D') from the measured official key list."""
    shapes = {}
    for line in REFERENCE.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) != 5 or parts[0] != net:
            continue
        _, key, shape, _, kind = parts
        if kind == "buffer" and not include_buffers:
            continue
        shapes[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return shapes


@pytest.mark.parametrize(
    "g_c, d_c, g_params, d_params",
    [
        (5, 5, 8_430_528, 44_762_048),  # CelebA
        (8, 8, 8_439_936, 44_786_624),  # RaFD
        (15, 13, 8_461_888, 44_827_584),  # CelebA + RaFD with a 2-dataset mask
    ],
)
def test_parameter_counts_match_official(g_c, d_c, g_params, d_params):
    assert count_parameters(Generator(c_dim=g_c)) == g_params
    with torch.device("meta"):  # D is 44M parameters; only the count matters here
        assert count_parameters(Discriminator(c_dim=d_c)) == d_params


def test_reference_file_is_there():
    assert REFERENCE.is_file(), f"expected the reference key file at {REFERENCE} (part of the repository)"
    g = reference_shapes("G", include_buffers=True)
    assert g["main.0.weight"] == (64, 8, 7, 7)
    assert g["main.1.num_batches_tracked"] == ()


def test_generator_keys_equal_official_minus_running_stats():
    ours = {k: tuple(v.shape) for k, v in Generator().state_dict().items()}
    official = reference_shapes("G", include_buffers=True)
    assert ours == {k: s for k, s in official.items() if k.rsplit(".", 1)[-1] not in STALE}
    assert ours == reference_shapes("G")
    assert not any(k.endswith(STALE) for k in ours)


def test_discriminator_keys_equal_official():
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in Discriminator().state_dict().items()}
    assert ours == reference_shapes("D", include_buffers=True)


def test_no_conv_bias_in_generator_and_no_running_stats():
    g = Generator(c_dim=3, conv_dim=8, repeat_num=2)
    for m in g.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            assert m.bias is None
        if isinstance(m, torch.nn.InstanceNorm2d):
            assert m.affine and not m.track_running_stats


@pytest.mark.parametrize("image_size, map_size, kernel", [(128, 2, 2), (256, 4, 4), (64, 1, 1)])
def test_discriminator_head_shapes(image_size, map_size, kernel):
    d = Discriminator(image_size=image_size, conv_dim=8, c_dim=7, repeat_num=6)
    assert d.conv2.kernel_size == (kernel, kernel)
    assert d.conv1.bias is None and d.conv2.bias is None
    assert all(m.bias is not None for m in d.main if isinstance(m, torch.nn.Conv2d))
    out_src, out_cls = d(torch.randn(2, 3, image_size, image_size))
    assert out_src.shape == (2, 1, map_size, map_size)
    assert out_cls.shape == (2, 7)


def test_small_discriminator():
    d = Discriminator(image_size=32, conv_dim=8, c_dim=4, repeat_num=3)
    out_src, out_cls = d(torch.randn(3, 3, 32, 32))
    assert out_src.shape == (3, 1, 4, 4)
    assert out_cls.shape == (3, 4)
    assert d.conv2.weight.shape == (4, 32, 4, 4)


@pytest.mark.parametrize("bad", [100, 32, 0, 200])
def test_invalid_image_size_lists_valid_ones(bad):
    with pytest.raises(ValueError, match=r"valid sizes: 64, 128, 192, 256"):
        Discriminator(image_size=bad, conv_dim=8, repeat_num=6)


def test_generator_output_shape_and_range():
    torch.manual_seed(0)
    g = Generator(c_dim=5, conv_dim=8, repeat_num=2)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    c = torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 1]])
    y = g(x, c)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0
    # Eval mode must not change anything: no running statistics are tracked.
    assert torch.equal(g.eval()(x, c), y)


def test_labels_condition_the_output():
    torch.manual_seed(0)
    g = Generator(c_dim=4, conv_dim=8, repeat_num=1)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y1 = g(x, torch.tensor([[1.0, 0, 0, 0]]))
    y2 = g(x, torch.tensor([[0.0, 1, 0, 0]]))
    y1_again = g(x, torch.tensor([[1.0, 0, 0, 0]]))
    assert torch.equal(y1, y1_again)
    assert (y1 - y2).abs().max() > 1e-4
    # Label channels are constant maps: the first conv sees exactly the concatenation of image and tiled labels.
    seen = {}

    def keep_input(module, inputs, output):
        seen["in"] = inputs[0]

    g.main[0].register_forward_hook(keep_input)
    g(x, torch.tensor([[0.0, 0, 1, 0]]))
    assert seen["in"].shape == (1, 7, 32, 32)
    assert torch.equal(seen["in"][:, :3], x)
    assert torch.equal(seen["in"][0, 3:], torch.tensor([0.0, 0, 1, 0]).view(4, 1, 1).expand(4, 32, 32))


def test_generator_rejects_wrong_label_width():
    g = Generator(c_dim=3, conv_dim=8, repeat_num=1)
    with pytest.raises(ValueError, match=r"labels must have shape \(1, 3\)"):
        g(torch.zeros(1, 3, 16, 16), torch.zeros(1, 4))


def test_default_init_is_pytorch_default():
    # Official StarGAN does not re-initialise weights; a seeded build must equal plain PyTorch layers.
    torch.manual_seed(3)
    g = Generator(c_dim=2, conv_dim=8, repeat_num=0)
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(5, 8, 7, 1, 3, bias=False)
    assert torch.equal(g.main[0].weight, conv.weight)
    assert torch.equal(g.main[1].weight, torch.ones(8)) and torch.equal(g.main[1].bias, torch.zeros(8))
