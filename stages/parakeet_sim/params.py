"""Simulation parameters, the tilt scheme and the acquisition record both engines share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from templearn.errors import TemplearnError
from templearn.manifest import Manifest
from templearn.tilts import Acquisition, dose_symmetric_order

from .grid import Condition

ENGINES = ("fast", "parakeet")
DEVICES = ("cpu", "gpu")


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
    condition: int | None = None      # grid index this came from
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
        if bad:
            raise TemplearnError(bad)

    def to_json(self) -> dict:
        return asdict(self)


def resolve(condition: Condition | None, **overrides) -> SimParams:
    """Parameters of a grid condition, with every explicit (non-None) option taking precedence."""
    base = {}
    if condition is not None:
        base = dict(defocus_um=condition.defocus_um, phase_plate=condition.phase_plate, dose=condition.dose,
                    tilt_range=condition.tilt_range, tilt_step=condition.tilt_step,
                    ice_density=condition.ice_density, condition=condition.index)
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
    thickness: float


def sample_geometry(manifest: Manifest, pixel_size: float) -> Geometry:
    """The field of view covers the sample box; the tilt axis passes through its centre."""
    nz, ny, nx = manifest.box
    v = manifest.voxel_size
    return Geometry(
        nx=max(1, int(round(nx * v / pixel_size))), ny=max(1, int(round(ny * v / pixel_size))), pixel=pixel_size,
        axis_x=(nx - 1) / 2 * v, axis_z=(nz - 1) / 2 * v, thickness=nz * v,
    )


def plan_acquisition(params: SimParams, geom: Geometry) -> Acquisition:
    """Dose-symmetric scheme: equal dose per image, acquisition order from 0° out (Hagen)."""
    angles = tilt_angles(params.tilt_range, params.tilt_step)
    order = dose_symmetric_order(angles)
    per = params.dose / len(angles)
    return Acquisition(
        pixel_size=params.pixel_size, angles=angles.tolist(), order=order.tolist(),
        dose=[per] * len(angles), dose_before=(order * per).tolist(), voltage_kv=params.voltage,
        defocus_um=params.defocus_um, phase_plate=params.phase_plate, spherical_aberration_mm=params.cs_mm,
        scheme="dose-symmetric", axis_x=geom.axis_x, axis_z=geom.axis_z, thickness=geom.thickness,
        extra={"engine": params.engine, "ice_density": params.ice_density, "total_dose": params.dose,
               "tilt_range": params.tilt_range, "tilt_step": params.tilt_step, "condition": params.condition,
               "seed": params.seed, "phase_shift_deg": params.phase_shift_deg if params.phase_plate else 0.0},
    )
