"""The stage command-line interfaces as Click commands, for tests that check command lines written
elsewhere (pipeline.nf, the orchestrator, the README) against them."""

from __future__ import annotations

import importlib

STAGE_MODULES = {
    "templearn-nma": "templearn.stages.nma.cli",
    "templearn-tetris": "templearn.stages.tetris.cli",
    "templearn-parakeet-sim": "templearn.stages.parakeet_sim.cli",
    "templearn-imod-recon": "templearn.stages.imod_recon.cli",
    "templearn-deepfinder-train": "templearn.stages.deepfinder_train.cli",
    "templearn-pick-eval": "templearn.stages.pick_eval.cli",
}


def stage_command(script: str, sub: str):
    """The Click command of ``script sub`` (e.g. ``templearn-pick-eval pick``)."""
    import typer

    module = importlib.import_module(STAGE_MODULES[script])
    group = typer.main.get_command(module.app)
    assert sub in group.commands, f"{script} has no command {sub!r} (has {sorted(group.commands)})"
    return group.commands[sub]


def run_command():
    """The Click command of ``templearn-run``."""
    import typer

    from templearn.orchestrator import cli

    return typer.main.get_command(cli.app)


def flags(cmd) -> dict[str, object]:
    """``--option`` -> its Click parameter (secondary ``--no-x`` forms included)."""
    out = {}
    for p in cmd.params:
        for o in list(getattr(p, "opts", [])) + list(getattr(p, "secondary_opts", [])):
            if o.startswith("--"):
                out[o] = p
    return out


def templearn(*args) -> None:
    """Run ``templearn STAGE COMMAND ...`` in-process; fail the test on a non-zero exit."""
    from templearn.cli import app
    from templearn.cli_util import run

    try:
        run(app, [str(a) for a in args])
    except SystemExit as exc:
        if exc.code:
            raise AssertionError(f"templearn {' '.join(map(str, args[:2]))} exited with {exc.code}") from None
