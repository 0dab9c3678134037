"""The domain-randomization grid: every combination of acquisition conditions, one task each.

Default: the paper's Extended Data Tab. 1 (Harastani et al. 2024). A dataset is simulated in
one optical domain, with three defoci: a Volta phase plate at 0 / -0.5 / -1 µm, or no phase
plate at -2.5 / -3.25 / -4 µm; crossed with total dose 75 / 150 e/Å², tilt range ±40 / ±60°,
tilt step 2 / 4° and ice density 0.9 / 1.1 g/cm³: 3 x 2 x 2 x 2 x 2 = 48 conditions (as in the
paper's own scripts, which choose the domain with a ``phase_plates`` flag). ``domain: both``
crosses the two domains (96 conditions).

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

    def __post_init__(self):
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
    defocus_um: float
    dose: float
    tilt_range: float
    tilt_step: float
    ice_density: float


def expand(spec: GridSpec) -> list[Condition]:
    """All combinations, in a fixed order (phase plate, defocus, dose, range, step, density)."""
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


def load_spec(path: str | os.PathLike | None, domain: str | None = None) -> GridSpec:
    """The grid of ``path`` (YAML/JSON, keys checked), or the paper's default when ``None``;
    ``domain`` (when given) replaces the file's."""
    spec = GridSpec() if path is None else tconfig.load(path, GridSpec)
    if domain is not None:
        if domain not in DOMAINS:
            raise TemplearnError(f"domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
        spec.domain = domain
    return spec


def write_grid(path: str | os.PathLike, spec: GridSpec) -> list[Condition]:
    conditions = expand(spec)
    write_json(path, {
        "format": GRID_FORMAT, "version": GRID_VERSION, "grid": tconfig.to_dict(spec),
        "n_conditions": len(conditions), "conditions": [asdict(c) for c in conditions],
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
