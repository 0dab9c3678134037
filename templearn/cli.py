"""``templearn``: one command that lists and runs every stage.

``templearn STAGE COMMAND ...`` is the same as ``templearn-STAGE COMMAND ...``. Stage modules
import their heavy dependencies (ProDy, TensorFlow, Parakeet) only inside commands, so this
umbrella works in every stage's container.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import List, Optional

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


@app.command("view")
def view(
    tomogram: Path = typer.Argument(..., help="Tomogram (MRC)."),
    picks: Optional[List[Path]] = typer.Option(None, "--picks", help="Picks file (any format: STAR, CSV, XML, copick JSON, Dynamo .tbl, IMOD .txt); repeat."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="True particles: a picks file or a tetris sample.json (drawn as rings)."),
    segmentation: Optional[Path] = typer.Option(None, "--segmentation", help="Label map (MRC), e.g. pick's segmentation.mrc."),
    voxel_size: Optional[float] = typer.Option(None, "--voxel-size", help="Voxel size in Å of picks files that do not record it [default: the tomogram's]."),
    radius: Optional[float] = typer.Option(None, "--radius", help="Radius in Å of the drawn particles [default: 10 voxels]."),
) -> None:
    """Open TOMOGRAM in napari with its picks (points coloured by class), the truth and a segmentation (needs templearn[view])."""
    from .view import run_view

    run_view(tomogram, picks or [], truth, segmentation, voxel_size=voxel_size, radius=radius)


for _name, (_module, _help) in STAGES.items():
    try:
        _stage = importlib.import_module(_module)
    except ImportError:  # a stage not yet installed in this image
        continue
    app.add_typer(_stage.app, name=_name, help=_help)


def main() -> None:
    run(app)
