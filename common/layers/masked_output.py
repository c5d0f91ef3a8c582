"""Attention-mask output (GANimation, Pumarola et al., ECCV 2018): the generator paints a colour image and a
mask, and the result keeps the input wherever the mask is 0::

    output = mask * colour + (1 - mask) * input

An edit that should change one object then has an easy way to leave everything else exactly as it was, and
the mask's penalties (small, smooth) push it to. Any generator whose last layer is ``tanh`` takes it: build
it with one more output channel and pass its output through :class:`AttentionMask`; the extra channel's
``tanh`` value ``t`` becomes the mask ``(t + 1) / 2``, i.e. ``sigmoid(2 z)`` of the pre-activation ``z``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from common.layers.guided_filter import box_mean, guided_filter

# torch.export (ONNX) warns about a tensor attribute assigned during export; older torch has no such check.
_exporting = getattr(torch.compiler, "is_exporting", lambda: False)


def compose(colour: Tensor, mask: Tensor, image: Tensor) -> Tensor:
    """``mask * colour + (1 - mask) * image``; ``mask`` is (N, 1, H, W) in [0, 1]. A mask of 0 returns
    ``image`` exactly (``image + 0``), a mask of 1 returns ``colour`` up to float rounding."""
    return torch.lerp(image, colour, mask)


class AttentionMask(nn.Module):
    """The output head of a generator built with one more output channel than the image has: splits its
    ``tanh`` output into colour and mask and composes them with the input. Parameter-free, so a generator that
    holds one keeps its state_dict keys. :attr:`last_mask` is the mask of the last call, for the penalties
    (:func:`mask_penalties`), and :attr:`last_change` how far its painted colour was from the input there
    (with the colour's graph, for :func:`mask_colour_penalty`; :func:`mask_idle_penalty` detaches it)."""

    def __init__(self, guide_radius: int = 0, guide_eps: float = 0.01, guide_colour: bool = False,
                 hard: bool = False, snap_radius: int = 0, snap_fill: bool = False) -> None:
        """``guide_radius`` > 0 passes the mask through a guided filter (:mod:`common.layers.guided_filter`)
        with the input image as the guide, so its borders can sit on the input's edges; 0 is GANimation's mask.
        ``guide_eps`` is the filter's regulariser, in squared units of the [-1, 1] image. ``guide_colour`` (needs
        a radius) filters the painted colour the same way, as Wu et al.'s deep guided filter refines a
        low-resolution output on the full-resolution input: its edges sit on the input's and within each window
        it is a colour transform of the input, so a region the mask covers but the edit leaves alone keeps its
        outline instead of the generator's blurred redrawing of it. ``hard``: in eval mode (inference) compose
        with the mask thresholded at 0.5, so each pixel is either the input or the painted colour; a mask that
        settles part-way (0.6-0.7 on an object's outermost pixels, 0.88 over a flipped background) otherwise
        shows a share of the old image there. Training composes with the soft mask: thresholded in training too
        (its gradient passed straight through) the mask spread over the whole image (docs/fidelity.md).
        ``snap_radius`` > 0 (needs ``hard``): the thresholded mask is snapped to the input's edges
        (:func:`snap_to_edges`), so where the threshold cut a rounded hole around an object (one ring too wide,
        round at a triangle's tips) the hole takes the object's own outline. ``snap_fill`` (needs a snap
        radius): the pixels the snap opens show, instead of the colour G painted there, the mean painted colour of
        the pixels around them (within the snap radius, twice it where none) that the threshold itself opened
        (:func:`fill_opened`): G painted those pixels to be hidden (a blurred blob of the kept object in a
        background flip), so the snap alone shows a dark or light rim around the object. :attr:`last_mask` is the
        soft mask either way."""
        super().__init__()
        if guide_radius < 0 or guide_eps <= 0:
            raise ValueError(f"attention mask: guide_radius must be >= 0 and guide_eps > 0, got {guide_radius} "
                             f"and {guide_eps}")
        if guide_colour and not guide_radius:
            raise ValueError("attention mask: guide_colour needs guide_radius > 0 (the filter it uses)")
        if snap_radius < 0 or (snap_radius and not hard):
            raise ValueError(f"attention mask: snap_radius must be >= 0 and needs hard (it snaps the thresholded "
                             f"mask), got {snap_radius} with hard={hard}")
        self.guide_radius = guide_radius
        self.guide_eps = guide_eps
        self.guide_colour = guide_colour
        self.hard = hard
        if snap_fill and not snap_radius:
            raise ValueError("attention mask: snap_fill needs snap_radius > 0 (it fills the pixels the snap opens)")
        self.snap_radius = snap_radius
        self.snap_fill = snap_fill
        self.last_mask: Tensor | None = None
        self.last_change: Tensor | None = None

    def forward(self, raw: Tensor, image: Tensor, detail: Tensor | None = None) -> Tensor:
        """``raw``: the generator's tanh output, colour channels then the mask's; ``image``: its input.
        ``detail`` (optional, the colour's shape) is added to the colour after the filter and clamped to
        [-1, 1]: fine texture the filtered colour cannot hold (within a window it is a colour transform of the
        input, flat on a flat object)."""
        colour, mask = raw[:, :-1], (raw[:, -1:] + 1) / 2
        if colour.shape[1] != image.shape[1]:
            raise ValueError(f"attention mask: the generator paints {colour.shape[1]} channels but its input has "
                             f"{image.shape[1]}; the mask blends the two, so they must match")
        if self.guide_colour:
            # One call for colour and mask: the guide's window statistics are shared.
            both = guided_filter(image, torch.cat([colour, mask], 1), self.guide_radius, self.guide_eps)
            colour, mask = both[:, :-1].clamp(-1, 1).to(raw.dtype), both[:, -1:].clamp(0, 1).to(raw.dtype)
        elif self.guide_radius:
            mask = guided_filter(image, mask, self.guide_radius, self.guide_eps).clamp(0, 1).to(raw.dtype)
        if detail is not None:
            colour = (colour + detail).clamp(-1, 1)
        if not _exporting():  # an export traces a pure function: no state to keep for the penalties
            self.last_mask = mask
            self.last_change = (colour.float() - image.detach().float()).abs().mean(1, keepdim=True)
        if self.hard and not self.training:
            mask = (mask > 0.5).to(mask.dtype)
            if self.snap_radius:
                snapped = snap_to_edges(mask, image, self.snap_radius, self.guide_eps)
                if self.snap_fill:
                    colour = fill_opened(colour, mask, snapped, self.snap_radius)
                mask = snapped
        return compose(colour, mask, image)


def snap_to_edges(mask: Tensor, guide: Tensor, radius: int, eps: float) -> Tensor:
    """A 0/1 ``mask`` (N, 1, H, W) with its borders moved onto the edges of ``guide`` (N, 1 or 3, H, W): the mask
    through a guided filter (radius, regulariser ``eps``) with the guide, thresholded at 0.5 again. Within each
    window the filter fits the mask as a linear function of the guide's colours, so a pixel of one colour on the
    wrong side of the border takes the value of its own colour's side. Where the guide has no edge within the
    window (its variance there well below ``eps``) the filter would only average the mask, which would erase a
    painted patch smaller than the window; there the mask is kept as it was, each pixel's filtered value weighted
    by ``v / (v + eps)``, ``v`` the guide's variance in its window (mean over channels)."""
    guide, hard = guide.float(), mask.float()
    filtered = guided_filter(guide, hard, radius, eps)
    mean = box_mean(guide, radius)
    variance = (box_mean(guide * guide, radius) - mean * mean).clamp(min=0).mean(1, keepdim=True)
    edge = variance / (variance + eps)
    return (torch.lerp(hard, filtered, edge) > 0.5).to(mask.dtype)


def fill_opened(colour: Tensor, before: Tensor, after: Tensor, radius: int) -> Tensor:
    """``colour`` (N, C, H, W) with each pixel that the 0/1 mask ``after`` opens and ``before`` (both N, 1, H, W)
    did not set to the mean colour of the pixels open in ``before`` within the (2r+1)^2 window around it (a
    normalised box filter), or where that window holds none, within the (4r+1)^2 one (the snap's guided filter
    reads the mask up to 2r away, so it can open a pixel that far from any open one); such a pixel with no open
    neighbour even there, and every other pixel, keeps its colour. For :func:`snap_to_edges`' output: ``before``
    is what G's own mask showed, so the painted colour is only known to be meant for those pixels; what the snap
    adds takes their colour (the new background next to a kept object) instead of what G painted to be hidden."""
    before_f, colour_f = before.float(), colour.float()
    opened = (after > 0.5) & (before < 0.5)
    filled = colour_f
    # The wider window first, so the nearer one overwrites it wherever it has an open pixel. Window sums of a 0/1
    # mask are exact (sums of zero-padded slices), so "none open" is a weight of exactly 0.
    for r in (2 * radius, radius):
        weight = box_mean(before_f, r)
        mean = box_mean(colour_f * before_f, r) / weight.clamp(min=torch.finfo(weight.dtype).tiny)
        filled = torch.where(opened & (weight > 0), mean, filled)
    return filled.to(colour.dtype)


def heads_to_inference(module: nn.Module) -> None:
    """Put every :class:`AttentionMask` inside ``module`` in eval mode (a ``mask_hard`` head then thresholds)
    whatever mode the rest is in: pix2pix's paper-mode inference runs G in training mode for its dropout and
    batch statistics. The heads hold no parameters or statistics, so nothing else changes."""
    for sub in module.modules():
        if isinstance(sub, AttentionMask):
            sub.eval()


def mask_penalties(mask: Tensor, weight_sparsity: float, weight_smooth: float) -> tuple[Tensor, Tensor]:
    """``(sparsity, smoothness)`` penalties of a (N, 1, H, W) mask, already weighted: the mean mask value
    (GANimation's L1 attention loss, pushing edits to be local) and its total variation (squared differences
    of neighbours, as GANimation's, pushing the mask to be smooth)."""
    sparsity = mask.mean()
    tv = _mean_square(mask[:, :, 1:, :] - mask[:, :, :-1, :]) + _mean_square(mask[:, :, :, 1:] - mask[:, :, :, :-1])
    return weight_sparsity * sparsity, weight_smooth * tv


def _mean_square(diff: Tensor) -> Tensor:
    # A mask one pixel high (or wide) has no neighbours along that axis: 0, not the NaN of an empty mean, which
    # a weight of 0 would not cancel.
    return diff.pow(2).mean() if diff.numel() else diff.new_zeros(())


def mask_binary_penalty(mask: Tensor, weight: float) -> Tensor:
    """``weight * mean(4 m (1 - m))``: 1 per pixel at m = 0.5, 0 at 0 and 1. Not in GANimation: its sparsity
    term alone lets the mask settle part-way inside the edited region (measured: about 0.7), so the output is a
    blend of the old and new content; this term pushes each pixel to one side."""
    return weight * (4 * mask * (1 - mask)).mean()


def mask_idle_penalty(mask: Tensor, change: Tensor, weight: float, tol: float) -> Tensor:
    """``weight * mean(-log(1 - 0.99 m) * exp(-(change / tol)^2))``: a cross-entropy pulling the mask to 0 where
    opening it changes nothing, i.e. where the painted colour is within about ``tol`` of the input (``change``:
    their mean absolute difference over the channels, (N, 1, H, W), detached so the colour is not pushed away from
    the input to escape it). Not in GANimation: its sparsity weighs every pixel alike, so a region the generator
    repaints as it was (the object in a background change) stays under the mask and comes out redrawn rather than
    kept. The log, not the mask itself: a mask near 1 comes from a saturated tanh whose gradient is about
    ``2 m (1 - m)``, so a penalty linear in the mask barely moves it there (measured: the object stayed at 0.97-0.98,
    docs/fidelity.md); ``1 / (1 - 0.99 m)`` undoes that, and the 0.99 keeps the value finite at m = 1."""
    return weight * (-torch.log1p(-0.99 * mask) * torch.exp(-(change.detach() / tol).square())).mean()


def mask_colour_penalty(mask: Tensor, change: Tensor, weight: float) -> Tensor:
    """``weight * mean((1 - m) * change)``, ``m`` detached: pulls the painted colour to the input where the mask
    is closed (``change`` as in :func:`mask_idle_penalty`, here with its graph). Not in GANimation, where the
    colour under a closed mask is free: a generator trained to flip the background paints the kept object as a
    blurred blob of the new background's opposite tone, which shows wherever the mask is not quite closed (a
    halo around the object, a rounded tip) and at every pixel a threshold opens. The mask is detached so that
    opening it is no way out."""
    return weight * ((1 - mask.detach()) * change).mean()


def mask_edge_tv_penalty(mask: Tensor, image: Tensor, weight: float, sigma: float) -> Tensor:
    """``weight * (mean_x + mean_y)`` of ``exp(-|dI| / sigma) * |dm|`` over the pairs of neighbouring pixels,
    ``dI`` the mean absolute difference of the input image over its channels (detached), ``dm`` the mask's: an
    edge-aware total variation (the edge-aware smoothness of Godard et al., CVPR 2017, put on the mask). Not in
    GANimation, whose total variation is of squared differences everywhere: that prefers a wide ramp to a step
    (a step of 1 spread over k pixels costs 1 / k), so the border of an edited region can settle as a soft rim a
    few pixels outside the object. Absolute differences cost a monotone ramp the same as a step, and the
    weights make a step on an edge of the input (where ``|dI|`` is many ``sigma``) nearly free, so the border
    is drawn onto the object's outline. ``sigma`` is in the image's units ([-1, 1]): above the pixel noise,
    well below an object's contrast."""
    img = image.detach().float()

    def along(dim: int) -> Tensor:
        n = mask.shape[dim]
        if n < 2:  # one pixel along this axis: no neighbours (0, not the NaN of an empty mean)
            return mask.new_zeros(())
        d_img = (img.narrow(dim, 1, n - 1) - img.narrow(dim, 0, n - 1)).abs().mean(1, keepdim=True)
        d_mask = (mask.narrow(dim, 1, n - 1) - mask.narrow(dim, 0, n - 1)).abs()
        return (torch.exp(-d_img / sigma) * d_mask).mean()

    return weight * (along(-1) + along(-2))


def mask_loss(masks: list[Tensor], weight_sparsity: float, weight_smooth: float,
              weight_binary: float = 0.0, changes: list[Tensor] | None = None, weight_idle: float = 0.0,
              idle_tol: float = 0.2, images: list[Tensor] | None = None, weight_edge_tv: float = 0.0,
              edge_sigma: float = 0.1, weight_colour: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted mask penalties summed over ``masks`` (each (N, 1, H, W)), and their detached values for
    the log (``G/mask``, ``G/mask_tv``, and ``G/mask_bin``, ``G/mask_idle``, ``G/mask_edge_tv``, ``G/mask_colour``
    when their weights are set). ``changes`` (one per mask: :attr:`AttentionMask.last_change`) are needed by
    ``weight_idle`` and ``weight_colour`` only, ``images`` (the input of the G call that made each mask) by
    ``weight_edge_tv`` only."""
    pairs = [mask_penalties(m.float(), weight_sparsity, weight_smooth) for m in masks]
    sparsity, smooth = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    logs = {"G/mask": sparsity.detach(), "G/mask_tv": smooth.detach()}
    total = sparsity + smooth
    # The optional terms: (log key, weight, per-mask companions or None, what they are, penalty of mask and one).
    optional = (
        ("G/mask_bin", weight_binary, None, "", lambda m, _: mask_binary_penalty(m, weight_binary)),
        ("G/mask_idle", weight_idle, changes, "change map",
         lambda m, c: mask_idle_penalty(m, c, weight_idle, idle_tol)),
        ("G/mask_edge_tv", weight_edge_tv, images, "input image",
         lambda m, x: mask_edge_tv_penalty(m, x, weight_edge_tv, edge_sigma)),
        ("G/mask_colour", weight_colour, changes, "change map", lambda m, c: mask_colour_penalty(m, c, weight_colour)),
    )
    for key, weight, companions, needs, penalty in optional:
        if not weight:
            continue
        if needs and (companions is None or len(companions) != len(masks)):
            raise ValueError(f"mask_loss: the {key} term needs one {needs} per mask")
        term = sum(penalty(m.float(), c) for m, c in zip(masks, companions or [None] * len(masks)))
        logs[key] = term.detach()
        total = total + term
    return total, logs
