"""Microscope optics for the fast engine: wavelength, CTF, envelopes, phase plate, exposure filter.

Conventions follow Kirkland (Advanced Computing in Electron Microscopy) and MULTEM, so the fast
engine's rings fall where Parakeet's do: the objective lens multiplies the exit wave's spectrum
by ``exp(-i χ(q))`` with ``χ(q) = π λ q² (½ Cs λ² q² + Δz)`` where ``Δz`` is the defocus in Å with
*negative = underfocus* (Parakeet's ``c_10``). Spatial frequencies ``q`` are in 1/Å.
"""

from __future__ import annotations

import numpy as np

# Physical constants (SI)
_H = 6.62607015e-34
_M0 = 9.1093837015e-31
_E = 1.602176634e-19
_C = 2.99792458e8


def wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å."""
    v = voltage_kv * 1e3
    return _H / np.sqrt(2 * _M0 * _E * v * (1 + _E * v / (2 * _M0 * _C**2))) * 1e10


def interaction_constant(voltage_kv: float) -> float:
    """σ in rad/(V·Å): the phase an electron gains per unit projected potential (relativistic)."""
    v = voltage_kv * 1e3
    lam = wavelength(voltage_kv) * 1e-10
    gamma = 1 + _E * v / (_M0 * _C**2)
    return 2 * np.pi * gamma * _M0 * _E * lam / _H**2 * 1e-10


def frequencies(shape: tuple[int, int], pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """``(qy, qx)`` grids (1/Å) in numpy FFT order for an image ``[ny, nx]``."""
    qy = np.fft.fftfreq(shape[0], d=pixel_size)
    qx = np.fft.fftfreq(shape[1], d=pixel_size)
    return qy[:, None], qx[None, :]


def chi(q2: np.ndarray, defocus: float, cs_mm: float, voltage_kv: float) -> np.ndarray:
    """Aberration phase χ (rad) at squared frequency ``q2`` (1/Å²); defocus in Å, negative = underfocus."""
    lam = wavelength(voltage_kv)
    cs = cs_mm * 1e7
    return np.pi * lam * q2 * (0.5 * cs * lam**2 * q2 + defocus)


def coherent_transfer(
    shape: tuple[int, int], pixel_size: float, *, defocus: float, cs_mm: float = 2.7, voltage_kv: float = 300.0,
    phase_plate: bool = False, phase_shift_deg: float = 90.0, phase_plate_radius: float = 0.005,
    cc_mm: float = 2.7, energy_spread: float = 2.66e-6, current_spread: float = 0.33e-6,
    voltage_spread: float = 0.8e-6, illumination_semiangle_mrad: float = 0.02,
) -> np.ndarray:
    """The objective lens' transfer function for the exit wave (complex ``[ny, nx]``, FFT order).

    ``exp(-iχ)`` times the temporal (focus spread) and spatial (illumination angle) coherence
    envelopes, times a Volta phase plate's ``exp(iφ (1 - exp(-q²/2r²)))`` (Parakeet's model: the
    phase shift φ grows from 0 at the centre to its full value beyond the cut-on radius ``r`` 1/Å).
    Default spreads and semi-angle are Parakeet's.
    """
    qy, qx = frequencies(shape, pixel_size)
    q2 = qy**2 + qx**2
    lam = wavelength(voltage_kv)
    cs = cs_mm * 1e7
    h = chi(q2, defocus, cs_mm, voltage_kv)
    # Focus spread from chromatic aberration (Kirkland eq. 3.41) -> temporal envelope.
    delta = cc_mm * 1e7 * np.sqrt(energy_spread**2 + (2 * current_spread) ** 2 + voltage_spread**2)
    e_t = np.exp(-0.5 * (np.pi * lam * delta) ** 2 * q2**2)
    # Gradient of χ over the illumination cone -> spatial envelope.
    alpha = illumination_semiangle_mrad * 1e-3
    q = np.sqrt(q2)
    e_s = np.exp(-((np.pi * alpha / lam) ** 2) * (defocus * lam * q + cs * lam**3 * q**3) ** 2)
    t = np.exp(-1j * h) * e_t * e_s
    if phase_plate:
        phi = np.deg2rad(phase_shift_deg)
        t = t * np.exp(1j * phi * (1 - np.exp(-q2 / (2 * phase_plate_radius**2))))
    return t


def ctf_1d(q: np.ndarray, *, defocus: float, cs_mm: float = 2.7, voltage_kv: float = 300.0,
           phase_plate: bool = False, phase_shift_deg: float = 90.0) -> np.ndarray:
    """Weak-phase contrast transfer ``-sin(χ - φ_pp)`` along a radial line (no envelopes)."""
    phi = np.deg2rad(phase_shift_deg) if phase_plate else 0.0
    return -np.sin(chi(q**2, defocus, cs_mm, voltage_kv) - phi)


def critical_exposure(q: np.ndarray) -> np.ndarray:
    """Grant & Grigorieff (2015) critical exposure N_e(q) in e/Å² at 300 kV (q in 1/Å)."""
    q = np.maximum(q, 1e-6)
    return 0.245 * q ** (-1.665) + 2.81


def exposure_filter(shape: tuple[int, int], pixel_size: float, exposure: float, voltage_kv: float = 300.0) -> np.ndarray:
    """Amplitude attenuation ``exp(-N / 2 N_e(q))`` of the specimen's spectrum after ``exposure`` e/Å².

    Radiation damage erases high resolution first; the critical exposure at 200 kV is ~0.8x that
    at 300 kV (Grant & Grigorieff).
    """
    qy, qx = frequencies(shape, pixel_size)
    scale = 1.0 if voltage_kv >= 300 else 0.8 if voltage_kv >= 200 else 0.7
    return np.exp(-exposure / (2 * critical_exposure(np.sqrt(qy**2 + qx**2)) * scale))
