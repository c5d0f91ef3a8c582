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

Some nuisance factors are also labelled (:data:`NUISANCE_ATTRS`, :func:`nuisance_label`), as CelebA labels 40
attributes of which a StarGAN selects 5: the classifier learns them, no model is conditioned on them, and
evaluation checks that translations keep them. They are the shape, an exclusive group ``Circle``/``Square``/
``Triangle`` (:data:`NUISANCE_EXCLUSIVE`, named ``Shape``), and three binaries: ``Left`` (centre x < 0.5),
``Top`` (centre y < 0.5) and ``Large`` (radius >= :data:`LARGE_RADIUS`, the middle of the sampled range). Near
their thresholds the binaries are hard to read from pixels, so even a good classifier misses a few.

Folder layout written by :func:`make_dataset` (all paths relative to ``out``)::

    attributes.json                schema (attrs + exclusive groups, nuisance + nuisance_exclusive), generation
                                   settings, file names
    list_attr_celeba.txt           CelebA format: count, attribute names, "<file> <-1/1 ...>" rows; the
                                   conditioned attributes first, then the nuisance ones
    list_eval_partition.txt        CelebA format: "<file> 0" (train) or "<file> 2" (test)
    test_files.txt                 the fixed test split, one file name a line
    params.json                    file name -> ShapesParams fields (see :func:`load_params`)
    images/000001.png ...
    counterfactuals/<stem>/<Attr>.png, counterfactuals/index.json   (test images only)
    cyclegan/<A>2<B>/trainA|trainB|testA|testB/                      (optional, :func:`write_cyclegan_view`)
    paired/train|val|test/<file>.png, paired/view.json              (optional, :func:`write_paired_view`)

Overwrite rule: ``out`` may be missing, an empty folder, or a folder that ``attributes.json`` marks as a shapes
dataset (complete or left half-written by an interrupted run). In the last case the entries this module
owns (the files and folders listed above) are deleted and regenerated, whatever the old settings were; other
entries in the folder are left alone. Any other non-empty folder is refused, so a mistyped ``--out`` can never
delete user data.

Datasets written before the nuisance attributes existed (format version 1) are still read:
:func:`load_nuisance` returns None for them.

Everything written is a pure function of ``(n, size, seed, test_fraction, cyclegan_views, paired)``: the same
arguments give byte-identical files. Image ``i`` is drawn from its own generator seeded with ``(seed, i)``, so
a dataset with a larger ``n`` starts with the same scenes.

Modules: :mod:`.scene` (attributes, :class:`ShapesParams`, sampling, labels), :mod:`.render` (rasterising,
antialiasing rule), :mod:`.dataset` (:func:`make_dataset`), :mod:`.layout` (the layout and reading a dataset
back), :mod:`.views` (the CycleGAN view), :mod:`.paired` (the paired view: label map A, scene B, aligned
format, with its noise floor). Every public name is importable from this package.
"""

from common.data.shapes.dataset import MAX_SIZE, MIN_N, MIN_SIZE, make_dataset
from common.data.shapes.layout import (
    ATTR_FILE,
    CF_DIR,
    CF_INDEX,
    CYCLEGAN_DIR,
    FORMAT,
    FORMAT_VERSION,
    IMAGES_DIR,
    PAIRED_DIR,
    PARAMS_FILE,
    PARTITION_FILE,
    SCHEMA_FILE,
    TEST_FILES,
    load_counterfactuals,
    load_nuisance,
    load_params,
    load_schema,
)
from common.data.shapes.paired import VIEW_FILE, aligned_pair, label_map, load_paired_view, write_paired_view
from common.data.shapes.render import NOISE_STD, clean_render, object_mask, render, stripe_mask
from common.data.shapes.scene import (
    DARK_BACKGROUND,
    LARGE,
    LARGE_RADIUS,
    LEFT,
    NUISANCE_ATTRS,
    NUISANCE_EXCLUSIVE,
    SHAPE_CLASSES,
    SHAPE_GROUP,
    SHAPES,
    SHAPES_ATTRS,
    SHAPES_EXCLUSIVE,
    STRIPED,
    TOP,
    ShapesParams,
    change_attribute,
    counterfactual_attrs,
    nuisance_label,
    params_label,
    sample_params,
)
from common.data.shapes.views import write_cyclegan_view

__all__ = [
    "ATTR_FILE", "CF_DIR", "CF_INDEX", "CYCLEGAN_DIR", "DARK_BACKGROUND", "FORMAT", "FORMAT_VERSION", "IMAGES_DIR",
    "LARGE", "LARGE_RADIUS", "LEFT", "MAX_SIZE", "MIN_N", "MIN_SIZE", "NOISE_STD", "NUISANCE_ATTRS",
    "NUISANCE_EXCLUSIVE", "PAIRED_DIR", "PARAMS_FILE", "PARTITION_FILE", "SCHEMA_FILE", "SHAPES", "SHAPES_ATTRS",
    "SHAPES_EXCLUSIVE", "SHAPE_CLASSES", "SHAPE_GROUP", "STRIPED", "TEST_FILES", "TOP", "VIEW_FILE", "ShapesParams",
    "aligned_pair", "change_attribute", "clean_render", "counterfactual_attrs", "label_map", "load_counterfactuals",
    "load_nuisance", "load_paired_view", "load_params", "load_schema", "make_dataset", "nuisance_label",
    "object_mask", "params_label", "render", "sample_params", "stripe_mask", "write_cyclegan_view",
    "write_paired_view",
]
