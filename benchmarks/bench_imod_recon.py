"""Benchmark imod-recon's weighted back projection on one CPU core.

1. Same data, same output grid: templearn's WBP against per-slice scikit-image ``iradon``
   (ramp filter, linear interpolation) on a 256-pixel-wide, 32-row tilt series of 61 views
   (-60..60°, step 2°), 256 x 256 output per slice. Prints both times, the speed-up and their
   normalised cross-correlation inside the reconstruction circle.
2. The issue's size: a 512 x 512 x 200 tomogram from 61 tilts of 512 x 512: wall time, peak
   traced memory (tracemalloc, numpy arrays included) and the process's peak RSS.

Run: ``python benchmarks/bench_imod_recon.py [--quick]`` (``--quick``: smaller sizes for CI).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402


def one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def phantom_stack(n: int, ny: int, angles) -> np.ndarray:
    """Sinograms [view, y, x] of a Shepp-Logan phantom scaled differently on each row."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import radon, resize

    ph = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)
    sino = radon(ph, theta=angles, circle=True).T.astype(np.float32)      # [view, x]
    scale = np.linspace(0.5, 1.5, ny, dtype=np.float32)
    return sino[:, None, :] * scale[None, :, None]


def compare_with_iradon(n: int, ny: int) -> None:
    from skimage.transform import iradon

    from templearn.stages.imod_recon import weighted_back_projection

    angles = np.arange(-60.0, 61.0, 2.0)
    stack = phantom_stack(n, ny, angles)
    t0, c0 = time.perf_counter(), time.process_time()
    ref = np.stack([iradon(stack[:, y, :].T, theta=angles, circle=True, filter_name="ramp")[::-1]
                    for y in range(ny)], axis=1)
    t_iradon, c_iradon = time.perf_counter() - t0, time.process_time() - c0
    weighted_back_projection(stack[:2, :1], angles[:2], 1.0, 2)      # load scipy.sparse/fft first
    t0, c0 = time.perf_counter(), time.process_time()
    # skimage puts the rotation centre at pixel n // 2 (not (n - 1) / 2) and its rows run along
    # our -z (hence ref[::-1] above): the same axis is x = n // 2, z = n - 1 - n // 2.
    ours = weighted_back_projection(stack, angles, 1.0, n, axis_x=n // 2, axis_z=n - 1 - n // 2)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    yy, xx = np.mgrid[:n, :n]
    inside = (yy - n // 2) ** 2 + (xx - n // 2) ** 2 < (n // 2 - 2) ** 2
    a = ours.transpose(1, 0, 2)[:, inside]
    b = ref.transpose(1, 0, 2)[:, inside]
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    ncc = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    print(f"[same data] {len(angles)} views, {ny} slices of {n} x {n}:")
    print(f"  skimage iradon per slice : {t_iradon:7.2f} s wall, {c_iradon:7.2f} s CPU")
    print(f"  templearn WBP            : {t_ours:7.2f} s wall, {c_ours:7.2f} s CPU")
    print(f"  speed-up                 : {t_iradon / t_ours:7.1f} x wall, {c_iradon / c_ours:.1f} x CPU")
    print(f"  NCC inside circle        : min {ncc.min():.5f}, mean {ncc.mean():.5f}")


def big_tomogram(n: int, nz: int, n_views: int) -> None:
    from templearn.stages.imod_recon import weighted_back_projection

    angles = np.linspace(-60.0, 60.0, n_views)
    rng = np.random.default_rng(0)
    stack = rng.standard_normal((n_views, n, n)).astype(np.float32)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    tomo = weighted_back_projection(stack, angles, 1.0, nz)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"[size] {n} x {n} x {nz} tomogram from {n_views} tilts of {n} x {n}, one core:")
    print(f"  time                     : {dt:7.2f} s wall, {dc:.2f} s CPU")
    print(f"  peak traced memory       : {peak / 2**20:7.0f} MiB (output alone {tomo.nbytes / 2**20:.0f} MiB, "
          f"input {stack.nbytes / 2**20:.0f} MiB)")
    print(f"  process peak RSS         : {rss:7.0f} MiB (before: {rss0:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few seconds)")
    args = parser.parse_args()
    one_core()
    if args.quick:
        big_tomogram(256, 100, 61)          # first, so the process's peak RSS is its own
        compare_with_iradon(128, 8)
    else:
        big_tomogram(512, 200, 61)
        compare_with_iradon(512, 128)


if __name__ == "__main__":
    main()
