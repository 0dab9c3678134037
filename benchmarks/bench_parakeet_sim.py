"""Benchmark of the parakeet-sim stage: fast engine vs the real Parakeet, and the paper-size sample.

Prints, all measured in this one run:
1. the same tilt series of the same crowded sample by both engines (CPU, same output pixel),
   their wall times and the speed-up (target: fast >= 100x faster);
2. the fast engine's time for a 61-tilt series (±60°, step 2°) of a 192x192x64 sample at 16 Å
   (a 3 x 3 x 1 µm crowded sample, images at 16 Å/pixel; target < 30 s on one core) and the
   peak memory of that run.

Samples are packed here by random sequential placement of non-overlapping spheres (tetris is
another stage) from the nucleosome templates and the shared distractors, 1 template : 2 distractors.

Usage: python benchmarks/bench_parakeet_sim.py [--skip-parakeet] [--tilt-step-small DEG] [--full-4a]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):   # one core
    os.environ.setdefault(_v, "1")
os.environ.setdefault("TEMPLEARN_QUIET", "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "structures"


def crowded_manifest(path: Path, box, voxel: float, n_max: int, seed: int = 0, distractors: int = 71,
                     max_radius: float = 1e9):
    """A crowded sample manifest: spheres of each structure's radius placed without overlap."""
    from templearn.euler import random_euler
    from templearn.manifest import Instance, Manifest, StructureEntry
    from templearn.structures import load_atoms, structure_id

    rng = np.random.default_rng(seed)
    targets = sorted((SHARED / "templates" / "nucleosome").glob("*.pdb.gz"))
    others = sorted((SHARED / "distractors").glob("*.pdb.gz"))[:distractors]
    entries, radii, kinds = {}, {}, []
    for p, cls in [(t, "target") for t in targets] + [(d, "distractor") for d in others]:
        a = load_atoms(p)
        if a.radius() > max_radius:
            continue
        name = structure_id(p)
        entries[name] = StructureEntry(path=str(p), cls=cls, target="nucleosome" if cls == "target" else None,
                                       template=name, center=a.center_of_mass().tolist(), n_atoms=len(a))
        radii[name] = a.radius()
        kinds.append((name, cls))
    t_names = [n for n, c in kinds if c == "target"]
    d_names = [n for n, c in kinds if c == "distractor"]
    size = np.array(box[::-1], float) * voxel          # [x, y, z] Å
    placed, rad, names = [], [], []
    cell = 2 * max(radii.values())
    grid: dict[tuple, list[int]] = {}
    tries = 0
    while len(placed) < n_max and tries < 40 * n_max:
        tries += 1
        name = t_names[rng.integers(len(t_names))] if rng.random() < 1 / 3 else d_names[rng.integers(len(d_names))]
        r = radii[name]
        lo = np.array([r, r, min(r, size[2] / 2)])
        p = rng.uniform(lo, np.maximum(size - lo, lo + 1))
        key = tuple((p // cell).astype(int))
        clash = False
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dz in (-1, 0, 1):
                    for j in grid.get((key[0] + dx, key[1] + dy, key[2] + dz), ()):
                        if np.sum((placed[j] - p) ** 2) < (rad[j] + r) ** 2:
                            clash = True
                            break
        if clash:
            continue
        grid.setdefault(key, []).append(len(placed))
        placed.append(p)
        rad.append(r)
        names.append(name)
    eulers = random_euler(rng, len(placed))
    used = set(names)
    m = Manifest(name=path.stem, voxel_size=voxel, box=list(box),
                 structures={k: v for k, v in entries.items() if k in used},
                 instances=[Instance(i + 1, n, [float(v) for v in p], [float(v) for v in e])
                            for i, (n, p, e) in enumerate(zip(names, placed, eulers))],
                 targets=["nucleosome"], seed=seed)
    m.write(path)
    return m


def engine_seconds(out: Path) -> float:
    """The simulation's own time (after reading the structures), as recorded in provenance.json."""
    from templearn.atomic import read_json

    return float(read_json(out / "provenance.json")["seconds"])


def timed(fn, *args, **kw) -> float:
    t = time.perf_counter()
    fn(*args, **kw)
    return time.perf_counter() - t


def main() -> None:
    from templearn.stages.parakeet_sim.simulate import simulate

    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-parakeet", action="store_true")
    ap.add_argument("--tilt-step-small", type=float, default=30.0)
    ap.add_argument("--full-4a", action="store_true", help="also the paper-size sample at 4 Å/pixel (minutes)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_parakeet_sim_"))

    # 1. same tilt series, both engines
    small = crowded_manifest(work / "small.json", [12, 32, 32], 16.0, n_max=60, seed=1, distractors=30, max_radius=70)
    common = dict(pixel_size=8.0, tilt_range=60, tilt_step=args.tilt_step_small, dose=120, defocus_um=-3.0,
                  ice_density=0.94, seed=0)
    n_tilts = int(2 * 60 // args.tilt_step_small + 1)
    natoms = sum(small.structures[i.structure].n_atoms for i in small.instances)
    print(f"[1] sample 32x32x12 voxels at 16 Å (512x512x192 Å), {len(small.instances)} molecules, {natoms} atoms; "
          f"{n_tilts} tilts, output 8 Å/pixel (64x64), defocus -3 µm, ice 0.94 g/cm³, CPU")
    t_fast = min(timed(simulate, work / "small.json", work / f"fast{k}", engine="fast", **common) for k in range(3))
    print(f"    fast engine:     {t_fast:8.2f} s (best of 3)")
    if not args.skip_parakeet:
        t_pk = timed(simulate, work / "small.json", work / "parakeet", engine="parakeet", device="cpu", **common)
        print(f"    parakeet engine: {t_pk:8.2f} s (MULTEM on CPU at 1 Å, slices 3 Å, binned to 8 Å)")
        print(f"    speed-up: {t_pk / t_fast:.0f}x (target >= 100x)")

    # 2. the paper-size sample
    big = crowded_manifest(work / "big.json", [64, 192, 192], 16.0, n_max=5000, seed=2)
    natoms = sum(big.structures[i.structure].n_atoms for i in big.instances)
    print(f"[2] sample 192x192x64 voxels at 16 Å (3072x3072x1024 Å), {len(big.instances)} molecules, "
          f"{len(big.structures)} distinct structures, {natoms / 1e6:.0f} M atoms")
    t_big = timed(simulate, work / "big.json", work / "big", engine="fast", pixel_size=16.0, tilt_range=60, tilt_step=2,
                  dose=120, defocus_um=-3.0, ice_density=0.94, seed=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"    fast engine, 61 tilts at 16 Å/pixel (192x192): {t_big:.1f} s (target < 30 s on one core), of which "
          f"{engine_seconds(work / 'big'):.1f} s simulating, the rest reading the structures; "
          f"peak RSS of this process {peak:.0f} MB")
    if args.full_4a:
        t4 = timed(simulate, work / "big.json", work / "big4", engine="fast", pixel_size=4.0, tilt_range=60, tilt_step=2,
                   dose=120, defocus_um=-3.0, ice_density=0.94, seed=0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"    fast engine, 61 tilts at 4 Å/pixel (768x768): {t4:.1f} s ({engine_seconds(work / 'big4'):.1f} s "
              f"simulating); peak RSS of this process {peak:.0f} MB "
              f"(a [61, 768, 768] float32 stack is {61 * 768 * 768 * 4 / 2**20:.0f} MB, streamed to disk)")
    print(f"(work folder: {work})")


if __name__ == "__main__":
    main()
