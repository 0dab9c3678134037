"""The transfer benchmark in one command: see orchestrator/transfer.py.

    python benchmarks/transfer.py [--config benchmarks/transfer.yaml] [--out runs/transfer] [--small] [--testset-only | --train-only]

Prints, per test tomogram (Parakeet-simulated, packed another way, distractors never seen, slab in
vacuum, both optical domains), F1 / precision / recall of the picks as written and at the best
threshold for Template Learning and template matching, and the fraction of voxels the segmentation
labels against the true fraction. Writes OUT/transfer.md and transfer.json; rerunning resumes, and
the test tomograms are cached outside OUT ($TEMPLEARN_CACHE/transfer), keyed by their config.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=HERE / "transfer.yaml")
    ap.add_argument("--out", type=Path, default=Path("runs/transfer"))
    ap.add_argument("--jobs", type=int, default=1, help="steps run at once within the training run")
    ap.add_argument("--testset-only", action="store_true", help="only simulate (or check) the test tomograms")
    ap.add_argument("--train-only", action="store_true", help="only the training half (while the test set simulates elsewhere)")
    ap.add_argument("--acquisition", action="append", help="only this test tomogram (repeat; default: all)")
    ap.add_argument("--small", action="store_true",
                    help="test tomograms of a quarter of the area (half the width and height, targets scaled by area): 1.6-2.1 h of Parakeet each on 2 shared cores, against ~3 h")
    ap.add_argument("--resume-any", action="store_true", help="keep outputs of an earlier version of the stages' code")
    args = ap.parse_args()

    from templearn.errors import TemplearnError
    from templearn.orchestrator import transfer

    t0 = time.monotonic()

    def show(where, e):
        if e.kind in ("start", "done", "fail"):
            took = f" in {e.seconds:.0f} s" if e.kind != "start" else ""
            print(f"{time.monotonic() - t0:7.0f} s  {where:<20} {e.kind:<5} {e.step.id}{took}"
                  + (f": {e.reason}" if e.kind == "fail" else ""), flush=True)

    try:
        if args.testset_only:
            tr = transfer.load_transfer(args.config, args.small)
            if args.acquisition:   # e.g. one process per test tomogram, one per core
                tr.test.acquisitions = [a for a in tr.test.acquisitions if a.name in args.acquisition]
            for t in transfer.build_testset(tr, show):
                print(f"{t.name}: {t.tomogram}")
            return 0
        if args.train_only:
            print(f"model: {transfer.train_only(args.config, args.out, jobs=args.jobs, on_event=show, only=args.acquisition, small=args.small)}")
            return 0
        report = transfer.run_transfer(args.config, args.out, jobs=args.jobs, on_event=show, only=args.acquisition,
                                       resume_any=args.resume_any, small=args.small)
    except TemplearnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.read_text())
    print(f"benchmark: {time.monotonic() - t0:.0f} s; report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
