"""The paper's ablation study (Fig. 4 A-H) in one command: see orchestrator/ablation.py.

    python benchmarks/ablation.py [--config benchmarks/ablation.yaml | --full] [--out runs/ablation] [--jobs 1]

Writes OUT/ablation.md (the Fig. 4I table and plots), ablation.json, ablation.csv; rerunning
resumes (every step is in a ledger). --full uses benchmarks/ablation_full.yaml (the paper's
sizes: a GPU machine, about a day).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=HERE / "ablation.yaml")
    ap.add_argument("--full", action="store_true", help="the paper's sizes (benchmarks/ablation_full.yaml)")
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--jobs", type=int, default=1, help="steps run at once within a variant")
    args = ap.parse_args()

    from templearn.orchestrator.ablation import run_study

    from templearn.errors import TemplearnError

    config = HERE / "ablation_full.yaml" if args.full else args.config
    t0 = time.monotonic()

    def show(where, e):
        if e.kind in ("start", "done", "fail"):
            took = f" in {e.seconds:.0f} s" if e.kind != "start" else ""
            print(f"{time.monotonic() - t0:7.0f} s  {where:<18} {e.kind:<5} {e.step.id}{took}"
                  + (f": {e.reason}" if e.kind == "fail" else ""), flush=True)

    try:
        report = run_study(config, args.out, jobs=args.jobs, on_event=show)
    except TemplearnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.read_text())
    print(f"study: {time.monotonic() - t0:.0f} s; report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
