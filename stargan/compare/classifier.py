"""The domain classifier that judges every translation: trained once on the real training images of the k
domains (one exclusive label group), reused while its settings hold."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from common.config import to_dict
from common.errors import UserError
from common.metrics import load_classifier, save_classifier, train_classifier
from stargan.compare.config import CompareConfig
from stargan.compare.data import split_files
from stargan.compare.layout import CLASSIFIER_FILE
from stargan.datasets import load_test_image

log = logging.getLogger(__name__)


class _DomainImages:
    """(image in [-1, 1], one-hot domain label) of listed files, for the classifier."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], k: int, size: int):
        self.files, self.labels, self.k, self.size = list(files), list(labels), k, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        label = torch.zeros(self.k)
        label[self.labels[i]] = 1.0
        return load_test_image(self.files[i], self.size, None), label


def _settings(cfg: CompareConfig) -> dict:
    return {**to_dict(cfg.classifier), "seed": cfg.seed}


def _is_current(path: Path, settings: dict, domains: list[str]) -> bool:
    if not path.is_file():
        return False
    try:
        _, meta = load_classifier(path)
    except UserError:
        return False
    return meta.get("settings") == settings and meta.get("attribute_names") == domains


def _log_epoch(epochs: int):
    def report(rec: dict) -> None:
        log.info("  epoch %d/%d: loss %.4f, train accuracy %.3f", rec["epoch"], epochs, rec["loss"], rec["accuracy"])

    return report


def ensure_classifier(cfg: CompareConfig, out: Path, manifest: dict, device) -> Path:
    """Train the domain classifier on the real training images once; reuse it while its settings hold."""
    path = out / CLASSIFIER_FILE
    settings = _settings(cfg)
    domains = list(cfg.data.domains)
    if _is_current(path, settings, domains):
        return path
    train = split_files(out, manifest, "train")
    files = [f for dom in domains for f in train[dom]]
    labels = [i for i, dom in enumerate(domains) for _ in train[dom]]
    dataset = _DomainImages(files, labels, len(domains), cfg.data.resolved_image_size)
    c = cfg.classifier
    log.info("classifier: training on %d real images (%d epoch(s), width %d)", len(files), c.epochs, c.width)
    model, history = train_classifier(dataset, [("exclusive", 0, len(domains))], epochs=c.epochs,
                                      batch_size=c.batch_size, lr=c.lr, seed=cfg.seed, device=device,
                                      progress=_log_epoch(c.epochs), width=c.width, attribute_names=domains)
    save_classifier(path, model, {"settings": settings, "history": history, "n_train": len(files)})
    return path
