"""Rotations for template matching: a grid over SO(3) with a given angular step, and volumes
rotated into a pose.

The grid samples viewing directions ``(rot, tilt)`` on the sphere about ``step`` degrees apart
(rings of constant tilt, ``360 sin(tilt) / step`` directions each) and the in-plane angle ``psi``
every ``step`` degrees: ZYZ RELION angles (:mod:`templearn.euler`), about
``4 pi / step_rad^2 * 360 / step`` rotations (552 at 30°, 1908 at 20°, 4416 at 15°).
"""

from __future__ import annotations

import numpy as np

from templearn.euler import euler_to_matrix


def angle_grid(step: float) -> np.ndarray:
    """ZYZ RELION Euler angles ``(n, 3)`` degrees covering SO(3) with spacing about ``step``."""
    if not 0 < step <= 180:
        raise ValueError(f"angular step must be in (0, 180] degrees, got {step}")
    n_psi = max(1, int(round(360.0 / step)))
    psis = np.arange(n_psi) * 360.0 / n_psi
    n_tilt = int(round(180.0 / step))
    out = []
    for tilt in np.linspace(0.0, 180.0, n_tilt + 1):
        n_rot = max(1, int(round(360.0 * np.sin(np.radians(tilt)) / step)))
        for rot in np.arange(n_rot) * 360.0 / n_rot:
            out.extend((rot, tilt, psi) for psi in psis)
    return np.array(out, float)


def n_rotations(step: float) -> int:
    """``len(angle_grid(step))`` without building it."""
    n_tilt = int(round(180.0 / step))
    rings = sum(max(1, int(round(360.0 * np.sin(np.radians(t)) / step))) for t in np.linspace(0.0, 180.0, n_tilt + 1))
    return rings * max(1, int(round(360.0 / step)))


def rotate_volume(volume: np.ndarray, euler, order: int = 1) -> np.ndarray:
    """``volume`` [z, y, x] turned into the pose ``A(euler)`` about its centre voxel
    (``(n - 1) / 2``): ``out(p) = in(Aᵀ (p - c) + c)`` with ``p`` as ``[x, y, z]``."""
    from scipy.ndimage import affine_transform

    a = euler_to_matrix(euler)
    # Index order is [z, y, x]: reverse the axes of Aᵀ.
    m = a.T[::-1, ::-1]
    c = (np.asarray(volume.shape, float) - 1.0) / 2.0
    return affine_transform(volume, m, offset=c - m @ c, order=order, mode="constant", cval=0.0)
