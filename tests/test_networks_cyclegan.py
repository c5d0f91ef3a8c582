"""CycleGAN/pix2pix networks: parameter counts, state_dict keys/shapes and module layout equal to the official
networks (from the reference key file in tests/data), output shapes, init statistics and name validation."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from common.layers.init import init_weights
from common.layers.norm import get_norm_layer, uses_bias
from common.layers.resnet_block import ResnetBlock
from common.networks.factory import (
    DISCRIMINATOR_ARCHS,
    GENERATOR_ARCHS,
    count_parameters,
    define_discriminator,
    define_generator,
)

# Key names and shapes of the official networks, copied into the repository (tests/data/README.md).
KEY_FILE = Path(__file__).resolve().parent / "data" / "cyclegan_official_keys.txt"

SECTIONS = {
    "resnet9_instance": "resnet_9blocks G, norm=instance, use_dropout=False",
    "resnet9_batch": "resnet_9blocks G, norm=batch, use_dropout=False",
    "basic_instance": "basic D (70x70 PatchGAN), norm=instance",
    "basic_batch": "basic D, norm=batch",
    "unet256_batch_dropout": "unet_256 G, norm=batch, use_dropout=True",
    "pixel_instance": "pixel D, norm=instance",
    "resnet9_map": "module index map: resnet_9blocks",
    "basic_map": "module index map: basic D",
}


@functools.cache
def reference_sections() -> dict[str, tuple[str, list[list[str]]]]:
    """``{section title: (title, rows split on tabs)}`` of the official key file."""
    assert KEY_FILE.is_file(), (
        f"reference key file not found at {KEY_FILE} (part of the repository)"
    )
    sections: dict[str, tuple[str, list[list[str]]]] = {}
    title = None
    for line in KEY_FILE.read_text().splitlines():
        if line.startswith("## "):
            title = line[3:]
            sections[title] = (title, [])
        elif title and line.strip() and not line.startswith("#"):
            sections[title][1].append(line.split("\t"))
    return sections


def section(name: str) -> tuple[str, list[list[str]]]:
    prefix = SECTIONS[name]
    found = [v for t, v in reference_sections().items() if t.startswith(prefix)]
    assert len(found) == 1, f"section {prefix!r} not found exactly once in {KEY_FILE}"
    return found[0]


def reference_shapes(name: str) -> dict[str, tuple[int, ...]]:
    def shape(text: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", text))
    return {row[0]: shape(row[1]) for row in section(name)[1]}


def reference_param_count(name: str) -> int:
    match = re.search(r"([\d,]+) parameters", section(name)[0])
    return int(match.group(1).replace(",", ""))


@functools.cache
def built(name: str) -> nn.Module:
    """One instantiation per reference network, shared by the count and layout tests."""
    torch.manual_seed(0)
    return {
        "resnet9_instance": lambda: define_generator("resnet_9blocks"),
        "resnet9_batch": lambda: define_generator("resnet_9blocks", norm="batch"),
        "resnet9_dropout": lambda: define_generator("resnet_9blocks", dropout=True),
        "resnet6_instance": lambda: define_generator("resnet_6blocks"),
        "unet256_instance": lambda: define_generator("unet_256"),
        "unet128_instance": lambda: define_generator("unet_128"),
        "unet256_batch_dropout": lambda: define_generator("unet_256", norm="batch", dropout=True),
        "basic_instance": lambda: define_discriminator("basic"),
        "basic_batch": lambda: define_discriminator("basic", norm="batch"),
        "pixel_instance": lambda: define_discriminator("pixel"),
    }[name]()


@pytest.mark.parametrize("name, expected", [
    ("resnet9_instance", 11_378_179),
    ("resnet6_instance", 7_837_699),
    ("unet256_instance", 54_409_603),
    ("unet128_instance", 41_825_667),
    ("basic_instance", 2_764_737),
    ("pixel_instance", 8_705),
    ("resnet9_batch", 11_383_427),
    ("basic_batch", 2_765_633),
    ("unet256_batch_dropout", 54_413_955),
])
def test_parameter_counts_match_official(name, expected):
    assert count_parameters(built(name)) == expected
    if name in SECTIONS:
        assert reference_param_count(name) == expected


@pytest.mark.parametrize("name", [
    "resnet9_instance", "resnet9_batch", "basic_instance", "basic_batch", "unet256_batch_dropout", "pixel_instance",
])
def test_state_dict_keys_and_shapes_match_official(name):
    ours = {k: tuple(v.shape) for k, v in built(name).state_dict().items()}
    ref = reference_shapes(name)
    assert sorted(set(ours) - set(ref)) == [] and sorted(set(ref) - set(ours)) == []
    assert ours == ref
    # The official file lists keys in state_dict order; loading does not need it but diffs are easier to read.
    assert list(ours) == list(ref)


@pytest.mark.parametrize("name, net_name", [("resnet9_map", "resnet9_instance"), ("basic_map", "basic_instance")])
def test_module_index_map_matches_official(name, net_name):
    modules = dict(built(net_name).named_modules())
    for row in section(name)[1]:
        key, description = row[0], row[1]
        module = modules[key]
        assert description.startswith(type(module).__name__), (key, description, module)
        match = re.match(r"\w+\((\d+)->(\d+), k=\((\d+), \d+\), s=\((\d+), \d+\), p=\((\d+), \d+\), bias=(\w+)\)",
                         description)
        if match:
            cin, cout, k, s, p, bias = match.groups()
            assert (module.in_channels, module.out_channels) == (int(cin), int(cout))
            assert (module.kernel_size[0], module.stride[0], module.padding[0]) == (int(k), int(s), int(p))
            assert (module.bias is not None) == (bias == "True")
        if isinstance(module, nn.InstanceNorm2d):
            assert not module.affine and not module.track_running_stats
    # Same Sequential length: nothing extra or missing at the top level (e.g. a final activation).
    top_level = {k for k in modules if re.fullmatch(r"model(\.\d+)?", k)}
    assert top_level == {row[0] for row in section(name)[1]}
    if net_name == "resnet9_instance":
        assert modules["model.19"].output_padding == (1, 1)


def test_dropout_shifts_second_block_conv_like_official():
    plain = set(reference_shapes("resnet9_instance"))
    ours = {k: tuple(v.shape) for k, v in built("resnet9_dropout").state_dict().items()}
    only_plain, only_dropout = plain - set(ours), set(ours) - plain
    assert len(only_plain) == len(only_dropout) == 18
    assert {k.replace("conv_block.5.", "conv_block.6.") for k in only_plain} == only_dropout
    assert isinstance(built("resnet9_dropout").model[10].conv_block[4], nn.Dropout)


def test_resnet_block_keys_and_residual():
    block = ResnetBlock(4)
    assert sorted(block.state_dict()) == [
        "conv_block.1.bias", "conv_block.1.weight", "conv_block.5.bias", "conv_block.5.weight",
    ]
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()
    x = torch.randn(1, 4, 8, 8) - 2.0
    # Zero convs make the branch zero: output is exactly the (negative) input, so no ReLU follows the sum.
    assert torch.equal(block(x), x)
    zero = ResnetBlock(4, padding_type="zero", norm="batch", dropout=True)
    assert "conv_block.0.weight" in zero.state_dict() and "conv_block.4.weight" in zero.state_dict()


@pytest.mark.parametrize("arch, side", [("resnet_9blocks", 32), ("resnet_6blocks", 32), ("unet_128", 128),
                                        ("unet_256", 256)])
def test_generator_output_shapes(arch, side):
    torch.manual_seed(0)
    net = define_generator(arch, in_channels=1, out_channels=2, ngf=4, norm="batch" if "unet" in arch else "instance")
    with torch.no_grad():
        out = net(torch.rand(2, 1, side, side) * 2 - 1)
    assert out.shape == (2, 2, side, side)
    assert out.abs().max() <= 1.0


def test_unet_skip_carries_activated_input_and_does_not_mutate_caller():
    net = define_generator("unet_128", ngf=4, norm="instance").eval()
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    before = x.clone()
    with torch.no_grad():
        net(x)
    assert torch.equal(x, before)
    level = net.model.model[1]
    h = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        out = level(h)
    assert torch.allclose(out[:, :4], nn.functional.leaky_relu(h, 0.2))


@pytest.mark.parametrize("side, patch", [(256, 30), (128, 14)])
def test_basic_discriminator_patch_size(side, patch):
    net = define_discriminator("basic", in_channels=6, ndf=8)
    with torch.no_grad():
        assert net(torch.randn(1, 6, side, side)).shape == (1, 1, patch, patch)


def test_n_layers_and_pixel_discriminators():
    deep = define_discriminator("n_layers", ndf=8, n_layers=5)
    assert sum(isinstance(m, nn.Conv2d) for m in deep.modules()) == 7
    with torch.no_grad():
        assert deep(torch.randn(1, 3, 256, 256)).shape == (1, 1, 6, 6)
        assert define_discriminator("pixel", ndf=8)(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    # 'basic' is always 3 layers, whatever n_layers says (official).
    assert count_parameters(define_discriminator("basic", ndf=8, n_layers=5)) == count_parameters(
        define_discriminator("n_layers", ndf=8, n_layers=3))


def test_norm_factory_and_bias_rule():
    inorm = get_norm_layer("instance")(8)
    assert isinstance(inorm, nn.InstanceNorm2d) and not inorm.affine and not inorm.track_running_stats
    assert list(inorm.state_dict()) == []
    bnorm = get_norm_layer("batch")(8)
    assert isinstance(bnorm, nn.BatchNorm2d) and bnorm.affine and bnorm.track_running_stats
    assert isinstance(get_norm_layer("none")(8), nn.Identity)
    assert (uses_bias("instance"), uses_bias("batch"), uses_bias("none")) == (True, False, False)
    none_net = define_generator("resnet_6blocks", ngf=4, norm="none")
    assert "model.1.bias" not in none_net.state_dict() and "model.26.bias" not in none_net.state_dict()
    assert "model.23.bias" in none_net.state_dict()  # the last conv always has a bias


@pytest.mark.parametrize("call, choices", [
    (lambda: get_norm_layer("layer"), "instance, batch, none"),
    (lambda: uses_bias("group"), "instance, batch, none"),
    (lambda: init_weights(nn.Conv2d(1, 1, 1), "uniform"), "normal, xavier, kaiming, orthogonal"),
    (lambda: define_generator("resnet_12blocks"), ", ".join(GENERATOR_ARCHS)),
    (lambda: define_discriminator("patch"), ", ".join(DISCRIMINATOR_ARCHS)),
    (lambda: ResnetBlock(4, padding_type="circular"), "reflect, replicate, zero"),
])
def test_invalid_names_list_valid_choices(call, choices):
    with pytest.raises(ValueError, match=re.escape(choices)):
        call()


def _init_stats(init_type: str, gain: float):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 128, 3), nn.BatchNorm2d(128), nn.ConvTranspose2d(128, 64, 3),
                        nn.Linear(256, 512))
    return init_weights(net, init_type, gain)


@pytest.mark.parametrize("init_type", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_statistics(init_type):
    gain = 0.05
    net = _init_stats(init_type, gain)
    conv, bn = net[0], net[1]
    fan_in, fan_out = 64 * 9, 128 * 9
    expected_std = {
        "normal": gain,
        "xavier": gain * (2.0 / (fan_in + fan_out)) ** 0.5,
        "kaiming": (2.0 / fan_in) ** 0.5,
    }
    if init_type == "orthogonal":
        w = conv.weight.flatten(1)  # 128 x 576: rows are orthonormal (scaled by gain)
        assert torch.allclose(w @ w.T, gain**2 * torch.eye(128), atol=1e-6)
    else:
        assert conv.weight.mean().abs() < 0.1 * expected_std[init_type]
        assert conv.weight.std().item() == pytest.approx(expected_std[init_type], rel=0.03)
    for module in (net[0], net[2], net[3]):
        assert torch.count_nonzero(module.bias) == 0
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.02)
    assert bn.weight.std().item() == pytest.approx(gain, rel=0.25)
    assert torch.count_nonzero(bn.bias) == 0


def test_factory_initialises_with_official_defaults():
    torch.manual_seed(0)
    net = define_generator("resnet_6blocks", ngf=16)
    weight = net.model[10].conv_block[1].weight
    assert weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(net.model[1].bias) == 0
    torch.manual_seed(0)
    again = define_generator("resnet_6blocks", ngf=16)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
