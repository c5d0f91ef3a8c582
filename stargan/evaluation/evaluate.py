"""StarGAN evaluation: the paper's classifier protocol plus ground-truth metrics where the data has them.

For every test image and every target of the official test grid (:func:`stargan.labels.single_changes`: one
column per attribute) the generator translates the image, and the translations are scored by:

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
* ``cycle_reconstruction``: L1 of ``G(G(x, c_trg), c_org)`` against ``x``.
* ``fid``: FID (per attribute and overall) and KID (overall) between the real test images and the
  translations, with the TF-Inception FID weights only; without them FID/KID are skipped.

Every number is reported with its sample count ``n``. :func:`evaluate_generator` holds the metric logic and
takes any ``generate(images, target_labels)`` callable, so it can be checked with stub generators.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from common.errors import UserError
from common.labels.schema import LabelSchema
from common.labels.targets import single_changes
from common.metrics.image_error import RunningMean, l1_error, psnr

METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.png"
COUNTERFACTUAL_GRID_FILE = "counterfactuals.png"
SAMPLE_ROWS = 8
ATTR_FILE = "list_attr_celeba.txt"
IMAGES_DIR = "images"
PARTITION_FILE = "list_eval_partition.txt"
TEST_FILES = "test_files.txt"
COUNTERFACTUAL_INDEX = Path("counterfactuals") / "index.json"
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000

Generate = Callable[[Tensor, Tensor], Tensor]
Classify = Callable[[Tensor], Tensor]


# ---------------------------------------------------------------------------------------------- test data
@dataclass
class TestSplit:
    """The test images of a CelebA-format folder: files, stems, ground-truth labels (schema order)."""

    files: list[Path]
    labels: Tensor
    split: str
    stems: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.stems = [f.stem for f in self.files]

    def __len__(self) -> int:
        return len(self.files)


def _read_test_files(path: Path, filenames: Sequence[str]) -> list[int]:
    wanted = path.read_text(encoding="utf-8").split()
    position = {f: i for i, f in enumerate(filenames)}
    unknown = [f for f in wanted if f not in position]
    if unknown:
        raise UserError(f"{path}: lists {len(unknown)} file(s) that are not in {ATTR_FILE}, e.g. {unknown[0]}")
    chosen = {position[f] for f in wanted}
    return [i for i in range(len(filenames)) if i in chosen]


def load_test_split(data_dir: str | os.PathLike, attr_names: Sequence[str], test_count: int = 2000,
                    split_seed: int = 1234, max_images: int | None = None) -> TestSplit:
    """The test split of ``data_dir`` (``images/`` + ``list_attr_celeba.txt``), labels in ``attr_names`` order.

    The split is, in order of preference: ``list_eval_partition.txt`` (rows marked 2), ``test_files.txt``, or
    the seeded CelebA split (:func:`stargan.datasets.split_indices` with ``test_count``/``split_seed``, the
    rule the trainer uses when its config names no partition file). Rows keep the attribute file's order;
    ``max_images`` keeps the first ones.
    """
    from stargan.datasets import partition_indices, read_celeba_attrs, split_indices

    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"{root}: data folder not found (expected a CelebA-format folder with {IMAGES_DIR}/ "
                        f"and {ATTR_FILE})")
    image_dir = root / IMAGES_DIR
    if not image_dir.is_dir():
        raise UserError(f"{image_dir}: image folder not found")
    # read_celeba_attrs names the file and the attributes it lacks, which is the error users need here.
    filenames, labels, _ = read_celeba_attrs(root / ATTR_FILE, list(attr_names))
    if (root / PARTITION_FILE).is_file():
        idx, split = partition_indices(root / PARTITION_FILE, filenames, "test"), PARTITION_FILE
    elif (root / TEST_FILES).is_file():
        idx, split = _read_test_files(root / TEST_FILES, filenames), TEST_FILES
    else:
        idx = split_indices(len(filenames), "test", test_count, split_seed)
        split = f"seeded split (test_count={test_count}, split_seed={split_seed})"
    if max_images is not None:
        idx = idx[:max_images]
    if not idx:
        raise UserError(f"{root}: the test split ({split}) holds no images")
    files = [image_dir / filenames[i] for i in idx]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: image file not found (listed in {root / ATTR_FILE})"
                        + (f" ({len(missing) - 1} more missing)" if len(missing) > 1 else ""))
    return TestSplit(files, labels[idx].clone(), split)


def load_image(path: str | os.PathLike, image_size: int, crop_size: int | None) -> Tensor:
    """One image as the evaluation sees it: the StarGAN test transform (centre crop, resize, [-1, 1])."""
    from common.data.images import load_rgb
    from stargan.datasets import stargan_transform

    return stargan_transform(load_rgb(path), image_size, crop_size, flip=False)


class _SplitImages(Dataset):
    def __init__(self, split: TestSplit, image_size: int, crop_size: int | None):
        self.split, self.image_size, self.crop_size = split, image_size, crop_size

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, str]:
        image = load_image(self.split.files[i], self.image_size, self.crop_size)
        return image, self.split.labels[i], self.split.stems[i]


def split_batches(split: TestSplit, image_size: int, crop_size: int | None, batch_size: int,
                  num_workers: int = 0) -> DataLoader:
    """Batches ``(images, labels, stems)`` of a test split, in split order."""
    return DataLoader(_SplitImages(split, image_size, crop_size), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers)


# ------------------------------------------------------------------------------------------ metric tallies
def _ratio(num: float, den: int) -> float | None:
    # None rather than NaN: NaN is not valid JSON.
    return float(num) / den if den else None


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


class _Accuracy:
    """Correct/total counts per key plus an overall count."""

    def __init__(self, keys: Sequence[str]):
        self.correct = dict.fromkeys(keys, 0)
        self.total = dict.fromkeys(keys, 0)

    def add(self, key: str, hits: Tensor, valid: Tensor | None = None) -> None:
        if valid is not None:
            hits = hits[valid]
        self.correct[key] += int(hits.sum())
        self.total[key] += int(hits.numel())

    def result(self) -> dict[str, Any]:
        c, n = sum(self.correct.values()), sum(self.total.values())
        return {
            "overall": {"accuracy": _ratio(c, n), "n": n},
            "per_attribute": {k: {"accuracy": _ratio(self.correct[k], self.total[k]), "n": self.total[k]}
                              for k in self.correct},
        }


class _Errors:
    """Running means of named per-image errors, per key and overall."""

    def __init__(self, keys: Sequence[str], metrics: Sequence[str]):
        self.metrics = tuple(metrics)
        self.per = {k: {m: RunningMean() for m in metrics} for k in keys}
        self.all = {m: RunningMean() for m in metrics}

    def add(self, key: str, **values: Tensor) -> None:
        for m, v in values.items():
            self.per[key][m].update(v)
            self.all[m].update(v)

    @staticmethod
    def _row(means: Mapping[str, RunningMean]) -> dict[str, Any]:
        row: dict[str, Any] = {m: _finite(r.result()[0]) for m, r in means.items()}
        row["n"] = next(iter(means.values())).result()[1]
        return row

    def result(self) -> dict[str, Any]:
        return {"overall": self._row(self.all), "per_attribute": {k: self._row(v) for k, v in self.per.items()}}


def _labels_from_logits(logits: Tensor, schema: LabelSchema) -> Tensor:
    """0/1 decisions by the schema's group kinds: binary ``logit > 0``, exclusive one-hot argmax."""
    out = torch.zeros_like(logits)
    for g, s, e in schema.spans():
        if g.kind == "binary":
            out[:, s] = (logits[:, s] > 0).to(out.dtype)
        else:
            out[:, s:e] = F.one_hot(logits[:, s:e].argmax(dim=1), e - s).to(out.dtype)
    return out


def _agree(logits: Tensor, ref: Tensor, kind: str, s: int, e: int) -> tuple[Tensor, Tensor]:
    """Per row: does the classifier's decision on group ``[s:e)`` match the 0/1 reference, and does the
    reference define one (an exclusive block with no member set, as in some CelebA rows, does not)."""
    if kind == "binary":
        hits = (logits[:, s] > 0) == (ref[:, s] > 0.5)
        return hits, torch.ones_like(hits)
    block = ref[:, s:e]
    return logits[:, s:e].argmax(dim=1) == block.argmax(dim=1), block.sum(dim=1) > 0


# ------------------------------------------------------------------------------------------------ the core
@dataclass
class EvalResult:
    """Metrics (plain data) and the sample grids ``(3, rows*H, (1+targets)*W)`` in [-1, 1]."""

    metrics: dict[str, Any]
    grids: dict[str, Tensor]


def _fid_block(real: Tensor, fake: Tensor, with_kid: bool) -> dict[str, Any]:
    from common.metrics import fid_from_features, kid_from_features

    row: dict[str, Any] = {"fid": None, "n_real": int(real.shape[0]), "n_fake": int(fake.shape[0])}
    if real.shape[0] < 2 or fake.shape[0] < 2:
        row["note"] = "needs at least 2 images per side"
        return row
    row["fid"] = fid_from_features(real, fake)
    if with_kid:
        row["kid"], row["kid_std"] = kid_from_features(real, fake, num_subsets=KID_SUBSETS,
                                                       subset_size=KID_SUBSET_SIZE, seed=0)
        row["kid_subset_size"] = min(KID_SUBSET_SIZE, int(real.shape[0]), int(fake.shape[0]))
    return row


@torch.no_grad()
def evaluate_generator(
    generate: Generate,
    batches: Iterable[tuple[Tensor, Tensor, Sequence[str]]],
    schema: LabelSchema,
    classify: Classify | None = None,
    counterfactuals: Mapping[str, Mapping[str, Any]] | None = None,
    load_counterfactual: Callable[[Any], Tensor] | None = None,
    features: Callable[[Tensor], Tensor] | None = None,
    device: str | torch.device = "cpu",
    sample_rows: int = SAMPLE_ROWS,
    progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Translate every image of ``batches`` to every single-attribute target and score the translations.

    ``generate(images, labels)`` gets the images and the target labels in ``schema`` order (the caller maps
    them to G's label input), both on ``device``. ``batches`` yields ``(images, labels, stems)``; the labels
    are the ground truth, also the ``c_org`` of the cycle reconstruction. ``classify(images) -> logits``
    in schema order enables the accuracies. ``counterfactuals[stem][attr]`` is a ground-truth image (a
    tensor, or anything ``load_counterfactual`` turns into one at the evaluation size). ``features(images)
    -> (N, d)`` enables FID/KID. ``progress(n)`` is called with the number of images after each batch.
    """
    device = torch.device(device)
    names = list(schema.names)
    spans = {n: (g, s, e) for g, s, e in schema.spans() for n in g.names}
    target_acc, preserve_acc = _Accuracy(names), _Accuracy(names)
    cycle = _Errors(names, ["l1"])
    cf_metrics = ("l1", "psnr", "baseline_l1", "baseline_psnr")
    cf = _Errors(names, cf_metrics)
    real_logits, real_labels = [], []
    real_feats: list[Tensor] = []
    fake_feats: dict[str, list[Tensor]] = {n: [] for n in names}
    samples: dict[str, list[Tensor]] = {"inputs": [], "labels": [], "stems": []}
    sample_outputs: list[list[Tensor]] = [[] for _ in names]
    n_images = 0

    for images, labels, stems in batches:
        x = images.to(device, torch.float32)
        c_org = labels.to(device, torch.float32)
        stems = list(stems)
        take = max(0, min(sample_rows - sum(len(s) for s in samples["stems"]), x.shape[0]))
        if take:
            samples["inputs"].append(x[:take].cpu())
            samples["labels"].append(c_org[:take].cpu())
            samples["stems"].append(stems[:take])
        logits_in = pred_in = None
        if classify is not None:
            logits_in = classify(x).float()
            pred_in = _labels_from_logits(logits_in, schema)
            real_logits.append(logits_in.cpu())
            real_labels.append(c_org.cpu())
        if features is not None:
            real_feats.append(features(x).cpu())

        for k, (name, target) in enumerate(single_changes(schema, c_org)):
            y = generate(x, target).float()
            if take:
                sample_outputs[k].append(y[:take].cpu())
            rec = generate(y, c_org).float()
            cycle.add(name, l1=l1_error(rec, x).cpu())
            group, s, e = spans[name]
            if classify is not None:
                logits_y = classify(y).float()
                hits, valid = _agree(logits_y, target, group.kind, s, e)
                # Only real changes count: "set Red" on a red object asks for nothing and would inflate it.
                changed = (target[:, s:e] != c_org[:, s:e]).any(dim=1)
                target_acc.add(name, hits, valid & changed)
                # Preservation counts one decision per untouched group (the changed group is the target).
                for g2, s2, e2 in schema.spans():
                    if g2 is not group:
                        preserve_acc.add(name, _agree(logits_y, pred_in, g2.kind, s2, e2)[0])
            if features is not None:
                fake_feats[name].append(features(y).cpu())
            if counterfactuals:
                rows = [i for i, stem in enumerate(stems) if name in counterfactuals.get(stem, {})]
                if rows:
                    truth = [counterfactuals[stems[i]][name] for i in rows]
                    truth = torch.stack([t if isinstance(t, Tensor) else load_counterfactual(t) for t in truth])
                    truth = truth.to(device, torch.float32)
                    picked = torch.tensor(rows, device=device)
                    yk, xk = y.index_select(0, picked), x.index_select(0, picked)
                    cf.add(name, l1=l1_error(yk, truth).cpu(), psnr=psnr(yk, truth).cpu(),
                           baseline_l1=l1_error(xk, truth).cpu(), baseline_psnr=psnr(xk, truth).cpu())
        n_images += x.shape[0]
        if progress is not None:
            progress(x.shape[0])

    metrics: dict[str, Any] = {
        "counts": {"test_images": n_images, "targets_per_image": len(names), "translations": n_images * len(names)},
        "target_accuracy": None, "preserve_accuracy": None, "real_accuracy": None,
        "counterfactual": None, "cycle_reconstruction": cycle.result(), "fid": None,
    }
    if classify is not None:
        metrics["target_accuracy"] = target_acc.result()
        metrics["preserve_accuracy"] = preserve_acc.result()
        metrics["real_accuracy"] = _real_accuracy(torch.cat(real_logits), torch.cat(real_labels), schema)
    if counterfactuals:
        metrics["counterfactual"] = cf.result()
        metrics["counts"]["counterfactual_pairs"] = metrics["counterfactual"]["overall"]["n"]
    if features is not None and n_images:
        real = torch.cat(real_feats)
        per = {n: torch.cat(fake_feats[n]) for n in names}
        metrics["fid"] = {
            "overall": _fid_block(real, torch.cat(list(per.values())), with_kid=True),
            "per_attribute": {n: _fid_block(real, f, with_kid=False) for n, f in per.items()},
        }

    grids = {}
    if samples["stems"]:
        inputs, labels = torch.cat(samples["inputs"]), torch.cat(samples["labels"])
        outs = [torch.cat(o) for o in sample_outputs]
        grids["samples"] = _grid([inputs, *outs])
        if counterfactuals:
            stems = [s for chunk in samples["stems"] for s in chunk]
            grids["counterfactuals"] = _grid([inputs, *_truth_columns(
                inputs, labels, stems, schema, counterfactuals, load_counterfactual)])
    return EvalResult(metrics, grids)


def _real_accuracy(logits: Tensor, labels: Tensor, schema: LabelSchema) -> dict[str, Any]:
    """Classifier vs ground truth on real images. An exclusive member's accuracy is over the images of that
    class (how often the class is recognised), as in :func:`common.metrics.attribute_accuracy`."""
    acc = _Accuracy(list(schema.names))
    for g, s, e in schema.spans():
        hits, valid = _agree(logits, labels, g.kind, s, e)
        if g.kind == "binary":
            acc.add(g.names[0], hits)
        else:
            cls = labels[:, s:e].argmax(dim=1)
            for j, name in enumerate(g.names):
                acc.add(name, hits, valid & (cls == j))
    return acc.result()


def _truth_columns(inputs: Tensor, labels: Tensor, stems: Sequence[str], schema: LabelSchema,
                   counterfactuals: Mapping[str, Mapping[str, Any]],
                   load_counterfactual: Callable[[Any], Tensor] | None) -> list[Tensor]:
    """Ground truth in the layout of the samples grid. A target equal to the input's own label has the input
    itself as its truth (the dataset lists no counterfactual for it); other gaps are mid-grey."""
    columns = []
    for name, target in single_changes(schema, labels):
        tiles = []
        for i, stem in enumerate(stems):
            entry = counterfactuals.get(stem, {}).get(name)
            if entry is not None:
                tiles.append(entry if isinstance(entry, Tensor) else load_counterfactual(entry))
            elif torch.equal(target[i], labels[i]):
                tiles.append(inputs[i])
            else:
                tiles.append(torch.zeros_like(inputs[i]))
        columns.append(torch.stack(tiles).float().cpu())
    return columns


def _grid(columns: Sequence[Tensor]) -> Tensor:
    """Columns of ``(rows, 3, H, W)`` images -> one ``(3, rows*H, cols*W)`` image."""
    rows = torch.cat(list(columns), dim=3)  # (rows, 3, H, cols*W)
    return torch.cat(list(rows), dim=1)


# ------------------------------------------------------------------------------------------- orchestration
def default_out_dir(checkpoint: str | os.PathLike) -> Path:
    """``RUN/eval`` for a checkpoint in ``RUN/checkpoints/`` (or a run folder), else ``./eval``."""
    path = Path(checkpoint)
    if path.is_dir():
        return path / "eval"
    if path.parent.name == "checkpoints":
        return path.parent.parent / "eval"
    return Path("eval")


def _dataset_index(labels, dataset: str | None) -> int:
    if dataset is None:
        return 0
    if dataset not in labels.names:
        raise UserError(f"--dataset {dataset}: the checkpoint has no such dataset; its datasets: "
                        f"{', '.join(labels.names)}")
    return labels.names.index(dataset)


def _classifier_fn(path: str | os.PathLike, schema: LabelSchema, image_size: int,
                   device: torch.device) -> tuple[Classify, dict[str, Any]]:
    """Logits in schema order from a saved attribute classifier that knows every schema attribute."""
    from common.metrics import load_classifier

    model, meta = load_classifier(path, device)
    names = list(meta.get("attribute_names") or [])
    missing = [n for n in schema.names if n not in names]
    if missing:
        raise UserError(f"{path}: the classifier's attributes ({', '.join(names) or 'unnamed'}) lack "
                        f"{', '.join(missing)} of the model's schema ({', '.join(schema.names)}); train one on "
                        "these attributes with `stargan train-classifier --attrs ...`")
    cols = [names.index(n) for n in schema.names]
    kind_of = {j: kind for kind, s, e in model.groups for j in range(s, e)}
    # A thresholded logit only means something if the classifier learned that column as a binary attribute.
    wrong = [n for g in schema.groups if g.kind == "binary" for n in g.names
             if kind_of.get(names.index(n)) != "binary"]
    if wrong:
        raise UserError(f"{path}: the classifier treats {', '.join(wrong)} as part of an exclusive group, but "
                        "the model's schema has them as binary attributes; retrain the classifier with the "
                        "model's --exclusive groups")
    index = torch.tensor(cols, device=device)
    size = model.image_size

    def classify(images: Tensor) -> Tensor:
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                   antialias=True)
        return model(images).index_select(1, index)

    test_acc = meta.get("test_accuracy")
    info = {"path": str(path), "attribute_names": names, "image_size": size,
            "test_accuracy": test_acc.get("overall") if isinstance(test_acc, dict) else None}
    return classify, info


def _counterfactual_index(data_dir: Path, schema: LabelSchema) -> dict[str, dict[str, Path]] | None:
    if not (data_dir / COUNTERFACTUAL_INDEX).is_file():
        return None
    from common.data.shapes import load_counterfactuals

    items = load_counterfactuals(data_dir)["items"]
    wanted = set(schema.names)
    return {stem: {a: t["path"] for a, t in e["targets"].items() if a in wanted} for stem, e in items.items()}


def _save_grid(grid: Tensor, path: Path) -> None:
    from common.data.images import tensor_to_image

    tensor_to_image(grid).save(path)


def evaluate(checkpoint: str | os.PathLike, data_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
             classifier: str | os.PathLike | None = None, fid_weights: str | os.PathLike | None = None,
             device: str = "auto", batch_size: int = 32, max_images: int | None = None,
             dataset: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Evaluate a StarGAN checkpoint on the test split of a CelebA-format folder; see the module docstring.

    Writes ``metrics.json`` and ``samples.png`` (plus ``counterfactuals.png`` when the data has ground truth)
    into ``out_dir`` (default :func:`default_out_dir`) and returns the metrics. Skipped parts (no classifier,
    no FID weights) print one line each.
    """
    from common.checkpoint import load_checkpoint
    from common.device import resolve_device
    from common.metrics import extract_features, fid_unavailable_message, load_fid_inception, resolve_fid_weights
    from stargan.model import networks_from_checkpoint

    t0 = time.perf_counter()
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise UserError(f"--max-images must be >= 1, got {max_images}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"--data {data_dir}: data folder not found")
    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    if ckpt.get("model") != "stargan":
        raise UserError(f"{checkpoint}: is a {ckpt.get('model')} checkpoint; `evaluate` scores StarGAN models")
    nets, labels = networks_from_checkpoint(ckpt, str(checkpoint))
    G = nets["G"].to(dev)
    i = _dataset_index(labels, dataset)
    schema = labels.schemas[i]
    cfg = ckpt["config"]
    image_size = int(cfg["data"]["image_size"])
    entry = cfg["data"]["datasets"][i] if i < len(cfg["data"].get("datasets", [])) else {}
    # The training crop, so test images look like what G was trained on (shapes: None, the whole image).
    crop_size = entry.get("crop_size")
    split = load_test_split(data_dir, schema.names, int(entry.get("test_count", 2000)),
                            int(entry.get("split_seed", 1234)), max_images)
    out = Path(out_dir) if out_dir is not None else default_out_dir(checkpoint)
    # Resolve everything that can fail before the (long) loop runs.
    classify, clf_info = None, None
    if classifier is not None:
        classify, clf_info = _classifier_fn(classifier, schema, image_size, dev)
    else:
        print("attribute accuracy skipped: no --classifier given (train one with `stargan train-classifier`)")
    weights = resolve_fid_weights(fid_weights)
    extractor = None
    if weights is None:
        print(fid_unavailable_message("--fid-weights"))
    else:
        inception = load_fid_inception(weights, dev)

        def extractor(images: Tensor) -> Tensor:
            return extract_features(inception, images, dev, batch_size=batch_size)

    index = _counterfactual_index(data_dir, schema)

    def generate(x: Tensor, target: Tensor) -> Tensor:
        return G(x, labels.g_label(i, target))

    from tqdm import tqdm

    bar = tqdm(total=len(split), disable=not progress, unit="img", desc="evaluate")
    try:
        result = evaluate_generator(
            generate, split_batches(split, image_size, crop_size, batch_size), schema, classify=classify,
            counterfactuals=index, load_counterfactual=lambda p: load_image(p, image_size, crop_size),
            features=extractor, device=dev, progress=bar.update)
    finally:
        bar.close()

    out.mkdir(parents=True, exist_ok=True)
    outputs = {"metrics": str(out / METRICS_FILE)}
    for key, name in (("samples", SAMPLES_FILE), ("counterfactuals", COUNTERFACTUAL_GRID_FILE)):
        if key in result.grids:
            _save_grid(result.grids[key], out / name)
            outputs[key] = str(out / name)
    metrics = {
        "checkpoint": str(checkpoint),
        "data_dir": str(data_dir),
        "dataset": labels.names[i],
        "attributes": list(schema.names),
        "schema": schema.to_dict(),
        "image_size": image_size,
        "crop_size": crop_size,
        "split": split.split,
        "classifier": clf_info,
        "fid_weights": str(weights) if weights is not None else None,
        **result.metrics,
        "skipped": {
            "accuracy": None if classify else "no --classifier given",
            "counterfactual": None if index else f"{data_dir / COUNTERFACTUAL_INDEX} not found",
            "fid": None if weights else "FID Inception weights not found",
        },
        "outputs": outputs,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    return metrics


# ----------------------------------------------------------------------------------------------- printing
def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _acc(block: Mapping[str, Any] | None) -> str:
    return "-" if not block or block.get("n", 0) == 0 else f"{_num(block['accuracy'])} (n={block['n']})"


def format_table(metrics: Mapping[str, Any]) -> str:
    """A plain-text summary of :func:`evaluate`'s metrics: one row per attribute and an overall row, each
    number with its sample count."""
    attrs = list(metrics["attributes"])
    sections = {k: metrics.get(k) for k in ("target_accuracy", "preserve_accuracy", "real_accuracy",
                                            "counterfactual", "cycle_reconstruction", "fid")}
    header = ["attribute"]
    if sections["target_accuracy"]:
        header += ["target acc", "preserve acc", "real acc"]
    if sections["counterfactual"]:
        header += ["cf L1 (baseline)", "cf PSNR (baseline)"]
    header += ["cycle L1"]
    if sections["fid"]:
        header += ["FID"]

    def row(label: str, pick: Callable[[Mapping[str, Any] | None], Mapping[str, Any] | None]) -> list[str]:
        cells = [label]
        if sections["target_accuracy"]:
            cells += [_acc(pick(sections[k])) for k in ("target_accuracy", "preserve_accuracy", "real_accuracy")]
        if sections["counterfactual"]:
            cf = pick(sections["counterfactual"]) or {}
            if cf.get("n"):
                cells += [f"{_num(cf['l1'])} ({_num(cf['baseline_l1'])}) n={cf['n']}",
                          f"{_num(cf['psnr'], 2)} ({_num(cf['baseline_psnr'], 2)}) n={cf['n']}"]
            else:
                cells += ["-", "-"]
        cyc = pick(sections["cycle_reconstruction"]) or {}
        cells.append(f"{_num(cyc.get('l1'))} (n={cyc.get('n', 0)})")
        if sections["fid"]:
            f = pick(sections["fid"]) or {}
            cells.append(f"{_num(f.get('fid'), 2)} (n={f.get('n_fake', 0)})")
        return cells

    rows = [header]
    for a in attrs:
        rows.append(row(a, lambda s, a=a: None if s is None else (s.get("per_attribute") or {}).get(a)))
    rows.append(row("overall", lambda s: None if s is None else s.get("overall")))
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts = metrics.get("counts", {})
    lines.insert(0, f"{metrics.get('dataset', '')}: {counts.get('test_images', 0)} test images x "
                    f"{counts.get('targets_per_image', 0)} targets = {counts.get('translations', 0)} translations "
                    f"({metrics.get('split', '')}, {metrics.get('image_size')}px)")
    fid = (sections["fid"] or {}).get("overall")
    if fid:
        kid = f", KID {_num(fid.get('kid'), 4)} +- {_num(fid.get('kid_std'), 4)}" if fid.get("kid") is not None else ""
        lines.append(f"FID (all translations vs {fid['n_real']} real) {_num(fid.get('fid'), 2)} "
                     f"(n={fid['n_fake']}){kid}")
    for key, reason in (metrics.get("skipped") or {}).items():
        if reason:
            lines.append(f"{key}: skipped ({reason})")
    return "\n".join(lines)
