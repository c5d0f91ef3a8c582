"""The FID feature extractor: the TensorFlow Inception graph of 2015-12-05 ported to PyTorch (2048-d pool3).

FID/KID numbers are only comparable with published ones when computed with exactly this network, so there
is deliberately no fallback to torchvision's ImageNet Inception: without the ported weights FID and KID are
skipped (see :func:`resolve_fid_weights` and :func:`fid_unavailable_message`).

The TF graph is torchvision's ``inception_v3`` (1008 output classes, no auxiliary head) except for its
pooling branches:

* in the A, C and first E blocks (Mixed_5b-d, Mixed_6b-e, Mixed_7b) the 3x3 average pooling excludes the
  zero padding from the average (``count_include_pad=False``);
* the last E block (Mixed_7c) max-pools instead of average-pooling in its pool branch.

The weights file (``pt_inception-2015-12-05-6726825d.pth``) is a ``state_dict`` of that network with
torchvision's key names, so the parameter layout below is torchvision's, with only the forwards replaced.
The network expects 299x299 input scaled to [-1, 1]; our images are already in [-1, 1], so they are only
resized (bilinearly, without antialiasing, as in the reference port).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tv_inception

from common.checkpoint import safe_torch_load
from common.errors import UserError

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_GLOB = "pt_inception-2015-12-05*.pth"
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_NAME
)
FID_WEIGHTS_ENV = "STARGAN_FID_WEIGHTS"
FID_FEATURE_DIM = 2048
FID_NUM_CLASSES = 1008  # the TF graph has 1001 ImageNet classes padded to 1008 logits
FID_INPUT_SIZE = 299


@runtime_checkable
class FeatureExtractor(Protocol):
    """Anything mapping images ``(N, 3, H, W)`` in [-1, 1] to features ``(N, d)``."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def _avg_pool_exclude_pad(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_pool_same(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class FIDInceptionA(tv_inception.InceptionA):
    """InceptionA whose pool branch averages over the valid (unpadded) pixels only."""

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return _avg_pool_exclude_pad(x)

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [self.branch1x1(x), b5, b3, self.branch_pool(self.pool(x))]


class FIDInceptionC(tv_inception.InceptionC):
    """InceptionC whose pool branch averages over the valid (unpadded) pixels only."""

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return _avg_pool_exclude_pad(x)

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                     self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = conv(bd)
        return [self.branch1x1(x), b7, bd, self.branch_pool(self.pool(x))]


class FIDInceptionE(tv_inception.InceptionE):
    """InceptionE with the TF graph's pool branch: ``"avg"`` excluding padding (Mixed_7b) or ``"max"`` (Mixed_7c)."""

    def __init__(self, in_channels: int, pool_kind: str):
        super().__init__(in_channels)
        if pool_kind not in ("avg", "max"):
            raise ValueError(f"pool_kind must be 'avg' or 'max', got {pool_kind!r}")
        self.pool_kind = pool_kind

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return _avg_pool_exclude_pad(x) if self.pool_kind == "avg" else _max_pool_same(x)

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        return [self.branch1x1(x), b3, bd, self.branch_pool(self.pool(x))]


def build_fid_inception_net() -> tv_inception.Inception3:
    """The FID Inception network with random weights; its ``state_dict`` has the weights file's layout.

    Built from torchvision's ``inception_v3`` so that every key and shape matches the file; only the pooled
    Mixed blocks are swapped for their FID variants (same submodules, hence the same keys).
    """
    # init_weights=False: the truncated-normal init is slow and pointless, the weights are loaded next.
    net = tv_inception.inception_v3(weights=None, aux_logits=False, init_weights=False,
                                    num_classes=FID_NUM_CLASSES)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280, pool_kind="avg")
    net.Mixed_7c = FIDInceptionE(2048, pool_kind="max")
    return net


class FIDInceptionFeatures(nn.Module):
    """Images ``(N, 3, H, W)`` in [-1, 1] -> pool3 features ``(N, 2048)`` (float32) of the FID Inception.

    ``self.net`` is the full network (its ``state_dict`` is the weights file); the classifier head
    (``fc``) is kept only so the file loads strictly and is never evaluated.
    """

    feature_dim = FID_FEATURE_DIM

    def __init__(self, net: tv_inception.Inception3 | None = None):
        super().__init__()
        self.net = net if net is not None else build_fid_inception_net()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        x = images.float()
        if x.shape[-2:] != (FID_INPUT_SIZE, FID_INPUT_SIZE):
            x = F.interpolate(x, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear",
                              align_corners=False, antialias=False)
        n = self.net
        for layer in (n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1, n.Conv2d_3b_1x1,
                      n.Conv2d_4a_3x3, n.maxpool2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a,
                      n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c):
            x = layer(x)
        return torch.flatten(n.avgpool(x), 1)


def _hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_fid_weights(explicit: str | os.PathLike | None) -> Path | None:
    """Locate the FID Inception weights; ``None`` when there are none (callers then skip FID/KID).

    Looked up in order: ``explicit`` (a missing file is a UserError: the user asked for it), the
    ``STARGAN_FID_WEIGHTS`` environment variable (likewise), then
    ``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05*.pth`` (where torch.hub caches downloads).
    """
    if explicit is not None and str(explicit) != "":
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UserError(f"{path}: FID Inception weights file not found (expected {FID_WEIGHTS_NAME})")
        return path
    env = os.environ.get(FID_WEIGHTS_ENV, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise UserError(f"{FID_WEIGHTS_ENV}={env}: FID Inception weights file not found "
                            f"(expected {FID_WEIGHTS_NAME}); fix or unset the variable")
        return path
    folder = _hub_checkpoint_dir()
    if folder.is_dir():
        exact = folder / FID_WEIGHTS_NAME
        if exact.is_file():
            return exact
        candidates = sorted(p for p in folder.glob(FID_WEIGHTS_GLOB) if p.is_file())
        if candidates:
            return candidates[0]
    return None


def fid_unavailable_message(flag: str = "--fid-weights") -> str:
    """The one line to print when FID/KID are skipped for lack of weights, saying how to provide them."""
    return (
        f"FID/KID skipped: the FID Inception weights {FID_WEIGHTS_NAME} were not found; download them from "
        f"{FID_WEIGHTS_URL} and pass {flag} PATH, set {FID_WEIGHTS_ENV}=PATH, or put the file in "
        f"{_hub_checkpoint_dir()}"
    )


def load_fid_inception(path: str | os.PathLike, device: str | torch.device = "cpu") -> FIDInceptionFeatures:
    """The FID feature extractor with the weights of ``path`` (read with ``weights_only=True``), in eval mode.

    The keys must match the network exactly; anything else is a UserError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: FID Inception weights file not found (expected {FID_WEIGHTS_NAME})")
    state = safe_torch_load(path)  # weights_only=True; one-line UserErrors, never unsafe
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state_dict of the FID Inception network (a dict of tensors)")
    model = FIDInceptionFeatures()
    expected = model.net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    # num_batches_tracked only drives BatchNorm momentum during training; older exports may not have it.
    if all(k.endswith("num_batches_tracked") for k in missing):
        state = dict(state)
        for k in missing:
            state[k] = expected[k]
        missing = []
    if missing or unexpected:
        raise UserError(
            f"{path}: not the FID Inception weights ({FID_WEIGHTS_NAME}): "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys "
            f"(e.g. {unexpected[:3]})"
        )
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        k = bad[0]
        raise UserError(f"{path}: not the FID Inception weights ({FID_WEIGHTS_NAME}): {len(bad)} tensors "
                        f"have the wrong shape, e.g. {k} is {tuple(state[k].shape)}, expected "
                        f"{tuple(expected[k].shape)}")
    model.net.load_state_dict(state, strict=True)
    return model.to(device).eval()


def fid_feature_fn(weights: str | os.PathLike | None, device: str | torch.device = "cpu",
                   batch_size: int = 50) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``images -> (N, 2048)`` float64 FID features with the Inception weights at ``weights`` (loaded now, so a
    bad file fails before any work), or None when ``weights`` is None (FID/KID skipped)."""
    if weights is None:
        return None
    inception = load_fid_inception(weights, device)
    return lambda images: extract_features(inception, images, device, batch_size=batch_size)


def _image_batches(images) -> Iterable[torch.Tensor]:
    """Yield image tensors from a tensor, or from an iterable of tensors / (image, ...) tuples / dicts."""
    if isinstance(images, torch.Tensor):
        yield images
        return
    for item in images:
        if isinstance(item, dict):
            key = next((k for k in ("image", "images") if k in item), None)
            if key is None:
                raise ValueError(f"cannot find images in a batch dict with keys {sorted(item)}")
            item = item[key]
        elif isinstance(item, (tuple, list)):
            item = item[0]
        if not isinstance(item, torch.Tensor):
            raise ValueError(f"expected image tensors, got {type(item).__name__}")
        yield item


@torch.no_grad()
def extract_features(extractor: FeatureExtractor, images, device: str | torch.device = "cpu",
                     batch_size: int = 50) -> torch.Tensor:
    """Run ``extractor`` over ``images`` in batches of ``batch_size``; returns ``(N, d)`` float64 on CPU.

    ``images`` is a tensor ``(N, 3, H, W)``, or an iterable (e.g. a DataLoader) yielding image tensors
    ``(B, 3, H, W)`` or ``(3, H, W)``, ``(images, labels...)`` tuples, or dicts with an ``"image"`` key;
    values in [-1, 1]. Inputs are re-batched, so the batch size of a loader does not matter. float64 keeps
    the later covariance estimate free of accumulation error. A module in training mode is evaluated in
    eval mode and switched back afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    # In training mode BatchNorm would make each image's features depend on its batch mates.
    was_training = isinstance(extractor, nn.Module) and extractor.training
    if was_training:
        extractor.eval()
    try:
        return _extract(extractor, images, device, batch_size)
    finally:
        if was_training:
            extractor.train()


def _extract(extractor: FeatureExtractor, images, device: torch.device, batch_size: int) -> torch.Tensor:
    outputs: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    pending_count = 0

    def flush() -> None:
        nonlocal pending, pending_count
        batch = torch.cat(pending) if len(pending) > 1 else pending[0]
        feats = extractor(batch.to(device))
        if feats.ndim != 2 or feats.shape[0] != batch.shape[0]:
            raise ValueError(f"feature extractor returned shape {tuple(feats.shape)} for a batch of "
                             f"{batch.shape[0]} images; expected (N, d)")
        outputs.append(feats.detach().to("cpu", torch.float64))
        pending, pending_count = [], 0

    for chunk in _image_batches(images):
        if chunk.ndim == 3:
            chunk = chunk.unsqueeze(0)
        if chunk.ndim != 4:
            raise ValueError(f"expected images of shape (N, 3, H, W) or (3, H, W), got {tuple(chunk.shape)}")
        start = 0
        while start < chunk.shape[0]:
            take = min(batch_size - pending_count, chunk.shape[0] - start)
            pending.append(chunk[start:start + take])
            pending_count += take
            start += take
            if pending_count == batch_size:
                flush()
    if pending:
        flush()
    if not outputs:
        raise ValueError("no images to extract features from")
    return torch.cat(outputs)
