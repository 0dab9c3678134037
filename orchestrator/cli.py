"""``templearn-run CONFIG.yaml --run-dir DIR``: a whole Template Learning run on one machine.

The command only parses its options, prints the runner's progress events, and calls
:func:`templearn.orchestrator.runner.run`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from templearn.cli_util import run as run_app

app = typer.Typer(name="templearn-run", add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Run the Template Learning stage graph described by one YAML config.")


@app.command()
def main_command(
    config: Path = typer.Argument(..., help="Run config (YAML), see examples/quickstart.yaml."),
    run_dir: Path = typer.Option(..., "--run-dir", help="Run folder: outputs, logs, ledger, report."),
    only: Optional[str] = typer.Option(None, "--only", help="Rerun one stage or step kind (e.g. tetris, train, "
                                       "pick-eval) and only the steps it needs that are out of date."),
    until: Optional[str] = typer.Option(None, "--until", help="Run the graph up to this stage or step kind "
                                        "(what it needs that is out of date; nothing forced)."),
    force: bool = typer.Option(False, "--force", help="Rerun every selected step, up to date or not."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would run, and why; run nothing."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Steps run at the same time."),
    resume_any: bool = typer.Option(False, "--resume-any", help="Keep outputs made by another version of a "
                                    "stage's code (by default, upgraded code reruns the steps it changed)."),
    report_only: bool = typer.Option(False, "--report-only", help="Only write report.md/.html from RUN_DIR "
                                     "(a run folder, or a Nextflow --outdir)."),
) -> None:
    """Run (or resume) the stage graph of CONFIG in RUN_DIR; ends with RUN_DIR/report.md and report.html."""
    from .runner import report_only as write_report_only
    from .runner import run

    if report_only:
        print(f"report: {write_report_only(config, run_dir)}", file=sys.stderr)
        return
    result = run(config, run_dir, only=only, until=until, force=force, dry_run=dry_run, jobs=jobs,
                 resume_any=resume_any, on_event=_printer(dry_run))
    if dry_run:
        print(f"{len(result.ran)} step(s) would run, {len(result.skipped)} up to date", file=sys.stderr)
    else:
        print(f"ran {len(result.ran)} step(s), {len(result.skipped)} up to date; report: {result.report}",
              file=sys.stderr)


def _printer(dry_run: bool):
    def show(e) -> None:
        n = f"[{e.index:>3}/{e.total}]"
        if e.kind == "warn":
            print(f"warning: {e.reason}", file=sys.stderr, flush=True)
        elif e.kind == "plan":
            if dry_run:
                print(f"{n} {'run ' if e.reason != 'up to date' else 'skip'} {e.step.id}  ({e.reason})")
                print("         $ " + " ".join(e.step.argv))
        elif e.kind == "skip":
            print(f"{n} skip {e.step.id} (up to date)", file=sys.stderr, flush=True)
        elif e.kind == "start":
            print(f"{n} run  {e.step.id} ({e.reason}) ...", file=sys.stderr, flush=True)
        elif e.kind == "done":
            print(f"{n} done {e.step.id} in {e.seconds:.1f} s", file=sys.stderr, flush=True)
        elif e.kind == "fail":
            print(f"{n} FAIL {e.step.id} after {e.seconds:.1f} s: {e.reason}", file=sys.stderr, flush=True)

    return show


def main() -> None:
    run_app(app)
