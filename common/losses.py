"""Loss functions shared by the CycleGAN and StarGAN trainers.

Every function is pure: it returns ``(loss, logs)`` where ``loss`` is a scalar tensor that keeps its graph and
``logs`` maps a name (e.g. ``"D_A/real"``) to a detached scalar tensor on the loss's device. The values are
not read here: turning them into Python floats would make the host wait for the device at every step, so
the trainers' step meter (:mod:`common.step_meter`) accumulates them on the device and reads them when it
logs (``float(value)`` reads one). Weights (``lambda_*``) are applied inside, so the logged value is exactly
what enters the total loss.

Targets are built with ``ones_like``/``zeros_like`` from the prediction so they always share its device and
dtype, which keeps the functions correct on any device and inside ``torch.autocast``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from common.labels.schema import KINDS
from common.spectrum import windowed_spectrum

GAN_MODES = ("lsgan", "vanilla", "wgangp")

Logs = dict[str, Tensor]


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"unknown GAN mode {mode!r}; expected one of {', '.join(GAN_MODES)}")


def gan_loss(prediction: Tensor, target_is_real: bool, mode: str, name: str = "gan") -> tuple[Tensor, Logs]:
    """Adversarial loss of a discriminator/critic ``prediction`` (raw scores, any shape).

    - ``lsgan``: mean squared error to 1 (real) or 0 (fake); no sigmoid, as in CycleGAN.
    - ``vanilla``: binary cross-entropy with logits to 1 or 0.
    - ``wgangp``: ``-mean(prediction)`` for real, ``+mean(prediction)`` for fake (the Wasserstein critic
      objective; the gradient penalty is separate, see :func:`gradient_penalty`).

    For a generator pass ``target_is_real=True`` on the scores of its fakes.
    """
    _check_mode(mode)
    if mode == "lsgan":
        target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
        loss = F.mse_loss(prediction, target)
    elif mode == "vanilla":
        target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
        loss = F.binary_cross_entropy_with_logits(prediction, target)
    else:
        loss = -prediction.mean() if target_is_real else prediction.mean()
    return loss, {name: loss.detach()}


def discriminator_loss(
    pred_real: Tensor, pred_fake: Tensor, mode: str, name: str = "D"
) -> tuple[Tensor, Logs]:
    """CycleGAN's discriminator loss ``0.5 * (gan(real, True) + gan(fake, False))``.

    The 0.5 is kept in every mode, including ``wgangp``, because the official CycleGAN code applies it
    unconditionally; it slows D relative to G and changing it would change training dynamics. (StarGAN does
    not use this helper: its D loss has no 0.5 and adds classification and gradient-penalty terms.)

    Logs ``name`` (the total), ``name/real`` and ``name/fake`` (the unhalved parts).
    """
    loss_real, _ = gan_loss(pred_real, True, mode)
    loss_fake, _ = gan_loss(pred_fake, False, mode)
    loss = 0.5 * (loss_real + loss_fake)
    return loss, {name: loss.detach(), f"{name}/real": loss_real.detach(), f"{name}/fake": loss_fake.detach()}


def gradient_penalty(
    critic: Callable[[Tensor], Tensor | tuple[Tensor, ...]],
    real: Tensor,
    fake: Tensor,
    weight: float = 10.0,
    name: str = "gp",
    constant: float = 1.0,
) -> tuple[Tensor, Logs]:
    """WGAN-GP penalty ``weight * mean_i((||grad_x critic(x_i)||_2 - constant)^2)``.

    ``x_i = alpha_i * real_i + (1 - alpha_i) * fake_i`` with one ``alpha_i ~ U(0, 1)`` per sample, drawn from
    the torch global RNG of ``real``'s device so it is reproducible and captured by checkpoints. Both inputs
    are detached: the penalty regularises the critic only. The gradient is taken with ``create_graph=True``,
    so the returned loss back-propagates into the critic's parameters (without that the penalty would be a
    constant and D would never feel it).

    ``critic`` may return a tensor or a tuple whose first element is the real/fake score (StarGAN's D returns
    ``(src, cls)``). Logs ``name`` (the weighted penalty) and ``name/grad_norm`` (mean gradient norm).

    Under fp16 autocast with a ``GradScaler`` the unscaled gradient may underflow; compute the penalty in
    fp32/bf16 or scale it yourself.
    """
    n = real.size(0)
    alpha = torch.rand(n, *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    interpolates = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(interpolates)
    if isinstance(out, (tuple, list)):
        out = out[0]
    (grad,) = torch.autograd.grad(
        outputs=out,
        inputs=interpolates,
        grad_outputs=torch.ones_like(out),
        create_graph=True,
        retain_graph=True,
    )
    # vector_norm's backward is defined as 0 at a zero gradient, where sqrt(sum(g^2)) would give NaN.
    grad_norm = torch.linalg.vector_norm(grad.reshape(n, -1), ord=2, dim=1)
    loss = weight * ((grad_norm - constant) ** 2).mean()
    return loss, {name: loss.detach(), f"{name}/grad_norm": grad_norm.detach().mean()}


def l1_loss(a: Tensor, b: Tensor, weight: float = 1.0, name: str = "l1") -> tuple[Tensor, Logs]:
    """``weight * mean(|a - b|)``; the logged value includes the weight."""
    loss = F.l1_loss(a, b) * weight
    return loss, {name: loss.detach()}


def cycle_loss(rec: Tensor, real: Tensor, weight: float, name: str = "cycle") -> tuple[Tensor, Logs]:
    """Cycle-consistency ``weight * L1(rec, real)`` (CycleGAN lambda_A/lambda_B, StarGAN lambda_rec)."""
    return l1_loss(rec, real, weight, name)


def identity_loss(idt: Tensor, real: Tensor, weight: float, name: str = "idt") -> tuple[Tensor, Logs]:
    """Identity ``weight * L1(idt, real)``.

    In CycleGAN the effective weight is ``lambda_B * lambda_identity`` for ``idt_A = G_A(real_B)`` (5 by
    default); the caller passes that product.
    """
    return l1_loss(idt, real, weight, name)


def _texture_distribution(images: Tensor) -> Tensor:
    """(N, bins): each image's power spectrum over the texture band (:func:`common.spectrum.windowed_spectrum`),
    as shares of its own band power (where its texture lies, not how strong it is: objects of every size count
    alike), averaged over each 3x3 neighbourhood of frequency bins (the same stripes on another object's size
    and phase spread over neighbouring bins)."""
    spectrum, band, _, _ = windowed_spectrum(images)
    power = spectrum.abs().pow(2) * band
    power = power / power.flatten(1).sum(dim=1).clamp(min=1e-12)[:, None, None]
    # The spectrum is periodic (fftfreq order: zero frequency at the array's edges): pad circularly so the band's
    # bins next to the zero-frequency row and column average over their true neighbours.
    power = F.avg_pool2d(F.pad(power[:, None], (1, 1, 1, 1), mode="circular"), 3, stride=1)[:, 0]
    return power[:, band]


def spectrum_match_loss(fake: Tensor, real: Tensor, label_trg: Tensor, label_org: Tensor, weight: float,
                        columns: Sequence[int] | None = None, name: str = "spectrum") -> tuple[Tensor, Logs]:
    """A label-conditional match of texture spectra between translations and real images (ours; in the spirit
    of the spectral regularisation of Durall et al., CVPR 2020, made per label and 2-D so it sees direction).

    ``fake[i]`` is the translation of ``real[i]`` from ``label_org[i]`` to ``label_trg[i]``. For each attribute
    column ``a`` of the 0/1 labels (N, A) in ``columns`` (default: all) and each value ``v``: the translations that
    changed ``a`` to ``v`` (``label_trg[:, a] == v != label_org[:, a]``) against the real images that have
    ``v``. Their mean texture spectra differ by an L1 relative to the real one's (:func:`_texture_distribution`:
    per image the power over the band of periods 3 px..a quarter of the side as shares of its total; grey
    level, high-passed, Hann-windowed, phase playing no part; averaged over neighbouring bins); the loss is
    ``weight`` x the mean over the pairs that the batch holds both sides of (0 when it holds none). So a
    translation to ``Striped`` is pulled towards the data's stripe frequency and direction, and any other fine
    texture costs, whatever the attribute classifier makes of it. ``real`` is not differentiated. Name only
    the attributes that are a texture (on a colour there is nothing to match but the pixel noise). A batch
    holds few translations of each kind, so the loss has a floor: on the 64x64 shapes data, three true striped
    counterfactuals against eight striped images score about 0.4 (x weight), three solid objects about 1.0
    (docs/fidelity.md)."""
    if fake.shape != real.shape or label_trg.shape != label_org.shape or label_trg.shape[0] != fake.shape[0]:
        raise ValueError(f"shapes differ: fake {tuple(fake.shape)}, real {tuple(real.shape)}, "
                         f"label_trg {tuple(label_trg.shape)}, label_org {tuple(label_org.shape)}")
    power_fake = _texture_distribution(fake.float())
    power_real = _texture_distribution(real.detach().float())
    terms = []
    for a in range(label_trg.shape[1]) if columns is None else columns:
        for v in (0.0, 1.0):
            changed = (label_trg[:, a] == v) & (label_org[:, a] != v)
            having = label_org[:, a] == v
            if changed.any() and having.any():
                mean_real = power_real[having].mean(dim=0)
                gap = (power_fake[changed].mean(dim=0) - mean_real).abs().sum()
                terms.append(gap / mean_real.sum().clamp(min=1e-12))
    loss = weight * torch.stack(terms).mean() if terms else fake.new_zeros(()).float()
    return loss, {name: loss.detach()}


def _binary_per_sample(logits: Tensor, targets: Tensor) -> Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return bce.reshape(logits.size(0), -1).sum(dim=1)


def grouped_cls_loss(
    logits: Tensor,
    targets: Tensor,
    groups: Sequence[tuple[str, int, int]],
    name: str = "cls",
    sample_mask: Tensor | None = None,
) -> tuple[Tensor, Logs]:
    """Classification loss over a label vector made of independent groups (StarGAN's multi-dataset labels).

    ``logits`` ``(N, L)`` and ``targets`` ``(N, L')`` with ``L' >= L``: each group ``(kind, start, stop)``
    selects the columns ``start:stop`` of *both*, so targets may carry trailing columns the classifier does
    not predict (the dataset mask vector). Per group and per sample ``i``:

    - ``binary``: ``l_i = sum_j BCEWithLogits(logits[i, j], targets[i, j])`` over the group's columns;
    - ``exclusive``: ``l_i = CE(logits[i, start:stop], argmax(targets[i, start:stop]))`` (a one-hot slice).

    The group loss is the weighted mean ``sum_i m_i l_i / sum_i m_i`` with ``m = sample_mask`` (all ones when
    ``None``: the official StarGAN losses, a sum of BCE over a binary group's attributes averaged over the
    batch (CelebA) and a batch-mean cross-entropy (RaFD)). ``sample_mask``
    is boolean or non-negative float, shape ``(N,)`` (one mask for every group) or ``(N, len(groups))`` (one
    column per group, for batches that mix datasets). Samples with ``m_i = 0`` contribute neither value nor
    gradient, even if their targets for that group are meaningless (e.g. all zeros); a group with no
    contributing sample is exactly 0 with zero gradient. The total is the sum over groups.

    Logs ``name`` (total) and ``name/<start>:<stop>`` per group.
    """
    if logits.dim() != 2 or targets.dim() != 2 or targets.size(0) != logits.size(0):
        raise ValueError(
            f"grouped_cls_loss expects logits (N, L) and targets (N, L'), got {tuple(logits.shape)} "
            f"and {tuple(targets.shape)}"
        )
    n = logits.size(0)
    if sample_mask is not None:
        if sample_mask.dim() == 1:
            sample_mask = sample_mask.unsqueeze(1).expand(n, len(groups))
        if tuple(sample_mask.shape) != (n, len(groups)):
            raise ValueError(
                f"sample_mask must have shape ({n},) or ({n}, {len(groups)}), got {tuple(sample_mask.shape)}"
            )
        sample_mask = sample_mask.to(device=logits.device, dtype=torch.float32)

    total = logits.new_zeros((), dtype=torch.float32)
    logs: Logs = {}
    for g, group in enumerate(groups):
        kind, start, stop = group
        if kind not in KINDS:
            raise ValueError(f"unknown label group kind {kind!r}; expected one of {', '.join(KINDS)}")
        if not 0 <= start < stop <= logits.size(1):
            raise ValueError(f"label group {tuple(group)} is outside the {logits.size(1)} logit columns")
        group_logits = logits[:, start:stop]
        group_targets = targets[:, start:stop]
        m = None if sample_mask is None else sample_mask[:, g]
        if m is not None:
            # A sample without labels for this group may carry anything there (zeros, NaN); neutral targets
            # keep its per-sample loss finite, so the zero weight below zeroes its gradient too (a NaN
            # target would otherwise give NaN * 0 = NaN in the BCE backward).
            group_targets = torch.where(
                (m > 0).unsqueeze(1), group_targets, torch.zeros_like(group_targets)
            )
        if kind == "binary":
            per_sample = _binary_per_sample(group_logits, group_targets)
        else:
            per_sample = F.cross_entropy(group_logits, group_targets.argmax(dim=1), reduction="none")
        per_sample = per_sample.float()
        if m is None:
            loss = per_sample.sum() / max(n, 1)
        else:
            weighted = m * per_sample
            # Clamping only changes an all-zero mask, whose numerator is exactly 0, so that group gives 0.
            loss = weighted.sum() / m.sum().clamp_min(torch.finfo(torch.float32).tiny)
        total = total + loss
        logs[f"{name}/{start}:{stop}"] = loss.detach()
    logs[name] = total.detach()
    return total, logs
