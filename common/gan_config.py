"""Config sections of the epoch-scheduled GANs of the official pytorch-CycleGAN-and-pix2pix code (CycleGAN and
pix2pix): the image pipeline, the networks and the Adam + per-epoch LR schedule, with the official option names
and CycleGAN's defaults. A family subclasses a section to change defaults or add keys; a redeclared field keeps
its place, so dumped configs read alike."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.config import check_value
from common.errors import UserError
from common.networks.factory import discriminator_min_side, generator_input_sides
from common.train_config import check_adam, check_mask_guide, check_mask_snap

# Image channels the data pipeline can give a network: RGB, or its luminance (official --input_nc 1).
CHANNELS = (1, 3)
_CROPPED = ("resize_and_crop", "crop", "scale_width_and_crop")


@dataclass
class ImageDataConfig:
    """The official ``--preprocess``/``--load_size``/``--crop_size``/``--no_flip``/``--batch_size``/
    ``--serial_batches``/``--max_dataset_size`` options. on_bad_image: ``error`` stops at an unreadable image
    naming it; ``skip`` substitutes the next one and counts the skips in the logs. decoder (not official):
    ``pil`` (the official pipeline) or ``torchvision`` (torchvision.io's decoders and antialiased uint8 bicubic
    resize, usually faster; pixels within a level or two of PIL's) for the training images."""

    root: str = "datasets"
    preprocess: Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"] = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    batch_size: int = 1
    serial_batches: bool = False
    max_dataset_size: int | None = None
    on_bad_image: Literal["error", "skip"] = "error"
    decoder: Literal["pil", "torchvision"] = "pil"

    def validate(self, where: str) -> None:
        for key in ("load_size", "crop_size", "batch_size"):
            if getattr(self, key) < 1:
                raise UserError(f"{where}: key 'data.{key}' must be >= 1, got {getattr(self, key)}")
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and self.crop_size > self.load_size:
            raise UserError(
                f"{where}: key 'data.crop_size' ({self.crop_size}) must be <= data.load_size ({self.load_size}) "
                f"with preprocess {self.preprocess!r}"
            )
        if self.max_dataset_size is not None:
            check_value(where, "data.max_dataset_size", self.max_dataset_size, self.max_dataset_size >= 1,
                        ">= 1 or null")

    def network_sides(self) -> dict[str, int]:
        """``{key: side}`` for the image sides the networks see that the config fixes: the crop, or the
        width ``scale_width`` resizes to (heights and ``none`` follow the images)."""
        if self.preprocess in _CROPPED:
            return {"data.crop_size": self.crop_size}
        if self.preprocess == "scale_width":
            return {"data.load_size": self.load_size}
        return {}


@dataclass
class NetworkConfig:
    """The official ``--netG``/``--netD``/``--ngf``/``--ndf``/``--n_layers_D``/``--norm``/``--no_dropout``/
    ``--init_type``/``--init_gain``/``--input_nc``/``--output_nc`` options."""

    netG: Literal["resnet_9blocks", "resnet_6blocks", "unet_128", "unet_256"] = "resnet_9blocks"
    netD: Literal["basic", "n_layers", "pixel"] = "basic"
    ngf: int = 64
    ndf: int = 64
    n_layers_D: int = 3
    norm: Literal["instance", "batch", "none"] = "instance"
    dropout: bool = False
    init_type: Literal["normal", "xavier", "kaiming", "orthogonal"] = "normal"
    init_gain: float = 0.02
    input_nc: int = 3
    output_nc: int = 3
    # Not an official option: G paints a colour image and a mask (GANimation); output = mask x colour +
    # (1 - mask) x input, so the input comes back exactly where the mask is 0. Needs input_nc == output_nc.
    attention_mask: bool = False
    # Not official either: the mask through a guided filter with the input as guide (radius in pixels, 0 = off;
    # eps in squared units of the [-1, 1] image), so its borders can sit on the input's edges.
    mask_guide_radius: int = 0
    mask_guide_eps: float = 0.01
    # The same filter on G's painted colour too (needs the radius), so its edges follow the input's as well.
    mask_guide_colour: bool = False
    # At inference, compose with the mask thresholded at 0.5, so no pixel is a blend of the old and the painted
    # image; training is unchanged. Needs the mask.
    mask_hard: bool = False
    # With mask_hard: the thresholded mask through a guided filter of this radius (eps mask_guide_eps) with the
    # input as guide, thresholded again, so its border moves onto the input's edges (0 = off).
    mask_snap_radius: int = 0
    # With the snap: the pixels it opens show the mean painted colour of their neighbours the threshold opened,
    # not what G painted there to be hidden.
    mask_snap_fill: bool = False

    def validate(self, where: str) -> None:
        if self.attention_mask and self.input_nc != self.output_nc:
            raise UserError(f"{where}: key 'network.attention_mask' needs network.input_nc == network.output_nc "
                            f"(the mask blends output and input), got {self.input_nc} and {self.output_nc}")
        for key in ("ngf", "ndf", "n_layers_D", "input_nc", "output_nc"):
            if getattr(self, key) < 1:
                raise UserError(f"{where}: key 'network.{key}' must be >= 1, got {getattr(self, key)}")
        for key in ("input_nc", "output_nc"):
            value = getattr(self, key)
            check_value(where, f"network.{key}", value, value in CHANNELS, "1 (grayscale) or 3 (RGB)")
        check_value(where, "network.init_gain", self.init_gain, self.init_gain > 0, "> 0")
        check_mask_guide(where, self.mask_guide_radius, self.mask_guide_eps, self.attention_mask,
                         self.mask_guide_colour)
        check_value(where, "network.mask_hard", self.mask_hard, not self.mask_hard or self.attention_mask,
                    "false without network.attention_mask: true (it thresholds the attention mask)")
        check_mask_snap(where, self.mask_snap_radius, self.mask_hard, self.mask_snap_fill)

    def check_side(self, where: str, key: str, side: int, section: str = "network") -> None:
        """UserError unless the generators and discriminators train on images of ``side`` pixels (``key``
        names the setting that gives the side, ``section`` this network section in the config)."""
        multiple, minimum = generator_input_sides(self.netG, self.norm)
        if side % multiple or side < minimum:
            first = -(-minimum // multiple) * multiple
            raise UserError(f"{where}: key '{key}' ({side}) does not fit {section}.netG {self.netG} "
                            f"(norm {self.norm}): it needs a multiple of {multiple} from {first} on "
                            f"(e.g. {first}, {first + multiple})")
        smallest = discriminator_min_side(self.netD, self.n_layers_D)
        if side < smallest:
            raise UserError(f"{where}: key '{key}' ({side}) is too small for {section}.netD {self.netD}"
                            + (f" with n_layers_D {self.n_layers_D}" if self.netD == "n_layers" else "")
                            + f": it needs at least {smallest}")


@dataclass
class OptimConfig:
    """LR policy, stepped once per epoch: ``linear`` keeps lr for n_epochs then decays linearly towards 0
    over n_epochs_decay (official formula); ``step`` multiplies by 0.1 every lr_decay_epochs; ``cosine``
    keeps lr for n_epochs then follows a half cosine to 0 over n_epochs_decay; ``constant``."""

    lr: float = 0.0002
    beta1: float = 0.5
    beta2: float = 0.999
    lr_policy: Literal["linear", "step", "cosine", "constant"] = "linear"
    n_epochs: int = 100
    n_epochs_decay: int = 100
    lr_decay_epochs: int = 50

    def validate(self, where: str) -> None:
        check_adam(where, "optim", {"lr": self.lr}, (self.beta1, self.beta2))
        if self.n_epochs < 0 or self.n_epochs_decay < 0 or self.n_epochs + self.n_epochs_decay < 1:
            raise UserError(f"{where}: keys 'optim.n_epochs' + 'optim.n_epochs_decay' must be >= 1 (each >= 0)")
        if self.lr_decay_epochs < 1:
            raise UserError(f"{where}: key 'optim.lr_decay_epochs' must be >= 1")
