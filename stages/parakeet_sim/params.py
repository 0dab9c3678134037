"""Simulation parameters, the tilt scheme and the acquisition record both engines share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from templearn.errors import TemplearnError
from templearn.manifest import Manifest
from templearn.tilts import Acquisition, dose_symmetric_order

from .grid import AXES, FAST_ONLY, Condition

ENGINES = ("fast", "parakeet")
DEVICES = ("cpu", "gpu")
AMPLITUDE_CONTRAST = 0.07      # fraction of the phase lost as amplitude (the usual CTF-model value)
DRAW_STREAM = 0x5EED_D8A3      # random stream of the randomized draws, apart from the engines' (seed, tilt) ones


@dataclass
class SimParams:
    """One tilt series' conditions. Lengths in Å, angles in degrees, dose in e/Å² (whole series)."""

    engine: str = "fast"
    pixel_size: float = 4.0
    defocus_um: float = -3.0          # negative = underfocus
    phase_plate: bool = False
    dose: float = 120.0
    tilt_range: float = 60.0          # ± degrees
    tilt_step: float = 3.0
    ice_density: float = 0.94         # g/cm³
    voltage: float = 300.0            # kV
    seed: int = 0
    device: str = "cpu"               # parakeet engine: where MULTEM runs
    cs_mm: float = 2.7
    phase_shift_deg: float = 90.0     # Volta phase plate
    radiation_damage: bool = True     # exposure-dependent damage (off: e.g. to look at CTF rings at high dose)
    parakeet_pixel: float = 1.0       # Å, finest pixel Parakeet simulates at before binning to pixel_size
    parakeet_slice: float = 3.0       # Å, multislice thickness (Parakeet's default)
    # fast engine only (the parakeet engine rejects other values than these defaults)
    amplitude_contrast: float = AMPLITUDE_CONTRAST
    contrast_scale: float = 1.0       # molecules' potential x this (1: the atoms' own)
    ice_noise_scale: float = 1.0      # std of the ice's water-number fluctuations x this
    ice_noise_correlation: float = 0.0  # Å, Gaussian correlation length of those fluctuations (0: white)
    # specimen slab: thickness / volume height (None: the whole box) and where it lies in the free
    # height (0: at the bottom, 1: at the top); molecules whose centre is outside it are dropped
    slab_fraction: float | None = None
    slab_offset: float = 0.5
    condition: int | None = None      # grid index this came from
    randomized: dict | None = None    # {"ranges": ..., "drawn": ...} when drawn from a randomized grid
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        """Raise TemplearnError for values no engine can simulate."""
        bad = None
        if self.engine not in ENGINES:
            bad = f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}"
        elif self.device not in DEVICES:
            bad = f"device must be cpu or gpu, got {self.device!r}"
        elif not self.pixel_size > 0:
            bad = f"pixel size must be positive, got {self.pixel_size}"
        elif not self.dose > 0:
            bad = f"dose must be positive (e/Å²), got {self.dose}"
        elif not 0 <= self.tilt_range < 90:
            bad = f"tilt range must lie in 0..90 degrees, got {self.tilt_range}"
        elif not self.tilt_step > 0:
            bad = f"tilt step must be positive, got {self.tilt_step}"
        elif not self.ice_density >= 0:
            bad = f"ice density must be >= 0 g/cm³, got {self.ice_density}"
        elif not self.parakeet_pixel > 0:
            bad = f"parakeet pixel must be positive, got {self.parakeet_pixel}"
        elif not self.parakeet_slice > 0:
            bad = f"parakeet slice thickness must be positive, got {self.parakeet_slice}"
        elif not self.voltage > 0:
            bad = f"voltage must be positive (kV), got {self.voltage}"
        elif not 0 <= self.amplitude_contrast <= 1:
            bad = f"amplitude contrast must lie in 0..1, got {self.amplitude_contrast}"
        elif not self.contrast_scale > 0:
            bad = f"contrast scale must be positive, got {self.contrast_scale}"
        elif not self.ice_noise_scale >= 0:
            bad = f"ice noise scale must be >= 0, got {self.ice_noise_scale}"
        elif not self.ice_noise_correlation >= 0:
            bad = f"ice noise correlation length must be >= 0 Å, got {self.ice_noise_correlation}"
        elif self.slab_fraction is not None and not 0 < self.slab_fraction <= 1:
            bad = f"slab fraction must lie in (0, 1] of the volume height, got {self.slab_fraction}"
        elif not 0 <= self.slab_offset <= 1:
            bad = f"slab offset must lie in 0..1, got {self.slab_offset}"
        elif self.engine == "parakeet" and self.fast_only_changed():
            names = ", ".join(self.fast_only_changed())
            bad = (f"the parakeet engine cannot vary {names} (MULTEM has its own potential, amplitude contrast "
                   f"and ice model): use --engine fast, or set randomize.{self.fast_only_changed()[0]}: null "
                   f"in the grid config")
        if bad:
            raise TemplearnError(bad)

    def fast_only_changed(self) -> list[str]:
        """The fast-engine-only axes set away from their defaults."""
        return [n for n in FAST_ONLY if getattr(self, n) != getattr(SimParams, n)]

    def to_json(self) -> dict:
        return asdict(self)


def draw(ranges: dict[str, list[float]], seed: int) -> dict[str, float]:
    """One value per axis of ``ranges``, uniform in ``[low, high]``, in the fixed order of
    :data:`.grid.AXES` from the stream ``(seed, DRAW_STREAM)``: the same seed, the same values."""
    unknown = sorted(set(ranges) - set(AXES))
    if unknown:
        raise TemplearnError(f"randomized condition has an unknown axis {unknown[0]!r} (known: {', '.join(AXES)})")
    rng = np.random.default_rng([int(seed), DRAW_STREAM])
    return {k: float(rng.uniform(*ranges[k])) for k in AXES if k in ranges}


def resolve(condition: Condition | None, **overrides) -> SimParams:
    """Parameters of a grid condition, with every explicit (non-None) option taking precedence.

    A randomized condition's axes are drawn from its ranges with the seed (``overrides['seed']``,
    default 0); an explicit option still wins over a drawn value.
    """
    base = {}
    if condition is not None:
        base = dict(defocus_um=condition.defocus_um, phase_plate=condition.phase_plate, dose=condition.dose,
                    tilt_range=condition.tilt_range, tilt_step=condition.tilt_step,
                    ice_density=condition.ice_density, condition=condition.index)
        base = {k: v for k, v in base.items() if v is not None}
        if condition.ranges:
            seed = overrides.get("seed")
            drawn = draw(condition.ranges, SimParams.seed if seed is None else seed)
            base.update(drawn)
            base["randomized"] = {"ranges": condition.ranges, "drawn": drawn}
    base.update({k: v for k, v in overrides.items() if v is not None})
    p = SimParams(**base)
    p.check()
    return p


def tilt_angles(tilt_range: float, tilt_step: float) -> np.ndarray:
    """Angles ``-k·step .. +k·step`` (degrees, increasing) with ``k = floor(range / step)``."""
    k = int(np.floor(tilt_range / tilt_step + 1e-9))
    return np.round(np.arange(-k, k + 1) * tilt_step, 6)


@dataclass
class Geometry:
    """Where the images lie in the sample frame (Å): image ``[ny, nx]`` of ``pixel`` Å, tilt axis, thickness."""

    nx: int
    ny: int
    pixel: float
    axis_x: float
    axis_z: float
    thickness: float                  # Å, the volume's height (what a reconstruction spans)
    slab: tuple[float, float] | None = None   # Å, z extent of the specimen when thinner than the volume

    @property
    def specimen_thickness(self) -> float:
        """Å of ice (and molecules) along z: the slab's, else the whole volume's."""
        return self.slab[1] - self.slab[0] if self.slab else self.thickness


def slab_extent(manifest: Manifest, params: SimParams) -> tuple[float, float] | None:
    """z extent (Å, manifest frame) of the specimen slab, or None for the whole box.

    The box spans ``[-v/2, (nz - 1/2) v]`` (voxel ``k`` centred at ``k v``); the slab, ``slab_fraction``
    of that height, sits ``slab_offset`` of the way up the height it leaves free.
    """
    if params.slab_fraction is None:
        return None
    v = manifest.voxel_size
    height = manifest.box[0] * v
    t = params.slab_fraction * height
    z0 = -v / 2 + params.slab_offset * (height - t)
    return (z0, z0 + t)


def sample_geometry(manifest: Manifest, pixel_size: float, slab: tuple[float, float] | None = None) -> Geometry:
    """The field of view covers the sample box; the tilt axis passes through its centre in x and
    through the middle of the specimen in z (the box's, or the slab's), where the lens is focused."""
    nz, ny, nx = manifest.box
    v = manifest.voxel_size
    axis_z = (nz - 1) / 2 * v if slab is None else (slab[0] + slab[1]) / 2
    return Geometry(
        nx=max(1, int(round(nx * v / pixel_size))), ny=max(1, int(round(ny * v / pixel_size))), pixel=pixel_size,
        axis_x=(nx - 1) / 2 * v, axis_z=axis_z, thickness=nz * v, slab=slab,
    )


def plan_acquisition(params: SimParams, geom: Geometry) -> Acquisition:
    """Dose-symmetric scheme: equal dose per image, acquisition order from 0° out (Hagen)."""
    angles = tilt_angles(params.tilt_range, params.tilt_step)
    order = dose_symmetric_order(angles)
    per = params.dose / len(angles)
    extra = {"engine": params.engine, "ice_density": params.ice_density, "total_dose": params.dose,
             "tilt_range": params.tilt_range, "tilt_step": params.tilt_step, "condition": params.condition,
             "seed": params.seed, "phase_shift_deg": params.phase_shift_deg if params.phase_plate else 0.0}
    if params.randomized is not None or params.fast_only_changed() or geom.slab is not None:
        # the wider randomization's axes (absent for the paper's grid: acquisition.json as before)
        extra.update({n: getattr(params, n) for n in FAST_ONLY})
        if geom.slab is not None:
            extra["slab"] = {"z": [float(geom.slab[0]), float(geom.slab[1])], "thickness": geom.specimen_thickness,
                             "fraction": params.slab_fraction, "offset": params.slab_offset}
        if params.randomized is not None:
            extra["randomized"] = params.randomized
    return Acquisition(
        pixel_size=params.pixel_size, angles=angles.tolist(), order=order.tolist(),
        dose=[per] * len(angles), dose_before=(order * per).tolist(), voltage_kv=params.voltage,
        defocus_um=params.defocus_um, phase_plate=params.phase_plate, spherical_aberration_mm=params.cs_mm,
        scheme="dose-symmetric", axis_x=geom.axis_x, axis_z=geom.axis_z, thickness=geom.thickness, extra=extra,
    )
