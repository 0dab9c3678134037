"""Tomogram normalization that does not depend on how much vacuum the tomogram holds.

A lamella's reconstruction is taller than the specimen: slices of vacuum above and below it.
Zero mean and unit standard deviation over the whole volume (DeepFinder's own normalization)
then depend on how many such slices there are, so the same particles reach the network at a
different scale in every tomogram. Here the statistics come from the *sample slices* only, and
are robust (percentiles), so dense particles and gold do not move them either:

1. the spread of each z slice: its median absolute deviation (robust to particles);
2. sample slices: where the spread profile steps (its largest value at least ``STEP`` times its
   smallest, both taken on a 3-slice running median so one odd slice sets neither), the slices
   above ``LEVEL`` of the step; vacuum holds only the back-projected noise and falls below.
   Without such a step (no vacuum) every slice counts. More vacuum adds slices at the bottom
   of the step and moves neither end, so the sample slices stay the same;
3. centre = median and scale = half the 16th-84th percentile range (the standard deviation of a
   Gaussian) of the sample slices' voxels; output ``(volume - centre) / scale``, float32.

Training (``templearn.stages.deepfinder_train.data``) and picking
(``templearn.stages.pick_eval.segment``) both call :func:`normalize_tomogram`, so the network
sees the same statistics in both.
"""

from __future__ import annotations

import numpy as np

from .errors import TemplearnError

STEP = 1.25               # largest / smallest slice spread from which the quieter slices are vacuum
LEVEL = 0.7               # sample slices: above this fraction of the step (vacuum near the slab holds
                          # its back-projected streaks, and rays leaving the field of view thin the noise far off)
MAX_SAMPLES = 4_000_000    # voxels the statistics are taken from (a regular sub-grid beyond that)


def _subgrid(shape_yx: tuple[int, int], n_slices: int) -> int:
    """Stride in y and x that keeps about ``MAX_SAMPLES`` voxels of ``n_slices`` slices."""
    per = max(1, MAX_SAMPLES // max(1, n_slices))
    return max(1, int(np.ceil(np.sqrt(shape_yx[0] * shape_yx[1] / per))))


def sample_slices(volume: np.ndarray) -> np.ndarray:
    """Boolean ``[nz]``: the z slices that hold the specimen (not vacuum)."""
    k = _subgrid(volume.shape[1:], volume.shape[0])
    spread = np.empty(volume.shape[0])
    for z in range(volume.shape[0]):
        s = np.asarray(volume[z, ::k, ::k], dtype=np.float64).ravel()
        spread[z] = np.median(np.abs(s - np.median(s)))
    padded = np.pad(spread, 1, mode="edge")
    smooth = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    lo, hi = float(smooth.min()), float(smooth.max())
    if not hi > STEP * lo:
        return np.ones(len(spread), bool)
    return spread >= lo + LEVEL * (hi - lo)


def normalize_tomogram(volume: np.ndarray, path=None) -> np.ndarray:
    """``(volume - median) / robust std`` over the sample slices, float32 ``[z, y, x]``.

    Raises :class:`TemplearnError` (naming ``path``) for a volume that is not 3-D, not finite or
    constant.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3 or volume.size == 0:
        raise TemplearnError(f"a tomogram must be a non-empty 3D volume [z, y, x], got shape {volume.shape}", path)
    if volume.dtype.kind not in "fiu" or not np.isfinite(volume).all():
        raise TemplearnError("tomogram holds non-finite or non-numeric values", path)
    keep = sample_slices(volume)
    k = _subgrid(volume.shape[1:], int(keep.sum()))
    region = np.asarray(volume[keep][:, ::k, ::k], dtype=np.float64).ravel()
    lo, centre, hi = np.percentile(region, [15.865525, 50.0, 84.134475])
    scale = (hi - lo) / 2
    if not scale > 0:   # mostly one value (e.g. a masked tomogram): the plain standard deviation
        scale = float(region.std())
    if not scale > 0:
        raise TemplearnError("tomogram is constant (standard deviation 0): nothing to normalise", path)
    return ((volume.astype(np.float32, copy=False) - np.float32(centre)) / np.float32(scale)).astype(np.float32)
