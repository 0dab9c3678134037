"""The sample manifest: one JSON file per crowded sample, read by every stage after ``tetris``.

Coordinates: positions are in Å, ``[x, y, z]``, in the sample frame whose origin is the centre
of voxel ``[0, 0, 0]``; voxel index ``i`` along an axis has its centre at ``i * voxel_size`` Å
(arrays are ``[z, y, x]``). The sample box spans ``box = [nz, ny, nx]`` voxels. Orientations are
ZYZ RELION Euler angles in degrees (:mod:`templearn.euler`): an instance's atoms sit at
``A(euler) @ x_structure + position``, where ``x_structure`` are the coordinates in its structure
file (structures are centred on their centre of mass before use, see ``structures[*].center``).

Layout (``format: templearn.sample``, ``version: 1``)::

    {
      "format": "templearn.sample", "version": 1,
      "name": "sample_000", "voxel_size": 16.0, "box": [64, 192, 192],
      "seed": 7, "targets": ["nucleosome"],
      "protein_fraction": 0.068,
      "structures": {
        "7kbe": {"path": "templates/7kbe.pdb.gz", "class": "target", "target": "nucleosome",
                 "template": "7kbe", "variant": null, "center": [x, y, z], "sha256": "..."},
        "1bxn": {"path": "...", "class": "distractor", ...}
      },
      "instances": [
        {"id": 1, "structure": "7kbe", "position": [x, y, z], "euler": [rot, tilt, psi]}, ...
      ]
    }

``protein_fraction`` (optional; absent in older files) is the molecules' volume over the box's:
the sum over instances of their structure's mass x 1.21 Å³/Da, divided by the box volume in Å³.
``class`` is ``target`` or ``distractor``; ``target`` names the target class (label
``targets.index(target) + 1`` in label maps, 0 is background). ``center`` is the point of the
structure file's frame (Å) that is placed at ``position``.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from .atomic import read_json, write_json
from .errors import TemplearnError

FORMAT = "templearn.sample"
VERSION = 1
CLASSES = ("target", "distractor")


@dataclass
class StructureEntry:
    path: str
    cls: Literal["target", "distractor"]
    target: str | None = None      # target class name when cls == "target"
    template: str | None = None    # the template this structure comes from (itself, or an NMA parent)
    variant: int | None = None     # NMA variant index, None for the original structure
    center: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    sha256: str | None = None
    n_atoms: int | None = None
    mass_kda: float | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["class"] = d.pop("cls")
        return d


@dataclass
class Instance:
    id: int
    structure: str
    position: list[float]   # Å, [x, y, z]
    euler: list[float]      # degrees, ZYZ RELION (rot, tilt, psi)


@dataclass
class Manifest:
    name: str
    voxel_size: float                 # Å
    box: list[int]                    # [nz, ny, nx] voxels
    structures: dict[str, StructureEntry]
    instances: list[Instance]
    targets: list[str] = field(default_factory=list)
    seed: int | None = None
    params: dict = field(default_factory=dict)
    protein_fraction: float | None = None   # sum of mass x 1.21 Å³/Da over the box volume
    path: Path | None = None          # where it was read from (not written)

    # --- derived views --------------------------------------------------------------------
    def label_of(self, structure: str) -> int:
        """Class label of a structure in label maps: 1..K for targets, 0 for distractors."""
        entry = self.structures[structure]
        return self.targets.index(entry.target) + 1 if entry.cls == "target" else 0

    def instances_of(self, cls: str | None = None, target: str | None = None) -> list[Instance]:
        out = []
        for inst in self.instances:
            entry = self.structures[inst.structure]
            if cls is not None and entry.cls != cls:
                continue
            if target is not None and entry.target != target:
                continue
            out.append(inst)
        return out

    def positions(self, cls: str | None = None, target: str | None = None) -> np.ndarray:
        """Positions in Å, ``(n, 3)`` as ``[x, y, z]``."""
        return np.array([i.position for i in self.instances_of(cls, target)], dtype=float).reshape(-1, 3)

    def eulers(self, cls: str | None = None, target: str | None = None) -> np.ndarray:
        return np.array([i.euler for i in self.instances_of(cls, target)], dtype=float).reshape(-1, 3)

    @property
    def box_angstrom(self) -> np.ndarray:
        """Box size in Å as ``[x, y, z]``."""
        return np.array(self.box[::-1], dtype=float) * self.voxel_size

    def structure_path(self, name: str, search: Iterable[str | os.PathLike] = ()) -> Path:
        """Resolve a structure file: as written, relative to the manifest, or by name in ``search``.

        Pipelines move files between work folders, so a manifest's paths may not exist where it
        is read; the same file name in one of the ``search`` folders is accepted.
        """
        entry = self.structures[name]
        p = Path(entry.path)
        candidates = [p]
        if not p.is_absolute() and self.path is not None:
            candidates.append(self.path.parent / p)
        candidates += [Path(d) / p.name for d in search]
        for c in candidates:
            if c.is_file():
                return c
        raise TemplearnError(
            f"structure {name!r} not found (looked for {p.name} beside the manifest and in {', '.join(map(str, search)) or 'no other folder'})",
            self.path,
        )

    # --- IO ---------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "voxel_size": self.voxel_size,
            "box": list(self.box),
            "seed": self.seed,
            "targets": list(self.targets),
            "params": self.params,
            **({} if self.protein_fraction is None else {"protein_fraction": self.protein_fraction}),
            "structures": {k: v.to_json() for k, v in self.structures.items()},
            "instances": [asdict(i) for i in self.instances],
        }

    def write(self, path: str | os.PathLike) -> Path:
        self.validate()
        return write_json(path, self.to_json())

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Manifest":
        path = Path(path)
        doc = read_json(path, "sample manifest")
        try:
            m = cls.from_json(doc)
            m.validate()
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise TemplearnError(f"bad sample manifest: {_msg(exc)}", path) from None
        m.path = path
        return m

    @classmethod
    def from_json(cls, doc: dict) -> "Manifest":
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"'format' must be {FORMAT!r}")
        if doc.get("version") != VERSION:
            raise ValueError(f"version {doc.get('version')!r} is not supported (this templearn reads {VERSION})")
        known = {"format", "version", "name", "voxel_size", "box", "seed", "targets", "params", "structures", "instances",
                 "protein_fraction"}
        unknown = set(doc) - known
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
        structures = {}
        if not isinstance(doc["structures"], dict) or not isinstance(doc["instances"], list):
            raise ValueError("'structures' must be a mapping and 'instances' a list")
        for name, s in doc["structures"].items():
            if not isinstance(s, dict):
                raise ValueError(f"structure {name!r} must be a mapping")
            s = dict(s)
            s["cls"] = s.pop("class")
            structures[name] = StructureEntry(**s)
        if not all(isinstance(i, dict) for i in doc["instances"]):
            raise ValueError("every instance must be a mapping")
        instances = [Instance(**i) for i in doc["instances"]]
        return cls(
            name=doc["name"], voxel_size=float(doc["voxel_size"]), box=[int(b) for b in doc["box"]],
            structures=structures, instances=instances, targets=list(doc.get("targets", [])),
            seed=doc.get("seed"), params=doc.get("params", {}),
            protein_fraction=None if doc.get("protein_fraction") is None else float(doc["protein_fraction"]),
        )

    def validate(self) -> None:
        """Raise ``ValueError`` describing the first inconsistency."""
        if not (math.isfinite(self.voxel_size) and self.voxel_size > 0):
            raise ValueError(f"voxel_size must be positive, got {self.voxel_size}")
        if len(self.box) != 3 or min(self.box) < 1:
            raise ValueError(f"box must be three positive voxel counts [nz, ny, nx], got {self.box}")
        if not isinstance(self.name, str) or not all(isinstance(t, str) for t in self.targets):
            raise ValueError("name and targets must be text")
        if not isinstance(self.params, dict):
            raise ValueError("params must be a mapping")
        if self.protein_fraction is not None and not 0 <= self.protein_fraction <= 1:
            raise ValueError(f"protein_fraction must lie in [0, 1], got {self.protein_fraction}")
        for name, s in self.structures.items():
            if not isinstance(s.path, str) or not isinstance(s.target, (str, type(None))):
                raise ValueError(f"structure {name!r}: path and target must be text")
            if not _three_numbers(s.center):
                raise ValueError(f"structure {name!r}: center needs three numbers, got {s.center!r:.60}")
            if s.cls not in CLASSES:
                raise ValueError(f"structure {name!r}: class must be 'target' or 'distractor', got {s.cls!r}")
            if s.cls == "target" and s.target not in self.targets:
                raise ValueError(f"structure {name!r}: target {s.target!r} is not in targets {self.targets}")
        ids = set()
        for inst in self.instances:
            if not isinstance(inst.id, numbers.Integral) or not isinstance(inst.structure, str):
                raise ValueError(f"instance {inst.id!r}: id must be a whole number and structure a name")
            if inst.structure not in self.structures:
                raise ValueError(f"instance {inst.id}: unknown structure {inst.structure!r}")
            if inst.id in ids:
                raise ValueError(f"instance id {inst.id} is used twice")
            ids.add(inst.id)
            if not (_three_numbers(inst.position) and _three_numbers(inst.euler)):
                raise ValueError(f"instance {inst.id}: position and euler need three numbers each (finite), "
                                 f"got {inst.position!r:.60} and {inst.euler!r:.60}")


def _three_numbers(values) -> bool:
    return isinstance(values, (list, tuple, np.ndarray)) and len(values) == 3 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def angstrom_to_voxel(xyz_angstrom, voxel_size: float) -> np.ndarray:
    """``[x, y, z]`` Å -> ``[x, y, z]`` voxel coordinates (voxel centres at integers)."""
    return np.asarray(xyz_angstrom, dtype=float) / voxel_size


def voxel_to_angstrom(xyz_voxel, voxel_size: float) -> np.ndarray:
    return np.asarray(xyz_voxel, dtype=float) * voxel_size


def _msg(exc: Exception) -> str:
    return f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
