"""The domain-randomization grid: every combination of acquisition conditions, one task each.

Default: the paper's Extended Data Tab. 1 (Harastani et al. 2024). A dataset is simulated in
one optical domain, with three defoci: a Volta phase plate at 0 / -0.5 / -1 µm, or no phase
plate at -2.5 / -3.25 / -4 µm; crossed with total dose 75 / 150 e/Å², tilt range ±40 / ±60°,
tilt step 2 / 4° and ice density 0.9 / 1.1 g/cm³: 3 x 2 x 2 x 2 x 2 = 48 conditions (as in the
paper's own scripts, which choose the domain with a ``phase_plates`` flag). ``domain: both``
crosses the two domains (96 conditions).

Wider randomization (opt-in, ``randomize:`` in GRID.yaml, ``grid --randomize``): each tilt series
draws its own continuous values, uniformly within the ranges of :class:`Randomize` (defocus within
its optical domain, dose, ice density, amplitude contrast, particle contrast, ice noise amplitude
and correlation length, slab thickness and offset). The grid then crosses only what is not drawn
(optical domain x tilt range x tilt step: 4 conditions for one domain, 8 for both); each condition
carries its ``ranges`` and ``simulate`` draws from them with its seed (:func:`.params.resolve`).

``GRID.json`` layout (``format: templearn.sim-grid``)::

    {"format": "templearn.sim-grid", "version": 1, "grid": {...the spec...},
     "conditions": [{"index": 0, "phase_plate": true, "defocus_um": 0.0, "dose": 75.0,
                     "tilt_range": 40.0, "tilt_step": 2.0, "ice_density": 0.9}, ...]}
"""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from templearn import config as tconfig
from templearn.atomic import read_json, write_json
from templearn.errors import TemplearnError

GRID_FORMAT = "templearn.sim-grid"
GRID_VERSION = 1


DOMAINS = ("phase_plate", "defocus", "both")
# Axes only the fast engine can vary (Parakeet/MULTEM has its own amplitude contrast, potential and ice model).
FAST_ONLY = ("amplitude_contrast", "contrast_scale", "ice_noise_scale", "ice_noise_correlation")
# Drawn axes, in the fixed order the draws are made (same seed, same values).
AXES = ("defocus_um", "dose", "ice_density") + FAST_ONLY + ("slab_fraction", "slab_offset")


_LIMITS = {   # axis: (test of the low end, largest high end, in words)
    "dose": (lambda v: v > 0, float("inf"), "above 0 (e/Å²)"),
    "ice_density": (lambda v: v >= 0, float("inf"), "at or above 0 (g/cm³)"),
    "amplitude_contrast": (lambda v: v >= 0, 1.0, "within 0..1"),
    "contrast_scale": (lambda v: v > 0, float("inf"), "above 0"),
    "ice_noise_scale": (lambda v: v >= 0, float("inf"), "at or above 0"),
    "ice_noise_correlation": (lambda v: v >= 0, float("inf"), "at or above 0 (Å)"),
    "slab_fraction": (lambda v: v > 0, 1.0, "within (0, 1] of the volume height"),
}


@dataclass
class Randomize:
    """Ranges ``[low, high]`` each tilt series draws from (uniformly); ``null`` leaves an axis at its
    fixed value. Defoci, dose and ice density default to the span of the grid's own lists."""

    phase_plate_defocus_um: list[float] | None = None   # µm, default [min, max] of phase_plate_defocus_um
    defocus_um: list[float] | None = None                # µm, default [min, max] of defocus_um
    dose: list[float] | None = None                      # e/Å², default [min, max] of dose
    ice_density: list[float] | None = None               # g/cm³, default [min, max] of ice_density
    # fraction of the phase lost as amplitude (fixed: 0.07)
    amplitude_contrast: list[float] | None = field(default_factory=lambda: [0.0, 0.10])
    # molecules' potential x this (fixed 1.0, the atoms' own; Parakeet's MULTEM gives ~0.6-0.8 of it)
    contrast_scale: list[float] | None = field(default_factory=lambda: [0.5, 1.0])
    # ice's water-number fluctuations: std x this (fixed 1.0) ...
    ice_noise_scale: list[float] | None = field(default_factory=lambda: [0.5, 2.0])
    # ... and their correlation length in Å (Gaussian; fixed 0: white)
    ice_noise_correlation: list[float] | None = field(default_factory=lambda: [0.0, 16.0])
    # specimen slab thickness / volume height (fixed: 1, the whole box); the slab lies at a random
    # height, the molecules whose centre is outside it are dropped, vacuum above and below
    slab_fraction: list[float] | None = field(default_factory=lambda: [0.5, 1.0])

    def __post_init__(self):
        for name in ("phase_plate_defocus_um", "defocus_um", "dose", "ice_density") + FAST_ONLY + ("slab_fraction",):
            r = getattr(self, name)
            if r is None:
                continue
            if len(r) != 2 or not r[0] <= r[1]:
                raise ValueError(f"randomize.{name} must be [low, high] with low <= high, got {r}")
        for name, (lo, hi, what) in _LIMITS.items():
            r = getattr(self, name)
            if r is not None and not (lo(r[0]) and r[1] <= hi):
                raise ValueError(f"randomize.{name} must lie {what}, got {r}")


@dataclass
class GridSpec:
    """What users write in ``GRID.yaml``: each list holds the values to cross. Defoci in µm
    (negative = underfocus); ``domain`` picks the phase-plate defoci, the plain ones, or both."""

    domain: str = "phase_plate"
    phase_plate_defocus_um: list[float] = field(default_factory=lambda: [0.0, -0.5, -1.0])
    defocus_um: list[float] = field(default_factory=lambda: [-2.5, -3.25, -4.0])
    dose: list[float] = field(default_factory=lambda: [75.0, 150.0])          # e/Å², whole series
    tilt_range: list[float] = field(default_factory=lambda: [40.0, 60.0])     # ± degrees
    tilt_step: list[float] = field(default_factory=lambda: [2.0, 4.0])        # degrees
    ice_density: list[float] = field(default_factory=lambda: [0.9, 1.1])      # g/cm³
    # continuous draws per tilt series (true: the default ranges); off: the discrete grid above
    randomize: Randomize | bool | None = None

    def __post_init__(self):
        if self.randomize is True:
            self.randomize = Randomize()
        elif self.randomize is False:
            self.randomize = None
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, got {self.domain!r}")
        if self.domain != "defocus" and not self.phase_plate_defocus_um:
            raise ValueError("phase_plate_defocus_um needs at least one value")
        if self.domain != "phase_plate" and not self.defocus_um:
            raise ValueError("defocus_um needs at least one value")
        for name in ("dose", "tilt_range", "tilt_step", "ice_density"):
            if not getattr(self, name):
                raise ValueError(f"{name} needs at least one value")
        if any(d <= 0 for d in self.dose):
            raise ValueError("dose values must be positive (e/Å²)")
        if any(not 0 <= r <= 90 for r in self.tilt_range):
            raise ValueError("tilt_range values must lie within 0..90 degrees")
        if any(s <= 0 for s in self.tilt_step):
            raise ValueError("tilt_step values must be positive (degrees)")
        if any(d <= 0 for d in self.ice_density):
            raise ValueError("ice_density values must be positive (g/cm³)")


@dataclass
class Condition:
    """One point of the grid: everything that varies between simulated tilt series."""

    index: int
    phase_plate: bool
    defocus_um: float | None      # None: drawn from ``ranges``
    dose: float | None
    tilt_range: float
    tilt_step: float
    ice_density: float | None
    ranges: dict[str, list[float]] | None = None   # randomized: the ranges simulate draws from

    def to_json(self) -> dict:
        d = asdict(self)
        if d["ranges"] is None:   # the paper's grid: GRID.json exactly as before randomization existed
            del d["ranges"]
        return d


def _span(values: list[float]) -> list[float]:
    return [float(min(values)), float(max(values))]


def expand(spec: GridSpec) -> list[Condition]:
    """All combinations, in a fixed order (phase plate, defocus, dose, range, step, density).

    Randomized: optical domain x tilt range x tilt step, each with the ranges to draw from."""
    if spec.randomize is not None:
        return _expand_randomized(spec, spec.randomize)
    out = []
    pairs = []
    if spec.domain in ("phase_plate", "both"):
        pairs += [(True, f) for f in spec.phase_plate_defocus_um]
    if spec.domain in ("defocus", "both"):
        pairs += [(False, f) for f in spec.defocus_um]
    for (pp, df), dose, rng, step, dens in itertools.product(
        pairs, spec.dose, spec.tilt_range, spec.tilt_step, spec.ice_density
    ):
        out.append(Condition(len(out), pp, float(df), float(dose), float(rng), float(step), float(dens)))
    return out


def _expand_randomized(spec: GridSpec, r: Randomize) -> list[Condition]:
    domains = []
    if spec.domain in ("phase_plate", "both"):
        domains.append((True, r.phase_plate_defocus_um or _span(spec.phase_plate_defocus_um)))
    if spec.domain in ("defocus", "both"):
        domains.append((False, r.defocus_um or _span(spec.defocus_um)))
    common = {"dose": r.dose or _span(spec.dose), "ice_density": r.ice_density or _span(spec.ice_density)}
    for name in FAST_ONLY + ("slab_fraction",):
        if getattr(r, name) is not None:
            common[name] = [float(v) for v in getattr(r, name)]
    if "slab_fraction" in common:
        common["slab_offset"] = [0.0, 1.0]   # where the slab lies in the free height: 0 bottom, 1 top
    out = []
    for (pp, dfr), rng, step in itertools.product(domains, spec.tilt_range, spec.tilt_step):
        ranges = {"defocus_um": [float(v) for v in dfr], **common}
        ranges = {k: [float(v) for v in ranges[k]] for k in AXES if k in ranges}
        out.append(Condition(len(out), pp, None, None, float(rng), float(step), None, ranges))
    return out


def load_spec(path: str | os.PathLike | None, domain: str | None = None, randomize: bool = False) -> GridSpec:
    """The grid of ``path`` (YAML/JSON, keys checked), or the paper's default when ``None``;
    ``domain`` (when given) replaces the file's; ``randomize`` turns on the default ranges where
    the file has none."""
    spec = GridSpec() if path is None else tconfig.load(path, GridSpec)
    if randomize and spec.randomize is None:
        spec.randomize = Randomize()
    if domain is not None:
        if domain not in DOMAINS:
            raise TemplearnError(f"domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
        spec.domain = domain
    return spec


def write_grid(path: str | os.PathLike, spec: GridSpec) -> list[Condition]:
    conditions = expand(spec)
    doc = tconfig.to_dict(spec)
    if doc["randomize"] is None:   # the paper's grid: GRID.json exactly as before randomization existed
        del doc["randomize"]
    write_json(path, {
        "format": GRID_FORMAT, "version": GRID_VERSION, "grid": doc,
        "n_conditions": len(conditions), "conditions": [c.to_json() for c in conditions],
    })
    return conditions


def read_condition(path: str | os.PathLike, index: int) -> Condition:
    """Condition ``index`` of a ``GRID.json`` written by :func:`write_grid`."""
    path = Path(path)
    doc = read_json(path, "grid file", GRID_FORMAT)
    conds = doc.get("conditions", [])
    if not 0 <= index < len(conds):
        raise TemplearnError(f"condition {index} does not exist (the grid has {len(conds)}: 0..{len(conds) - 1})", path)
    try:
        return tconfig.from_dict(conds[index], Condition)
    except tconfig.ConfigError as exc:
        raise TemplearnError(f"condition {index}: {exc}", path) from None
