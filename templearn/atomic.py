"""Atomic writes: every output appears whole or not at all.

A stage that fails half-way (an error, a full disk, a ``kill -9``, a power cut) must leave the
outputs of an earlier run intact, so nothing is written in place: we write a temporary file in
the same directory, flush it to disk, and ``os.replace`` it onto the final name. Files get the
mode the umask gives (0644 under umask 022), not ``mkstemp``'s private 0600, so other users and
containers run under another uid can read them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import TemplearnError

# ".<stem>.<8 random chars>.tmp<suffix>": what atomic_path leaves behind if its process is killed.
_TEMP_NAME = re.compile(r"^\..*\.[A-Za-z0-9_]{8}\.tmp(\.[^/]*)?$")


def _umask() -> int:
    """The process umask, read without changing it (os.umask sets it, racing other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync a directory; the rename itself is still atomic
    finally:
        os.close(fd)


def _write_error(exc: OSError, path: Path) -> TemplearnError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
        why = "no space left on device" if exc.errno != errno.EDQUOT else "disk quota exceeded"
        return TemplearnError(f"{why} while writing it; earlier outputs are kept", path)
    text = str(exc).strip()
    reason = exc.strerror or (text.splitlines()[0] if text else type(exc).__name__)
    return TemplearnError(f"could not write it ({reason}); earlier outputs are kept", path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the final suffix so libraries that look at it (mrcfile, matplotlib,
    gemmi) pick the right format. The file is synced to disk before the rename, so after a crash
    ``path`` holds the old content or the whole new one. An ``OSError`` while writing (``ENOSPC``,
    a read-only or vanished folder) becomes a one-line :class:`TemplearnError` naming ``path``.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
        tmp_path = Path(tmp)
        os.close(fd)
        mode = 0o666 & ~_umask()
        os.chmod(tmp_path, mode)
        yield tmp_path
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            os.fchmod(fd, mode)  # again: a library may have replaced the file rather than written it
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise _write_error(exc, path) from None
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def is_leftover(name: str) -> bool:
    """Whether a file name is a temporary file of :func:`atomic_path` (left by a killed process)."""
    return bool(_TEMP_NAME.match(name))


def remove_leftovers(folder: str | os.PathLike, *, stem: str | None = None, recursive: bool = True) -> list[Path]:
    """Delete the temporary files a killed writer left under ``folder`` (with ``stem``: only those
    of an output of that stem); return what was removed. Only for folders no live writer uses."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".{stem}.*" if stem is not None else ".*"
    removed = []
    for p in sorted(folder.rglob(pattern) if recursive else folder.glob(pattern)):
        if p.is_file() and is_leftover(p.name):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


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
