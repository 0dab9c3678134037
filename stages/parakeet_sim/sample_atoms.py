"""The manifest's molecules as atoms and poses, the way both engines read them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from templearn.euler import euler_to_matrix
from templearn.manifest import Manifest
from templearn.structures import load_atoms


@dataclass
class PlacedStructure:
    """One structure of a manifest and every instance of it.

    ``xyz`` ``(n, 3)`` Å relative to the manifest's ``center`` of the structure; ``element``
    ``(n,)``; ``positions`` ``(m, 3)`` Å ``[x, y, z]`` and ``rotations`` ``(m, 3, 3)``: atom ``k``
    of instance ``i`` sits at ``rotations[i] @ xyz[k] + positions[i]``.
    """

    name: str
    xyz: np.ndarray
    element: np.ndarray
    positions: np.ndarray
    rotations: np.ndarray
    eulers: np.ndarray


def placed_structures(manifest: Manifest, search: Iterable[str | os.PathLike] = ()) -> list[PlacedStructure]:
    """Read each structure the manifest's instances use (files found beside it or in ``search``)."""
    search = list(search)
    by_name: dict[str, list] = {}
    for inst in manifest.instances:
        by_name.setdefault(inst.structure, []).append(inst)
    out = []
    for name, insts in by_name.items():
        path = manifest.structure_path(name, search)
        atoms = load_atoms(path)
        center = np.asarray(manifest.structures[name].center, dtype=float)
        eulers = np.array([i.euler for i in insts], dtype=float).reshape(-1, 3)
        out.append(PlacedStructure(
            name=name, xyz=atoms.xyz - center, element=atoms.element,
            positions=np.array([i.position for i in insts], dtype=float).reshape(-1, 3),
            rotations=euler_to_matrix(eulers).reshape(-1, 3, 3), eulers=eulers,
        ))
    return out
