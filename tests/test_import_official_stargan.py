"""Official StarGAN checkpoint import, checked against an independent functional forward of the official nets."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from common.errors import UserError
from stargan.import_official import (
    convert_official_discriminator,
    convert_official_generator,
    load_official_stargan,
)
from stargan.networks import Discriminator, Generator

REFERENCE = Path(__file__).resolve().parent / "data" / "stargan_official_keys.txt"


# ---------------------------------------------------------------- official layouts, written from the description


def official_g_shapes(c_dim: int, conv_dim: int, repeat_num: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official G, including its InstanceNorm running-stat buffers."""
    shapes: dict[str, tuple[int, ...]] = {}

    def norm(prefix: str, ch: int) -> None:
        shapes.update({f"{prefix}.weight": (ch,), f"{prefix}.bias": (ch,), f"{prefix}.running_mean": (ch,),
                       f"{prefix}.running_var": (ch,), f"{prefix}.num_batches_tracked": ()})

    shapes["main.0.weight"] = (conv_dim, 3 + c_dim, 7, 7)
    norm("main.1", conv_dim)
    shapes["main.3.weight"] = (conv_dim * 2, conv_dim, 4, 4)
    norm("main.4", conv_dim * 2)
    shapes["main.6.weight"] = (conv_dim * 4, conv_dim * 2, 4, 4)
    norm("main.7", conv_dim * 4)
    dim = conv_dim * 4
    for i in range(repeat_num):
        b = f"main.{9 + i}.main"
        shapes[f"{b}.0.weight"] = (dim, dim, 3, 3)
        norm(f"{b}.1", dim)
        shapes[f"{b}.3.weight"] = (dim, dim, 3, 3)
        norm(f"{b}.4", dim)
    j = 9 + repeat_num
    shapes[f"main.{j}.weight"] = (dim, dim // 2, 4, 4)  # ConvTranspose2d weight is (in, out, k, k)
    norm(f"main.{j + 1}", dim // 2)
    shapes[f"main.{j + 3}.weight"] = (dim // 2, dim // 4, 4, 4)
    norm(f"main.{j + 4}", dim // 4)
    shapes[f"main.{j + 6}.weight"] = (3, conv_dim, 7, 7)
    return shapes


def official_d_shapes(image_size: int, conv_dim: int, c_dim: int, repeat_num: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    cin, cout = 3, conv_dim
    for i in range(repeat_num):
        shapes[f"main.{2 * i}.weight"] = (cout, cin, 4, 4)
        shapes[f"main.{2 * i}.bias"] = (cout,)
        cin, cout = cout, cout * 2
    k = image_size // 2 ** repeat_num
    shapes["conv1.weight"] = (1, cin, 3, 3)
    shapes["conv2.weight"] = (c_dim, cin, k, k)
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Random official-style weights; running stats get values far from the identity so using them would show."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in shapes.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            sd[key] = torch.tensor(123456, dtype=torch.int64)
        elif leaf == "running_mean":
            sd[key] = torch.randn(shape, generator=gen) * 3
        elif leaf == "running_var":
            sd[key] = torch.rand(shape, generator=gen) * 5 + 0.1
        elif len(shape) == 1 and key.endswith(".weight"):  # only InstanceNorm gammas are 1-D weights
            sd[key] = 1 + 0.2 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:
            sd[key] = 0.1 * torch.randn(shape, generator=gen)  # IN beta / D conv bias
        else:
            # Roughly unit-variance activations (IN renormalises G anyway; this keeps D and tanh unsaturated).
            sd[key] = torch.randn(shape, generator=gen) / (shape[1] * shape[2] * shape[3]) ** 0.5
    return sd


# ---------------------------------------------------------------- independent functional forwards


def _in(h: torch.Tensor, sd: dict, prefix: str) -> torch.Tensor:
    # Instance statistics, as the official nets produce them (they never run in eval mode).
    return F.instance_norm(h, weight=sd[f"{prefix}.weight"], bias=sd[f"{prefix}.bias"], use_input_stats=True,
                           eps=1e-5)


def functional_g(sd: dict, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    c_map = c[:, :, None, None].repeat(1, 1, x.shape[2], x.shape[3])
    h = torch.cat([x, c_map], dim=1)
    h = F.relu(_in(F.conv2d(h, sd["main.0.weight"], padding=3), sd, "main.1"))
    h = F.relu(_in(F.conv2d(h, sd["main.3.weight"], stride=2, padding=1), sd, "main.4"))
    h = F.relu(_in(F.conv2d(h, sd["main.6.weight"], stride=2, padding=1), sd, "main.7"))
    i = 9
    while f"main.{i}.main.0.weight" in sd:
        b = f"main.{i}.main"
        r = F.relu(_in(F.conv2d(h, sd[f"{b}.0.weight"], padding=1), sd, f"{b}.1"))
        r = _in(F.conv2d(r, sd[f"{b}.3.weight"], padding=1), sd, f"{b}.4")
        h = h + r
        i += 1
    h = F.relu(_in(F.conv_transpose2d(h, sd[f"main.{i}.weight"], stride=2, padding=1), sd, f"main.{i + 1}"))
    h = F.relu(_in(F.conv_transpose2d(h, sd[f"main.{i + 3}.weight"], stride=2, padding=1), sd, f"main.{i + 4}"))
    return torch.tanh(F.conv2d(h, sd[f"main.{i + 6}.weight"], padding=3))


def functional_d(sd: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h, i = x, 0
    while f"main.{i}.weight" in sd:
        h = F.leaky_relu(F.conv2d(h, sd[f"main.{i}.weight"], sd[f"main.{i}.bias"], stride=2, padding=1), 0.01)
        i += 2
    src = F.conv2d(h, sd["conv1.weight"], padding=1)
    cls = F.conv2d(h, sd["conv2.weight"])
    return src, cls.reshape(cls.shape[0], -1)


def _reference_file_shapes(net: str) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in REFERENCE.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 5 and parts[0] == net:
            shapes[parts[1]] = tuple(int(s) for s in parts[2].strip("()").split(",") if s.strip())
    return shapes


# ---------------------------------------------------------------- tests


def test_layout_helpers_match_measured_reference():
    assert official_g_shapes(5, 64, 6) == _reference_file_shapes("G")
    assert official_d_shapes(128, 64, 5, 6) == _reference_file_shapes("D")


def test_full_size_generator_matches_functional_official_forward():
    official = random_state(official_g_shapes(5, 64, 6), seed=1)
    sd, arch = convert_official_generator(official)
    assert arch == {"c_dim": 5, "conv_dim": 64, "repeat_num": 6}
    assert not any(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in sd)
    g = Generator(**arch)
    g.load_state_dict(sd, strict=True)

    gen = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    c = torch.tensor([[1.0, 0, 0, 1, 0], [0, 0, 1, 0, 1]])
    with torch.no_grad():
        expected = functional_g(official, x, c)
        ours_train = g.train()(x, c)
        ours_eval = g.eval()(x, c)
    assert expected.std() > 0.05  # not saturated / not constant: the comparison means something
    assert (ours_train - expected).abs().max() <= 1e-5
    assert (ours_eval - expected).abs().max() <= 1e-5


def test_full_size_discriminator_converts_and_loads():
    official = random_state(official_d_shapes(128, 64, 5, 6), seed=3)
    sd, arch = convert_official_discriminator(official)
    assert arch == {"image_size": 128, "conv_dim": 64, "c_dim": 5, "repeat_num": 6}
    Discriminator(**arch).load_state_dict(sd, strict=True)


@pytest.mark.parametrize("image_size, c_dim", [(128, 5), (256, 8)])
def test_discriminator_matches_functional_official_forward(image_size, c_dim):
    official = random_state(official_d_shapes(image_size, 8, c_dim, 6), seed=4)
    sd, arch = convert_official_discriminator(official)
    assert arch == {"image_size": image_size, "conv_dim": 8, "c_dim": c_dim, "repeat_num": 6}
    d = Discriminator(**arch)
    d.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        src, cls = d(x)
        ref_src, ref_cls = functional_d(official, x)
    assert src.shape == ref_src.shape == (2, 1, image_size // 64, image_size // 64)
    assert cls.shape == ref_cls.shape == (2, c_dim)
    assert (src - ref_src).abs().max() <= 1e-5
    assert (cls - ref_cls).abs().max() <= 1e-5


def test_mask_model_with_module_prefix_and_sibling_d(tmp_path):
    g_off = random_state(official_g_shapes(15, 16, 2), seed=6)
    d_off = random_state(official_d_shapes(128, 8, 13, 6), seed=7)
    torch.save({f"module.{k}": v for k, v in g_off.items()}, tmp_path / "200000-G.ckpt")
    torch.save({f"module.{k}": v for k, v in d_off.items()}, tmp_path / "200000-D.ckpt")
    torch.save(d_off, tmp_path / "190000-D.ckpt")  # another iteration: must not be picked

    result = load_official_stargan(tmp_path / "200000-G.ckpt")
    g_sd, g_arch = result["G"]
    d_sd, d_arch = result["D"]
    assert g_arch == {"c_dim": 15, "conv_dim": 16, "repeat_num": 2}
    assert d_arch == {"image_size": 128, "conv_dim": 8, "c_dim": 13, "repeat_num": 6}
    assert result["n_mask"] == 2
    assert result["D_path"] == tmp_path / "200000-D.ckpt"
    assert not any(k.startswith("module.") for k in [*g_sd, *d_sd])

    g = Generator(**g_arch)
    g.load_state_dict(g_sd, strict=True)
    d = Discriminator(**d_arch)
    d.load_state_dict(d_sd, strict=True)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(8)) * 2 - 1
    # CelebA block (5) | RaFD block (8) | mask (2): a CelebA-style label.
    c = torch.tensor([[1.0, 0, 0, 1, 1] + [0.0] * 8 + [1.0, 0]])
    with torch.no_grad():
        assert (g(x, c) - functional_g(g_off, x, c)).abs().max() <= 1e-5
        x128 = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(9))
        assert (d(x128)[1] - functional_d(d_off, x128)[1]).abs().max() <= 1e-5


def test_generator_alone_and_single_dataset(tmp_path):
    torch.save(random_state(official_g_shapes(8, 8, 1), seed=10), tmp_path / "5000-G.ckpt")
    result = load_official_stargan(str(tmp_path / "5000-G.ckpt"))
    assert result["G"][1] == {"c_dim": 8, "conv_dim": 8, "repeat_num": 1}
    assert result["D"] is None and result["n_mask"] is None

    torch.save(random_state(official_d_shapes(64, 8, 8, 6), seed=11), tmp_path / "5000-D.ckpt")
    result = load_official_stargan(tmp_path / "5000-G.ckpt")
    assert result["D"][1]["image_size"] == 64
    assert result["n_mask"] == 0


# ---------------------------------------------------------------- user errors


def _one_line_error(path, *needles: str) -> str:
    with pytest.raises(UserError) as info:
        load_official_stargan(path)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_missing_file(tmp_path):
    _one_line_error(tmp_path / "nope-G.ckpt", "nope-G.ckpt", "not found")


def test_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "1-G.ckpt")
    _one_line_error(tmp_path / "1-G.ckpt", "1-G.ckpt", "not a state_dict")
    torch.save({"nets": {"G": {}}, "config": {}}, tmp_path / "2-G.ckpt")
    _one_line_error(tmp_path / "2-G.ckpt", "2-G.ckpt", "not a bare state_dict")
    (tmp_path / "3-G.ckpt").write_bytes(b"this is not a torch file")
    _one_line_error(tmp_path / "3-G.ckpt", "3-G.ckpt", "not a readable PyTorch file")


def test_pickled_module_is_refused_not_unsafely_loaded(tmp_path):
    torch.save(Generator(c_dim=2, conv_dim=8, repeat_num=1), tmp_path / "7-G.ckpt")
    msg = _one_line_error(tmp_path / "7-G.ckpt", "7-G.ckpt", "refused", "state_dict")
    assert "Generator" in msg


def test_unrecognised_layouts(tmp_path):
    d_off = random_state(official_d_shapes(64, 8, 5, 6), seed=12)
    torch.save(d_off, tmp_path / "1-G.ckpt")  # a D saved under a G name
    _one_line_error(tmp_path / "1-G.ckpt", "1-G.ckpt", "generator layout", "discriminator")

    cyclegan_like = {"model.1.weight": torch.zeros(64, 3, 7, 7)}
    with pytest.raises(UserError, match="CycleGAN"):
        convert_official_generator(cyclegan_like, source="x.pth")

    g_off = random_state(official_g_shapes(5, 8, 2), seed=13)
    broken = dict(g_off)
    del broken["main.10.main.3.weight"]
    with pytest.raises(UserError, match=r"x\.pth: unrecognised StarGAN generator layout.*main\.10\.main\.3\.weight"):
        convert_official_generator(broken, source="x.pth")
    extra = {**g_off, "main.99.weight": torch.zeros(3)}
    with pytest.raises(UserError, match="unexpected key"):
        convert_official_generator(extra, source="x.pth")
    reshaped = {**g_off, "main.3.weight": torch.zeros(16, 8, 3, 3)}
    with pytest.raises(UserError, match=r"'main\.3\.weight' has shape"):
        convert_official_generator(reshaped, source="x.pth")

    with pytest.raises(UserError, match="discriminator layout"):
        convert_official_discriminator(g_off, source="y.pth")


@pytest.mark.parametrize("g_c, d_c", [(5, 8), (5, 4), (8, 3)])
def test_label_size_mismatch(tmp_path, g_c, d_c):
    torch.save(random_state(official_g_shapes(g_c, 8, 1), seed=14), tmp_path / "10-G.ckpt")
    torch.save(random_state(official_d_shapes(64, 8, d_c, 6), seed=15), tmp_path / "10-D.ckpt")
    _one_line_error(tmp_path / "10-G.ckpt", "10-D.ckpt", f"{d_c} class logits", f"{g_c} labels")


def test_bad_d_beside_good_g_is_reported(tmp_path):
    torch.save(random_state(official_g_shapes(5, 8, 1), seed=16), tmp_path / "10-G.ckpt")
    torch.save({"conv2.weight": torch.zeros(5, 64, 2, 2)}, tmp_path / "10-D.ckpt")
    _one_line_error(tmp_path / "10-G.ckpt", "10-D.ckpt", "discriminator layout")
