"""Provenance: the parameters, seed, inputs and software versions behind every output.

Each stage writes ``provenance.json`` into its output folder (atomically, last, so its presence
means the stage finished). The orchestrator also uses it to decide whether a stage is up to date.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import __version__
from .atomic import write_json

# Packages whose versions matter for reproducing a result; missing ones are skipped.
TRACKED_PACKAGES = (
    "numpy", "scipy", "mrcfile", "gemmi", "prody", "python-parakeet", "python-multem",
    "tensorflow", "cryoet-deepfinder", "scikit-learn", "scikit-image", "starfile", "typer",
)

PROVENANCE_NAME = "provenance.json"


def versions() -> dict[str, str]:
    out = {"templearn": __version__, "python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def record(
    out_dir: str | os.PathLike,
    stage: str,
    params: Mapping[str, Any],
    *,
    seed: int | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    outputs: Iterable[str | os.PathLike] = (),
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``out_dir/provenance.json`` describing how the outputs were made."""
    out_dir = Path(out_dir)
    doc = {
        "stage": stage,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "params": {k: _plain(v) for k, v in params.items()},
        "seed": seed,
        "inputs": {str(p): sha256(p) for p in inputs if Path(p).is_file()},
        "outputs": {
            os.path.relpath(p, out_dir): sha256(p) for p in outputs if Path(p).is_file()
        },
        "versions": versions(),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    if extra:
        doc.update({k: _plain(v) for k, v in extra.items()})
    return write_json(out_dir / PROVENANCE_NAME, doc)


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
