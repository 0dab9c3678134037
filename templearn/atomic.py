"""Atomic writes: every output appears whole or not at all.

A stage that fails half-way must leave the outputs of an earlier run intact, so nothing is
written in place: we write a temporary file in the same directory and ``os.replace`` it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import TemplearnError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the final suffix so libraries that look at it (mrcfile, matplotlib,
    gemmi) pick the right format.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically (format from the suffix), then close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, **savefig_kwargs)
    finally:
        plt.close(fig)
    return Path(path)


def read_json(path: str | os.PathLike, what: str = "JSON file", fmt: str | None = None) -> dict:
    """Read a JSON object; with ``fmt``, check its ``format`` key. Errors name the file, in one line."""
    path = Path(path)
    if not path.is_file():
        raise TemplearnError(f"no such {what}", path)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TemplearnError(f"not valid JSON ({exc.msg}, line {exc.lineno})", path) from None
    except UnicodeDecodeError:
        raise TemplearnError("not a text file", path) from None
    if not isinstance(doc, dict):
        raise TemplearnError(f"not a {what}: expected a JSON object", path)
    if fmt is not None and doc.get("format") != fmt:
        raise TemplearnError(f"not a templearn {what} (format != {fmt!r})", path)
    return doc
