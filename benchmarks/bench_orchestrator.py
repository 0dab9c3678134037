"""What resume costs: building the graph, and judging every step of a finished run up to date.

    python benchmarks/bench_orchestrator.py [CONFIG RUN_DIR]

Without arguments it only times the graph of the paper-size configs. With a finished run
(e.g. scripts/quickstart.sh's), it times the up-to-date check of every step twice: with the hash
cache emptied (every input and output read and hashed: the baseline) and with the ledger's
(size, mtime) cache, as a resumed run does it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from templearn.orchestrator import graph
from templearn.orchestrator.config import load_config
from templearn.orchestrator.runner import Ledger

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> None:
    for name in ("ribosome", "nucleosome", "quickstart"):
        t0 = time.perf_counter()
        cfg = load_config(ROOT / "examples" / f"{name}.yaml")
        steps = graph.build(cfg)
        dt = time.perf_counter() - t0
        print(f"graph of examples/{name}.yaml: {len(steps)} steps in {dt * 1000:.1f} ms")
    if len(argv) != 2:
        return
    cfg_path, run_dir = Path(argv[0]), Path(argv[1])
    steps = graph.build(load_config(cfg_path))
    files = {f for s in steps for f in s.inputs + s.outputs}
    size = sum((run_dir / f).stat().st_size for f in files if (run_dir / f).is_file() or Path(f).is_file())
    for label, empty_cache in (("cold hash cache (baseline)", True), ("warm (size, mtime) cache", False)):
        ledger = Ledger(run_dir)
        if empty_cache:
            ledger.hashes.clear()
        t0 = time.perf_counter()
        stale = [s.id for s in steps if ledger.why_stale(s)]
        dt = time.perf_counter() - t0
        print(f"up-to-date check of {len(steps)} steps, {len(files)} files ({size / 1e6:.1f} MB), {label}: "
              f"{dt:.3f} s; {len(stale)} stale")


if __name__ == "__main__":
    main(sys.argv[1:])
