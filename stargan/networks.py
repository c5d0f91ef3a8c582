"""StarGAN v1 generator and discriminator, laid out so the official ``state_dict`` keys load unchanged.

The attribute names (``main``, ``conv1``, ``conv2``) and the ``nn.Sequential`` indices mirror the official
implementation, so an official checkpoint only needs its stale InstanceNorm buffers dropped (see
:mod:`stargan.import_official`). Weights keep PyTorch's default initialisation, as the official code does.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from common.layers.conv import Conv2d
from common.layers.fourier_texture import FourierTexture
from common.layers.masked_output import AttentionMask
from common.networks.factory import count_parameters  # noqa: F401  (re-exported)

# G halves the resolution twice and doubles it back: input sides must be multiples of this.
DOWNSAMPLING = 4
UPSAMPLING = ("transposed", "nearest")


def _instance_norm(channels: int) -> nn.InstanceNorm2d:
    # No running stats on purpose: the official nets carry them but never switch to eval(), so every output
    # they produce uses instance statistics. Tracking them here would make eval() silently change results.
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)


class ResidualBlock(nn.Module):
    """``x + [Conv3, IN, ReLU, Conv3, IN](x)``; the inner ``main`` indices {0, 1, 3, 4} match the official keys."""

    def __init__(self, channels: int) -> None:
        """
        Args:
            channels: input and output channel count (the block preserves shape).
        """
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False),
            _instance_norm(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False),
            _instance_norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)


class Generator(nn.Module):
    """StarGAN generator: image + target labels -> translated image in [-1, 1].

    Layout: Conv7 (3 + c_dim -> conv_dim), 2 stride-2 down convs, ``repeat_num`` residual blocks, 2 stride-2
    transposed convs, Conv7 to RGB, Tanh; every conv is bias-free and followed (except the last) by
    InstanceNorm + ReLU. Input H and W must be divisible by 4.

    Deviation from the official code: InstanceNorm uses ``track_running_stats=False``. The official layers
    keep running-stat buffers, but its training and test code never call ``eval()``, so the official outputs
    are computed with per-instance statistics; ours always are, in train and eval mode alike. Our
    ``state_dict`` therefore has no ``running_mean``/``running_var``/``num_batches_tracked`` entries, and
    :func:`stargan.import_official.convert_official_generator` drops them from official files.
    """

    def __init__(self, c_dim: int = 5, conv_dim: int = 64, repeat_num: int = 6, attention_mask: bool = False,
                 upsample: str = "transposed", skip: bool = False, mask_guide_radius: int = 0,
                 mask_guide_eps: float = 0.01, mask_guide_colour: bool = False, texture_features: int = 0,
                 texture_floor: float = 0.0, texture_after_guide: bool = False, mask_hard: bool = False,
                 mask_snap_radius: int = 0, texture_periods: tuple[float, float] = (3.0, 32.0),
                 texture_spread: str = "random", mask_snap_fill: bool = False) -> None:
        """
        Args:
            c_dim: length of the label vector (for a multi-dataset model: all blocks plus the mask).
            conv_dim: channels of the first conv; the bottleneck has ``4 * conv_dim``.
            repeat_num: number of residual blocks in the bottleneck.
            attention_mask: paint a fourth channel, the mask of
                :class:`~common.layers.masked_output.AttentionMask` (GANimation): output = mask x colour +
                (1 - mask) x input. Off is the official network.
            upsample: ``transposed`` (official: stride-2 transposed 4x4 convs) or ``nearest`` (nearest-neighbour
                upsampling then a 3x3 conv, Odena et al. 2016), which cannot paint the transposed convs'
                2-pixel checkerboard.
            skip: also feed the first conv's full-resolution features to the last conv (a U-Net-style long
                skip, ``conv_dim`` more input channels there), so the output and its mask can follow the input's
                edges instead of rebuilding them from the quarter-resolution bottleneck. Off is the official
                network.
            mask_guide_radius: with ``attention_mask``, > 0 passes the mask through a guided filter of this
                radius with the input as the guide (:mod:`common.layers.guided_filter`), so its borders can sit
                on the input's edges; 0 (official) leaves it as painted. Parameter-free.
            mask_guide_eps: the guided filter's regulariser, in squared units of the [-1, 1] image.
            mask_guide_colour: with ``mask_guide_radius``, filter the painted colour the same way (one filter
                call for both), so its edges sit on the input's too. Parameter-free.
            texture_features: number of modulated Fourier features
                (:class:`~common.layers.fourier_texture.FourierTexture`: plane waves with learned frequencies,
                scaled by amplitude maps computed from the last features), mixed by a 7x7 conv into the painted
                colour channels before the tanh (after the guided filter with ``texture_after_guide``), so G can
                paint periodic texture (stripes) finer than its
                bottleneck grid. They never reach the attention mask: the texture changes what is painted, not
                where. That conv starts at zero, so a new G paints what it would without them. 0 is the official
                network.
            texture_floor: with ``texture_features`` and ``attention_mask``, in training the texture (the waves,
                their amplitudes and the mixing conv, not the rest of G) learns as if the mask were at least this
                open everywhere: where the mask is closed the picture does not show the colour, so the waves
                would otherwise learn from the few pixels an edit opens. The output is unchanged (the term
                added is ``x - x.detach()``, exactly 0); 0 turns it off.
            texture_after_guide: with ``texture_features`` and ``mask_guide_colour``, add the mixed waves to
                the colour after the guided filter (then clamp to [-1, 1]) instead of before the tanh: the
                filtered colour keeps the input's outlines but is flat on a flat object, so waves filtered with
                it could not draw stripes there. Same parameters either way.
            mask_hard: with ``attention_mask``, in eval mode (inference) compose with the mask thresholded at
                0.5, so every pixel is either the input or the painted colour; training is unchanged
                (:class:`~common.layers.masked_output.AttentionMask`). Parameter-free.
            mask_snap_radius: with ``mask_hard``, > 0 passes the thresholded mask through a guided filter of
                this radius (regulariser ``mask_guide_eps``) with the input as the guide and thresholds it again,
                so the border of what is kept moves onto the input's edges. Inference only; parameter-free.
            mask_snap_fill: with ``mask_snap_radius``, the pixels the snap opens show the mean painted colour of
                their neighbours the threshold opened instead of what G painted there to be hidden
                (:func:`~common.layers.masked_output.fill_opened`). Inference only; parameter-free.
            texture_periods: ``(shortest, longest)`` initial period of the waves in pixels (``periods`` of
                :class:`~common.layers.fourier_texture.FourierTexture`).
            texture_spread: ``random`` or ``even``, how the waves' initial frequencies are spread over that range
                (``spread`` of :class:`~common.layers.fourier_texture.FourierTexture`).
        """
        super().__init__()
        if upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {UPSAMPLING}, got {upsample!r}")
        floor_ok = bool(texture_features and attention_mask and not mask_guide_colour)
        if not 0.0 <= texture_floor <= 1.0 or (texture_floor and not floor_ok):
            raise ValueError(f"Generator: texture_floor must be in [0, 1] and needs texture_features and "
                             f"attention_mask without mask_guide_colour; got {texture_floor}")
        if texture_after_guide and not (texture_features and attention_mask and mask_guide_colour):
            raise ValueError("Generator: texture_after_guide needs texture_features > 0 and attention_mask with "
                             "mask_guide_colour")
        if mask_hard and not attention_mask:
            raise ValueError("Generator: mask_hard needs attention_mask")
        if mask_snap_radius < 0 or (mask_snap_radius and not mask_hard):
            raise ValueError(f"Generator: mask_snap_radius must be >= 0 and needs mask_hard, got {mask_snap_radius}")
        if mask_snap_fill and not mask_snap_radius:
            raise ValueError("Generator: mask_snap_fill needs mask_snap_radius > 0")
        if c_dim < 1 or conv_dim < 1 or repeat_num < 0 or texture_features < 0:
            raise ValueError(f"Generator needs c_dim >= 1, conv_dim >= 1, repeat_num >= 0, texture_features >= 0; "
                             f"got c_dim={c_dim}, conv_dim={conv_dim}, repeat_num={repeat_num}, "
                             f"texture_features={texture_features}")
        self.c_dim = c_dim
        self.conv_dim = conv_dim
        self.repeat_num = repeat_num

        layers: list[nn.Module] = [
            nn.Conv2d(3 + c_dim, conv_dim, kernel_size=7, stride=1, padding=3, bias=False),
            _instance_norm(conv_dim),
            nn.ReLU(inplace=True),
        ]
        dim = conv_dim
        for _ in range(2):
            layers += [
                nn.Conv2d(dim, dim * 2, kernel_size=4, stride=2, padding=1, bias=False),
                _instance_norm(dim * 2),
                nn.ReLU(inplace=True),
            ]
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(repeat_num)]
        for _ in range(2):
            if upsample == "nearest":
                layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                           nn.Conv2d(dim, dim // 2, kernel_size=3, stride=1, padding=1, bias=False)]
            else:
                layers += [nn.ConvTranspose2d(dim, dim // 2, kernel_size=4, stride=2, padding=1, bias=False)]
            layers += [
                _instance_norm(dim // 2),
                nn.ReLU(inplace=True),
            ]
            dim //= 2
        painted = 4 if attention_mask else 3
        last_in = dim + conv_dim if skip else dim
        layers += [nn.Conv2d(last_in, painted, kernel_size=7, stride=1, padding=3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.attention = AttentionMask(mask_guide_radius, mask_guide_eps, mask_guide_colour, mask_hard,
                                       mask_snap_radius, mask_snap_fill) if attention_mask else None
        self.skip = skip
        self.texture = (FourierTexture(last_in, texture_features, tuple(texture_periods), texture_spread)
                        if texture_features else None)
        self.texture_to_colour = None
        if texture_features:
            self.texture_to_colour = nn.Conv2d(texture_features, 3, kernel_size=7, stride=1, padding=3, bias=False)
            nn.init.zeros_(self.texture_to_colour.weight)
        self.texture_floor = texture_floor
        self.texture_after_guide = texture_after_guide

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """Translate ``x`` (N, 3, H, W) towards labels ``c`` (N, c_dim); returns (N, 3, H, W) in [-1, 1]."""
        if c.dim() != 2 or c.shape[0] != x.shape[0] or c.shape[1] != self.c_dim:
            raise ValueError(f"labels must have shape ({x.shape[0]}, {self.c_dim}); got {tuple(c.shape)}")
        # Each label becomes a constant feature map so every spatial position sees the target domain.
        c = c.to(dtype=x.dtype).view(c.shape[0], c.shape[1], 1, 1).expand(-1, -1, x.shape[2], x.shape[3])
        h = torch.cat([x, c], dim=1)
        if not self.skip and self.texture is None:
            h = self.main(h)  # the official path: one call, so hooks on `main` see all of it
        else:
            # The first conv block (conv, IN, ReLU) is main[:3]; the last conv and Tanh are main[-2:].
            if self.skip:
                first = self.main[:3](h)
                h = torch.cat([self.main[3:-2](first), first], dim=1)
            else:
                h = self.main[:-2](h)
            painted = self.main[-2](h)
            if self.texture is not None:
                texture = self.texture_to_colour(self.texture(h))
                floor_terms = (painted[:, :3], h)
                if not self.texture_after_guide:
                    painted = torch.cat([painted[:, :3] + texture, painted[:, 3:]], dim=1)
            h = self.main[-1](painted)
        if self.attention is None:
            return h
        out = self.attention(h, x, texture if self.texture_after_guide else None)
        if self.texture_floor and self.training and torch.is_grad_enabled():
            out = out + self._texture_floor_term(*floor_terms)
        return out

    def _texture_floor_term(self, colour_logits: Tensor, features: Tensor) -> Tensor:
        """Exactly 0, with the gradient of ``max(floor - mask, 0) x colour`` reaching only the texture's own
        parameters: the colour again, with G's body detached, as it would be painted with the texture."""
        colour = torch.tanh(colour_logits.detach() + self.texture_to_colour(self.texture(features.detach())))
        lift = (self.texture_floor - self.attention.last_mask).clamp(min=0).detach()
        return lift * (colour - colour.detach())


def valid_image_sizes(repeat_num: int, up_to: int = 512) -> list[int]:
    """Image sizes a :class:`Discriminator` with ``repeat_num`` stride-2 layers accepts, up to ``up_to``."""
    step = 2 ** repeat_num
    return list(range(step, up_to + 1, step))


class Discriminator(nn.Module):
    """StarGAN discriminator (PatchGAN critic + domain classifier), no normalisation.

    ``main``: ``repeat_num`` x [Conv4 s2 p1 (with bias), LeakyReLU(0.01)], doubling width from ``conv_dim``.
    ``conv1`` (source head): Conv3 s1 p1 to 1 channel, giving an (H / 2**repeat_num)^2 realness map.
    ``conv2`` (class head): a conv whose kernel covers the whole remaining map, giving ``c_dim`` logits.
    Both heads are bias-free, as in the official model.
    """

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6) -> None:
        """
        Args:
            image_size: square training size; must be a positive multiple of ``2**repeat_num`` because the
                class head's kernel is ``image_size // 2**repeat_num`` and must cover the final map exactly.
            conv_dim: channels of the first conv; the last has ``conv_dim * 2**(repeat_num - 1)``.
            c_dim: number of classification logits (for a multi-dataset model: all label blocks, no mask).
            repeat_num: number of stride-2 conv layers.
        """
        super().__init__()
        if c_dim < 1 or conv_dim < 1 or repeat_num < 1:
            raise ValueError(f"Discriminator needs c_dim >= 1, conv_dim >= 1, repeat_num >= 1; got "
                             f"c_dim={c_dim}, conv_dim={conv_dim}, repeat_num={repeat_num}")
        step = 2 ** repeat_num
        if image_size < step or image_size % step:
            examples = ", ".join(str(s) for s in valid_image_sizes(repeat_num, max(4 * step, 256))[:6])
            raise ValueError(f"Discriminator image_size={image_size} is not a positive multiple of "
                             f"2**repeat_num = {step} (repeat_num={repeat_num}); valid sizes: {examples}, ...")
        self.image_size = image_size
        self.conv_dim = conv_dim
        self.c_dim = c_dim
        self.repeat_num = repeat_num

        layers: list[nn.Module] = []
        in_dim, dim = 3, conv_dim
        for _ in range(repeat_num):
            layers += [Conv2d(in_dim, dim, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            in_dim, dim = dim, dim * 2
        self.main = nn.Sequential(*layers)
        kernel = image_size // step
        self.conv1 = Conv2d(in_dim, 1, kernel_size=3, stride=1, padding=1, bias=False)
        self.conv2 = Conv2d(in_dim, c_dim, kernel_size=kernel, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(out_src (N, 1, H/2**r, W/2**r), out_cls (N, c_dim))`` for images ``x`` (N, 3, H, W)."""
        h = self.main(x)
        out_src = self.conv1(h)
        out_cls = self.conv2(h)
        return out_src, out_cls.view(out_cls.shape[0], out_cls.shape[1])
