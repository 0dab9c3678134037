"""Tilt series metadata: IMOD ``.tlt`` files and the acquisition record.

Geometry (shared by ``parakeet-sim``, ``imod-recon`` and everything that compares positions):

- Stacks are ``[tilt, y, x]``; image pixel ``j`` has its centre at ``j * pixel_size`` Å in the
  sample frame of :mod:`templearn.manifest` (image x = sample x, image y = sample y).
- The tilt axis is parallel to y and passes through ``(x, z) = (axis_x, axis_z)`` Å (by default
  the centre of the sample box, ``(n - 1) / 2 * voxel_size`` along x and z).
- A positive tilt angle ``θ`` rotates the specimen right-handedly about +y (x goes towards -z),
  so a point ``(x, y, z)`` projects to image coordinates
  ``u = axis_x + (x - axis_x) cos θ + (z - axis_z) sin θ``, ``v = y`` (Å).
- A tomogram reconstructed from it has voxel ``k`` centred at ``k * voxel_size`` Å in the same
  frame, z included (its ``nz`` covers ``thickness`` Å), so manifest positions divided by the
  voxel size are tomogram voxel coordinates.

Images are stored in the order of increasing angle, the order of the ``.tlt`` file, and the
record keeps the order in which they were acquired (e.g. dose-symmetric) and the dose each
received before it.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .atomic import read_json, write_json, write_text
from .errors import TemplearnError

ACQUISITION_FORMAT = "templearn.acquisition"
ACQUISITION_VERSION = 1


def read_tlt(path: str | os.PathLike) -> np.ndarray:
    """Read an IMOD ``.tlt`` file (one angle in degrees per line)."""
    path = Path(path)
    if not path.is_file():
        raise TemplearnError("no such tilt-angle file", path)
    values = []
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise TemplearnError("not a text file of tilt angles", path) from None
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            values.append(float(line.split()[0]))
        except ValueError:
            raise TemplearnError(f"line {i} is not a tilt angle: {line[:40]!r}", path) from None
        if not np.isfinite(values[-1]):
            raise TemplearnError(f"line {i} is not a tilt angle: {line[:40]!r}", path)
    if not values:
        raise TemplearnError("tilt-angle file is empty", path)
    angles = np.array(values)
    if np.any(np.abs(angles) > 90):
        raise TemplearnError("tilt angles must lie within ±90°", path)
    return angles


def write_tlt(path: str | os.PathLike, angles) -> Path:
    return write_text(path, "".join(f"{a:.2f}\n" for a in np.asarray(angles, dtype=float)))


def check_tilts_match(stack_path, n_images: int, angles, tlt_path) -> None:
    """The one check every reader of a tilt series makes: one angle per image."""
    if len(angles) != n_images:
        raise TemplearnError(
            f"has {len(angles)} tilt angles but the tilt series {Path(stack_path).name} has {n_images} images",
            tlt_path,
        )


@dataclass
class Acquisition:
    """How a tilt series was recorded (or simulated). Lengths in Å, angles in degrees.

    ``angles`` is in stack order (increasing angle); ``order`` gives, for each image, its position
    in the acquisition (0 = first exposure); ``dose_before`` is the accumulated dose (e/Å²) before
    each image, ``dose`` the dose of each image.
    """

    pixel_size: float
    angles: list[float]
    order: list[int]
    dose: list[float]
    dose_before: list[float]
    voltage_kv: float = 300.0
    defocus_um: float = 0.0          # negative = underfocus
    phase_plate: bool = False
    spherical_aberration_mm: float = 2.7
    scheme: str = "dose-symmetric"
    axis_x: float | None = None      # Å, x of the tilt axis in the sample frame
    axis_z: float | None = None      # Å, z of the tilt axis in the sample frame
    thickness: float | None = None   # Å, z extent of the sample (what a reconstruction should span)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"format": ACQUISITION_FORMAT, "version": ACQUISITION_VERSION, **asdict(self)}

    def write(self, path) -> Path:
        return write_json(path, self.to_json())

    @classmethod
    def read(cls, path) -> "Acquisition":
        path = Path(path)
        doc = read_json(path, "acquisition record", ACQUISITION_FORMAT)
        doc.pop("format")
        version = doc.pop("version", None)
        if version != ACQUISITION_VERSION:
            raise TemplearnError(f"acquisition record version {version} is not supported", path)
        try:
            acq = cls(**doc)
            problem = acq._problem()
        except TypeError as exc:
            raise TemplearnError(f"bad acquisition record: {exc}", path) from None
        if problem:
            raise TemplearnError(f"bad acquisition record: {problem}", path)
        n = len(acq.angles)
        if not (len(acq.order) == len(acq.dose) == len(acq.dose_before) == n):
            raise TemplearnError("acquisition record lists differ in length", path)
        return acq

    def _problem(self) -> str | None:
        """What is wrong with the types or values of a record read from a file, if anything."""
        def number(v, optional=False):
            if v is None:
                return optional
            return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

        if not (number(self.pixel_size) and self.pixel_size > 0):
            return f"pixel_size must be a positive number, got {self.pixel_size!r}"
        for key in ("angles", "order", "dose", "dose_before"):
            v = getattr(self, key)
            if not isinstance(v, list) or not v or not all(number(x) for x in v):
                return f"{key} must be a non-empty list of numbers"
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in self.order):
            return "order must list whole numbers"
        for key in ("voltage_kv", "defocus_um", "spherical_aberration_mm"):
            if not number(getattr(self, key)):
                return f"{key} must be a number, got {getattr(self, key)!r}"
        for key in ("axis_x", "axis_z", "thickness"):
            if not number(getattr(self, key), optional=True):
                return f"{key} must be a number, got {getattr(self, key)!r}"
        if not isinstance(self.phase_plate, bool) or not isinstance(self.scheme, str) or not isinstance(self.extra, dict):
            return "phase_plate must be true/false, scheme text and extra a mapping"
        return None


def project_u(xyz, angles_deg, axis_x: float, axis_z: float) -> np.ndarray:
    """Image x coordinate (Å) of points ``(n, 3)`` ``[x, y, z]`` at each tilt: ``(n_tilts, n)``."""
    xyz = np.atleast_2d(np.asarray(xyz, dtype=float))
    t = np.deg2rad(np.asarray(angles_deg, dtype=float))[:, None]
    return axis_x + (xyz[:, 0] - axis_x) * np.cos(t) + (xyz[:, 2] - axis_z) * np.sin(t)


def dose_symmetric_order(angles) -> np.ndarray:
    """Acquisition order of the Hagen dose-symmetric scheme for ``angles`` (any order).

    Starts at the angle closest to 0, then alternates sides in groups of two
    (0, +1, +2, -1, -2, +3, +4, ...), as in Hagen et al. 2017 and Parakeet's default.
    Returns ``order[i]`` = exposure index of ``angles[i]``.
    """
    angles = np.asarray(angles, dtype=float)
    idx = np.argsort(angles)
    a = angles[idx]
    start = int(np.argmin(np.abs(a)))
    pos = list(range(start + 1, len(a)))
    neg = list(range(start - 1, -1, -1))
    seq = [start]
    side = 0
    while pos or neg:
        src = pos if (side == 0 and pos) or not neg else neg
        seq.extend(src[:2])
        del src[:2]
        side ^= 1
    order = np.empty(len(a), dtype=int)
    order[idx[seq]] = np.arange(len(a))
    return order
