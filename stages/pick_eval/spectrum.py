"""Spectrum matching (the paper's Extended Data Fig. 5): impose the radially averaged amplitude
spectrum of a reference tomogram on another one, phases kept.

Used to bring tomograms of one domain (e.g. defocus contrast) closer to another (phase plate)
before picking. Frequencies are compared in 1/Å, so the two volumes may differ in shape (and
voxel size, within the frequencies both sample).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from templearn.errors import TemplearnError


def _radius_grid(shape, voxel_size: float) -> np.ndarray:
    """|k| in 1/Å on the grid of ``np.fft.rfftn`` of an array of ``shape`` [z, y, x]."""
    kz = np.fft.fftfreq(shape[0], voxel_size)[:, None, None]
    ky = np.fft.fftfreq(shape[1], voxel_size)[None, :, None]
    kx = np.fft.rfftfreq(shape[2], voxel_size)[None, None, :]
    return np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)


def _shell_step(shape, voxel_size: float) -> float:
    """Shell width in 1/Å: one Fourier pixel of the longest axis."""
    return 1.0 / (max(shape) * voxel_size)


def radial_amplitude(volume: np.ndarray, voxel_size: float, step: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged amplitude spectrum: ``(freq (n,) 1/Å, amplitude (n,))``.

    Amplitudes of the orthonormal FFT (``norm="ortho"``), so a volume and a larger crop of the
    same texture have the same spectrum.
    """
    volume = np.asarray(volume, np.float32)
    step = step or _shell_step(volume.shape, voxel_size)
    f = np.abs(np.fft.rfftn(volume - volume.mean(), norm="ortho"))
    r = _radius_grid(volume.shape, voxel_size)
    shell = np.rint(r / step).astype(int)
    nyq = int(np.floor(0.5 / voxel_size / step))
    # rfftn stores half the spectrum: weight the x-columns that stand for two (conjugate) points.
    w = np.full(f.shape[-1], 2.0)
    w[0] = 1.0
    if volume.shape[2] % 2 == 0:
        w[-1] = 1.0
    w = np.broadcast_to(w, f.shape)
    keep = shell <= nyq
    sums = np.bincount(shell[keep], weights=(f * w)[keep], minlength=nyq + 1)
    counts = np.bincount(shell[keep], weights=w[keep], minlength=nyq + 1)
    amp = np.where(counts > 0, sums / np.maximum(counts, 1e-12), 0.0)
    return np.arange(nyq + 1) * step, amp


def match_spectrum(volume: np.ndarray, voxel_size: float, ref_freq: np.ndarray, ref_amp: np.ndarray) -> np.ndarray:
    """``volume`` [z, y, x] with its radial amplitude spectrum replaced by ``ref_amp(ref_freq)``.

    Each shell of the volume's spectrum is scaled by ``ref / own`` (linear interpolation of the
    reference in frequency; beyond the reference's highest frequency the last value holds). The
    mean (k = 0) is kept.
    """
    volume = np.asarray(volume, np.float32)
    freq, own = radial_amplitude(volume, voxel_size)
    target = np.interp(freq, ref_freq, ref_amp)
    gain = np.where(own > 0, target / np.maximum(own, 1e-30), 0.0)
    gain[0] = 1.0
    step = freq[1] - freq[0] if len(freq) > 1 else 1.0
    r = _radius_grid(volume.shape, voxel_size)
    shell = np.minimum(np.rint(r / step).astype(int), len(gain) - 1)
    # Corners beyond Nyquist (|k| > 1/2 voxel along a diagonal) get the last shell's gain.
    mean = float(volume.mean())
    f = np.fft.rfftn(volume - mean, norm="ortho")
    f *= gain[shell]
    return (np.fft.irfftn(f, s=volume.shape, norm="ortho") + mean).astype(np.float32)


def run_spectrum_match(tomogram: str | os.PathLike, reference: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out`` (MRC): ``tomogram`` with the radial amplitude spectrum of ``reference``;
    ``<out stem>_spectra.png`` shows the three spectra, ``provenance.json`` goes beside."""
    from templearn import provenance
    from templearn.mrc import read_mrc, write_mrc

    from . import plots

    vol, vs = read_mrc(tomogram)
    ref, rvs = read_mrc(reference)
    for v, p in ((vol, tomogram), (ref, reference)):
        if float(v.std()) == 0.0:
            raise TemplearnError("the tomogram is constant (empty): it has no spectrum", p)
    rf, ra = radial_amplitude(ref, rvs)
    result = match_spectrum(vol, vs, rf, ra)
    out = Path(out)
    if out.suffix not in (".mrc", ".rec", ".map"):
        raise TemplearnError("the output must be an MRC file (.mrc, .rec or .map)", out)
    write_mrc(out, result, vs)
    png = out.with_name(out.stem + "_spectra.png")
    f0, a0 = radial_amplitude(vol, vs)
    f1, a1 = radial_amplitude(result, vs)
    plots.spectra(png, f0[1:], {"tomogram": a0[1:], "matched": a1[1:],
                                "reference": np.interp(f0[1:], rf, ra)})
    provenance.record(out.parent, "pick-eval spectrum-match", {"tomogram": tomogram, "reference": reference},
                      inputs=[tomogram, reference], outputs=[out, png])
    return out
