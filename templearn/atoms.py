"""Atoms of a structure and structure files: the one atom set every stage uses (first model, no
water, no hydrogens), read and written with gemmi. Where structures come from (paths, PDB IDs, the
mirror) is :mod:`templearn.structures`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import TemplearnError


@dataclass
class Atoms:
    """Atoms of one model: coordinates (Å, ``[x, y, z]``), element symbols, atom and residue names."""

    xyz: np.ndarray          # (n, 3) float64
    element: np.ndarray      # (n,) str, e.g. "C", "P"
    name: np.ndarray         # (n,) str, e.g. "CA"
    residue: np.ndarray      # (n,) str, e.g. "ALA", "DA"
    b_factor: np.ndarray     # (n,) float, Å²

    def __len__(self) -> int:
        return len(self.xyz)

    def masses(self) -> np.ndarray:
        import gemmi

        table = {e: gemmi.Element(e).weight for e in set(self.element.tolist())}
        return np.array([table[e] for e in self.element])

    def center_of_mass(self) -> np.ndarray:
        m = self.masses()
        return (self.xyz * m[:, None]).sum(0) / m.sum()

    def mass_kda(self) -> float:
        return float(self.masses().sum() / 1000.0)

    def radius(self, center=None) -> float:
        """Largest distance (Å) of an atom from ``center`` (default: centre of mass)."""
        c = self.center_of_mass() if center is None else np.asarray(center)
        return float(np.sqrt(((self.xyz - c) ** 2).sum(1).max()))

    def nodes(self) -> np.ndarray:
        """Indices of coarse-grained network nodes: protein CA and nucleic-acid P atoms."""
        ca = (self.name == "CA") & (self.element == "C")
        p = (self.name == "P") & (self.element == "P")
        return np.flatnonzero(ca | p)


def read_structure(path: str | os.PathLike):
    """Read a PDB/mmCIF file with gemmi; first model, waters and hydrogens removed.

    Returns the ``gemmi.Structure`` (kept so variants can be written with the same atoms).
    """
    import gemmi

    path = Path(path)
    if not path.is_file():
        raise TemplearnError("no such structure file", path)
    try:
        st = gemmi.read_structure(str(path))
    except Exception as exc:
        first = str(exc).strip().splitlines()
        raise TemplearnError(f"not a readable PDB/mmCIF file ({first[0] if first else type(exc).__name__})", path) from None
    if len(st) == 0:
        raise TemplearnError("structure has no model (no atoms)", path)
    if len(st) > 1:
        for i in range(len(st) - 1, 0, -1):
            del st[i]
    st.setup_entities()
    st.remove_waters()
    st.remove_hydrogens()
    st.remove_empty_chains()
    if st[0].count_atom_sites() == 0:
        raise TemplearnError("structure has no atoms", path)
    com = st[0].calculate_center_of_mass()
    if not np.isfinite([com.x, com.y, com.z]).all():   # cheap test first; then find the atom
        for chain in st[0]:
            for res in chain:
                for atom in res:
                    if not np.isfinite([atom.pos.x, atom.pos.y, atom.pos.z]).all():
                        raise TemplearnError(f"atom {atom.serial} ({atom.name} {res.name} {res.seqid.num} chain "
                                             f"{chain.name}) has coordinates that are not numbers", path)
    return st


def atoms_of(st, path: str | os.PathLike | None = None) -> Atoms:
    """The atoms of a structure from :func:`read_structure` (``path`` names it in errors)."""
    xyz, el, nm, rn, b = [], [], [], [], []
    try:
        for chain in st[0]:
            for res in chain:
                for atom in res:
                    p = atom.pos
                    xyz.append((p.x, p.y, p.z))
                    el.append(atom.element.name)
                    nm.append(atom.name)
                    rn.append(res.name)
                    b.append(atom.b_iso)
    except UnicodeDecodeError:   # gemmi keeps the bytes of a corrupt file's names as they were
        raise TemplearnError("atom or residue names are not text (corrupt file?)", path or st.name) from None
    return Atoms(np.array(xyz, float).reshape(-1, 3), np.array(el, str), np.array(nm, str), np.array(rn, str), np.array(b, float))


def write_structure(path: str | os.PathLike, st, xyz: np.ndarray | None = None) -> Path:
    """Write ``st`` (with coordinates replaced by ``xyz`` in :func:`atoms_of` order) atomically.

    ``.pdb`` writes PDB (only if it fits: <= 99,999 atoms and one-letter chain names), anything
    else mmCIF.
    """
    import gemmi

    path = Path(path)
    st = st.clone()
    if xyz is not None:
        xyz = np.asarray(xyz, float)
        i = 0
        for chain in st[0]:
            for res in chain:
                for atom in res:
                    atom.pos = gemmi.Position(*xyz[i])
                    i += 1
        if i != len(xyz):
            raise ValueError(f"structure has {i} atoms, got {len(xyz)} coordinates")
    with atomic_path(path) as tmp:
        if path.suffix == ".pdb":
            too_big = st[0].count_atom_sites() > 99999 or any(len(c.name) > 1 for c in st[0])
            if too_big:
                raise TemplearnError("too many atoms or chains for PDB format: write .cif instead", path)
            st.write_pdb(str(tmp))
        else:
            st.make_mmcif_document().write_file(str(tmp))
    return path
