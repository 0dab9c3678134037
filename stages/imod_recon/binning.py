"""Binning a tilt series by Fourier cropping (anti-aliased, non-integer factors allowed).

The sampling grid of :mod:`templearn.tilts` is kept: image pixel ``j`` is centred at ``j * pixel``
Å before binning and output pixel ``i`` at ``i * voxel`` Å after it (sample 0 stays at 0 Å), so
positions in Å mean the same thing at every binning.

How: a factor ``f = voxel / pixel`` is written as a fraction ``N0 / M0``. Each line (length
``n``) is padded to a multiple ``N = k * N0`` with a linear taper from its last value back to
its first (so the periodic signal the FFT sees has no jump, as IMOD's ``tilt`` pads its lines),
its spectrum is cut to the ``M = k * M0`` lowest frequencies and transformed back: ``M`` samples
spaced exactly ``N * pixel / M = f * pixel`` Å, the first at 0 Å. Frequencies above the new
Nyquist are removed, not folded back (anti-aliasing), and the mean is preserved. The samples
that lie inside the original field (``i * voxel <= (n - 1) * pixel``) are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from templearn.errors import TemplearnError

# Relative error allowed between the requested and the achieved voxel size (1e-5: under 0.01
# voxel of drift across 1000 voxels).
RATIO_TOLERANCE = 1e-5
MAX_DENOMINATOR = 4096


@dataclass(frozen=True)
class BinPlan:
    """How to bin: ``voxel = pixel * num / den`` exactly (``num``, ``den`` integers)."""

    pixel_size: float
    voxel_size: float
    num: int
    den: int

    @property
    def factor(self) -> float:
        return self.num / self.den

    def output_length(self, n: int) -> int:
        """Samples ``i * voxel`` that fall inside a line of ``n`` pixels (``<= (n-1) * pixel``)."""
        return (n - 1) * self.den // self.num + 1


def plan_binning(pixel_size: float, target_voxel: float, *, path=None) -> BinPlan:
    """The binning from ``pixel_size`` to (as close as 1e-5 to) ``target_voxel`` Å.

    Raises :class:`TemplearnError` when ``target_voxel`` is smaller than ``pixel_size``
    (binning cannot add detail).
    """
    if not pixel_size > 0:
        raise TemplearnError(f"pixel size must be positive, got {pixel_size} Å", path)
    if not target_voxel > 0:
        raise TemplearnError(f"voxel size must be positive, got {target_voxel} Å", path)
    factor = target_voxel / pixel_size
    if factor < 1 - 1e-6:
        raise TemplearnError(
            f"cannot bin to {target_voxel:g} Å: it is smaller than the pixel size {pixel_size:g} Å "
            f"(binning only makes pixels larger); choose --voxel-size >= {pixel_size:g}, or "
            "reconstruct at the pixel size and interpolate the tomogram afterwards", path)
    if abs(factor - 1) <= 1e-6:
        return BinPlan(pixel_size, pixel_size, 1, 1)
    best = None
    for den in range(1, MAX_DENOMINATOR + 1):
        num = round(factor * den)
        err = abs(num / den - factor) / factor
        if best is None or err < best[0]:
            best = (err, num, den)
        if err <= RATIO_TOLERANCE:
            break
    _, num, den = best
    g = math.gcd(num, den)
    num, den = num // g, den // g
    return BinPlan(pixel_size, pixel_size * num / den, num, den)


def fourier_bin_axis(data: np.ndarray, plan: BinPlan, axis: int) -> np.ndarray:
    """Fourier-crop ``data`` along ``axis`` following ``plan``; returns float32."""
    from scipy import fft

    if plan.num == plan.den:
        return np.asarray(data, dtype=np.float32)
    data = np.moveaxis(np.asarray(data, dtype=np.float32), axis, -1)
    n = data.shape[-1]
    n_out = plan.output_length(n)
    # Pad by at least a few samples so the taper can bring the last value back to the first.
    margin = max(4, n // 16)
    k = -(-(n + margin) // plan.num)
    big_n, big_m = k * plan.num, k * plan.den
    padded = np.empty(data.shape[:-1] + (big_n,), dtype=np.float32)
    padded[..., :n] = data
    npad = big_n - n
    f = (np.arange(1, npad + 1, dtype=np.float32) / (npad + 1))
    padded[..., n:] = (1 - f) * data[..., -1:] + f * data[..., :1]
    spec = fft.rfft(padded, axis=-1)
    spec = spec[..., : big_m // 2 + 1]
    out = fft.irfft(spec, n=big_m, axis=-1)[..., :n_out] * (big_m / big_n)
    return np.moveaxis(out.astype(np.float32, copy=False), -1, axis)


def fourier_bin_image(image: np.ndarray, plan: BinPlan) -> np.ndarray:
    """Bin one image ``[y, x]`` (or a stack ``[..., y, x]``) in x and y."""
    return fourier_bin_axis(fourier_bin_axis(image, plan, -1), plan, -2)


def bin_stack(stack: np.ndarray, pixel_size: float, target_voxel: float, *, path=None,
              progress=None) -> tuple[np.ndarray, float]:
    """Bin a tilt series ``[tilt, y, x]`` from ``pixel_size`` to ``target_voxel`` Å.

    Returns ``(binned [tilt, y', x'] float32, voxel_size Å)``; the voxel size is the one achieved
    (within 1e-5 of the target). Images are binned one at a time to bound memory.
    """
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"expected a [tilt, y, x] stack, got shape {stack.shape}")
    plan = plan_binning(pixel_size, target_voxel, path=path)
    if plan.num == plan.den:
        return np.asarray(stack, dtype=np.float32), plan.voxel_size
    ny, nx = plan.output_length(stack.shape[1]), plan.output_length(stack.shape[2])
    out = np.empty((stack.shape[0], ny, nx), dtype=np.float32)
    items = range(stack.shape[0])
    for t in (progress(items, "binning") if progress else items):
        out[t] = fourier_bin_image(stack[t], plan)
    return out, plan.voxel_size


# How a tomogram's array axes lie. "zyx": [z (beam), y (tilt axis), x], as templearn, Warp, RELION and
# IMOD after `trimvol -rx` (or `clip rotx`) write it. "yzx": IMOD `tilt`'s raw output (and AreTomo's
# without -FlipVol), whose thin beam axis is the file's second axis.
ORIENTATIONS = ("auto", "zyx", "yzx")


def detect_orientation(shape: tuple[int, int, int]) -> str:
    """``yzx`` when the second axis is clearly the thinnest (IMOD's unrotated output), else ``zyx``."""
    a, b, c = shape
    return "yzx" if b < 0.75 * min(a, c) else "zyx"


def to_zyx(volume: np.ndarray, orientation: str) -> np.ndarray:
    """A view of ``volume`` as ``[z, y, x]``: ``yzx`` is turned as IMOD's ``trimvol -rx`` turns it
    (-90° about x, handedness kept: new y = old z, new z = -old y)."""
    if orientation not in ORIENTATIONS[1:]:
        raise TemplearnError(f"--orientation must be one of {', '.join(ORIENTATIONS)}, got {orientation!r}")
    return np.swapaxes(volume, 0, 1)[::-1] if orientation == "yzx" else volume


def bin_volume(volume: np.ndarray, voxel_size: float, target_voxel: float, *, path=None,
               progress=None) -> tuple[np.ndarray, float]:
    """Bin a tomogram ``[z, y, x]`` from ``voxel_size`` to ``target_voxel`` Å by Fourier cropping
    along every axis (as :func:`bin_stack` bins images). ``volume`` may be memory-mapped: it is read
    one z-slice at a time, and only the output (and one y-x-binned copy) is held in memory.

    Returns ``(binned float32 [z', y', x'], voxel_size Å)``; voxel ``i`` stays at ``i * voxel`` Å.
    """
    if volume.ndim != 3:
        raise TemplearnError(f"a tomogram must be a 3D volume, got shape {volume.shape}", path)
    plan = plan_binning(voxel_size, target_voxel, path=path)
    if plan.num == plan.den:
        return np.asarray(volume, dtype=np.float32), plan.voxel_size
    nz = volume.shape[0]
    planes = np.empty((nz, plan.output_length(volume.shape[1]), plan.output_length(volume.shape[2])), np.float32)
    items = range(nz)
    for z in (progress(items, "binning y, x") if progress else items):
        planes[z] = fourier_bin_image(volume[z], plan)
    out = np.empty((plan.output_length(nz),) + planes.shape[1:], np.float32)
    rows = range(0, planes.shape[1], 64)
    for y in (progress(rows, "binning z") if progress else rows):
        out[:, y:y + 64] = fourier_bin_axis(planes[:, y:y + 64], plan, 0)
    return out, plan.voxel_size
