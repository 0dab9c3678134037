"""Training throughput of DeepFinder's network (patches per second), with a same-run baseline.

    python benchmarks/bench_deepfinder_train.py [--patch 48] [--batch 25] [--steps 3] [--size 96]

On a synthetic tomogram (blobs in noise, ``size``^3 voxels) it times, after one warm-up step:

- templearn's step: our patch sampler (:func:`data.sample_batch`, float32, whole-tomogram
  normalisation) + ``train_on_batch``;
- the baseline, DeepFinder's own step: ``deepfinder.training.Train.generate_batch_from_array``
  (float64 batches, ``to_categorical``, per-patch normalisation) + the same ``train_on_batch``.

Both use the same compiled network, so the difference is the batch preparation. Prints patches
per second for each, the split between sampling and the network, and the device TensorFlow used.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--size", type=int, default=96)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import tensorflow as tf
    from deepfinder.training import Train

    from templearn.stages.deepfinder_train import dfcompat
    from templearn.stages.deepfinder_train.data import make_pair, pool_of, sample_batch

    rng = np.random.default_rng(0)
    n = args.size
    zz, yy, xx = np.indices((n, n, n))
    vol = rng.normal(0, 0.5, (n, n, n)).astype(np.float32)
    lab = np.zeros((n, n, n), np.int8)
    for c in rng.uniform(6, n - 6, size=(40, 3)):
        d2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
        vol += np.exp(-d2 / 23.0).astype(np.float32)
        lab[d2 <= 36] = 1
    pair = make_pair(vol, lab, 10.0, patch=args.patch)
    pool = pool_of([pair])
    objl = [{"tomo_idx": 0, "label": int(r[1]), "z": int(r[2]), "y": int(r[3]), "x": int(r[4])} for r in pool]

    dfcompat.seed_everything(0)
    model = dfcompat.compile_network(dfcompat.build_network(2, args.patch))
    df = Train(Ncl=2, dim_in=args.patch)
    df.net = model
    df.batch_size, df.Lrnd = args.batch, 13
    np.random.seed(0)

    def ours():
        return sample_batch(rng, [pair], pool, args.batch, args.patch, 13, 2)

    def theirs():
        x, y, _ = df.generate_batch_from_array([vol], [lab], args.batch, objl)
        return x, y

    devices = [d.device_type for d in tf.config.list_physical_devices()]
    print(f"device: {'GPU' if 'GPU' in devices else 'CPU'} ({os.cpu_count()} CPUs seen); patch {args.patch}, "
          f"batch {args.batch}, {args.steps} timed steps after 1 warm-up, tomogram {n}^3")
    model.train_on_batch(*ours())  # warm-up: graph tracing
    for name, make in (("templearn sampler + train_on_batch", ours), ("DeepFinder generate_batch_from_array + train_on_batch", theirs)):
        t_sample = t_fit = 0.0
        for _ in range(args.steps):
            t0 = time.perf_counter()
            x, y = make()
            t1 = time.perf_counter()
            model.train_on_batch(x, y)
            t2 = time.perf_counter()
            t_sample += t1 - t0
            t_fit += t2 - t1
        total = t_sample + t_fit
        print(f"{name:55s} {args.steps * args.batch / total:7.2f} patches/s  "
              f"(sampling {1000 * t_sample / args.steps:7.1f} ms/batch, network {t_fit / args.steps:6.2f} s/batch)")


if __name__ == "__main__":
    main()
