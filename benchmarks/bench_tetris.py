"""Benchmark: templearn's Tetris packing against a plain implementation of the paper's algorithm.

Baseline (written here, as the paper and its reference code do it): for every molecule, correlate
``shell - penalty * core`` with the whole binarized sample by FFT, put the molecule at the global
maximum, stop at the first molecule whose maximum is <= 0. Both use the same molecules, the same
cores and shells (templearn.stages.tetris.packing.make_shape), the same order of structures
(exact 1:ratio), the same walls, one thread.

Run:  python benchmarks/bench_tetris.py [--baseline-count 150] [--small-box 24 64 64] [--small-seeds 0 1 ... 7]
      [--repeats 3] [--full-candidates N ...]

Prints: molecules per minute (wall and CPU) and packing fraction, on 192x192x64 voxels at 16 Å
with the six nucleosomes and the shared distractors (paper list, copies per round, 1:2). The
baseline is too slow to saturate the full box in a benchmark (~0.2 s per molecule), so there it
runs for a fixed count and rates are compared; packing fractions at saturation are compared on
a smaller box where the baseline does saturate.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TEMPLEARN_QUIET", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "structures"
if SHARED.is_dir():
    os.environ.setdefault("TEMPLEARN_STRUCTURE_MIRROR", str(SHARED))

from templearn.density import structure_map  # noqa: E402
from templearn.euler import random_euler  # noqa: E402
from templearn.stages.tetris.distractors import distractor_sources, target_sources  # noqa: E402
from templearn.stages.tetris.packing import CANDIDATES, make_shape  # noqa: E402
from templearn.stages.tetris.sample import _Queue, pack  # noqa: E402


def baseline(sources, maps, box, *, ratio, dilation=1, sigma=2.0, seed=0, max_molecules=None, penalty=1e4):
    """The paper's algorithm: full-volume FFT correlation at each placement; stop at the first misfit."""
    from scipy import fft

    rng = np.random.default_rng(seed)
    pad = max(m.half for m in maps.values()) + dilation + 1
    shape_p = tuple(b + 2 * pad for b in box)
    grid = np.ones(shape_p, np.float64)
    grid[pad:-pad, pad:-pad, pad:-pad] = 0
    queues = {c: _Queue([s for s in sources if s.cls == c], rng) for c in ("target", "distractor")}
    n_t = n_d = 0
    occupied = 0
    t0, c0 = time.monotonic(), time.process_time()
    while max_molecules is None or n_t + n_d < max_molecules:
        cls = "target" if n_t * ratio <= n_d else "distractor"
        key = queues[cls].next()
        shape = make_shape(maps[key], random_euler(rng), dilation=dilation, sigma=sigma)
        kernel = np.zeros(shape_p)
        for zyx, v in ((shape.shell_zyx, 1.0), (shape.core_zyx, -penalty)):
            kernel[tuple((zyx % shape_p).T)] = v
        score = fft.irfftn(fft.rfftn(grid, workers=1) * np.conj(fft.rfftn(kernel, workers=1)), s=shape_p, workers=1)
        interior = score[pad:-pad, pad:-pad, pad:-pad]
        best = np.unravel_index(int(np.argmax(interior)), interior.shape)
        if interior[best] <= 0.5:
            break
        c = np.asarray(best) + pad
        idx = tuple((shape.core_zyx + c).T)
        assert not grid[idx].any()
        grid[idx] = 1
        occupied += len(shape.core_zyx)
        n_t, n_d = (n_t + 1, n_d) if cls == "target" else (n_t, n_d + 1)
    return dict(molecules=n_t + n_d, fraction=occupied / float(np.prod(box)),
                wall=time.monotonic() - t0, cpu=time.process_time() - c0)


def ours(sources, box, *, ratio, seed=0, cache=None, max_molecules=None, candidates=CANDIDATES):
    """templearn's pack(); wall and CPU include its set-up (maps from the cache, the first distance map)."""
    t0, c0 = time.monotonic(), time.process_time()
    r = pack(sources=sources, box=box, ratio=ratio, seed=seed, cache=cache, max_molecules=max_molecules,
             candidates=candidates)
    return dict(molecules=r.stats["molecules"], fraction=r.stats["packing_fraction"],
                wall=time.monotonic() - t0, cpu=time.process_time() - c0,
                stop=r.stats["stop"], skipped=r.stats["skipped"])


def _row(name, r):
    per_min = 60 * r["molecules"] / r["wall"]
    per_min_cpu = 60 * r["molecules"] / r["cpu"]
    return (f"{name:34s} {r['molecules']:7d} {r['fraction']:9.3f} {r['wall']:8.1f} {r['cpu']:8.1f} "
            f"{per_min:9.0f} {per_min_cpu:9.0f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--box", type=int, nargs=3, default=[64, 192, 192])
    ap.add_argument("--small-box", type=int, nargs=3, default=[24, 64, 64])
    ap.add_argument("--baseline-count", type=int, default=150)
    ap.add_argument("--ratio", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small-seeds", type=int, nargs="+", default=list(range(8)),
                    help="seeds of the small-box comparison (default: 0-7)")
    ap.add_argument("--full-candidates", type=int, nargs="*", default=[],
                    help="extra saturation runs on the full box with these --candidates")
    ap.add_argument("--repeats", type=int, default=3, help="saturation runs of the full box (the median is judged)")
    ap.add_argument("--target-cpu", type=float, default=90.0, help="seconds of CPU to saturate the full box (issue 3)")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "templearn" / "maps"))
    args = ap.parse_args()

    taken = set()
    targets = target_sources(sorted(str(p) for p in (SHARED / "templates" / "nucleosome").glob("*.pdb.gz")),
                             "nucleosome", taken)
    distractors, missing = distractor_sources([], SHARED / "paper_distractors.csv", taken, skip_missing=True)
    sources = targets + distractors
    t = time.monotonic()
    maps = {s.key: structure_map(s.path, 16.0, 32.0, cache_dir=args.cache) for s in sources}
    print(f"{len(targets)} targets, {len(distractors)} distractors ({len(missing)} of the paper's list not in "
          f"the shared folder), ratio 1:{args.ratio:g}; maps in {time.monotonic() - t:.1f} s (cache {args.cache})")
    head = f"{'run':34s} {'placed':>7s} {'fraction':>9s} {'wall s':>8s} {'cpu s':>8s} {'/min wall':>9s} {'/min cpu':>9s}"

    box = tuple(args.box)
    print(f"\nfull box {box[::-1]} (x y z) voxels at 16 Å")
    print(head)
    b = baseline(sources, maps, box, ratio=args.ratio, seed=args.seed, max_molecules=args.baseline_count)
    print(_row(f"baseline (first {args.baseline_count})", b))
    o_n = ours(sources, box, ratio=args.ratio, seed=args.seed, cache=args.cache, max_molecules=args.baseline_count)
    print(_row(f"templearn (first {args.baseline_count})", o_n))
    # The same run's CPU time varies by up to ~30 % on these shared machines: saturate
    # --repeats times (same seed, same result) and judge the median.
    runs = []
    for k in range(args.repeats):
        runs.append(ours(sources, box, ratio=args.ratio, seed=args.seed, cache=args.cache))
        print(_row(f"templearn (to saturation) #{k + 1}", runs[-1]) +
              f"   stop: {runs[-1]['stop']}, skipped {runs[-1]['skipped']}")
    o = sorted(runs, key=lambda r: r["cpu"])[len(runs) // 2]
    for cand in args.full_candidates:
        o8 = ours(sources, box, ratio=args.ratio, seed=args.seed, cache=args.cache, candidates=cand)
        print(_row(f"templearn --candidates {cand} (sat.)", o8) + f"   stop: {o8['stop']}, skipped {o8['skipped']}")
    print(f"speed-up, molecules per minute: {(o['molecules'] / o['wall']) / (b['molecules'] / b['wall']):.1f}x wall, "
          f"{(o['molecules'] / o['cpu']) / (b['molecules'] / b['cpu']):.1f}x cpu (median saturation run vs baseline rate)")
    print(f"TARGET saturate {box[::-1]} in <= {args.target_cpu:g} s CPU (median of {len(runs)}; "
          f"{min(r['cpu'] for r in runs):.1f}-{max(r['cpu'] for r in runs):.1f} s): {o['cpu']:.1f} s -> "
          f"{'met' if o['cpu'] <= args.target_cpu else 'MISSED'}")

    small = tuple(args.small_box)
    seeds = args.small_seeds
    print(f"\nsmall box {small[::-1]} (x y z): both to saturation, defaults (--candidates {CANDIDATES})")
    print(head)
    ours_f, base_f = [], []
    for seed in seeds:
        bs = baseline(sources, maps, small, ratio=args.ratio, seed=seed)
        print(_row(f"baseline seed {seed} (to first misfit)", bs))
        os_ = ours(sources, small, ratio=args.ratio, seed=seed, cache=args.cache)
        print(_row(f"templearn seed {seed} (sat.)", os_) + f"   stop: {os_['stop']}")
        print(f"  speed-up {(os_['molecules'] / os_['cpu']) / (bs['molecules'] / bs['cpu']):.1f}x cpu; packing fraction "
              f"{os_['fraction']:.3f} vs {bs['fraction']:.3f} ({os_['fraction'] - bs['fraction']:+.3f})")
        ours_f.append(os_["fraction"])
        base_f.append(bs["fraction"])
    # One seed is one random draw for both (the baseline alone spans ~0.025 over seeds 0-7), so
    # the target compares means over the seeds; the per-seed wins are printed beside it.
    o_m, b_m = np.mean(ours_f), np.mean(base_f)
    wins = sum(o >= b for o, b in zip(ours_f, base_f))
    print(f"packing fraction over seeds {seeds}: templearn {o_m:.4f} ± {np.std(ours_f):.4f}, "
          f"baseline {b_m:.4f} ± {np.std(base_f):.4f}; templearn >= baseline on {wins} of {len(seeds)} seeds")
    print(f"TARGET mean packing fraction >= baseline's at the defaults: {o_m:.4f} vs {b_m:.4f} -> "
          f"{'met' if o_m >= b_m else 'MISSED'}")

if __name__ == "__main__":
    main()
