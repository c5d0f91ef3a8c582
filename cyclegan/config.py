"""CycleGAN config. Defaults are the official pytorch-CycleGAN-and-pix2pix training defaults."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.errors import UserError
from common.gan_config import CHANNELS, ImageDataConfig, NetworkConfig, OptimConfig
from common.train_config import TrainConfig, check_mask_penalties, check_non_negative

__all__ = ["CHANNELS", "CycleGANConfig", "DataConfig", "LossConfig", "NetworkConfig", "OptimConfig"]


@dataclass
class DataConfig(ImageDataConfig):
    """root: folder with trainA/trainB (testA/testB for translation). on_bad_image: ``error`` stops at an
    unreadable image naming it; ``skip`` substitutes the next image and counts the skips in the logs."""

    root: str = "datasets/horse2zebra"


@dataclass
class LossConfig:
    """lambda_identity is relative: the identity L1 of G_A is weighted lambda_identity * lambda_B (official).
    lambda_mask, lambda_mask_tv (not official; 0 = off): GANimation's penalties on the attention masks
    (``network.attention_mask``) of the four translations of a step: their mean and total variation;
    lambda_mask_binary (ours, 0 = off): the mean of ``4 m (1 - m)`` on the same masks, pushing each pixel to 0
    or 1; lambda_mask_idle (ours, 0 = off): the mean of ``-log(1 - 0.99 m)`` on the same masks weighted by
    ``exp(-(d / mask_idle_tol)^2)``, d the mean absolute difference of G's painted colour and its input there
    (the mask closed where opening it changes nothing); lambda_mask_edge_tv (ours, 0 = off): the same masks'
    absolute neighbour differences weighted by ``exp(-|dI| / mask_edge_sigma)``, dI the input's (an edge-aware
    total variation: the mask's border drawn onto the input's edges); lambda_mask_colour (ours, 0 = off): the mean
    of ``(1 - m) d`` on the same masks, m detached (G's painted colour pulled to its input where the mask is
    closed)."""

    gan_mode: Literal["lsgan", "vanilla", "wgangp"] = "lsgan"
    lambda_A: float = 10.0
    lambda_B: float = 10.0
    lambda_identity: float = 0.5
    lambda_gp: float = 10.0
    pool_size: int = 50
    lambda_mask: float = 0.0
    lambda_mask_tv: float = 0.0
    lambda_mask_binary: float = 0.0
    lambda_mask_idle: float = 0.0
    mask_idle_tol: float = 0.2
    lambda_mask_edge_tv: float = 0.0
    mask_edge_sigma: float = 0.1
    lambda_mask_colour: float = 0.0

    def validate(self, where: str) -> None:
        check_non_negative(where, "loss", self, ("lambda_A", "lambda_B", "lambda_identity", "lambda_gp",
                                                 "pool_size", "lambda_mask", "lambda_mask_tv", "lambda_mask_binary",
                                                 "lambda_mask_idle", "lambda_mask_edge_tv", "lambda_mask_colour"))


@dataclass
class CycleGANConfig(TrainConfig):
    model: Literal["cyclegan"] = "cyclegan"
    name: str = "cyclegan"
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self, where: str) -> None:
        super().validate(where)
        for key, side in self.data.network_sides().items():
            self.network.check_side(where, key, side)
        check_mask_penalties(where, self.loss, self.network.attention_mask)
        if self.network.input_nc != self.network.output_nc and self.loss.lambda_identity > 0:
            raise UserError(
                f"{where}: key 'loss.lambda_identity' must be 0 when network.input_nc != network.output_nc"
            )
