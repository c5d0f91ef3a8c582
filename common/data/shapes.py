"""A procedural multi-attribute "shapes" dataset with ground-truth counterfactuals.

Real datasets cannot say what a translated image *should* look like. Here every image is rendered from a small
:class:`ShapesParams` record by the pure function :func:`render`, so the counterfactual "this very scene with
one attribute changed" is simply the same record with one field changed, re-rendered with the same position,
size, background pattern and per-pixel noise. Translation quality can then be measured against it.

Attributes (label vector order = :data:`SHAPES_ATTRS`):

* object colour, an exclusive group (:data:`SHAPES_EXCLUSIVE`): four well-separated colours;
* ``Striped``: diagonal stripes in a darker shade of the object colour, vs. a solid object;
* ``Dark_Background``: dark vs. light background.

Nuisance factors that a translator must keep: shape (circle/square/triangle), rotation, position, size,
background gradient direction, stripe phase, and small Gaussian pixel noise. The geometry is stored as
fractions of the image size, so one record renders at any size.

Antialiasing uses a per-pixel object coverage (see :func:`object_mask`). A pixel with coverage 0 is exactly the
background and one with coverage 1 exactly the object, so a colour or stripe change alters only pixels with
coverage > 0 and a background change only pixels with coverage < 1.

Folder layout written by :func:`make_dataset` (all paths relative to ``out``)::

    attributes.json                schema (attrs + exclusive groups), generation settings, file names
    list_attr_celeba.txt           CelebA format: count, attribute names, "<file> <-1/1 ...>" rows
    list_eval_partition.txt        CelebA format: "<file> 0" (train) or "<file> 2" (test)
    test_files.txt                 the fixed test split, one file name a line
    params.json                    file name -> ShapesParams fields (see :func:`load_params`)
    images/000001.png ...
    counterfactuals/<stem>/<Attr>.png, counterfactuals/index.json   (test images only)
    cyclegan/<A>2<B>/trainA|trainB|testA|testB/                      (optional, :func:`write_cyclegan_view`)

Overwrite rule: ``out`` may be missing, an empty folder, or a folder that ``attributes.json`` marks as a shapes
dataset (complete or left half-written by an interrupted run). In the last case the entries this module
owns (the files and folders listed above) are deleted and regenerated, whatever the old settings were; other
entries in the folder are left alone. Any other non-empty folder is refused, so a mistyped ``--out`` can never
delete user data.

Everything written is a pure function of ``(n, size, seed, test_fraction, cyclegan_views)``: the same
arguments give byte-identical files. Image ``i`` is drawn from its own generator seeded with ``(seed, i)``, so
a dataset with a larger ``n`` starts with the same scenes.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common.errors import UserError

# Each attribute name is spelled exactly once, here; everything else derives from these constants.
_COLOURS: tuple[str, ...] = ("Red", "Green", "Blue", "Yellow")
STRIPED = "Striped"
DARK_BACKGROUND = "Dark_Background"

SHAPES_ATTRS: list[str] = [*_COLOURS, STRIPED, DARK_BACKGROUND]
SHAPES_EXCLUSIVE: list[list[str]] = [list(_COLOURS)]

# Far apart in RGB and in hue, and each far from both backgrounds in at least one channel, so a small G can
# learn the change in minutes.
_PALETTE: dict[str, tuple[int, int, int]] = dict(
    zip(_COLOURS, ((220, 40, 40), (40, 180, 60), (40, 80, 220), (235, 210, 40)))
)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

_STRIPE_SHADE = 0.5  # stripe colour = object colour * this
_LIGHT_BG = 215.0
_DARK_BG = 40.0
_GRADIENT = 14.0  # background gradient half-amplitude (levels): visible texture, far below the light/dark gap
_NOISE_STD = 3.0
# Keep objects this far (fraction of size) from the border so they are never cut off: >= 1 px at MIN_SIZE, the
# half pixel to the first pixel centre plus the half-pixel antialias ramp.
_MARGIN = 0.07
# Circumradius / radius per shape, chosen so the three shapes have roughly the same area; also used to keep
# rotated corners inside the image.
_REACH = {"circle": 1.0, "square": math.sqrt(math.pi / 2.0), "triangle": 1.35}

FORMAT = "stargan-shapes"
FORMAT_VERSION = 1
SCHEMA_FILE = "attributes.json"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
TEST_FILES = "test_files.txt"
PARAMS_FILE = "params.json"
IMAGES_DIR = "images"
CF_DIR = "counterfactuals"
CF_INDEX = "index.json"
CYCLEGAN_DIR = "cyclegan"
_OWNED = (SCHEMA_FILE, ATTR_FILE, PARTITION_FILE, TEST_FILES, PARAMS_FILE, IMAGES_DIR, CF_DIR, CYCLEGAN_DIR)

MIN_N = 10
MIN_SIZE = 16
MAX_SIZE = 1024


@dataclass(frozen=True)
class ShapesParams:
    """Everything :func:`render` needs. Geometry is in fractions of the image size, angles in degrees."""

    colour: str  # one of SHAPES_EXCLUSIVE[0]
    striped: bool
    dark_background: bool
    shape: str  # one of SHAPES
    cx: float
    cy: float
    radius: float  # radius of the equal-area circle
    rotation: float
    stripe_phase: float  # in [0, 1): stripe offset in periods
    gradient_angle: float  # direction in which the background gets lighter
    noise_seed: int

    def __post_init__(self) -> None:
        if self.colour not in _PALETTE:
            raise ValueError(f"colour must be one of {list(_COLOURS)}, got {self.colour!r}")
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {list(SHAPES)}, got {self.shape!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShapesParams:
        names = {f.name for f in fields(cls)}
        if set(d) != names:
            raise ValueError(f"expected keys {sorted(names)}, got {sorted(d)}")
        return cls(**d)


def sample_params(rng: np.random.Generator) -> ShapesParams:
    """One random scene. Attributes are independent and uniform (colour 1/4 each, binaries 1/2)."""
    colour = _COLOURS[int(rng.integers(len(_COLOURS)))]
    striped = bool(rng.integers(2))
    dark = bool(rng.integers(2))
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    radius = float(rng.uniform(0.16, 0.25))
    reach = radius * _REACH[shape] + _MARGIN
    # Rounding keeps params.json readable; the rounded values are the ones rendered, so reloading is exact.
    return ShapesParams(
        colour=colour,
        striped=striped,
        dark_background=dark,
        shape=shape,
        cx=round(float(rng.uniform(reach, 1.0 - reach)), 4),
        cy=round(float(rng.uniform(reach, 1.0 - reach)), 4),
        radius=round(radius, 4),
        rotation=round(float(rng.uniform(0.0, 360.0)), 2),
        stripe_phase=round(float(rng.uniform(0.0, 1.0)), 4),
        gradient_angle=round(float(rng.uniform(0.0, 360.0)), 2),
        noise_seed=int(rng.integers(2**31)),
    )


def params_label(params: ShapesParams) -> list[int]:
    """The 0/1 label vector of a scene, in :data:`SHAPES_ATTRS` order."""
    on = {params.colour}
    if params.striped:
        on.add(STRIPED)
    if params.dark_background:
        on.add(DARK_BACKGROUND)
    return [int(a in on) for a in SHAPES_ATTRS]


def change_attribute(params: ShapesParams, attr: str) -> ShapesParams:
    """The single-attribute counterfactual: set a colour (must differ from the current one) or flip a binary."""
    if attr in _PALETTE:
        if attr == params.colour:
            raise ValueError(f"the scene is already {attr}; a counterfactual must change something")
        return replace(params, colour=attr)
    if attr == STRIPED:
        return replace(params, striped=not params.striped)
    if attr == DARK_BACKGROUND:
        return replace(params, dark_background=not params.dark_background)
    raise ValueError(f"unknown attribute {attr!r}; expected one of {SHAPES_ATTRS}")


def counterfactual_attrs(params: ShapesParams) -> list[str]:
    """Attributes whose single change is a real change for this scene: the other colours and every binary."""
    return [a for a in SHAPES_ATTRS if a != params.colour]


def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(size, dtype=np.float64) + 0.5  # pixel centres
    return c[None, :], c[:, None]  # x (1, W), y (H, 1): broadcast instead of materialising two grids


def _signed_distance(params: ShapesParams, size: int) -> np.ndarray:
    """Signed distance in pixels to the object outline (negative inside)."""
    x, y = _pixel_grid(size)
    cx, cy, r = params.cx * size, params.cy * size, params.radius * size
    dx, dy = x - cx, y - cy
    if params.shape == "circle":
        return np.hypot(dx, dy) - r
    k = 4 if params.shape == "square" else 3
    reach = r * _REACH[params.shape]
    inradius = reach * math.cos(math.pi / k)
    # Inside a convex polygon the distance is the max over edge lines; outside it is the distance to the
    # nearest edge segment (the edge-line max would round off corners and let them bleed a pixel further).
    line = np.full((size, size), -np.inf)
    seg = np.full((size, size), np.inf)
    rot = math.radians(params.rotation)
    angles = [rot + 2 * j * math.pi / k for j in range(k)]
    verts = [(reach * math.cos(v), reach * math.sin(v)) for v in angles]
    for j in range(k):
        a = rot + (2 * j + 1) * math.pi / k  # outward normal of the edge from vertex j to j + 1
        line = np.maximum(line, dx * math.cos(a) + dy * math.sin(a) - inradius)
        (x0, y0), (x1, y1) = verts[j], verts[(j + 1) % k]
        ex, ey = x1 - x0, y1 - y0
        t = np.clip(((dx - x0) * ex + (dy - y0) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        seg = np.minimum(seg, np.hypot(dx - x0 - t * ex, dy - y0 - t * ey))
    return np.where(line > 0, seg, line)


def object_mask(params: ShapesParams, size: int) -> np.ndarray:
    """Per-pixel object coverage in [0, 1], float32 ``(size, size)``: 0 is pure background, 1 pure object."""
    return np.clip(0.5 - _signed_distance(params, size), 0.0, 1.0).astype(np.float32)


def stripe_mask(params: ShapesParams, size: int) -> np.ndarray:
    """Where the darker stripes would be (float coverage, ``(size, size)``), whether or not the scene is
    striped. Stripes are anchored to the object centre, so they move with it."""
    x, y = _pixel_grid(size)
    period = max(4.0, size / 10.0)  # >= 2 px stripes at 32 px, ~5 stripes across a mid-size object at 64 px
    u = ((x - params.cx * size) + (y - params.cy * size)) / math.sqrt(2.0) + params.stripe_phase * period
    # Distance from the nearest dark band centre; the band is half a period wide.
    d = np.abs(np.mod(u - period / 4.0 + period / 2.0, period) - period / 2.0)
    return np.clip(0.5 + period / 4.0 - d, 0.0, 1.0)


def _background(params: ShapesParams, size: int) -> np.ndarray:
    """Grey level ``(size, size)``: light or dark base plus a mild linear gradient in a random direction."""
    x, y = _pixel_grid(size)
    a = math.radians(params.gradient_angle)
    ramp = ((x - size / 2.0) * math.cos(a) + (y - size / 2.0) * math.sin(a)) / (size / 2.0)
    base = _DARK_BG if params.dark_background else _LIGHT_BG
    return base + _GRADIENT * np.clip(ramp, -1.0, 1.0)


def render(params: ShapesParams, size: int = 64) -> np.ndarray:
    """Render a scene: ``uint8 (size, size, 3)``. Pure and deterministic: the noise comes from
    ``params.noise_seed``, so a counterfactual re-render shares every nuisance factor with the original."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    cov = object_mask(params, size)[..., None]
    colour = np.asarray(_PALETTE[params.colour], dtype=np.float32)
    if params.striped:
        obj = colour * (1.0 - (1.0 - _STRIPE_SHADE) * stripe_mask(params, size).astype(np.float32)[..., None])
    else:
        obj = colour
    # Written so that coverage 0 gives exactly the background and coverage 1 exactly the object (x * 0 and
    # x * 1 are exact), which is what confines counterfactual differences to the changed region.
    img = _background(params, size).astype(np.float32)[..., None] * (1.0 - cov) + obj * cov
    noise = np.random.default_rng(params.noise_seed).standard_normal((size, size, 3), dtype=np.float32)
    img += noise * np.float32(_NOISE_STD)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------- dataset files


def _save_png(arr: np.ndarray, path: Path) -> None:
    # compress_level=1: several times faster than the default, and PNG stays lossless and deterministic.
    Image.fromarray(arr).save(path, format="PNG", compress_level=1)


def _render_files(jobs: Sequence[tuple[ShapesParams, Path]], size: int) -> None:
    # numpy, zlib and file I/O release the GIL, so threads give ~1.5x on 2 cores without a process pool's
    # start-up and pickling cost. Each job writes its own file, so the output does not depend on scheduling.
    def one(job: tuple[ShapesParams, Path]) -> None:
        _save_png(render(job[0], size), job[1])

    workers = min(4, os.cpu_count() or 1)
    if workers <= 1:
        for job in jobs:
            one(job)
        return
    with ThreadPoolExecutor(workers) as ex:
        for _ in ex.map(one, jobs):  # iterating re-raises the first worker exception
            pass


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


def _write_json(path: Path, obj: Any) -> None:
    _write_text(path, json.dumps(obj, indent=1) + "\n")


def _read_marker(out: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((out / SCHEMA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out must be a folder, but a file with that name exists")
    if out.is_dir() and any(out.iterdir()):
        if _read_marker(out) is None:
            raise UserError(
                f"{out}: folder is not empty and is not a shapes dataset (no {SCHEMA_FILE} with "
                f'"format": "{FORMAT}"); choose a new or empty folder'
            )
        for name in _OWNED:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"{name}: expected an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise UserError(f"{name}: expected an integer {rng}, got {value}")
    return int(value)


def _check_pair(a: Any, b: Any, exclusive: Sequence[Sequence[str]], where: str) -> tuple[str, str]:
    if not isinstance(a, str) or not isinstance(b, str):
        raise UserError(f"{where}: expected two attribute names, got {a!r}, {b!r}")
    if a == b:
        raise UserError(f"{where}: the two attributes must differ, got {a!r} twice")
    for group in exclusive:
        if a in group and b in group:
            return a, b
    members = [m for g in exclusive for m in g]
    raise UserError(
        f"{where}: a CycleGAN view needs two attributes of the same exclusive group (e.g. {members[0]} and "
        f"{members[1]}), got {a!r} and {b!r}"
    )


def _view_pairs(views: Iterable[Any] | None) -> list[tuple[str, str]]:
    if views is None:
        return []
    pairs: list[tuple[str, str]] = []
    for v in views:
        if isinstance(v, str) or not isinstance(v, Sequence) or len(v) != 2:
            raise UserError(f"cyclegan_views: each view is a pair (attr_from, attr_to), got {v!r}")
        pair = _check_pair(v[0], v[1], SHAPES_EXCLUSIVE, "cyclegan_views")
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def _test_split(colours: Sequence[str], fraction: float, seed: int) -> set[int]:
    """Indices of test images, drawn per colour, so every colour (and every CycleGAN test folder) gets its
    share even for tiny datasets."""
    rng = np.random.default_rng([seed, 0x7E57])
    test: set[int] = set()
    for c in _COLOURS:
        idx = np.array([i for i, ci in enumerate(colours) if ci == c], dtype=np.int64)
        if len(idx) < 2:
            continue  # one image of a colour goes to train: a colour must be learnable before it is testable
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        test.update(int(i) for i in rng.choice(idx, size=k, replace=False))
    return test


def _attr_file_text(files: Sequence[str], labels: Sequence[Sequence[int]]) -> str:
    # The real CelebA file: a count, the names (with a trailing space), then "<file> -1  1 ..." with each value
    # right-aligned in two characters, so loaders must split on runs of whitespace.
    lines = [str(len(files)), " ".join(SHAPES_ATTRS) + " "]
    for f, lab in zip(files, labels):
        lines.append(f + " " + " ".join(f"{1 if v else -1:2d}" for v in lab))
    return "\n".join(lines) + "\n"


def make_dataset(
    out: str | os.PathLike,
    n: int = 5000,
    size: int = 64,
    seed: int = 0,
    test_fraction: float = 0.1,
    cyclegan_views: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Generate the shapes dataset into ``out`` (see the module docstring for the layout and overwrite rule).

    Prints nothing; returns a summary: counts, paths (as strings) and the seconds taken. Bad arguments or an
    unsafe ``out`` raise :class:`UserError` before anything is written.
    """
    t0 = time.perf_counter()
    n = _check_int("n", n, MIN_N)
    size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
    seed = _check_int("seed", seed, 0)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
        0.0 < float(test_fraction) < 1.0
    ):
        raise UserError(f"test_fraction: expected a number strictly between 0 and 1, got {test_fraction!r}")
    test_fraction = float(test_fraction)
    pairs = _view_pairs(cyclegan_views)
    out = Path(out)
    _prepare_out(out)

    width = max(6, len(str(n)))
    files = [f"{i:0{width}d}.png" for i in range(1, n + 1)]
    params = [sample_params(np.random.default_rng([seed, i])) for i in range(n)]
    labels = [params_label(p) for p in params]
    test = _test_split([p.colour for p in params], test_fraction, seed)

    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "complete": False,  # rewritten as true at the very end; a crash leaves a folder we may regenerate
        "attrs": list(SHAPES_ATTRS),
        "exclusive": [list(g) for g in SHAPES_EXCLUSIVE],
        "n": n,
        "size": size,
        "seed": seed,
        "test_fraction": test_fraction,
        "n_test": len(test),
        "palette": {c: list(rgb) for c, rgb in _PALETTE.items()},
        "images": IMAGES_DIR,
        "attr_file": ATTR_FILE,
        "partition_file": PARTITION_FILE,
        "test_files": TEST_FILES,
        "params": PARAMS_FILE,
        "counterfactuals": f"{CF_DIR}/{CF_INDEX}",
        "cyclegan_views": [f"{CYCLEGAN_DIR}/{a}2{b}" for a, b in pairs],
    }
    _write_json(out / SCHEMA_FILE, meta)

    img_dir = out / IMAGES_DIR
    img_dir.mkdir()
    _render_files([(p, img_dir / f) for f, p in zip(files, params)], size)

    _write_text(out / ATTR_FILE, _attr_file_text(files, labels))
    _write_text(out / PARTITION_FILE, "".join(f"{f} {2 if i in test else 0}\n" for i, f in enumerate(files)))
    _write_text(out / TEST_FILES, "".join(f"{files[i]}\n" for i in sorted(test)))
    _write_json(out / PARAMS_FILE, {f: asdict(p) for f, p in zip(files, params)})

    cf_root = out / CF_DIR
    cf_root.mkdir()
    index: dict[str, Any] = {}
    cf_jobs: list[tuple[ShapesParams, Path]] = []
    for i in sorted(test):
        stem = Path(files[i]).stem
        (cf_root / stem).mkdir()
        targets = {}
        for attr in counterfactual_attrs(params[i]):
            q = change_attribute(params[i], attr)
            rel = f"{CF_DIR}/{stem}/{attr}.png"
            cf_jobs.append((q, out / rel))
            targets[attr] = {"path": rel, "label": params_label(q)}
        index[stem] = {"source": f"{IMAGES_DIR}/{files[i]}", "label": labels[i], "targets": targets}
    _render_files(cf_jobs, size)
    _write_json(cf_root / CF_INDEX, {"attrs": list(SHAPES_ATTRS), "items": index})

    views = {f"{a}2{b}": _write_view(out, a, b, files, labels, test) for a, b in pairs}

    meta["complete"] = True
    _write_json(out / SCHEMA_FILE, meta)
    return {
        "out": str(out),
        "n": n,
        "n_train": n - len(test),
        "n_test": len(test),
        "size": size,
        "seed": seed,
        "colour_counts": {c: sum(p.colour == c for p in params) for c in _COLOURS},
        "attr_counts": {a: int(sum(lab[j] for lab in labels)) for j, a in enumerate(SHAPES_ATTRS)},
        "schema": str(out / SCHEMA_FILE),
        "images": str(img_dir),
        "attr_file": str(out / ATTR_FILE),
        "test_files": str(out / TEST_FILES),
        "counterfactuals": str(cf_root / CF_INDEX),
        "n_counterfactuals": len(cf_jobs),
        "cyclegan_views": views,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _link_or_copy(src: Path, dst: Path) -> None:
    # Hard links cost no space; they fail across file systems or on some (network, FAT) file systems.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_view(
    out: Path, a: str, b: str, files: Sequence[str], labels: Sequence[Sequence[int]], test: set[int]
) -> dict[str, Any]:
    root = out / CYCLEGAN_DIR / f"{a}2{b}"
    if root.exists():
        shutil.rmtree(root)
    ja, jb = SHAPES_ATTRS.index(a), SHAPES_ATTRS.index(b)
    counts = {}
    for side, j in (("A", ja), ("B", jb)):
        for split, in_test in (("train", False), ("test", True)):
            d = root / f"{split}{side}"
            d.mkdir(parents=True)
            k = 0
            for i, f in enumerate(files):
                if labels[i][j] and (i in test) == in_test:
                    _link_or_copy(out / IMAGES_DIR / f, d / f)
                    k += 1
            counts[f"{split}{side}"] = k
    return {"path": str(root), **counts}


def _require_dataset(out: Path) -> dict[str, Any]:
    meta = _read_marker(out)
    if meta is None:
        raise UserError(f"{out}: not a shapes dataset (missing or invalid {SCHEMA_FILE}); run make-dataset first")
    if not meta.get("complete"):
        raise UserError(f"{out}: the shapes dataset is incomplete (generation was interrupted); regenerate it")
    return meta


def _read_attr_file(path: Path) -> tuple[list[str], list[str], list[list[int]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        count = int(lines[0])
        names = lines[1].split()
        rows = [ln.split() for ln in lines[2:] if ln.strip()]
        files = [r[0] for r in rows]
        labels = [[int(v == "1") for v in r[1:]] for r in rows]
        if len(rows) != count or any(len(r) != len(names) + 1 for r in rows):
            raise ValueError
    except (OSError, ValueError, IndexError):
        raise UserError(f"{path}: missing or malformed attribute file") from None
    return names, files, labels


def write_cyclegan_view(out: str | os.PathLike, attr_a: str, attr_b: str) -> dict[str, Any]:
    """Write ``out/cyclegan/<A>2<B>/{trainA,trainB,testA,testB}`` from an existing shapes dataset: the images
    whose ``attr_a`` (``attr_b``) is set, split by the dataset's fixed test split. Files are hard links, or
    copies where links are impossible. Replaces an existing view of the same name. Returns the counts."""
    out = Path(out)
    meta = _require_dataset(out)
    a, b = _check_pair(attr_a, attr_b, meta["exclusive"], "write_cyclegan_view")
    names, files, labels = _read_attr_file(out / meta["attr_file"])
    if names != list(SHAPES_ATTRS):
        raise UserError(f"{out / meta['attr_file']}: attributes {names} differ from {SHAPES_ATTRS}")
    try:
        test_names = set((out / meta["test_files"]).read_text(encoding="utf-8").split())
    except OSError:
        raise UserError(f"{out / meta['test_files']}: missing test split file") from None
    test = {i for i, f in enumerate(files) if f in test_names}
    return _write_view(out, a, b, files, labels, test)


def load_schema(out: str | os.PathLike) -> dict[str, Any]:
    """``{"attrs": [...], "exclusive": [[...]]}`` of a dataset folder, e.g. to build a label schema."""
    meta = _require_dataset(Path(out))
    return {"attrs": list(meta["attrs"]), "exclusive": [list(g) for g in meta["exclusive"]]}


def load_params(out: str | os.PathLike) -> dict[str, ShapesParams]:
    """File name -> :class:`ShapesParams` for every image, e.g. to compute object masks in metrics."""
    out = Path(out)
    meta = _require_dataset(out)
    path = out / meta["params"]
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {f: ShapesParams.from_dict(d) for f, d in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: missing or malformed scene parameters ({e})") from None


def load_counterfactuals(out: str | os.PathLike) -> dict[str, Any]:
    """The ground-truth counterfactuals of the test split, with absolute paths::

        {"attrs": [...], "exclusive": [[...]],
         "items": {stem: {"source": Path, "label": [0/1 ...],
                          "targets": {attr: {"path": Path, "label": [0/1 ...]}}}}}

    Labels follow ``attrs`` order. Only real changes are listed: an image's own colour has no target.
    """
    out = Path(out)
    meta = _require_dataset(out)
    path = out / meta["counterfactuals"]
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        items = {
            stem: {
                "source": out / e["source"],
                "label": list(e["label"]),
                "targets": {
                    attr: {"path": out / t["path"], "label": list(t["label"])} for attr, t in e["targets"].items()
                },
            }
            for stem, e in raw["items"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: missing or malformed counterfactual index ({e})") from None
    return {"attrs": list(meta["attrs"]), "exclusive": [list(g) for g in meta["exclusive"]], "items": items}
