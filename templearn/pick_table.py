"""The picks table every stage passes around (:class:`Picks`); its files are :mod:`templearn.picks`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Picks:
    xyz: np.ndarray                      # (n, 3) voxels, [x, y, z]
    voxel_size: float                    # Å
    tomogram: np.ndarray                 # (n,) str
    label: np.ndarray                    # (n,) int, 1..K
    score: np.ndarray                    # (n,) float
    euler: np.ndarray | None = None      # (n, 3) degrees, ZYZ RELION
    class_names: dict[int, str] = field(default_factory=dict)
    # (n,) bool: the picks the picker's default cut accepts; None means all. Rejected candidates
    # are kept (written with accepted = 0 in CSV) so that a user can move the cut afterwards.
    accepted: np.ndarray | None = None

    def __post_init__(self):
        self.xyz = np.asarray(self.xyz, dtype=float).reshape(-1, 3)
        n = len(self.xyz)
        self.tomogram = _broadcast(self.tomogram, n, str)
        self.label = _broadcast(self.label, n, int)
        self.score = _broadcast(self.score, n, float)
        if self.euler is not None:
            self.euler = np.asarray(self.euler, dtype=float).reshape(n, 3)
        if self.accepted is not None:
            self.accepted = _broadcast(self.accepted, n, bool)

    def __len__(self) -> int:
        return len(self.xyz)

    @classmethod
    def empty(cls, voxel_size: float) -> "Picks":
        return cls(np.zeros((0, 3)), voxel_size, np.array([], str), np.array([], int), np.array([], float))

    def select(self, mask) -> "Picks":
        mask = np.asarray(mask)
        return Picks(
            self.xyz[mask], self.voxel_size, self.tomogram[mask], self.label[mask], self.score[mask],
            None if self.euler is None else self.euler[mask], dict(self.class_names),
            None if self.accepted is None else self.accepted[mask],
        )

    def written(self) -> "Picks":
        """The accepted picks only (what the picks files a user imports hold)."""
        return self if self.accepted is None else self.select(self.accepted)

    def xyz_angstrom(self) -> np.ndarray:
        return self.xyz * self.voxel_size

    def class_name(self, label: int) -> str:
        return self.class_names.get(int(label), f"class{int(label)}")


def _broadcast(value, n, typ):
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(n, arr.item())
    if len(arr) != n:
        raise ValueError(f"expected {n} values, got {len(arr)}")
    return arr.astype(typ)
