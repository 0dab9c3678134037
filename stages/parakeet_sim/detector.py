"""The detector: pixel MTF on the signal, Poisson counting noise (so DQE(q) = MTF(q)²)."""

from __future__ import annotations

import numpy as np

from .ctf import frequencies


def pixel_mtf(shape: tuple[int, int], pixel_size: float) -> np.ndarray:
    """MTF of square pixels that count every electron landing in them: ``sinc(qx p) sinc(qy p)`` (0.64 at Nyquist)."""
    qy, qx = frequencies(shape, pixel_size)
    return np.sinc(qx * pixel_size) * np.sinc(qy * pixel_size)


def record(intensity: np.ndarray, electrons_per_pixel: float, pixel_size: float, rng: np.random.Generator) -> np.ndarray:
    """Counts of an image of relative ``intensity`` (1 = vacuum) at ``electrons_per_pixel``.

    The expected counts are blurred by the pixel MTF, then drawn from a Poisson law: the noise
    stays white while the signal falls off, i.e. DQE(q) = MTF(q)² like a counting detector.
    """
    expected = np.fft.ifft2(np.fft.fft2(intensity * electrons_per_pixel) * pixel_mtf(intensity.shape, pixel_size)).real
    return rng.poisson(np.clip(expected, 0, None)).astype(np.float32)
