"""Benchmark of the parakeet-sim stage: fast engine vs the real Parakeet, and the paper-size sample.

Prints, all measured in this one run:
1. the same tilt series of the same crowded sample by both engines (CPU, same output pixel),
   their wall times and the speed-up (target: fast >= 100x faster);
2. the fast engine's time for a 61-tilt series (±60°, step 2°) of a 192x192x64 sample at 16 Å
   (a 3 x 3 x 1 µm crowded sample, images at 16 Å/pixel; target < 30 s on one core) and the
   peak memory of that run;
3. with ``--randomized N``: N draws of the wider randomization (``grid --randomize``, both optical
   domains, same seed for both engines): the 0° image of the small sample by Parakeet (the axes it
   honours: defocus, dose, ice density, slab), by the fast engine with the same values and its
   fixed contrast (amplitude contrast 0.07, contrast scale 1, white ice noise), and by the fast
   engine with its own drawn contrast axes; per draw the band-passed (1/120-1/24 1/Å) NCC of
   each fast image with Parakeet's and the particle contrast (band-passed std / mean) of each.

Samples are packed here by random sequential placement of non-overlapping spheres (tetris is
another stage) from the nucleosome templates and the shared distractors, 1 template : 2 distractors.

Usage: python benchmarks/bench_parakeet_sim.py [--skip-parakeet] [--tilt-step-small DEG] [--full-4a] [--randomized N]
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


def bandpass(img: np.ndarray, pixel: float, lo: float = 1 / 120, hi: float = 1 / 24) -> np.ndarray:
    """The image's band ``lo..hi`` 1/Å (soft edges), mean removed."""
    qy = np.fft.fftfreq(img.shape[0], pixel)[:, None]
    qx = np.fft.fftfreq(img.shape[1], pixel)[None, :]
    q = np.hypot(qy, qx)
    band = (1 - np.exp(-(q / lo) ** 2)) * np.exp(-(q / hi) ** 2)
    return np.fft.ifft2(np.fft.fft2(img - img.mean()) * band).real


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def randomized_comparison(work: Path, n: int, skip_parakeet: bool) -> None:
    from templearn.mrc import read_mrc
    from templearn.stages.parakeet_sim.grid import FAST_ONLY, GridSpec, expand
    from templearn.stages.parakeet_sim.params import resolve
    from templearn.stages.parakeet_sim.simulate import simulate

    conds = expand(GridSpec(domain="both", randomize=True))
    domains = [next(c for c in conds if c.phase_plate), next(c for c in conds if not c.phase_plate)]
    print(f"[3] wider randomization, {n} draws, 0° image of the sample of [1] at 8 Å/pixel; band 1/120-1/24 1/Å")
    print("    draw  domain       defocus  dose  ice   slab | fast drawn: amp  scale noise corr | "
          "NCC vs parakeet: fixed drawn | contrast x1e3: parakeet fixed drawn")
    for j in range(n):
        cond = domains[j % 2]
        p = resolve(cond, seed=j)
        d = p.randomized["drawn"]
        shared = dict(pixel_size=8.0, tilt_range=0, tilt_step=1, phase_plate=cond.phase_plate, seed=j,
                      defocus_um=d["defocus_um"], dose=d["dose"], ice_density=d["ice_density"],
                      slab_fraction=d["slab_fraction"], slab_offset=d["slab_offset"])
        runs = {"fixed": dict(engine="fast"), "drawn": dict(engine="fast", **{k: d[k] for k in FAST_ONLY})}
        if not skip_parakeet:
            runs["parakeet"] = dict(engine="parakeet", device="cpu")
        img = {}
        for name, kw in runs.items():
            simulate(work / "small.json", work / f"rand{j}_{name}", **shared, **kw)
            im = read_mrc(work / f"rand{j}_{name}" / "tilt_series.mrc")[0][0].astype(float)
            img[name] = (bandpass(im, 8.0), im.mean())
        con = {k: v[0].std() / v[1] * 1e3 for k, v in img.items()}
        pk = img.get("parakeet")
        nccs = [f"{ncc(img[k][0], pk[0]):5.2f}" if pk else "  -  " for k in ("fixed", "drawn")]
        print(f"    {j:4d}  {'phase plate' if cond.phase_plate else 'defocus':11s} {d['defocus_um']:+7.2f} "
              f"{d['dose']:5.0f} {d['ice_density']:4.2f} {d['slab_fraction']:5.2f} |       "
              f"{d['amplitude_contrast']:5.3f} {d['contrast_scale']:5.2f} {d['ice_noise_scale']:5.2f} "
              f"{d['ice_noise_correlation']:4.1f} |                   {nccs[0]} {nccs[1]} |             "
              f"{con.get('parakeet', float('nan')):6.2f} {con['fixed']:6.2f} {con['drawn']:6.2f}")


def main() -> None:
    from templearn.stages.parakeet_sim.simulate import simulate

    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-parakeet", action="store_true")
    ap.add_argument("--tilt-step-small", type=float, default=30.0)
    ap.add_argument("--full-4a", action="store_true", help="also the paper-size sample at 4 Å/pixel (minutes)")
    ap.add_argument("--randomized", type=int, default=0, metavar="N",
                    help="also compare fast and Parakeet images over N draws of the wider randomization")
    ap.add_argument("--only-randomized", action="store_true", help="skip [1] and [2] (with --randomized)")
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
    if args.only_randomized:
        randomized_comparison(work, args.randomized, args.skip_parakeet)
        return
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
    if args.randomized:
        randomized_comparison(work, args.randomized, args.skip_parakeet)
    print(f"(work folder: {work})")


if __name__ == "__main__":
    main()
