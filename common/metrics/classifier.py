"""Attribute classifier for the StarGAN paper's evaluation protocol.

A classifier is trained on real images of the data set; translated images are then judged by whether it
recognises the *target* attributes. Its outputs are read in label groups ``(kind, start, stop)``, the shared
vocabulary of :mod:`common.labels.groups`: binary attributes are trained with BCE-with-logits and decided as
``logit > 0``; an exclusive block is trained with cross-entropy and decided as a one-hot argmax, and its rows
without a class are left out of both. Label positions outside every group are neither trained nor scored
(predicted as 0).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from common.checkpoint import atomic_save, safe_torch_load
from common.errors import UserError
from common.labels.groups import (
    AccuracyCounter,
    GroupSlice,
    attribute_hits,
    has_class,
    logits_to_labels,
    normalize_groups,
)
from common.losses import grouped_cls_loss

CLASSIFIER_FORMAT = "stargan-lib-attribute-classifier"
CLASSIFIER_FORMAT_VERSION = 1


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        if stride == 1 and cin == cout:
            self.skip: nn.Module = nn.Identity()
        else:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


def default_groups(label_dim: int) -> list[GroupSlice]:
    """One binary group per label column: independent attributes, each its own group in the loss logs and
    in :func:`attribute_accuracy`'s group rows."""
    return [("binary", j, j + 1) for j in range(label_dim)]


class AttributeClassifier(nn.Module):
    """Small ResNet: conv-BN-ReLU stem, stride-2 residual stages down to 4x4, global average pool, linear.

    Outputs logits ``(N, label_dim)``. ``groups`` (default: every column its own binary group, see
    :func:`default_groups`) and ``attribute_names`` are plain attributes, not parameters, so the state_dict
    holds weights only; :func:`save_classifier` stores them.
    """

    def __init__(self, label_dim: int, image_size: int, width: int = 32,
                 groups: Sequence[Sequence] | None = None, attribute_names: Sequence[str] | None = None):
        super().__init__()
        if label_dim < 1 or image_size < 1 or width < 1:
            raise ValueError(f"label_dim, image_size and width must be >= 1, got {label_dim}, {image_size}, {width}")
        if attribute_names is not None and len(attribute_names) != label_dim:
            raise ValueError(f"{len(attribute_names)} attribute names for a label vector of size {label_dim}")
        self.label_dim, self.image_size, self.width = label_dim, image_size, width
        self.groups = normalize_groups(groups if groups is not None else default_groups(label_dim), label_dim)
        self.attribute_names = list(attribute_names) if attribute_names is not None else None
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True)]
        channels, size = width, image_size
        # Stop at 4x4: below that, 3x3 convs mostly see padding.
        while size > 4:
            out = min(channels * 2, width * 8)
            layers.append(_ResBlock(channels, out, stride=2))
            channels, size = out, math.ceil(size / 2)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, label_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(images)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def classifier_loss(logits: torch.Tensor, target: torch.Tensor, groups: Sequence[GroupSlice]) -> torch.Tensor:
    """The classifier's training loss: the sum over ``groups`` of

    * binary group ``[s:e)``: ``(1/N) sum_i sum_{j in [s, e)} BCEWithLogits(logits[i, j], target[i, j])``, the
      BCE summed over the group's columns and averaged over the N images, so a k-column binary group adds
      exactly what k one-column groups add (the StarGAN D rule, :func:`common.losses.grouped_cls_loss`);
    * exclusive group: the cross-entropy against the member set to 1, averaged over the images that have a
      class (a row without one adds neither value nor gradient; no such row at all: the group adds 0).

    With one-column binary groups (the library's classifiers, and :func:`default_groups`) the loss is the sum
    of the per-attribute mean BCEs plus the per-group mean cross-entropies; for all-binary labels that is
    ``label_dim`` times the BCE averaged over every image and column.
    """
    return grouped_cls_loss(logits, target, groups, sample_mask=has_class(target, groups))[0]


@torch.no_grad()
def predict(model: AttributeClassifier, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted 0/1 labels ``(N, label_dim)`` (float32, CPU) of images ``(N, 3, H, W)`` in [-1, 1]."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = [logits_to_labels(model(images[i:i + batch_size].to(device, torch.float32)), model.groups).cpu()
               for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, model.label_dim)


def attribute_accuracy(pred: torch.Tensor, target: torch.Tensor, groups: Sequence[Sequence],
                       names: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy of 0/1 ``pred`` against ``target`` (both ``(N, label_dim)``), as plain data.

    A binary attribute is one decision per image; an exclusive group is one decision per image that has a
    class. Returns::

        {"overall": {"accuracy", "n", "correct", "decisions"},
         "groups": [{"kind", "start", "stop", "names", "accuracy", "n", "decisions"}, ...],
         "attributes": [{"index", "name", "kind", "accuracy", "n"}, ...]}

    ``n`` counts images. For an attribute of an exclusive group, ``accuracy`` is over the images whose target
    is that class (how often the classifier recognises it). Accuracies with nothing to count are None.
    """
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"pred and target must both be (N, label_dim), "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    label_dim = target.shape[1]
    groups = normalize_groups(groups, label_dim)
    if names is not None and len(names) != label_dim:
        raise ValueError(f"{len(names)} attribute names for a label vector of size {label_dim}")
    names = list(names) if names is not None else [f"attr{i}" for i in range(label_dim)]
    pred, target = (pred > 0.5).cpu(), (target > 0.5).cpu()
    n_images = int(target.shape[0])
    per_group, per_attr = AccuracyCounter(range(len(groups))), AccuracyCounter(range(label_dim))
    per_group.add_groups(pred, target, groups)
    for j, hits, counted in attribute_hits(pred, target, groups):
        per_attr.add(j, hits, counted)
    group_rows = [{"kind": kind, "start": start, "stop": stop, "names": names[start:stop],
                   "accuracy": per_group.accuracy(g), "n": n_images if kind == "binary" else per_group.total[g],
                   "decisions": per_group.total[g]}
                  for g, (kind, start, stop) in enumerate(groups)]
    attr_rows = [{"index": j, "name": names[j], "kind": kind, "accuracy": per_attr.accuracy(j),
                  "n": per_attr.total[j]}
                 for kind, start, stop in groups for j in range(start, stop)]
    return {
        "overall": {"accuracy": per_group.accuracy(), "n": n_images, "correct": sum(per_group.correct.values()),
                    "decisions": sum(per_group.total.values())},
        "groups": group_rows,
        "attributes": attr_rows,
    }


def _collate(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    # Labels may come as lists, numpy arrays or tensors; default_collate would turn a list into a list of
    # per-position tensors.
    images = torch.stack([torch.as_tensor(item[0], dtype=torch.float32) for item in batch])
    labels = torch.stack([torch.as_tensor(item[1], dtype=torch.float32).reshape(-1) for item in batch])
    return images, labels


def train_classifier(dataset, groups: Sequence[Sequence], epochs: int, batch_size: int, lr: float, seed: int,
                     device: str | torch.device, num_workers: int = 0,
                     progress: Callable[[dict], None] | None = None, width: int = 32,
                     attribute_names: Sequence[str] | None = None,
                     ) -> tuple[AttributeClassifier, list[dict]]:
    """Train an :class:`AttributeClassifier` on ``dataset[i] -> (image (3, H, W) in [-1, 1], label vector)``.

    Adam(lr, betas=(0.9, 0.999)); the sum of the group losses is minimised. The initial weights and the
    shuffling come from ``seed`` alone (the global torch RNG is left untouched). ``history`` has one record
    per epoch, ``{"epoch", "loss", "accuracy"}`` (mean training loss and training-batch accuracy over all
    decisions), and ``progress(record)`` is called after each epoch. The model is returned in eval mode.
    """
    if len(dataset) == 0:
        raise ValueError("cannot train a classifier on an empty dataset")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    first_image, first_label = _collate([dataset[0]])
    label_dim, image_size = first_label.shape[1], first_image.shape[-2]
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AttributeClassifier(label_dim, image_size, width, groups=groups, attribute_names=attribute_names)
    model.to(device).train()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        collate_fn=_collate, generator=torch.Generator().manual_seed(seed),
                        pin_memory=device.type == "cuda")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
    history: list[dict] = []
    for epoch in range(epochs):
        loss_sum, seen, decisions = 0.0, 0, AccuracyCounter()
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            logits = model(images)
            loss = classifier_loss(logits, labels, model.groups)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * images.shape[0]
            seen += images.shape[0]
            decisions.add_groups(logits_to_labels(logits.detach(), model.groups), labels > 0.5, model.groups)
        record = {"epoch": epoch + 1, "loss": loss_sum / seen, "accuracy": decisions.accuracy()}
        history.append(record)
        if progress is not None:
            progress(record)
    return model.eval(), history


def _check_plain(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"classifier meta {where}: keys must be strings, got {key!r}")
            _check_plain(item, f"{where}.{key}")
        return
    raise ValueError(f"classifier meta {where}: {type(value).__name__} is not plain data "
                     "(None/bool/int/float/str/list/tuple/dict), so weights_only loading would refuse it")


def classifier_meta(model: AttributeClassifier) -> dict:
    """The fields needed to rebuild ``model`` (as plain data)."""
    return {"label_dim": model.label_dim, "image_size": model.image_size, "width": model.width,
            "groups": [list(g) for g in model.groups], "attribute_names": model.attribute_names}


def save_classifier(path: str | os.PathLike, model: AttributeClassifier, meta: dict | None = None) -> Path:
    """Write ``model`` and ``meta`` atomically (temp file in the same folder, then ``os.replace``).

    ``meta`` may carry extra plain data (e.g. data set, validation accuracy); the architecture fields
    (:func:`classifier_meta`) are taken from the model and must not contradict it.
    """
    full = dict(meta or {})
    for key, value in classifier_meta(model).items():
        given = full.get(key)
        if key in full and given is not None and given != value and not (
                key == "groups" and [list(g) for g in given] == value):
            raise ValueError(f"classifier meta {key}={given!r} contradicts the model ({value!r})")
        full[key] = value
    _check_plain(full, "meta")
    payload = {"format": CLASSIFIER_FORMAT, "format_version": CLASSIFIER_FORMAT_VERSION, "meta": full,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    return atomic_save(payload, path)


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu",
                    ) -> tuple[AttributeClassifier, dict]:
    """``(model in eval mode on device, meta)`` from a file of :func:`save_classifier` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: attribute classifier file not found")
    payload = safe_torch_load(path)  # weights_only=True; one-line UserErrors, never unsafe
    if not isinstance(payload, dict) or payload.get("format") != CLASSIFIER_FORMAT:
        raise UserError(f"{path}: not an attribute classifier file (expected format={CLASSIFIER_FORMAT!r})")
    if payload.get("format_version", 0) > CLASSIFIER_FORMAT_VERSION:
        raise UserError(f"{path}: classifier format {payload['format_version']} is newer than this library "
                        f"understands ({CLASSIFIER_FORMAT_VERSION}); upgrade the library")
    meta = payload.get("meta")
    try:
        model = AttributeClassifier(int(meta["label_dim"]), int(meta["image_size"]), int(meta["width"]),
                                    groups=meta["groups"], attribute_names=meta.get("attribute_names"))
    except (TypeError, KeyError, ValueError) as err:
        raise UserError(f"{path}: attribute classifier meta is missing or invalid ({err})") from None
    try:
        model.load_state_dict(payload.get("state_dict"), strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{path}: classifier weights do not match its meta ({first})") from None
    meta = dict(meta)
    meta["groups"] = [tuple(g) for g in model.groups]
    return model.to(device).eval(), meta
