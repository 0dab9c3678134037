"""One error type for everything a user can get wrong.

Library code raises :class:`TemplearnError`; only the CLI edge (:mod:`templearn.cli_util`) turns
it into a one-line message and a non-zero exit. The library never prints and never exits.
"""

from __future__ import annotations

import os


class TemplearnError(Exception):
    """A problem with the user's input, named with the file it concerns when there is one."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class MissingDependencyError(TemplearnError):
    """A stage needs an optional package (an extra) that is not installed."""

    def __init__(self, package: str, extra: str, why: str = ""):
        hint = f"pip install 'templearn[{extra}]'"
        super().__init__(f"needs the package {package!r}{' ' + why if why else ''}; install it with: {hint}")


def require(module: str, extra: str, why: str = ""):
    """Import an optional module or raise a clear :class:`MissingDependencyError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(module, extra, why) from exc
