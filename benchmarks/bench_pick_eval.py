"""Benchmark of pick-eval on CPU: segmentation, clustering and template matching times.

    python benchmarks/bench_pick_eval.py [--shape 96 256 256] [--tm-step 30] [--tm-rotations 24]

- Segmentation of a tomogram of ``--shape`` [z, y, x] with DeepFinder's network (weights do not
  change the time) at the stage's tiling (patch 48, crop 8, overlap 21), and, as the same-run
  baseline, a denser tiling (crop 16, overlap 33: DeepFinder's crop/patch ratio) on a 64^3 crop,
  compared per voxel.
- MeanShift clustering (radius 10) of a label map with ribosome-sized balls at the density of a
  crowded sample; baseline: MeanShift over every voxel (stride 1) instead of every second.
- Template matching at ``--tm-step`` degrees with a ribosome template (6ZU5 at 13 Å): the time of
  ``--tm-rotations`` rotations, extrapolated to the full grid; baseline: the same rotations on a
  64^3 crop.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _segment_time(model, volume, patch, crop, overlap):
    from templearn.stages.deepfinder_train import dfcompat

    t0 = time.perf_counter()
    dfcompat.segment(model, volume, patch, crop, overlap, labels=True)
    return time.perf_counter() - t0


def _n_patches(shape, patch, crop, overlap):
    step = patch + 1 - overlap
    out = 1
    for n in shape:
        dim = n + 2 * crop
        c = list(range(patch // 2, dim - patch // 2, step))
        if c[-1] < dim - patch // 2:
            c.append(dim - patch // 2)
        out *= len(c)
    return out


def bench_segmentation(shape):
    from templearn.stages.deepfinder_train import dfcompat

    dfcompat.seed_everything(0)
    model = dfcompat.build_network(2, 48)
    vol = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    t = _segment_time(model, vol, 48, 8, 21)
    n = _n_patches(shape, 48, 8, 21)
    print(f"segmentation {tuple(shape)} patch 48 crop 8 overlap 21: {t:.1f} s ({n} patches, "
          f"{t / n * 1000:.0f} ms/patch, {np.prod(shape) / t / 1e3:.0f} kvoxel/s)")
    small = vol[:64, :64, :64]
    ts = _segment_time(model, small, 48, 8, 21)
    tb = _segment_time(model, small, 48, 16, 33)
    print(f"  same run, 64^3 crop: crop 8 overlap 21 {ts:.1f} s ({_n_patches(small.shape, 48, 8, 21)} patches); "
          f"baseline crop 16 overlap 33 {tb:.1f} s ({_n_patches(small.shape, 48, 16, 33)} patches): x{tb / ts:.1f}")


def bench_clustering(shape):
    from templearn.cluster import cluster_labelmap

    rng = np.random.default_rng(0)
    lab = np.zeros(shape, np.int8)
    zz, yy, xx = np.indices(shape)
    n = 0
    for _ in range(400):  # ribosome-sized balls (radius 9 voxels at 13 Å), not overlapping
        p = rng.uniform(0, shape[::-1])
        d2 = (xx - p[0]) ** 2 + (yy - p[1]) ** 2 + (zz - p[2]) ** 2
        ball = d2 <= 8 ** 2
        if lab[ball].any():
            continue
        lab[ball] = 1
        n += 1
    t0 = time.perf_counter()
    cl = cluster_labelmap(lab, 10.0)
    t = time.perf_counter() - t0
    print(f"clustering {tuple(shape)}, {n} balls ({int(lab.sum())} voxels), radius 10: {t:.1f} s, {len(cl)} clusters")
    t0 = time.perf_counter()
    cl1 = cluster_labelmap(lab, 10.0, method="deepfinder")
    t1 = time.perf_counter() - t0
    print(f"  same run, baseline DeepFinder MeanShift on every voxel: {t1:.1f} s, {len(cl1)} clusters: x{t1 / t:.1f}")


def bench_template_matching(shape, step, n_rot):
    from templearn.stages.pick_eval.rotations import angle_grid
    from templearn.stages.pick_eval.template_matching import load_template, match_template, prepare_template

    tpl, radius = prepare_template(load_template("6zu5", 13.0, None))
    grid = angle_grid(step)
    sub = grid[np.linspace(0, len(grid) - 1, n_rot).astype(int)]
    vol = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    t0 = time.perf_counter()
    match_template(vol, tpl, sub, tilt_range=60)
    t = time.perf_counter() - t0
    small = vol[:64, :64, :64]
    t0 = time.perf_counter()
    match_template(small, tpl, sub, tilt_range=60)
    ts = time.perf_counter() - t0
    print(f"template matching {tuple(shape)}, template {tpl.shape[0]}^3 (6ZU5, 13 Å): {t / n_rot:.2f} s/rotation; "
          f"{step:g}° = {len(grid)} rotations -> {t / n_rot * len(grid) / 60:.1f} min (extrapolated from {n_rot})")
    print(f"  same run, 64^3 crop: {ts / n_rot:.3f} s/rotation -> {ts / n_rot * len(grid) / 60:.1f} min")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[96, 256, 256], help="[z, y, x] voxels")
    ap.add_argument("--tm-step", type=float, default=30.0)
    ap.add_argument("--tm-rotations", type=int, default=24)
    ap.add_argument("--skip", nargs="*", default=[], choices=["segmentation", "clustering", "tm"])
    args = ap.parse_args()
    os.environ.setdefault("TEMPLEARN_QUIET", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"cpus: {os.cpu_count()}")
    if "segmentation" not in args.skip:
        bench_segmentation(args.shape)
    if "clustering" not in args.skip:
        bench_clustering(args.shape)
    if "tm" not in args.skip:
        bench_template_matching(args.shape, args.tm_step, args.tm_rotations)


if __name__ == "__main__":
    main()
