"""Orientations: ZYZ Euler angles in degrees, RELION convention ``(rot, tilt, psi)``.

The convention, spelled out:

- Vectors are ``[x, y, z]`` in Å; rotations are right-handed (counter-clockwise seen from the
  positive end of the axis looking towards the origin).
- ``euler_to_matrix(rot, tilt, psi)`` is RELION's ``Euler_angles2matrix``:
  ``A = Rz(psi)ᵀ · Ry(tilt)ᵀ · Rz(rot)ᵀ = (Rz(rot) · Ry(tilt) · Rz(psi))ᵀ``, i.e.
  ``scipy.spatial.transform.Rotation.from_euler("ZYZ", [rot, tilt, psi], degrees=True).inv()``.
- ``A`` moves the template into the particle's pose: an instance placed with these angles at
  position ``p`` has its atoms at ``A @ x_template + p``. This is what RELION means by a particle's
  angles: the reference rotated by ``A`` matches the particle (RELION aligns by projecting the
  reference along ``A``).
- Example (tested in tests/test_contracts.py): ``(rot, tilt, psi) = (90, 0, 0)`` maps the template's
  +x axis onto -y.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def euler_to_matrix(angles) -> np.ndarray:
    """ZYZ RELION Euler angles in degrees (``(..., 3)``) -> rotation matrices ``(..., 3, 3)``."""
    angles = np.asarray(angles, dtype=float)
    return Rotation.from_euler("ZYZ", angles, degrees=True).inv().as_matrix()


def matrix_to_euler(matrix) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` -> ZYZ RELION Euler angles in degrees ``(..., 3)``."""
    return Rotation.from_matrix(np.asarray(matrix, dtype=float)).inv().as_euler("ZYZ", degrees=True)


def euler_to_rotvec(angles) -> np.ndarray:
    """Euler angles -> the rotation vector (radians) of the same active rotation ``A``.

    Parakeet places molecules with ``Rotation.from_rotvec(v).apply(atoms)``, so this is what it
    needs to reproduce a manifest's poses.
    """
    return Rotation.from_matrix(euler_to_matrix(angles)).as_rotvec()


def random_euler(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Orientations drawn uniformly over SO(3) (Haar measure), as Euler angles in degrees."""
    size = 1 if n is None else n
    # The inverse of the drawn rotation, as angles directly: what matrix_to_euler of its matrix
    # gives, without from_matrix (slow, and a sizeable share of a Tetris packing run).
    out = Rotation.random(size, random_state=rng).inv().as_euler("ZYZ", degrees=True)
    return out[0] if n is None else out


def rotate_points(points, angles) -> np.ndarray:
    """Apply the pose ``A(angles)`` to points ``(n, 3)`` given as ``[x, y, z]``."""
    return np.asarray(points, dtype=float) @ euler_to_matrix(angles).T


def viewing_direction(euler: np.ndarray) -> np.ndarray:
    """The beam direction (z) seen in the template's frame, ``(n, 3)``: the direction
    ``(rot, tilt)`` of the RELION angles, since ``Aᵀ e_z = Rz(rot) Ry(tilt) e_z``."""
    a = euler_to_matrix(np.asarray(euler, float).reshape(-1, 3))
    return np.einsum("nji,j->ni", a, np.array([0.0, 0.0, 1.0]))
