"""``templearn``: one command that lists and runs every stage.

``templearn STAGE COMMAND ...`` is the same as ``templearn-STAGE COMMAND ...``. Stage modules
import their heavy dependencies (ProDy, TensorFlow, Parakeet) only inside commands, so this
umbrella works in every stage's container.
"""

from __future__ import annotations

import importlib

import typer

from . import __version__
from .cli_util import run

STAGES = {
    "nma": ("templearn.stages.nma.cli", "flexible variants of templates by normal mode analysis"),
    "tetris": ("templearn.stages.tetris.cli", "crowded samples packed from templates and distractors"),
    "parakeet-sim": ("templearn.stages.parakeet_sim.cli", "tilt series of a sample (Parakeet or fast engine)"),
    "imod-recon": ("templearn.stages.imod_recon.cli", "binning and weighted back projection"),
    "deepfinder-train": ("templearn.stages.deepfinder_train.cli", "training targets and DeepFinder training"),
    "pick-eval": ("templearn.stages.pick_eval.cli", "picking, evaluation and the template-matching baseline"),
}

app = typer.Typer(name="templearn", add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Template Learning: particle picking in cryo-ET trained on simulated data.")


def _version(value: bool):
    if value:
        print(f"templearn {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version.")):
    """Template Learning: particle picking in cryo-ET trained on simulated data."""


@app.command("stages")
def stages() -> None:
    """List the stages and whether each one is installed here."""
    for name, (module, what) in STAGES.items():
        try:
            importlib.import_module(module)
            state = "ok"
        except ImportError as exc:
            state = f"not installed ({exc.name})"
        print(f"{name:18s} {what}  [{state}]")


for _name, (_module, _help) in STAGES.items():
    try:
        _stage = importlib.import_module(_module)
    except ImportError:  # a stage not yet installed in this image
        continue
    app.add_typer(_stage.app, name=_name, help=_help)


def main() -> None:
    run(app)
