"""pix2pix networks and losses against the official code: parameter counts at the default widths, the official
key layout (tests/data/cyclegan_official_keys.txt), the conditional D, and the losses of one training step."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_networks_cyclegan import reference_shapes

from common.config import from_dict
from common.networks.factory import count_parameters
from common.networks.official import has_batch_norm_stats
from pix2pix.config import Pix2PixConfig
from pix2pix.model import build_discriminator, build_generator, build_networks
from pix2pix.trainer import Pix2PixTrainer


def _network(**overrides) -> Pix2PixConfig:
    return from_dict(Pix2PixConfig, {"network": overrides}, source="test")


# Official counts (junyanz models/networks.py, 3 channels, ngf = ndf = 64; D sees input_nc + output_nc = 6).
@pytest.mark.parametrize("net, overrides, expected", [
    ("G", {}, 54_413_955),  # the pix2pix default: unet_256, batch norm, dropout
    ("G", {"netG": "unet_128"}, 41_828_995),
    ("G", {"netG": "resnet_9blocks"}, 11_383_427),
    ("D", {}, 2_768_705),  # basic 70x70 PatchGAN, batch norm
    ("D", {"netD": "pixel"}, 9_024),
])
def test_parameter_counts_at_default_widths_are_the_official_ones(net, overrides, expected):
    with torch.device("meta"):  # shapes only: the 54M-parameter U-Net costs nothing
        nets = build_networks(_network(**overrides))
    assert count_parameters(nets[net]) == expected


def test_default_generator_has_the_official_unet_256_batch_norm_layout():
    with torch.device("meta"):
        generator = build_generator(Pix2PixConfig().network, init=False)
    ours = {k: tuple(v.shape) for k, v in generator.state_dict().items()}
    assert ours == reference_shapes("unet256_batch_dropout")
    # Batch norm: no conv bias beside it, running statistics in the state_dict (what import-official recognises).
    assert "model.model.1.model.1.bias" not in ours and has_batch_norm_stats(ours)


def test_discriminator_is_conditional_on_input_and_output():
    with torch.device("meta"):
        disc = build_discriminator(_network(input_nc=1, output_nc=3).network)
    expected = reference_shapes("basic_batch")
    expected["model.0.weight"] = (64, 4, 4, 4)  # 1 input + 3 output channels
    assert {k: tuple(v.shape) for k, v in disc.state_dict().items()} == expected


def test_instance_norm_leftover_statistics_are_not_batch_norm():
    # Pre-0.4 CycleGAN files carry InstanceNorm running statistics but no affine weight: still CycleGAN's.
    cyclegan_old = {"model.1.weight", "model.1.bias", "model.2.running_mean", "model.2.running_var"}
    assert not has_batch_norm_stats(cyclegan_old)
    assert has_batch_norm_stats(cyclegan_old | {"model.2.weight", "model.2.bias"})


def test_one_step_has_the_official_losses_and_order(tmp_path):
    """D = 0.5 (BCE(D(A, G(A)), 0) + BCE(D(A, B), 1)) with D before its update; then G = BCE(D'(A, G(A)), 1)
    + 100 L1(G(A), B) with the updated D'. Dropout off so the reference G pass matches the step's."""
    (tmp_path / "data" / "train").mkdir(parents=True)
    Image.new("RGB", (64, 32)).save(tmp_path / "data" / "train" / "x.png")
    cfg = from_dict(Pix2PixConfig, {
        "data": {"root": str(tmp_path / "data"), "load_size": 32, "crop_size": 32},
        "network": {"netG": "resnet_6blocks", "ngf": 8, "ndf": 8, "dropout": False},
        "run": {"device": "cpu", "num_workers": 0}, "log": {"progress": False}}, source="test")
    trainer = Pix2PixTrainer(cfg, out_root=tmp_path / "runs")
    try:
        torch.manual_seed(1)
        real_a, real_b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
        G0, D0 = (copy.deepcopy(trainer.nets[k]) for k in ("G", "D"))
        with torch.no_grad():
            fake_b = G0(real_a)
            pred_fake = D0(torch.cat([real_a, fake_b], 1))
            pred_real = D0(torch.cat([real_a, real_b], 1))
            pred_before = D0(torch.cat([real_a, fake_b], 1))
        logs, visuals = trainer.train_step(real_a, real_b)
        d_fake = F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake))
        d_real = F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real))
        assert float(logs["D"]) == pytest.approx(float(0.5 * (d_fake + d_real)), rel=1e-5)
        assert float(logs["D/fake"]) == pytest.approx(float(d_fake), rel=1e-5)
        torch.testing.assert_close(visuals["fake_B"], fake_b)
        with torch.no_grad():
            pred = trainer.nets["D"](torch.cat([real_a, fake_b], 1))  # D after its step, training mode
        g_gan = F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred))
        assert float(logs["G/gan"]) == pytest.approx(float(g_gan), rel=1e-5)
        g_gan_before = F.binary_cross_entropy_with_logits(pred_before, torch.ones_like(pred_before))
        assert float(logs["G/gan"]) != pytest.approx(float(g_gan_before), rel=1e-4)  # so the order is seen
        assert float(logs["G/L1"]) == pytest.approx(float(100 * (fake_b - real_b).abs().mean()), rel=1e-5)
        assert float(logs["G/total"]) == pytest.approx(float(logs["G/gan"]) + float(logs["G/L1"]), rel=1e-6)
        # Both networks moved; G's step did not touch D's gradients.
        assert any(not torch.equal(a, b) for a, b in zip(G0.parameters(), trainer.nets["G"].parameters()))
        assert all(p.requires_grad for p in trainer.nets["D"].parameters())
    finally:
        trainer.close()
