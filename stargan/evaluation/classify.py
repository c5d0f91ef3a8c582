"""Training the attribute classifier that scores translations (the StarGAN paper's protocol)."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from common.data.celeba_attrs import read_celeba_attrs
from common.data.shapes import ATTR_FILE, IMAGES_DIR, PARTITION_FILE, SCHEMA_FILE, load_nuisance, load_schema
from common.device import resolve_device
from common.errors import UserError
from common.labels.schema import LabelSchema
from common.metrics import attribute_accuracy, predict, save_classifier, train_classifier
from common.tables import fmt_number, fmt_percent, fmt_seconds
from stargan.datasets import CelebADataset

log = logging.getLogger(__name__)

CLASSIFIER_TEST_FRACTION = 0.1


def train_attribute_classifier(data_dir: str | Path, out_path: str | Path, names: Sequence[str] | None = None,
                               groups: Sequence[Sequence[str]] = (), image_size: int = 64,
                               crop_size: int | None = None, epochs: int = 10, batch_size: int = 64,
                               lr: float = 1e-3, seed: int = 0, width: int = 32, device: str = "auto") -> dict:
    """Train on the TRAIN split of a CelebA-format folder (images/ + list_attr_celeba.txt), report per-attribute
    accuracy on its test split, save the classifier to ``out_path`` and return its meta. Progress is logged.

    The split is list_eval_partition.txt when present, else a seeded 10% test split. Without ``names`` the
    attributes (and exclusive groups) come from the folder's attributes.json (a shapes dataset): the conditioned
    ones and the nuisance ones (shape, position, size), whose preservation ``evaluate`` then measures.
    """
    t0 = time.perf_counter()
    data_dir, out_path = Path(data_dir), Path(out_path)
    names = list(names) if names is not None else None
    groups = [list(g) for g in groups]
    if not data_dir.is_dir():
        raise UserError(f"--data {data_dir}: data folder not found")
    if (data_dir / SCHEMA_FILE).is_file():
        known = load_schema(data_dir)
        nuisance = load_nuisance(data_dir) or {"attrs": [], "exclusive": {}}
        if names is None:
            # The nuisance attributes too, so that evaluation can check translations keep them.
            names = known["attrs"] + nuisance["attrs"]
        if not groups:
            groups = [g for g in [*known["exclusive"], *nuisance["exclusive"].values()] if all(a in names for a in g)]
    if names is None:
        raise UserError(f"--attrs is required: {data_dir} has no {SCHEMA_FILE} to take the attributes from")
    # The schema's kinds (not its loss) decide the classifier's groups: an exclusive group is learned with
    # cross-entropy so evaluation can read it as an argmax, while the data itself need not be strictly one-hot.
    schema = LabelSchema.from_attrs(names, groups or None, "bce")
    cls_groups = schema.decision_slices()
    attr_path = data_dir / ATTR_FILE
    partition = data_dir / PARTITION_FILE
    n_rows = len(read_celeba_attrs(attr_path, names)[0])
    split_kw = ({"partition_path": partition} if partition.is_file()
                else {"test_count": max(1, round(n_rows * CLASSIFIER_TEST_FRACTION))})
    ds_kw = dict(image_dir=data_dir / IMAGES_DIR, attr_path=attr_path, selected_attrs=names, image_size=image_size,
                 crop_size=crop_size, flip=False, schema=schema, **split_kw)
    train_set = CelebADataset(mode="train", **ds_kw)
    test_set = CelebADataset(mode="test", **ds_kw)
    if len(train_set) == 0:
        raise UserError(f"{data_dir}: the training split is empty")
    dev = resolve_device(device)
    split = PARTITION_FILE if partition.is_file() else f"seeded split, {split_kw.get('test_count')} test"
    log.info("training on %d images (%s), testing on %d: %s", len(train_set), split, len(test_set),
             schema.describe())

    def report(rec: dict) -> None:
        log.info("epoch %d/%d: loss %.4f, train accuracy %s", rec["epoch"], epochs, rec["loss"],
                 fmt_number(rec["accuracy"]))

    model, history = train_classifier(train_set, cls_groups, epochs=epochs, batch_size=batch_size, lr=lr,
                                      seed=seed, device=dev, progress=report, width=width, attribute_names=names)
    test_acc = None
    if len(test_set):
        preds, labels = [], []
        for images, lab in DataLoader(test_set, batch_size=max(batch_size, 64)):
            preds.append(predict(model, images))
            labels.append(lab)
        test_acc = attribute_accuracy(torch.cat(preds), torch.cat(labels), cls_groups, names)
        overall = test_acc["overall"]
        log.info("test accuracy: %s (%d decisions on %d images)", fmt_percent(overall["accuracy"]),
                 overall["decisions"], overall["n"])
        for row in test_acc["attributes"]:
            log.info("  %s: %s (n=%d)", row["name"], fmt_percent(row["accuracy"]), row["n"])
    else:
        log.info("test accuracy: skipped (the test split is empty)")
    meta = {"data": str(data_dir), "split": split, "crop_size": crop_size, "schema": schema.to_dict(),
            "epochs": epochs, "seed": seed, "history": history, "test_accuracy": test_acc,
            "n_train": len(train_set), "n_test": len(test_set)}
    save_classifier(out_path, model, meta)
    log.info("classifier: %s (%s)", out_path, fmt_seconds(time.perf_counter() - t0))
    return meta
