"""pix2pix config. Defaults are the official pytorch-CycleGAN-and-pix2pix ``train.py --model pix2pix`` defaults:
U-Net 256 with batch norm and dropout, the 70x70 PatchGAN on (input, output), vanilla GAN + 100 x L1, Adam 2e-4
(0.5, 0.999), batch 1, 100 + 100 epochs, resize 286 / crop 256 / flip, aligned data."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.config import check_value
from common.gan_config import ImageDataConfig, OptimConfig
from common.gan_config import NetworkConfig as GanNetworkConfig
from common.train_config import TrainConfig, check_non_negative


@dataclass
class DataConfig(ImageDataConfig):
    """format ``aligned`` (official): ROOT/<phase>/ holds images with A as the left half and B as the right half
    (the official ``combine_A_and_B.py`` output). ``folders``: ROOT/A/<phase>/ and ROOT/B/<phase>/ hold the two
    sides of each pair under the same name (extensions may differ), as ``combine_A_and_B.py`` takes them.
    direction: ``AtoB`` learns A -> B, ``BtoA`` B -> A (facades: BtoA, label map -> photo). Both sides of a pair
    get the same resize, crop and flip. on_bad_image ``skip`` substitutes the next usable pair for one that
    cannot be read, has an odd aligned width or sides of different sizes."""

    root: str = "datasets/facades"
    format: Literal["aligned", "folders"] = "aligned"
    direction: Literal["AtoB", "BtoA"] = "AtoB"
    phase: str = "train"

    def validate(self, where: str) -> None:
        super().validate(where)
        check_value(where, "data.phase", self.phase, self.phase not in ("", ".", "..") and "/" not in self.phase,
                    "a sub-folder name such as 'train'")


@dataclass
class NetworkConfig(GanNetworkConfig):
    """The discriminator is conditional: it sees input and output concatenated (input_nc + output_nc
    channels). input_nc/output_nc are the generator's, whatever the direction."""

    netG: Literal["unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks"] = "unet_256"
    norm: Literal["batch", "instance", "none"] = "batch"
    dropout: bool = True


@dataclass
class LossConfig:
    """G: GAN(D(A, G(A)), real) + lambda_L1 * L1(G(A), B); D: 0.5 * (GAN(D(A, G(A)), fake) + GAN(D(A, B), real)).
    lambda_gp weights the gradient penalty of ``wgangp`` (which the official code never applies)."""

    gan_mode: Literal["vanilla", "lsgan", "wgangp"] = "vanilla"
    lambda_L1: float = 100.0
    lambda_gp: float = 10.0

    def validate(self, where: str) -> None:
        check_non_negative(where, "loss", self, ("lambda_L1", "lambda_gp"))


@dataclass
class Pix2PixConfig(TrainConfig):
    model: Literal["pix2pix"] = "pix2pix"
    name: str = "pix2pix"
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self, where: str) -> None:
        super().validate(where)
        for key, side in self.data.network_sides().items():
            self.network.check_side(where, key, side)
