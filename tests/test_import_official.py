"""Importing official CycleGAN/pix2pix generator files: architecture inference, key clean-up, and equality of our
forward with an independent functional re-implementation of the official networks that reads official keys."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import UserError
from common.networks.factory import define_generator
from cyclegan.import_official import convert_official_generator, load_official_generator

KEY_FILE = Path(__file__).resolve().parent / "data" / "cyclegan_official_keys.txt"


@functools.cache
def official_shapes(title_prefix: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{key: (shape, dtype)}`` of one ``## ...`` section of the official key file."""
    assert KEY_FILE.is_file(), (
        f"reference key file not found at {KEY_FILE} (part of the repository)"
    )
    rows, active = {}, False
    for line in KEY_FILE.read_text().splitlines():
        if line.startswith("## "):
            active = line[3:].startswith(title_prefix)
        elif active and line.strip():
            key, shape, dtype = line.split("\t")
            rows[key] = (tuple(int(n) for n in re.findall(r"\d+", shape)), dtype)
    assert rows, f"section {title_prefix!r} not found in {KEY_FILE}"
    return rows


def official_state_dict(title_prefix: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in an official layout; positive running variances so BatchNorm eval is well-defined."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, (shape, dtype) in official_shapes(title_prefix).items():
        if dtype == "int64":
            sd[key] = torch.tensor(7, dtype=torch.long)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith(".weight") and len(shape) == 1:  # BatchNorm scale
            sd[key] = 1 + 0.1 * torch.randn(shape, generator=gen)
        else:
            sd[key] = 0.05 * torch.randn(shape, generator=gen)
    return sd


def resnet9_state_dict(dropout: bool = False) -> dict[str, torch.Tensor]:
    sd = official_state_dict("resnet_9blocks G, norm=instance")
    if dropout:
        sd = {re.sub(r"conv_block\.5\.", "conv_block.6.", k): v for k, v in sd.items()}
    return sd


# ---- independent functional references of the official forward passes ----

def reference_resnet(sd, x, n_blocks=9, dropout=False):
    def conv(h, name, stride=1, padding=0):
        return F.conv2d(h, sd[f"{name}.weight"], sd.get(f"{name}.bias"), stride, padding)

    def convt(h, name):
        return F.conv_transpose2d(h, sd[f"{name}.weight"], sd.get(f"{name}.bias"), 2, 1, output_padding=1)

    def norm_relu(h):
        return F.relu(F.instance_norm(h, eps=1e-5))

    h = norm_relu(conv(F.pad(x, (3, 3, 3, 3), mode="reflect"), "model.1"))
    h = norm_relu(conv(h, "model.4", 2, 1))
    h = norm_relu(conv(h, "model.7", 2, 1))
    for i in range(10, 10 + n_blocks):
        r = norm_relu(conv(F.pad(h, (1, 1, 1, 1), mode="reflect"), f"model.{i}.conv_block.1"))
        second = 6 if dropout else 5
        r = F.instance_norm(conv(F.pad(r, (1, 1, 1, 1), mode="reflect"), f"model.{i}.conv_block.{second}"))
        h = h + r
    up = 10 + n_blocks
    h = norm_relu(convt(h, f"model.{up}"))
    h = norm_relu(convt(h, f"model.{up + 3}"))
    return torch.tanh(conv(F.pad(h, (3, 3, 3, 3), mode="reflect"), f"model.{up + 7}"))


def reference_unet_batch(sd, x, num_downs=8):
    """Official U-Net with eval-mode BatchNorm. Upstream's in-place LeakyReLU overwrites each level's input
    before the concatenation, so the skip carries LeakyReLU(input)."""
    def bn(h, name):
        return F.batch_norm(h, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
                            sd[f"{name}.bias"], training=False, eps=1e-5)

    def down(h, name):
        return F.conv2d(h, sd[f"{name}.weight"], sd.get(f"{name}.bias"), 2, 1)

    def up(h, name):
        return F.conv_transpose2d(h, sd[f"{name}.weight"], sd.get(f"{name}.bias"), 2, 1)

    def level(h, prefix, depth):  # depth 1 = the level right below the outermost
        act = F.leaky_relu(h, 0.2)
        if depth == num_downs - 1:  # innermost: [LReLU, conv, ReLU, convT, norm]
            out = bn(up(F.relu(down(act, f"{prefix}.1")), f"{prefix}.3"), f"{prefix}.4")
        else:  # [LReLU, conv, norm, sub, ReLU, convT, norm]
            inner = level(bn(down(act, f"{prefix}.1"), f"{prefix}.2"), f"{prefix}.3.model", depth + 1)
            out = bn(up(F.relu(inner), f"{prefix}.5"), f"{prefix}.6")
        return torch.cat([act, out], 1)

    h = down(x, "model.model.0")
    h = level(h, "model.model.1.model", 1)
    return torch.tanh(up(F.relu(h), "model.model.3"))


def _load(sd, arch) -> nn.Module:
    net = define_generator(**arch)
    net.load_state_dict(sd, strict=True)
    return net.eval()


RESNET9 = dict(arch="resnet_9blocks", ngf=64, norm="instance", dropout=False, in_channels=3, out_channels=3)


def _input(side: int) -> torch.Tensor:
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize(
    "variant", ["plain", "dropout", "module_prefix", "pre04_running_stats", "wrapped", "wrapped_model"]
)
def test_resnet9_import_matches_functional_reference(variant):
    official = resnet9_state_dict(dropout=variant == "dropout")
    given: dict = dict(official)
    if variant == "module_prefix":
        given = {f"module.{k}": v for k, v in official.items()}
    elif variant == "pre04_running_stats":
        for norm_index in (2, 5, 8, 20, 23):
            given[f"model.{norm_index}.running_mean"] = torch.randn(64)
            given[f"model.{norm_index}.running_var"] = torch.rand(64)
        given["model.10.conv_block.2.running_mean"] = torch.randn(256)
        given["model.10.conv_block.6.num_batches_tracked"] = torch.tensor(3)
    elif variant == "wrapped":
        given = {"state_dict": official, "epoch": torch.tensor(5)}
    elif variant == "wrapped_model":
        given = {"model": {f"module.{k}": v for k, v in official.items()}, "optimizer": {}}

    sd, arch = convert_official_generator(given)
    assert arch == {**RESNET9, "dropout": variant == "dropout"}
    assert set(sd) == set(official)
    net = _load(sd, arch)
    x = _input(64)
    with torch.no_grad():
        ours = net(x)
        ref = reference_resnet(official, x, dropout=variant == "dropout")
    assert ours.shape == (1, 3, 64, 64)
    assert (ours - ref).abs().max().item() <= 1e-5


def test_nested_module_prefix_and_resnet6_inference():
    net = define_generator("resnet_6blocks", in_channels=1, out_channels=2, ngf=8)
    official = net.state_dict()
    # A user's wrapper around a submodule puts 'module' mid-key too.
    given = {("module." + k).replace("conv_block.", "module.conv_block."): v for k, v in official.items()}
    sd, arch = convert_official_generator(given)
    assert arch == dict(arch="resnet_6blocks", ngf=8, norm="instance", dropout=False, in_channels=1, out_channels=2)
    assert all(torch.equal(sd[k], official[k]) for k in official)


def test_unet256_batch_import_matches_functional_reference():
    official = official_state_dict("unet_256 G, norm=batch")
    sd, arch = convert_official_generator(official)
    assert arch == dict(arch="unet_256", ngf=64, norm="batch", dropout=True, in_channels=3, out_channels=3)
    assert convert_official_generator(official, unet_dropout=False)[1]["dropout"] is False
    net = _load(sd, arch)
    x = _input(256)
    with torch.no_grad():
        ours = net(x)
        ref = reference_unet_batch(official, x)
    assert (ours - ref).abs().max().item() <= 1e-5


def test_batch_resnet_and_unet128_instance_round_trip():
    for arch in (dict(arch="resnet_9blocks", ngf=8, norm="batch", dropout=True, in_channels=3, out_channels=3),
                 dict(arch="unet_128", ngf=4, norm="instance", dropout=False, in_channels=3, out_channels=1),
                 dict(arch="resnet_6blocks", ngf=4, norm="none", dropout=False, in_channels=3, out_channels=3)):
        official = define_generator(**arch).state_dict()
        if arch["norm"] == "batch":  # files from before PyTorch 0.4.1 lack the counters
            official = {k: v for k, v in official.items() if not k.endswith("num_batches_tracked")}
        sd, inferred = convert_official_generator(official, unet_dropout=False)
        assert inferred == arch
        _load(sd, inferred)


def test_load_official_generator_from_file(tmp_path):
    path = tmp_path / "latest_net_G_A.pth"
    official = resnet9_state_dict()
    torch.save(official, path)
    sd, arch = load_official_generator(path)
    assert arch == RESNET9
    assert all(torch.equal(sd[k], official[k]) for k in official)


def test_load_errors_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="missing.pth: file not found") as err:
        load_official_generator(tmp_path / "missing.pth")
    messages = [str(err.value)]

    whole = tmp_path / "whole_model.pth"
    torch.save(define_generator("resnet_6blocks", ngf=4), whole)  # a pickled nn.Module, not a state_dict
    with pytest.raises(UserError, match=r"whole_model\.pth: refused to load: it pickles .*ResnetGenerator") as err:
        load_official_generator(whole)
    assert "weights_only" in str(err.value)
    messages.append(str(err.value))

    not_sd = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_sd)
    with pytest.raises(UserError, match=r"list\.pth: holds a list, not a state_dict"):
        load_official_generator(not_sd)

    mixed = tmp_path / "mixed.pth"
    torch.save({"model.1.weight": torch.zeros(1), "lr": 0.1}, mixed)
    with pytest.raises(UserError, match=r"mixed\.pth: not a state_dict \(entry 'lr' is a float"):
        load_official_generator(mixed)

    disc = tmp_path / "latest_net_D_A.pth"
    torch.save({"model.0.weight": torch.zeros(4, 3, 4, 4), "model.0.bias": torch.zeros(4)}, disc)
    with pytest.raises(UserError, match=r"unrecognised layout \(it looks like a discriminator.*expected an official"):
        load_official_generator(disc)

    stargan = tmp_path / "200000-G.ckpt"
    torch.save({"main.0.weight": torch.zeros(64, 8, 7, 7)}, stargan)
    with pytest.raises(UserError, match=r"unrecognised layout: found 'main\.0\.weight'.*'model\.1\.weight'"):
        load_official_generator(stargan)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="garbage.pth: not a readable PyTorch file") as err:
        load_official_generator(garbage)
    messages.append(str(err.value))
    assert all("\n" not in message for message in messages)


def test_layout_mismatches_name_the_problem():
    sd = resnet9_state_dict()
    truncated = {k: v for k, v in sd.items() if not k.startswith("model.18.")}
    with pytest.raises(UserError, match="residual blocks at model indices"):
        convert_official_generator(truncated, source="g.pth")
    missing = {k: v for k, v in sd.items() if k != "model.22.bias"}
    with pytest.raises(UserError, match=r"g\.pth: looks like resnet_9blocks .*missing 'model\.22\.bias'"):
        convert_official_generator(missing, source="g.pth")
    wrong = dict(sd, **{"model.4.weight": torch.zeros(128, 64, 5, 5)})
    with pytest.raises(UserError, match=r"shape mismatch.*'model\.4\.weight' \(128, 64, 5, 5\)"):
        convert_official_generator(wrong, source="g.pth")
    with pytest.raises(UserError, match="empty"):
        convert_official_generator({})
    ours = {"format": "stargan-lib", "format_version": 1, "nets": {"G_A": sd}}
    with pytest.raises(UserError, match="already a checkpoint of this library"):
        convert_official_generator(ours)


def test_convert_to_checkpoint_round_trips_through_our_loader(tmp_path):
    from common.checkpoint import atomic_save, load_checkpoint
    from cyclegan.import_official import convert_to_checkpoint
    from cyclegan.model import generator_from_checkpoint

    official = resnet9_state_dict()
    path = tmp_path / "latest_net_G_B.pth"
    torch.save({f"module.{k}": v for k, v in official.items()}, path)
    ckpt, summary = convert_to_checkpoint(path)
    assert "resnet_9blocks" in summary and "BtoA" in summary and "\n" not in summary
    atomic_save(ckpt, tmp_path / "imported.pt")
    generator = generator_from_checkpoint(load_checkpoint(tmp_path / "imported.pt"), "BtoA", "imported.pt")
    x = _input(32)
    with torch.no_grad():
        assert (generator(x) - reference_resnet(official, x)).abs().max().item() <= 1e-5
