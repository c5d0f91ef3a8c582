"""Scenes of the shapes dataset: the attributes, the :class:`ShapesParams` record, sampling and labels."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

# Each attribute name is spelled exactly once, here; everything else derives from these constants.
COLOURS: tuple[str, ...] = ("Red", "Green", "Blue", "Yellow")
STRIPED = "Striped"
DARK_BACKGROUND = "Dark_Background"

SHAPES_ATTRS: list[str] = [*COLOURS, STRIPED, DARK_BACKGROUND]
SHAPES_EXCLUSIVE: list[list[str]] = [list(COLOURS)]

# Far apart in RGB and in hue, and each far from both backgrounds in at least one channel, so a small G can
# learn the change in minutes.
PALETTE: dict[str, tuple[int, int, int]] = dict(
    zip(COLOURS, ((220, 40, 40), (40, 180, 60), (40, 80, 220), (235, 210, 40)))
)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
RADIUS_RANGE = (0.16, 0.25)  # radius of the equal-area circle, fraction of the image size

# Nuisance attributes: factors a translation must keep. The classifier learns them, the model is not conditioned on
# them (as CelebA's 40 attributes vs StarGAN's 5), and a counterfactual never changes them.
SHAPE_CLASSES: dict[str, str] = {"circle": "Circle", "square": "Square", "triangle": "Triangle"}
SHAPE_GROUP = "Shape"
LEFT = "Left"  # object centre in the left half (cx < 0.5)
TOP = "Top"  # object centre in the upper half (cy < 0.5)
LARGE = "Large"  # radius >= LARGE_RADIUS
LARGE_RADIUS = 0.205  # the middle of RADIUS_RANGE
NUISANCE_ATTRS: list[str] = [*SHAPE_CLASSES.values(), LEFT, TOP, LARGE]
# Named, so that reports can say "Shape"; LabelSchema.from_attrs takes the mapping as it is.
NUISANCE_EXCLUSIVE: dict[str, list[str]] = {SHAPE_GROUP: list(SHAPE_CLASSES.values())}

# Keep objects this far (fraction of size) from the border so they are never cut off: >= 1 px at MIN_SIZE, the
# half pixel to the first pixel centre plus the half-pixel antialias ramp.
_MARGIN = 0.07
# Circumradius / radius per shape, chosen so the three shapes have roughly the same area; also used to keep
# rotated corners inside the image.
REACH = {"circle": 1.0, "square": math.sqrt(math.pi / 2.0), "triangle": 1.35}


@dataclass(frozen=True)
class ShapesParams:
    """Everything :func:`~common.data.shapes.render` needs. Geometry is in fractions of the image size, angles
    in degrees."""

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
        if self.colour not in PALETTE:
            raise ValueError(f"colour must be one of {list(COLOURS)}, got {self.colour!r}")
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
    colour = COLOURS[int(rng.integers(len(COLOURS)))]
    striped = bool(rng.integers(2))
    dark = bool(rng.integers(2))
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    radius = float(rng.uniform(*RADIUS_RANGE))
    reach = radius * REACH[shape] + _MARGIN
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


def nuisance_label(params: ShapesParams) -> list[int]:
    """The 0/1 nuisance label vector of a scene, in :data:`NUISANCE_ATTRS` order. Objects centred exactly on
    the middle line count as right (bottom): the thresholds are strict."""
    on = {SHAPE_CLASSES[params.shape]}
    if params.cx < 0.5:
        on.add(LEFT)
    if params.cy < 0.5:
        on.add(TOP)
    if params.radius >= LARGE_RADIUS:
        on.add(LARGE)
    return [int(a in on) for a in NUISANCE_ATTRS]


def change_attribute(params: ShapesParams, attr: str) -> ShapesParams:
    """The single-attribute counterfactual: set a colour (must differ from the current one) or flip a binary."""
    if attr in PALETTE:
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
