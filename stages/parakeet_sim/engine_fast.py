"""The `fast` engine: a projection-approximation tilt series, one tilt at a time.

For each tilt (stack order, each with its own random stream ``(seed, index)`` so the result does
not depend on how the loop is run):

1. Projected potential (V·Å): every molecule's point cloud (:mod:`.potential`, potential minus
   displaced ice) rotated by the tilt times its pose and splatted bilinearly onto the image grid
   (pixel ``j`` centred at ``j·pixel`` Å, tilt axis through ``(axis_x, axis_z)``: the geometry
   of :mod:`templearn.tilts`), the splat's blur divided out in Fourier space.
   Molecules' potential times ``contrast_scale`` (1: the atoms' own; MULTEM's comes out ~0.6-0.8).
2. Amorphous ice: its mean potential times the path length ``specimen thickness / cos θ`` (the
   slab's when it is thinner than the volume: vacuum above and below), plus the number
   fluctuations of water molecules along each column (Gaussian, variance proportional to the
   path length, scaled by the low-q structure factor of water ``ICE_STRUCTURE_FACTOR``), their
   std times ``ice_noise_scale`` and, with ``ice_noise_correlation`` > 0, correlated over that
   length (Gaussian kernel, per-pixel variance kept).
3. Radiation damage: the specimen spectrum attenuated by the Grant & Grigorieff exposure filter
   for the dose received before the middle of this exposure (dose-symmetric order).
4. Exit wave ``exp(iσV)`` (phase object) with ``amplitude_contrast`` (0.07); objective lens
   transfer (defocus, Cs, temporal/spatial envelopes, optional Volta phase plate) on a padded
   grid so the CTF's delocalization does not wrap around; intensity ``|ψ|²``.
5. Detector: pixel MTF on the expected counts, Poisson noise (:mod:`.detector`).

Memory: a few padded 2-D images and the point clouds of the distinct structures; the 3-D
potential of the whole sample is never formed, and images go straight to the memory-mapped stack.
"""

from __future__ import annotations

import numpy as np

from templearn.progress import track
from templearn.tilts import Acquisition

from . import ctf as optics
from .detector import record
from .params import AMPLITUDE_CONTRAST, Geometry, SimParams  # noqa: F401 - AMPLITUDE_CONTRAST re-exported
from .potential import (PointCloud, ice_mean_potential, structure_point_cloud, water_integrated_potential,
                        water_molecules_per_a3)
from .sample_atoms import PlacedStructure

ICE_STRUCTURE_FACTOR = 0.1     # S(q) of liquid/amorphous water at low q (compressibility limit ~0.06)
MAX_POINTS_PER_BATCH = 4_000_000


def margin_pixels(params: SimParams) -> int:
    """Padding (pixels) covering the CTF's delocalization at Nyquist, so FFTs do not wrap around."""
    lam = optics.wavelength(params.voltage)
    qn = 0.5 / params.pixel_size
    deloc = lam * abs(params.defocus_um * 1e4) * qn + params.cs_mm * 1e7 * lam**3 * qn**3
    return int(np.ceil(deloc / params.pixel_size)) + 8


def tilt_matrix(theta_deg: float) -> np.ndarray:
    """Rotation about +y by θ (right-handed): x' = x cos θ + z sin θ (templearn.tilts geometry)."""
    t = np.deg2rad(theta_deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def project_potential(
    clouds: list[tuple[PointCloud, PlacedStructure]], theta: float, geom: Geometry, margin: int, shape: tuple[int, int]
) -> np.ndarray:
    """Integrated potential per pixel (V·Å³) of every molecule at tilt ``theta``, on the padded grid ``shape``."""
    ny, nx = shape
    rt = tilt_matrix(theta)
    ps = geom.pixel
    out = np.zeros(ny * nx)
    a = np.array([geom.axis_x, 0.0, geom.axis_z])
    for cloud, placed in clouds:
        if len(cloud) == 0:
            continue
        m = (np.einsum("ij,njk->nik", rt, placed.rotations)[:, :2, :] / ps).astype(np.float32)  # image rows of R_t A
        rel = (placed.positions - a) @ rt.T                                    # instance centres after the tilt
        offset = (np.stack([rel[:, 0] + geom.axis_x, placed.positions[:, 1]], axis=1) / ps + margin).astype(np.float32)
        pts_t = np.ascontiguousarray(cloud.xyz.T, dtype=np.float32)            # (3, k)
        k = len(cloud)
        step = max(1, MAX_POINTS_PER_BATCH // k)
        for start in range(0, len(m), step):
            mb = m[start:start + step]
            n = len(mb)
            uv = (mb.reshape(2 * n, 3) @ pts_t).reshape(n, 2, k)               # one GEMM for the batch
            uv += offset[start:start + step, :, None]
            w = np.broadcast_to(cloud.weight, (n, k)).ravel()
            _splat_bilinear(out, uv[:, 0, :].ravel(), uv[:, 1, :].ravel(), w, ny, nx)
    return out.reshape(shape)


def _splat_bilinear(out: np.ndarray, col: np.ndarray, row: np.ndarray, w: np.ndarray, ny: int, nx: int) -> None:
    """Add weights ``w`` at fractional pixel coordinates (``col``, ``row``) to ``out`` (flat ``ny * nx``)."""
    c0 = np.floor(col)
    r0 = np.floor(row)
    inside = (c0 >= 0) & (c0 < nx - 1) & (r0 >= 0) & (r0 < ny - 1)
    if not inside.all():
        c0, r0, col, row, w = c0[inside], r0[inside], col[inside], row[inside], w[inside]
    fc = col - c0
    fr = row - r0
    base = r0.astype(np.int64) * nx + c0.astype(np.int64)
    n = out.size
    wr0 = w * (1 - fr)
    wr1 = w * fr
    out += np.bincount(base, wr0 * (1 - fc), minlength=n)
    out += np.bincount(base + 1, wr0 * fc, minlength=n)
    out += np.bincount(base + nx, wr1 * (1 - fc), minlength=n)
    out += np.bincount(base + nx + 1, wr1 * fc, minlength=n)


def simulate_fast(structures: list[PlacedStructure], params: SimParams, acq: Acquisition, geom: Geometry,
                  stack: np.ndarray) -> dict:
    """Fill ``stack`` ``[n_tilts, ny, nx]`` (stack order of ``acq``) with simulated counts; return figures."""
    from scipy import fft as sfft

    ps = geom.pixel
    ice_v = ice_mean_potential(params.ice_density) if params.ice_density > 0 else 0.0
    clouds = [(structure_point_cloud(s.xyz, s.element, ps, ice_v), s)
              for s in track(structures, "potential of each structure")]
    margin = margin_pixels(params)
    shape = (sfft.next_fast_len(geom.ny + 2 * margin), sfft.next_fast_len(geom.nx + 2 * margin))
    qy, qx = optics.frequencies(shape, ps)
    splat_transfer = (np.sinc(qx * ps) * np.sinc(qy * ps)) ** 2
    transfer = optics.coherent_transfer(
        shape, ps, defocus=params.defocus_um * 1e4, cs_mm=params.cs_mm, voltage_kv=params.voltage,
        phase_plate=params.phase_plate, phase_shift_deg=params.phase_shift_deg)
    sigma = optics.interaction_constant(params.voltage)
    ice_var_per_a = ICE_STRUCTURE_FACTOR * water_molecules_per_a3(params.ice_density) * water_integrated_potential() ** 2
    ice_kernel = None
    if params.ice_noise_correlation > 0:   # Gaussian correlation, scaled so each pixel keeps its variance
        s_q = np.exp(-2 * np.pi**2 * params.ice_noise_correlation**2 * (qy**2 + qx**2))
        ice_kernel = s_q / np.sqrt(np.mean(s_q**2))
    for i in track(range(len(acq.angles)), "fast engine tilts"):
        theta = acq.angles[i]
        rng = np.random.default_rng([params.seed, i])
        proj = project_potential(clouds, theta, geom, margin, shape)
        if params.contrast_scale != 1.0:
            proj *= params.contrast_scale
        spec = sfft.fft2(proj) / (ps**2 * splat_transfer)
        if params.radiation_damage:
            exposure = acq.dose_before[i] + acq.dose[i] / 2
            spec *= optics.exposure_filter(shape, ps, exposure, params.voltage)
        vz = sfft.ifft2(spec).real
        if ice_v:
            path = geom.specimen_thickness / max(np.cos(np.deg2rad(theta)), 1e-3)
            noise = rng.normal(0.0, np.sqrt(ice_var_per_a * path) / ps * params.ice_noise_scale, shape)
            if ice_kernel is not None:
                noise = sfft.ifft2(sfft.fft2(noise) * ice_kernel).real
            vz += ice_v * path + noise
        phase = sigma * vz
        psi = np.exp(1j * phase - params.amplitude_contrast * (phase - phase.mean()))
        image = np.abs(sfft.ifft2(sfft.fft2(psi) * transfer)) ** 2
        image = image[margin:margin + geom.ny, margin:margin + geom.nx]
        stack[i] = record(image, acq.dose[i] * ps**2, ps, rng)
    return {"margin_pixels": margin, "padded_shape": list(shape),
            "points": int(sum(len(c) * len(s.positions) for c, s in clouds)),
            "ice_mean_potential_V": ice_v, "amplitude_contrast": params.amplitude_contrast}
