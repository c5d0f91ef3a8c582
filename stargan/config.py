"""StarGAN config. Defaults are the official yunjey/stargan CelebA training settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.config import check_value
from common.errors import UserError
from common.spectrum import band_fits
from common.train_config import (
    LogConfig,
    TrainConfig,
    check_adam,
    check_mask_guide,
    check_mask_penalties,
    check_mask_snap,
    check_non_negative,
)
from stargan.networks import DOWNSAMPLING


@dataclass
class DatasetConfig:
    """One labelled dataset. Several entries in ``data.datasets`` train one model with the mask vector.

    format: ``celeba`` (image_dir + attr_path = list_attr_celeba.txt, columns chosen by selected_attrs),
    ``imagefolder`` (image_dir has one subfolder per class = one exclusive group named ``name``), or ``csv``
    (image_dir + attr_path = CSV with header ``filename,attr1,...``; selected_attrs empty = every column).
    No attribute name is built in:
    configs/stargan/celeba.yaml lists the official selection.
    exclusive: groups of selected attributes of which exactly one is set (e.g. hair colours); other
    attributes are binary. crop_size: centre crop before resizing (null = the shorter side).
    exclusive_loss: how D's classifier learns an exclusive group: ``bce`` per member (the official CelebA
    loss, also right for rows with no member set) or ``ce``; null = the format's default (celeba: bce,
    imagefolder/csv: ce).
    test_count (celeba) / test_fraction (imagefolder, csv): the fixed seeded test split.
    partition_path (celeba): a ``list_eval_partition.txt`` (0 train, 1 val, 2 test) that defines the split
    instead (val is trained on, as the official code trains on all non-test rows). The official code's
    ``(i + 1) < 2000`` test keeps 1,999 test images; set test_count: 1999 to reproduce its split exactly.
    """

    name: str = "celeba"
    format: Literal["celeba", "imagefolder", "csv"] = "celeba"
    image_dir: str = "data/celeba/images"
    attr_path: str | None = "data/celeba/list_attr_celeba.txt"
    selected_attrs: list[str] = field(default_factory=list)
    exclusive: list[list[str]] = field(default_factory=list)
    exclusive_loss: Literal["bce", "ce"] | None = None
    crop_size: int | None = 178
    test_count: int = 2000
    partition_path: str | None = None
    test_fraction: float = 0.0
    split_seed: int = 1234

    def validate(self, where: str) -> None:
        if self.format in ("celeba", "csv") and not self.attr_path:
            raise UserError(f"{where}: dataset '{self.name}': key 'attr_path' is required for format {self.format!r}")
        if self.format == "celeba" and not self.selected_attrs:
            raise UserError(f"{where}: dataset '{self.name}': key 'selected_attrs' must list at least one attribute")
        if not 0.0 <= self.test_fraction < 1.0:
            raise UserError(f"{where}: dataset '{self.name}': key 'test_fraction' must be in [0, 1)")
        if self.crop_size is not None and self.crop_size < 1:
            raise UserError(f"{where}: dataset '{self.name}': key 'crop_size' must be >= 1 or null, "
                            f"got {self.crop_size}")
        if self.test_count < 0:
            raise UserError(f"{where}: dataset '{self.name}': key 'test_count' must be >= 0, got {self.test_count}")


@dataclass
class DataConfig:
    """decoder: how training and evaluation read the images of every dataset: ``pil`` (the official
    pipeline) or ``torchvision`` (torchvision.io's decoders and its antialiased uint8 resize, usually faster;
    pixels within a level or two of PIL's, identical when nothing is resized, e.g. on a copy written by
    ``stargan resize-dataset`` read with crop_size null)."""

    datasets: list[DatasetConfig] = field(default_factory=lambda: [DatasetConfig()])
    image_size: int = 128
    batch_size: int = 16
    flip: bool = True
    decoder: Literal["pil", "torchvision"] = "pil"

    def validate(self, where: str) -> None:
        if not self.datasets:
            raise UserError(f"{where}: key 'data.datasets' must list at least one dataset")
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise UserError(f"{where}: key 'data.datasets' has duplicate names: {names}")
        if self.image_size < 8 or self.batch_size < 1:
            raise UserError(f"{where}: keys 'data.image_size' (>= 8) / 'data.batch_size' (>= 1) out of range")


@dataclass
class NetworkConfig:
    """attention_mask: G paints a colour image and a mask, output = mask x colour + (1 - mask) x input
    (GANimation, Pumarola et al. 2018), so an edit can leave the rest of the image exactly as it was; off is the
    official generator. g_upsample: ``transposed`` (official) or ``nearest`` (upsampling then a 3x3 conv, which
    cannot paint the transposed convs' 2-pixel checkerboard; docs/fidelity.md). g_skip: a long skip from G's first
    conv block to its last conv (U-Net style; ours, docs/fidelity.md); off is the official generator.
    mask_guide_radius: > 0 passes the attention mask through a guided filter of that radius with the input image as
    the guide (He et al. 2010; trained end to end as Wu et al. 2018), so the mask's borders can sit on the input's
    edges; mask_guide_eps is the filter's regulariser (squared units of the [-1, 1] image). 0 = off.
    mask_guide_colour: the same filter also refines G's painted colour (Wu et al. 2018's deep guided filter), so a
    region the mask covers but the edit leaves alone keeps its outline; needs mask_guide_radius.
    texture_features: number of modulated Fourier features (plane waves with learned frequencies, scaled by
    amplitude maps G computes) mixed into G's painted colour, never its mask, so it can paint periodic texture
    (stripes) finer than its bottleneck grid (common/layers/fourier_texture.py; docs/fidelity.md); 0 is the
    official generator. texture_floor: in training the texture (only its own weights) learns as if the attention
    mask were at least this open everywhere, so the waves learn from the whole picture, not only the pixels an edit
    opens; the output is unchanged. Needs texture_features and attention_mask, not mask_guide_colour; 0 is off
    (docs/fidelity.md). texture_after_guide: with texture_features and mask_guide_colour, the waves are added to
    the colour after the guided filter (which is flat on a flat object, so it cannot hold stripes) instead of
    before it; off by default (ours, docs/fidelity.md). mask_hard: at inference (G in eval mode: translate, evaluate,
    export, the editor, the training's sample grids) the output is composed with the attention mask thresholded at
    0.5, so no pixel shows a blend of the old and the painted image; training is unchanged. Needs attention_mask;
    off by default (ours, docs/fidelity.md). mask_snap_radius: with mask_hard, > 0 passes the thresholded mask through
    a guided filter of that radius (regulariser mask_guide_eps) with the input as the guide and thresholds it again,
    so the border between what is kept and what is painted moves onto the input's edges (inference only; 0 = off;
    ours, docs/fidelity.md). mask_snap_fill: with mask_snap_radius, the pixels the snap opens show the mean painted
    colour of their neighbours (within the snap radius, twice it where none) that the threshold opened, not what G
    painted there to be hidden (a blob of the kept object in a background flip: a rim around it); inference only,
    off by default (ours, docs/fidelity.md). texture_periods: [shortest, longest] initial period of the waves in
    pixels (> 2; the default [3, 32] as measured since the waves came). texture_spread: ``random`` (each wave's
    direction and period drawn independently, the default) or ``even`` (a shifted Fibonacci lattice over direction
    and log-period, so no texture frequency in the range starts far from every wave; the frequencies move little
    in training)."""

    g_conv_dim: int = 64
    d_conv_dim: int = 64
    g_repeat_num: int = 6
    d_repeat_num: int = 6
    attention_mask: bool = False
    g_upsample: Literal["transposed", "nearest"] = "transposed"
    g_skip: bool = False
    mask_guide_radius: int = 0
    mask_guide_eps: float = 0.01
    mask_guide_colour: bool = False
    texture_features: int = 0
    texture_floor: float = 0.0
    texture_after_guide: bool = False
    mask_hard: bool = False
    mask_snap_radius: int = 0
    mask_snap_fill: bool = False
    texture_periods: tuple[float, float] = (3.0, 32.0)
    texture_spread: Literal["random", "even"] = "random"

    def validate(self, where: str) -> None:
        for key, minimum in (("g_conv_dim", 1), ("d_conv_dim", 1), ("g_repeat_num", 0), ("d_repeat_num", 1),
                             ("texture_features", 0)):
            value = getattr(self, key)
            check_value(where, f"network.{key}", value, value >= minimum, f">= {minimum}")
        check_mask_guide(where, self.mask_guide_radius, self.mask_guide_eps, self.attention_mask,
                         self.mask_guide_colour)
        floor = self.texture_floor
        check_value(where, "network.texture_floor", floor, 0 <= floor <= 1, "in [0, 1]")
        check_value(where, "network.texture_floor", floor, not floor or (
            self.texture_features > 0 and self.attention_mask and not self.mask_guide_colour),
            "0 unless texture_features > 0 and attention_mask is on without mask_guide_colour")
        after = self.texture_after_guide
        check_value(where, "network.texture_after_guide", after, not after or (
            self.texture_features > 0 and self.attention_mask and self.mask_guide_colour),
            "false unless texture_features > 0 and attention_mask is on with mask_guide_colour")
        check_value(where, "network.mask_hard", self.mask_hard, not self.mask_hard or self.attention_mask,
                    "false without network.attention_mask: true (it thresholds the attention mask)")
        check_mask_snap(where, self.mask_snap_radius, self.mask_hard, self.mask_snap_fill)
        shortest, longest = self.texture_periods
        check_value(where, "network.texture_periods", list(self.texture_periods), 2 < shortest <= longest,
                    "[shortest, longest] in pixels with 2 < shortest <= longest")
        for key, default in (("texture_periods", [3.0, 32.0]), ("texture_spread", "random")):
            value = getattr(self, key)
            value = list(value) if isinstance(value, tuple) else value
            check_value(where, f"network.{key}", value, self.texture_features > 0 or value == default,
                        f"{default!r} (the default) unless texture_features > 0")


@dataclass
class LossConfig:
    """gan_mode: ``wgangp`` (official) or ``lsgan``. target: ``shuffle`` = the batch's own labels in random
    order (official); ``random`` = uniformly drawn valid labels (exclusive groups respected); ``single`` = each
    image's own labels with one attribute group changed (the edits evaluation asks for; ours,
    docs/fidelity.md). target_single_share: the probability that a row's target is drawn as with ``single``
    instead of by the ``target`` rule (each row on its own, so this is the expected share of a batch; 0 = off,
    the rule alone; ours, docs/fidelity.md): an edit of one group alone, rare under ``shuffle``, becomes common
    while the rest stay whole label vectors.

    Not in the official code (0 = off): lambda_id, an identity term ``L1(G(x, c_org), x)`` (translating to the
    labels an image already has should change nothing); lambda_mask and lambda_mask_tv, GANimation's
    penalties on the attention mask (``network.attention_mask``): its mean (edits stay local) and its total
    variation (the mask stays smooth), on the masks of the translation and of the reconstruction;
    lambda_mask_binary, the mean of ``4 m (1 - m)`` on the same masks (each mask pixel pushed to 0 or 1 rather
    than a blend; ours, docs/fidelity.md); lambda_mask_idle, the mean of ``-log(1 - 0.99 m)`` on the same masks weighted
    by ``exp(-(d / mask_idle_tol)^2)``, d the mean absolute difference of G's painted colour and its input there (the
    mask closed where opening it changes nothing: a region G repaints as it was; ours, docs/fidelity.md);
    lambda_mask_edge_tv, the same masks' absolute neighbour differences weighted by ``exp(-|dI| / mask_edge_sigma)``,
    dI the input's (an edge-aware total variation: the mask's border drawn onto the input's edges instead of a
    soft rim beside them; ours, docs/fidelity.md); lambda_mask_colour, the mean of ``(1 - m) d`` on the same masks, m
    detached (G's painted colour pulled to its input where the mask is closed, so a mask not quite closed, or
    thresholded open, shows the input rather than G's free colour; ours, docs/fidelity.md); lambda_cls_fake, D's
    classification loss on the translations with the labels they were translated from (ours, docs/fidelity.md);
    lambda_spectrum, a label-conditional match of the texture spectrum: for each attribute and value, the mean
    texture spectrum (per image its grey level's power over periods 3 px..a quarter of the side as shares of its
    own total, high-passed, phase-free, neighbouring bins averaged; images >= 12 px) of the translations that
    changed to that value against that of the batch's real images that have it, for the attributes named in
    spectrum_attrs (textures, e.g. ``[Striped]``; needed when lambda_spectrum > 0)
    (:func:`common.losses.spectrum_match_loss`; ours, docs/fidelity.md)."""

    gan_mode: Literal["wgangp", "lsgan"] = "wgangp"
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    target: Literal["shuffle", "random", "single"] = "shuffle"
    target_single_share: float = 0.0
    lambda_id: float = 0.0
    lambda_mask: float = 0.0
    lambda_mask_tv: float = 0.0
    lambda_mask_binary: float = 0.0
    lambda_mask_idle: float = 0.0
    mask_idle_tol: float = 0.2
    lambda_mask_edge_tv: float = 0.0
    mask_edge_sigma: float = 0.1
    lambda_mask_colour: float = 0.0
    lambda_cls_fake: float = 0.0
    lambda_spectrum: float = 0.0
    spectrum_attrs: list[str] = field(default_factory=list)

    def validate(self, where: str) -> None:
        check_non_negative(where, "loss", self, ("lambda_cls", "lambda_rec", "lambda_gp", "lambda_id", "lambda_mask",
                                                 "lambda_mask_tv", "lambda_mask_binary", "lambda_mask_idle",
                                                 "lambda_mask_edge_tv", "lambda_mask_colour", "lambda_cls_fake",
                                                 "lambda_spectrum"))
        check_value(where, "loss.spectrum_attrs", self.spectrum_attrs,
                    bool(self.spectrum_attrs) or not self.lambda_spectrum,
                    "the texture attributes to match (e.g. [Striped]) when loss.lambda_spectrum > 0")
        share = self.target_single_share
        check_value(where, "loss.target_single_share", share, 0 <= share <= 1, "in [0, 1]")
        check_value(where, "loss.target_single_share", share, not share or self.target != "single",
                    "0 when loss.target is single (every row is a one-group edit already)")


@dataclass
class OptimConfig:
    """One iteration = one D step; G steps every n_critic iterations. LR is linear to 0 over the last
    num_iters_decay iterations (the paper's schedule; the official code's arithmetic barely decays)."""

    g_lr: float = 0.0001
    d_lr: float = 0.0001
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 5
    num_iters: int = 200000
    num_iters_decay: int = 100000

    def validate(self, where: str) -> None:
        check_adam(where, "optim", {"g_lr": self.g_lr, "d_lr": self.d_lr}, (self.beta1, self.beta2))
        if self.num_iters < 1 or not 0 <= self.num_iters_decay <= self.num_iters:
            raise UserError(f"{where}: keys 'optim.num_iters' (>= 1) and 'optim.num_iters_decay' "
                            f"(0..num_iters) out of range: {self.num_iters}, {self.num_iters_decay}")
        if self.n_critic < 1:
            raise UserError(f"{where}: key 'optim.n_critic' must be >= 1, got {self.n_critic}")


@dataclass
class StarGANConfig(TrainConfig):
    model: Literal["stargan"] = "stargan"
    name: str = "stargan"
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=lambda: LogConfig(every_steps=10, image_every_steps=1000,
                                                             save_every_steps=10000, keep_last=3))

    def validate(self, where: str) -> None:
        super().validate(where)
        check_mask_penalties(where, self.loss, self.network.attention_mask)
        size, depth = self.data.image_size, self.network.d_repeat_num
        if self.loss.lambda_spectrum and not band_fits(size):
            raise UserError(f"{where}: key 'loss.lambda_spectrum' needs data.image_size >= 12 (the texture band is "
                            f"periods of 3 px up to a quarter of the side), got {size}")
        if size % DOWNSAMPLING:
            raise UserError(f"{where}: key 'data.image_size' ({size}) must be a multiple of {DOWNSAMPLING}: the "
                            f"generator halves the image twice and doubles it back")
        if size % (2 ** depth):
            raise UserError(
                f"{where}: key 'data.image_size' ({size}) must be divisible by 2**network.d_repeat_num "
                f"({2 ** depth}): the discriminator halves the image {depth} times"
            )
