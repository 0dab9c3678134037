"""Cost of crash-safe writes: ``templearn.atomic`` syncs every output to disk before renaming it.

Prints the time to write a 32 MiB MRC volume (128 x 256 x 256 float32) with the sync and, as the
baseline measured in the same run, with ``os.fsync`` made a no-op (what the writes cost before
issue 17). Best of 5 each, in a temporary folder under /tmp (or --dir).

Usage: python benchmarks/bench_atomic.py [--dir FOLDER]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from templearn import atomic
from templearn.mrc import write_mrc


def best_of(n, fn) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/tmp", help="where to write (the disk to measure)")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(dir=args.dir)
    vol = np.random.default_rng(0).normal(size=(128, 256, 256)).astype(np.float32)
    write = lambda: write_mrc(f"{folder}/v.mrc", vol, 10.0)  # noqa: E731
    synced = best_of(5, write)
    real = atomic.os.fsync
    atomic.os.fsync = lambda fd: None
    try:
        unsynced = best_of(5, write)
    finally:
        atomic.os.fsync = real
    print(f"write_mrc 32 MiB: {synced * 1000:.0f} ms synced, {unsynced * 1000:.0f} ms without fsync "
          f"(+{(synced / unsynced - 1) * 100:.0f} %), best of 5, in {args.dir}")


if __name__ == "__main__":
    main()
