"""The radial (R-weighting) filter of IMOD's ``tilt``: a ramp with a Gaussian falloff, and the
"fake SIRT" variant (``FakeSIRTiterations``).

Written after ``radialWeights`` in IMOD's ``tilt.f90`` (IMOD 4.11/4.12), with the falloff taken
as a true Gaussian sigma (``FalloffIsTrueSigma 1``, as the Template Learning scripts run it):

- ``RADIAL cutoff falloff``: values below 1 are in cycles/pixel (of the unpadded line,
  0 to 0.5), values of 1 or more in frequency steps ("pixels") of the unpadded line of ``n``
  pixels. ``tilt`` truncates the cutoff to whole steps, ``irad = int(cutoff * n)``.
- On the padded line (FFT length ``N``), frequency index ``k`` (``k / N`` cycles/pixel) gets the
  weight ``k`` (``0.2`` at ``k = 0``, Kak and Slaney's value) for ``k < irad``, then
  ``w[irad - 1] * exp(-((k + 1 - irad) / sigma)^2 / 2)``, with ``irad`` and ``sigma`` scaled by
  ``N / n``.
- Fake SIRT with ``i`` iterations replaces the ramp by ``k * (1 - (1 - a / f)^(i' + 0.3))`` for
  ``f = k / (N + 2) >= a`` with ``a = 0.00195`` and ``i'`` = ``i`` up to 15, then
  ``15 + 0.8 (i - 15)``, above 30 ``27 + 0.6 (i - 30)`` (IMOD's empirical match to real SIRT).

The weights are returned in cycles/pixel (``w / N``), which makes a weighted back projection
summed with the angular step in radians an inverse Radon transform (same scale as scikit-image's
``iradon``); ``tilt`` scales its output differently.
"""

from __future__ import annotations

import numpy as np

FAKE_SIRT_ALPHA = 0.00195
FAKE_SIRT_MATCH_ADD = 0.3


def fake_sirt_iterations_used(iterations: int) -> float:
    """IMOD's rescaling of the iteration count for the fake-SIRT filter."""
    it = float(iterations)
    if iterations > 30:
        return 27 + 0.6 * (it - 30)
    if iterations > 15:
        return 15 + 0.8 * (it - 15)
    return it


def radial_weights(n_pad: int, n_line: int, cutoff: float = 0.5, falloff: float = 0.5,
                   sirt_iterations: int = 0) -> np.ndarray:
    """Weights for the ``n_pad // 2 + 1`` frequencies of an rfft of length ``n_pad``.

    ``n_line`` is the unpadded line length (pixels) that ``cutoff`` and ``falloff`` refer to.
    Returns float64 weights in cycles/pixel.
    """
    if not cutoff > 0:
        raise ValueError(f"RADIAL cutoff must be positive, got {cutoff}")
    if falloff < 0:
        raise ValueError(f"RADIAL falloff must not be negative, got {falloff}")
    if sirt_iterations < 0:
        raise ValueError(f"SIRT-like iterations must not be negative, got {sirt_iterations}")
    stretch = n_pad / n_line
    irad_in = int(cutoff * n_line) if cutoff < 1 else int(cutoff)
    fall_in = falloff * n_line if falloff < 1 else falloff
    irad = max(1, int(round(irad_in * stretch)))
    sigma = max(0.01, fall_in * stretch)
    k = np.arange(n_pad // 2 + 1, dtype=np.float64)
    w = k.copy()
    if sirt_iterations > 0:
        freq = k / (n_pad + 2)
        use = (k > 0) & (freq >= FAKE_SIRT_ALPHA)
        power = fake_sirt_iterations_used(sirt_iterations) + FAKE_SIRT_MATCH_ADD
        w[use] = k[use] * (1 - (1 - FAKE_SIRT_ALPHA / freq[use]) ** power)
    w[0] = 0.2
    if irad < len(w):
        anchor = w[irad - 1]
        arg = (k[irad:] + 1 - irad) / sigma
        w[irad:] = np.where(arg < 8, anchor * np.exp(-arg * arg / 2), 0.0)
    return w / n_pad
