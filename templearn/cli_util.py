"""The CLI edge shared by every stage: a Typer app, and errors turned into one line.

A stage's ``cli.py`` builds its app with :func:`stage_app`, keeps each command to parsing its
options and calling one library function, and exposes ``main = entrypoint(app)``. Library
errors (:class:`~templearn.errors.TemplearnError`) become ``error: <file>: <problem>`` on stderr
with exit code 2; nothing else is printed.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

import typer

from .errors import TemplearnError

EXIT_INPUT_ERROR = 2


def contrast_option() -> typer.models.OptionInfo:
    """``--contrast dark|bright`` (templearn.contrast), the same in every command that reads tomograms."""
    return typer.Option("dark", "--contrast", help="'dark': particles darker than the solvent (raw cryo-ET "
                        "reconstructions); 'bright': inverted tomograms.")


def stage_app(name: str, help: str) -> typer.Typer:
    app = typer.Typer(name=name, help=help, add_completion=False, no_args_is_help=True,
                      pretty_exceptions_enable=False, rich_markup_mode=None)

    @app.callback()
    def _group():  # keeps the app a group of named commands, also when it has only one
        pass

    _group.__doc__ = help
    return app


def entrypoint(app: typer.Typer) -> Callable[[], None]:
    def main() -> None:
        run(app)

    return main


def run(app: typer.Typer, args: list[str] | None = None) -> None:
    try:
        app(args=args, standalone_mode=True)
    except TemplearnError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_INPUT_ERROR)


def quiet() -> bool:
    return bool(os.environ.get("TEMPLEARN_QUIET")) or not sys.stderr.isatty()
