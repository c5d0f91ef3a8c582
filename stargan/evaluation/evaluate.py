"""StarGAN evaluation: the paper's classifier protocol plus ground-truth metrics where the data has them.

For every test image and every target of the official test grid (:func:`common.labels.targets.single_changes`:
one column per attribute) the generator translates the image, and the translations are scored by:

* ``target_accuracy``: an attribute classifier (trained on real images with ``stargan train-classifier``)
  recognises the changed attribute as the target (binary: the flipped value; exclusive group: the group's
  argmax is the target member). This is the StarGAN paper's classification-error protocol. Only real
  changes are counted: the grid's "set the colour it already has" column asks for nothing and is left out.
* ``preserve_accuracy``: the classifier's decisions on the other groups stay those on the input.
* ``real_accuracy``: the classifier on the real test images against the ground truth, so a reader can see
  how far the classifier itself can be trusted.
* ``counterfactual``: where the data has ground-truth counterfactuals (the shapes dataset), L1 and PSNR of
  the translation against the true "same scene, one attribute changed" image, beside the do-nothing baseline
  (the input against the counterfactual). A translator is only useful where it beats that baseline.
* ``nuisance``: where the data labels factors the model is not conditioned on (the shapes dataset's shape,
  position and size: its attributes.json ``nuisance``) and the classifier learned them, how often the
  classifier's reading of the translation equals the input's true value, per group (``Shape``, ``Left``, ...),
  per target and over all targets, counting only real changes; beside the classifier's accuracy on the real
  images, the ceiling.
* ``cycle_reconstruction``: L1 of ``G(G(x, c_trg), c_org)`` against ``x``.
* ``fid``: FID (per attribute and overall) and KID (overall) between the real test images and the
  translations, with the TF-Inception FID weights only; without them FID/KID are skipped.

The test images are those the trainer held out (:mod:`stargan.evaluation.split`). Every number is reported with
its sample count ``n``. The metric core is :func:`stargan.evaluation.generator_eval.evaluate_generator`.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from common.checkpoint import load_checkpoint, mask_fill_flag, mask_flag, mask_snap_flag, with_mask_options
from common.data.celeba_attrs import read_attr_file
from common.data.shapes import CF_DIR, CF_INDEX, SCHEMA_FILE, load_counterfactuals, load_nuisance
from common.device import resolve_device
from common.errors import UserError
from common.files import write_json_atomic
from common.grids import save_grid
from common.labels.schema import LabelSchema
from common.metrics import fid_feature_fn, fid_unavailable_message, load_classifier, resolve_fid_weights
from stargan.datasets import load_test_image
from stargan.evaluation.generator_eval import Classify, Nuisance, evaluate_generator
from stargan.evaluation.split import EvalSplit, load_test_split, split_batches
from stargan.evaluation.table import format_table
from stargan.families import FAMILIES, family_of_checkpoint

__all__ = ["default_out_dir", "evaluate", "evaluate_generator", "format_table"]

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.png"
COUNTERFACTUAL_GRID_FILE = "counterfactuals.png"
COUNTERFACTUAL_INDEX = Path(CF_DIR) / CF_INDEX


def default_out_dir(checkpoint: str | os.PathLike, mask_hard: bool | None = None,
                    mask_snap: int | None = None, mask_fill: bool | None = None) -> Path:
    """``RUN/eval`` for a checkpoint in ``RUN/checkpoints/`` (or a run folder), else ``./eval``; with
    ``--mask-hard``/``--mask-soft`` given (``mask_hard`` not None) ``eval-mask-hard``/``eval-mask-soft`` beside
    it, with ``--mask-snap R`` ``-mask-snapR`` added, with ``--mask-fill``/``--no-mask-fill``
    ``-mask-fill``/``-no-mask-fill``, so that scoring another way does not replace the checkpoint's own results."""
    name = "eval" + ("" if mask_hard is None else mask_flag(mask_hard)[1:])  # eval-mask-hard, eval-mask-soft
    name += "" if mask_snap is None else f"-mask-snap{mask_snap}"
    name += "" if mask_fill is None else "-" + mask_fill_flag(mask_fill)[2:]
    path = Path(checkpoint)
    if path.is_dir():
        return path / name
    if path.parent.name == "checkpoints":
        return path.parent.parent / name
    return Path(name)


def mask_fields(config: Any, mask_hard: bool | None, mask_snap: int | None = None,
                mask_fill: bool | None = None) -> dict[str, Any]:
    """metrics.json's record of how the attention mask composed: ``mask_hard`` (thresholded at inference, as
    the generator built from ``config`` does), ``mask_snap_radius`` (the thresholded mask snapped to the input's
    edges with that radius; 0 = not), ``mask_snap_fill`` (the pixels the snap opened filled with their
    neighbours' painted colour), and where each came from (``mask_hard_from``, ``mask_snap_from``,
    ``mask_fill_from``: the checkpoint, or the option that set it; ``--mask-soft`` alone turns the snap off, and
    turning the snap off turns the fill off)."""
    network = getattr(config, "network", None)
    used = bool(getattr(network, "attention_mask", False) and getattr(network, "mask_hard", False))
    radius = int(getattr(network, "mask_snap_radius", 0)) if used else 0
    snap_from = (mask_snap_flag(mask_snap) if mask_snap is not None
                 else mask_flag(False) if mask_hard is False else "checkpoint")
    return {"mask_hard": used, "mask_hard_from": "checkpoint" if mask_hard is None else mask_flag(mask_hard),
            "mask_snap_radius": radius, "mask_snap_from": snap_from,
            "mask_snap_fill": bool(radius and getattr(network, "mask_snap_fill", False)),
            "mask_fill_from": mask_fill_flag(mask_fill) if mask_fill is not None
            else snap_from if snap_from != "checkpoint" and not radius else "checkpoint"}


def _shared_logits(model: torch.nn.Module) -> Callable[[Tensor], Tensor]:
    """The classifier's logits, resized to its input size; computed once for consecutive calls on the same
    batch, so that the model's attributes and the nuisance ones cost one forward pass."""
    size = model.image_size
    last: list[Tensor | None] = [None, None]

    def logits(images: Tensor) -> Tensor:
        if last[0] is not images:
            x = images
            if x.shape[-1] != size or x.shape[-2] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            last[0], last[1] = images, model(x)
        return last[1]

    return logits


def _columns_fn(path: str | os.PathLike, model: torch.nn.Module, names: list[str], schema: LabelSchema,
                logits: Callable[[Tensor], Tensor], device: torch.device) -> Classify:
    """Logits in ``schema`` order from a classifier with attributes ``names`` that knows every schema attribute;
    UserError when one is missing or learned as part of an exclusive group where the schema has it binary."""
    missing = [n for n in schema.names if n not in names]
    if missing:
        raise UserError(f"{path}: the classifier's attributes ({', '.join(names) or 'unnamed'}) lack "
                        f"{', '.join(missing)} of the model's schema ({', '.join(schema.names)}); train one on "
                        "these attributes with `stargan train-classifier --attrs ...`")
    kind_of = {j: kind for kind, s, e in model.groups for j in range(s, e)}
    # A thresholded logit only means something if the classifier learned that column as a binary attribute.
    wrong = [n for g in schema.groups if g.kind == "binary" for n in g.names
             if kind_of.get(names.index(n)) != "binary"]
    if wrong:
        raise UserError(f"{path}: the classifier treats {', '.join(wrong)} as part of an exclusive group, but "
                        "the model's schema has them as binary attributes; retrain the classifier with the "
                        "model's --exclusive groups")
    index = torch.tensor([names.index(n) for n in schema.names], device=device)
    return lambda images: logits(images).index_select(1, index)


def _classifier_fn(path: str | os.PathLike, schema: LabelSchema,
                   device: torch.device) -> tuple[Classify, dict, Callable[[LabelSchema], Classify]]:
    """Logits in schema order from a saved attribute classifier that knows every schema attribute, its info for
    metrics.json, and a maker of the same for another schema (its nuisance attributes)."""
    model, meta = load_classifier(path, device)
    names = list(meta.get("attribute_names") or [])
    logits = _shared_logits(model)
    classify = _columns_fn(path, model, names, schema, logits, device)
    test_acc = meta.get("test_accuracy")
    info = {"path": str(path), "attribute_names": names, "image_size": model.image_size,
            "test_accuracy": test_acc.get("overall") if isinstance(test_acc, dict) else None}
    return classify, info, lambda other: _columns_fn(path, model, names, other, logits, device)


def _nuisance(split: EvalSplit, schema: LabelSchema, clf_names: list[str],
              columns: Callable[[LabelSchema], Classify]) -> tuple[Nuisance | None, str | None]:
    """The nuisance attributes the data folder declares that the model (``schema``) is not conditioned on, read by
    the classifier, with the test images' true values from the attribute file; else None and why not."""
    root = split.root
    if split.entry.format != "celeba" or not (root / SCHEMA_FILE).is_file():
        return None, f"{root} declares no nuisance attributes (no {SCHEMA_FILE}: not a shapes dataset)"
    declared = load_nuisance(root)
    if declared is None:
        return None, (f"{root / SCHEMA_FILE} declares no nuisance attributes (made before they existed; "
                      "regenerate it with `stargan make-dataset`)")
    # A model conditioned on one of them may change it on request: such a group is no nuisance for it.
    groups = {n: m for n, m in declared["exclusive"].items() if not set(m) & set(schema.names)}
    grouped = {a for m in declared["exclusive"].values() for a in m}
    attrs = [a for a in declared["attrs"]
             if a not in schema.names and (a not in grouped or any(a in m for m in groups.values()))]
    if not attrs:
        return None, f"the model is conditioned on every nuisance attribute of {root / SCHEMA_FILE}"
    missing = [a for a in attrs if a not in clf_names]
    if missing:
        return None, (f"the classifier does not know {', '.join(missing)}; train it on the dataset without "
                      "--attrs to include them")
    table = read_attr_file(split.entry.attr_path)
    absent = [a for a in attrs if a not in table.names]
    if absent:
        return None, f"{split.entry.attr_path} has no column {', '.join(absent)}"
    kept = LabelSchema.from_attrs(attrs, groups)
    try:
        classify = columns(kept)
    except UserError as err:
        return None, str(err)
    cols = [table.names.index(a) for a in kept.names]
    labels = {Path(f).stem: torch.from_numpy(table.labels[i, cols]).float() for i, f in enumerate(table.files)}
    return Nuisance(kept, classify, labels), None


def _counterfactual_index(data_dir: Path, schema: LabelSchema) -> dict[str, dict[str, Path]] | None:
    if not (data_dir / COUNTERFACTUAL_INDEX).is_file():
        return None
    items = load_counterfactuals(data_dir)["items"]
    wanted = set(schema.names)
    return {stem: {a: t["path"] for a, t in e["targets"].items() if a in wanted} for stem, e in items.items()}


def _load_model(checkpoint: str | os.PathLike, mask_hard: bool | None = None, mask_snap: int | None = None,
                mask_fill: bool | None = None):
    """The checkpoint's networks, labels and typed config (``mask_hard``, ``mask_snap``, ``mask_fill``: as
    :func:`with_mask_options`); refuses families whose G takes no target labels."""
    ckpt = with_mask_options(load_checkpoint(checkpoint, map_location="cpu"), mask_hard, str(checkpoint), mask_snap,
                             mask_fill)
    family = family_of_checkpoint(ckpt, str(checkpoint))
    if not family.label_conditioned:
        scored = ", ".join(f.title for f in FAMILIES.values() if f.label_conditioned)
        raise UserError(f"{checkpoint}: is a {family.title} checkpoint; `evaluate` scores label-conditioned "
                        f"models ({scored})")
    return family.load(ckpt, str(checkpoint))


def evaluate(checkpoint: str | os.PathLike, data_dir: str | os.PathLike | None = None,
             out_dir: str | os.PathLike | None = None, classifier: str | os.PathLike | None = None,
             fid_weights: str | os.PathLike | None = None, device: str = "auto", batch_size: int = 32,
             max_images: int | None = None, dataset: str | None = None, progress: bool = True,
             mask_hard: bool | None = None, mask_snap: int | None = None,
             mask_fill: bool | None = None) -> dict[str, Any]:
    """Evaluate a StarGAN checkpoint on the test split its trainer held out; see the module docstring.
    ``mask_hard`` (True/False) composes with the attention mask thresholded or soft whatever the checkpoint's
    config says (None: as it says), ``mask_snap`` (a radius, 0 = off) snaps the thresholded mask to the input's
    edges or not, ``mask_fill`` (True/False) fills the pixels the snap opens or not; the default ``out_dir`` then
    gets its own name (:func:`default_out_dir`).

    ``data_dir`` moves the dataset entry's files to another folder (:mod:`stargan.evaluation.split`); without it
    the paths in the checkpoint's config are used, which an entry that held no test images out refuses. Writes
    ``metrics.json`` and ``samples.png`` (plus ``counterfactuals.png`` when the data has ground truth) into
    ``out_dir`` (default :func:`default_out_dir`) and returns the metrics. Skipped parts (no classifier, no FID
    weights) log one line each.
    """
    t0 = time.perf_counter()
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise UserError(f"--max-images must be >= 1, got {max_images}")
    if data_dir is not None:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise UserError(f"--data {data_dir}: data folder not found")
    dev = resolve_device(device)
    loaded = _load_model(checkpoint, mask_hard, mask_snap, mask_fill)
    labels, cfg = loaded.labels, loaded.config
    G = loaded.nets["G"].to(dev)
    i = 0 if dataset is None else labels.dataset_index(dataset)
    schema = labels.schemas[i]
    entry = next((e for e in cfg.data.datasets if e.name == labels.names[i]), None)
    if entry is None:
        raise UserError(f"{checkpoint}: its config has no data.datasets entry named '{labels.names[i]}'")
    split = load_test_split(entry, cfg.data, data_dir, max_images)
    if tuple(split.dataset.schema.names) != schema.names:
        raise UserError(f"{split.root}: dataset '{entry.name}' has the attributes "
                        f"{', '.join(split.dataset.schema.names)}, the model {', '.join(schema.names)}")
    image_size, crop_size = loaded.image_size, split.entry.crop_size
    out = Path(out_dir) if out_dir is not None else default_out_dir(checkpoint, mask_hard, mask_snap, mask_fill)
    # Resolve everything that can fail before the (long) loop runs, and before saying what is skipped: a bad
    # file then ends the command with its error line alone.
    classify, clf_info, nuisance, nuisance_skipped = None, None, None, "no --classifier given"
    if classifier is not None:
        classify, clf_info, columns = _classifier_fn(classifier, schema, dev)
        nuisance, nuisance_skipped = _nuisance(split, schema, clf_info["attribute_names"], columns)
    weights = resolve_fid_weights(fid_weights)
    extractor = fid_feature_fn(weights, dev, batch_size)
    if classify is None:
        log.info("attribute accuracy skipped: no --classifier given (train one with `stargan train-classifier`)")
    if weights is None:
        log.info(fid_unavailable_message("--fid-weights"))
    if classify is not None and nuisance is None:
        log.info("nuisance preservation skipped: %s", nuisance_skipped)

    index = _counterfactual_index(split.root, schema)

    def generate(x: Tensor, target: Tensor) -> Tensor:
        return G(x, labels.g_label(i, target))

    bar = tqdm(total=len(split), disable=not progress, unit="img", desc="evaluate")
    try:
        result = evaluate_generator(
            generate, split_batches(split, batch_size), schema, classify=classify, counterfactuals=index,
            load_counterfactual=lambda p: load_test_image(p, image_size, crop_size), features=extractor, device=dev,
            progress=bar.update, nuisance=nuisance,
            last_mask=(lambda: G.attention.last_mask) if getattr(G, "attention", None) is not None else None)
    finally:
        bar.close()

    out.mkdir(parents=True, exist_ok=True)
    outputs = {"metrics": str(out / METRICS_FILE)}
    for key, name in (("samples", SAMPLES_FILE), ("counterfactuals", COUNTERFACTUAL_GRID_FILE)):
        if key in result.grids:
            save_grid(result.grids[key], out / name)
            outputs[key] = str(out / name)
    metrics = {
        "checkpoint": str(checkpoint),
        "data_dir": str(split.root),
        "dataset": labels.names[i],
        "attributes": list(schema.names),
        "schema": schema.to_dict(),
        "image_size": image_size,
        "crop_size": crop_size,
        "split": split.description,
        "classifier": clf_info,
        "fid_weights": str(weights) if weights is not None else None,
        **mask_fields(cfg, mask_hard, mask_snap, mask_fill),
        **result.metrics,
        "skipped": {
            "accuracy": None if classify else "no --classifier given",
            "counterfactual": None if index else f"{split.root / COUNTERFACTUAL_INDEX} not found",
            "fid": None if weights else "FID Inception weights not found",
            "nuisance": nuisance_skipped,
        },
        "outputs": outputs,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json_atomic(out / METRICS_FILE, metrics)
    return metrics
