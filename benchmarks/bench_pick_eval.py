"""Benchmark of picking at the sizes users have: templearn against DeepFinder, in one run.

    python benchmarks/bench_pick_eval.py [--large] [--limit 300] [--seg-limit 600] [--skip ...]

For 256x256x96 and 512x512x200 (and 928x928x464 with ``--large``), on a simulated label map
holding ribosome-sized particles (balls of radius 5.6-8 voxels, random sequential placement at 8 %
of the volume, clustering bandwidth 10 voxels) plus 0.2 % specks of noise, and a tomogram made from
it (particles plus Gaussian noise):

- segmentation (DeepFinder's network, random weights: time does not depend on them; patch 48,
  crop 8, overlap 21): templearn's streamed :func:`dfcompat.segment` (labels, as ``pick``) and
  DeepFinder's ``Segment.launch``; seconds, peak memory, and the max abs difference of their
  score maps where both finish;
- clustering: templearn's grid MeanShift and DeepFinder's ``Cluster`` (scikit-learn over every
  voxel); seconds, peak memory, and the F1 between the two pick sets (clusters of at least
  ``pick``'s fallback cut, 419 voxels; matched within 5 voxels) and over all clusters;
- with ``--large``, the same 928x928x464 map with 30 % of the voxels labelled (a model that
  fails): templearn's clustering time and memory;
- template matching (6ZU5 at 13 Å, a 31^3 box) per rotation against its floor measured in the
  same run: a forward and an inverse real FFT of the padded volume (float32, all cores).

Every step runs in its own process under a time limit (``--limit``; ``--seg-limit`` for
segmentation), which reports its peak resident memory; a step past its limit is reported as "did
not finish in N s" (segmentation: with the share of patches done and the projected total).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"256x256x96": (96, 256, 256), "512x512x200": (200, 512, 512), "928x928x464": (464, 928, 928)}
RADIUS = 10.0        # clustering bandwidth (voxels)
BALL = 8.0           # particle radius (voxels); each is segmented to 0.7..1 of it
FRACTION = 0.08      # share of the volume inside particles
PATCH, CROP, OVERLAP = 48, 8, 21
MATCH_DISTANCE = 5.0


# --- data -----------------------------------------------------------------------------------------

def simulate(shape, noise: float, seed: int = 0):
    """Label map (int8) with particles on a jittered lattice (spacing 2 BALL + 3, so they never
    overlap) kept at random to reach FRACTION, then ``noise`` of all voxels set at random; and the
    particle centres ``[z, y, x]``."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.int8)
    sp = 2 * BALL + 3
    axes = [np.arange(BALL + 3, n - BALL - 3, sp) for n in shape]  # stamps stay inside
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    per = 4 / 3 * np.pi * (0.85 * BALL) ** 3
    keep = rng.random(len(grid)) < min(1.0, FRACTION * np.prod(shape) / per / len(grid))
    centres = grid[keep] + rng.uniform(-1.4, 1.4, (int(keep.sum()), 3))
    R = int(np.ceil(BALL))
    d = np.arange(-R - 1, R + 2)
    dz, dy, dx = np.meshgrid(d, d, d, indexing="ij")
    for c in centres:
        i = np.floor(c).astype(int)
        f = c - i
        rr = BALL * rng.uniform(0.7, 1.0)
        ball = (dz - f[0]) ** 2 + (dy - f[1]) ** 2 + (dx - f[2]) ** 2 <= rr * rr
        sl = tuple(slice(i[k] - R - 1, i[k] + R + 2) for k in range(3))
        lab[sl][ball] = 1
    if noise:
        for z in range(shape[0]):  # by planes: no full-size float64 temporary
            lab[z][rng.random(shape[1:]) < noise] = 1
    return lab, centres


def tomogram_of(lab, seed: int = 1):
    rng = np.random.default_rng(seed)
    vol = np.empty(lab.shape, np.float32)
    for z in range(lab.shape[0]):
        vol[z] = rng.standard_normal(lab.shape[1:], np.float32) - 0.8 * lab[z]
    return vol


# --- steps, each in a child process ----------------------------------------------------------------

def child(step: str, data: Path) -> dict:
    """Run one step on the arrays in ``data``; return its figures (written to stdout as JSON)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out: dict = {}
    if step in ("segment", "segment_deepfinder"):
        from templearn.stages.deepfinder_train import dfcompat

        vol = np.load(data / "tomogram.npy", mmap_mode="r")
        dfcompat.seed_everything(0)
        model = dfcompat.build_network(2, PATCH)
        n = int(np.prod([len(dfcompat.patch_centres(s, PATCH, CROP, OVERLAP)) for s in vol.shape]))

        def report(done, total):
            (data / f"{step}.progress").write_text(json.dumps({"progress": done, "total": total}))

        t0 = time.perf_counter()
        if step == "segment":
            def progress(batches):
                for i, b in enumerate(batches):
                    report(b, n)
                    yield b

            labels = dfcompat.segment(model, np.asarray(vol), PATCH, CROP, OVERLAP, labels=True, progress=progress)
            out["seconds"] = time.perf_counter() - t0
            if (data / "want_scores").exists():
                scores = dfcompat.segment(model, np.asarray(vol), PATCH, CROP, OVERLAP)
                np.save(data / "scores_templearn.npy", scores[1])
            np.save(data / "labels_templearn.npy", labels)
        else:
            count = [0]
            predict = dfcompat._Net.predict

            def counting(self, x, batch_size=1):
                count[0] += 1
                if count[0] % 20 == 0:
                    report(count[0], n)
                return predict(self, x, batch_size)

            dfcompat._Net.predict = counting
            scores = dfcompat.segment_deepfinder(model, np.asarray(vol), PATCH, CROP, OVERLAP)
            out["seconds"] = time.perf_counter() - t0
            if (data / "want_scores").exists():
                np.save(data / "scores_deepfinder.npy", scores[1])
        out["patches"] = n
    elif step in ("cluster", "cluster_noisy", "cluster_deepfinder"):
        lab = np.load(data / ("noisy.npy" if step == "cluster_noisy" else "labels.npy"))
        t0 = time.perf_counter()
        if step == "cluster_deepfinder":
            from templearn.stages.deepfinder_train import dfcompat

            objl = dfcompat.cluster(lab, int(RADIUS))
            xyz = np.array([[o["x"], o["y"], o["z"]] for o in objl], float).reshape(-1, 3)
            size = np.array([o["cluster_size"] for o in objl], float)
        else:
            from templearn.cluster import cluster_labelmap

            cl = cluster_labelmap(lab, RADIUS)
            xyz, size = cl.xyz, cl.size.astype(float)
        out["seconds"] = time.perf_counter() - t0
        out["labelled"] = int(np.count_nonzero(lab))
        np.save(data / f"{step}.npy", np.column_stack([xyz, size]))
    elif step == "match":
        out.update(bench_match(np.load(data / "tomogram.npy", mmap_mode="r")))
    import resource

    out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return out


def bench_match(vol, n_rot: int = 6) -> dict:
    """Per-rotation cost of match_template against the FFT floor, in this process."""
    from scipy import fft as sfft

    from templearn.stages.pick_eval.rotations import angle_grid
    from templearn.stages.pick_eval.template_matching import load_template, match_template, prepare_template

    tpl, radius = prepare_template(load_template("6zu5", 13.0, None))
    half = tpl.shape[0] // 2
    full = [sfft.next_fast_len(s + 2 * half, real=True) for s in vol.shape]
    a = np.zeros(full, np.float32)
    floor = []
    for _ in range(3):
        t0 = time.perf_counter()
        F = sfft.rfftn(a, workers=-1)
        sfft.irfftn(F, s=full, workers=-1, overwrite_x=True)
        floor.append(time.perf_counter() - t0)
    del a, F
    grid = angle_grid(30.0)
    eulers = grid[np.linspace(0, len(grid) - 1, n_rot + 1).astype(int)]
    vol = np.asarray(vol, np.float32)
    t0 = time.perf_counter()
    match_template(vol, tpl, eulers[:1], radius=radius)
    t1 = time.perf_counter()
    match_template(vol, tpl, eulers, radius=radius)
    t2 = time.perf_counter()
    per = ((t2 - t1) - (t1 - t0)) / n_rot  # the set-up (volume FFTs, local sigma) cancels
    return {"floor": min(floor), "per_rotation": per, "box": int(tpl.shape[0]), "grid": full}


def run_child(step: str, data: Path, limit: float) -> dict:
    """``child(step)`` in a fresh process, killed after ``limit`` s; peak memory from /proc while it
    runs (the child's own figure when it finishes). Progress and result come back in files."""
    cmd = [sys.executable, __file__, "--child", step, "--data", str(data)]
    for f in (data / f"{step}.progress", data / f"{step}.json"):
        f.unlink(missing_ok=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    t0, hwm = time.monotonic(), 0.0
    while proc.poll() is None and time.monotonic() - t0 < limit:
        time.sleep(0.5)
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]) / 1e6)
        except OSError:
            pass
    elapsed = time.monotonic() - t0
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        prog = data / f"{step}.progress"
        last = json.loads(prog.read_text()) if prog.exists() else None
        return {"timeout": limit, "peak_gb": hwm, "progress": last, "elapsed": elapsed}
    if proc.returncode != 0 or not (data / f"{step}.json").exists():
        return {"error": f"exit {proc.returncode}", "peak_gb": hwm}
    res = json.loads((data / f"{step}.json").read_text())
    res["peak_gb"] = max(res.get("peak_gb", 0.0), hwm)
    return res


def f1(a: np.ndarray, b: np.ndarray, distance: float) -> float:
    from templearn.matching import match, prf

    m = match(a, b, distance)
    return prf(m.tp, m.fp, m.fn)[2]


def describe(r: dict, what: str = "") -> str:
    if "timeout" in r:
        p = r.get("progress")
        extra = ""
        if p and p["progress"]:
            frac = p["progress"] / p["total"]
            extra = f" ({p['progress']}/{p['total']} patches; projected {r['elapsed'] / frac / 60:.0f} min)"
        return f"did not finish in {r['timeout']:.0f} s{extra}, peak {r['peak_gb']:.2f} GB so far"
    if "error" in r:
        return f"failed ({r['error']})"
    return f"{r['seconds']:.1f} s, peak {r['peak_gb']:.2f} GB{what}"


def bench_size(name, shape, args, root: Path):
    data = root / name
    data.mkdir()
    lab, centres = simulate(shape, 0.002)
    np.save(data / "labels.npy", lab)
    if "segmentation" not in args.skip:
        np.save(data / "tomogram.npy", tomogram_of(lab))
    print(f"\n== {name} ([z, y, x] {shape}): {len(centres)} particles, {np.count_nonzero(lab) / lab.size:.1%} "
          f"of voxels labelled", flush=True)
    del lab
    if "segmentation" not in args.skip:
        if name == "256x256x96":
            (data / "want_scores").touch()
        ours = run_child("segment", data, args.seg_limit)
        print(f"segmentation templearn (patch {PATCH}, crop {CROP}, overlap {OVERLAP}): {describe(ours)}", flush=True)
        df = run_child("segment_deepfinder", data, args.seg_limit)
        print(f"segmentation DeepFinder Segment: {describe(df)}", flush=True)
        if (data / "scores_deepfinder.npy").exists() and (data / "scores_templearn.npy").exists():
            a, b = np.load(data / "scores_templearn.npy"), np.load(data / "scores_deepfinder.npy")
            print(f"  score maps: max abs difference {np.abs(a - b).max():.2e} (DeepFinder sums in float16); "
                  f"labels equal on {np.mean((a > 0.5) == (b > 0.5)):.4%} of voxels", flush=True)
        if "seconds" in ours and "seconds" in df:
            print(f"  templearn x{df['seconds'] / ours['seconds']:.1f}", flush=True)
        (data / "tomogram.npy").unlink()
    if "clustering" not in args.skip:
        ours = run_child("cluster", data, args.limit)
        print(f"clustering templearn (grid MeanShift): {describe(ours)}", flush=True)
        df = run_child("cluster_deepfinder", data, args.limit)
        print(f"clustering DeepFinder Cluster (scikit-learn MeanShift): {describe(df)}", flush=True)
        if "seconds" in ours and "seconds" in df:
            from templearn.stages.pick_eval.pick import default_min_size

            a, b = np.load(data / "cluster.npy"), np.load(data / "cluster_deepfinder.npy")
            cut = default_min_size(RADIUS)
            pa, pb = a[a[:, 3] >= cut, :3], b[b[:, 3] >= cut, :3]
            print(f"  picks (clusters >= {cut} voxels): {len(pa)} templearn, {len(pb)} DeepFinder, F1 "
                  f"{f1(pa, pb, MATCH_DISTANCE):.4f} within {MATCH_DISTANCE:g} voxels; all clusters: {len(a)} vs "
                  f"{len(b)}, F1 {f1(a[:, :3], b[:, :3], MATCH_DISTANCE):.4f}; templearn x{df['seconds'] / ours['seconds']:.0f}",
                  flush=True)
        if name == "928x928x464":
            noisy, _ = simulate(shape, 0.24)  # particles + noise: 30 % labelled
            np.save(data / "noisy.npy", noisy)
            share = np.count_nonzero(noisy) / noisy.size
            del noisy
            r = run_child("cluster_noisy", data, args.limit * 4)
            print(f"clustering templearn, {share:.0%} of voxels labelled (a failing model): {describe(r)}", flush=True)
            (data / "noisy.npy").unlink()
    if "tm" not in args.skip and name != "928x928x464":
        np.save(data / "tomogram.npy", tomogram_of(np.load(data / "labels.npy")))
        r = run_child("match", data, args.limit)
        if "per_rotation" in r:
            print(f"template matching (6ZU5 at 13 Å, {r['box']}^3 box, padded grid {r['grid']}): "
                  f"{r['per_rotation']:.3f} s/rotation, FFT floor (rfftn + irfftn, float32, all cores) "
                  f"{r['floor']:.3f} s: x{r['per_rotation'] / r['floor']:.2f}; peak {r['peak_gb']:.2f} GB", flush=True)
        else:
            print(f"template matching: {describe(r)}", flush=True)
    for f in data.iterdir():
        f.unlink()
    data.rmdir()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also 928x928x464 (long)")
    ap.add_argument("--only", nargs="*", choices=list(SIZES), help="sizes to run [default: all but the largest]")
    ap.add_argument("--limit", type=float, default=300.0, help="seconds allowed to a clustering step")
    ap.add_argument("--seg-limit", type=float, default=600.0, help="seconds allowed to a segmentation")
    ap.add_argument("--skip", nargs="*", default=[], choices=["segmentation", "clustering", "tm"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("TEMPLEARN_QUIET", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child:
        (args.data / f"{args.child}.json").write_text(json.dumps(child(args.child, args.data)))
        return
    sizes = args.only or [n for n in SIZES if args.large or n != "928x928x464"]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cpus: {cpus}; limits: clustering {args.limit:g} s, segmentation {args.seg_limit:g} s")
    with tempfile.TemporaryDirectory(prefix="bench_pick_eval_") as tmp:
        for name in sizes:
            bench_size(name, SIZES[name], args, Path(tmp))


if __name__ == "__main__":
    main()
