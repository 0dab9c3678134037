"""Training data for DeepFinder: (tomogram, label map) pairs, the objects in them, and patch batches.

A :class:`Pair` holds one tomogram normalised as in segmentation (:func:`templearn.normalize.normalize_tomogram`:
robust statistics of the sample slices, whatever the vacuum above and below),
its label map ``[z, y, x]`` int8 (0 background, 1..K classes) and the objects that guide patch
sampling: DeepFinder does not sample patches uniformly but around annotated objects, shifted at
random by up to ``shift`` voxels per axis, and turns half of them 180 degrees about the tilt axis
(y), which keeps the missing wedge where it was. Objects are the connected components of each
class of the label map (their centres of mass), so any label map can be used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from templearn.atomic import read_json
from templearn.errors import TemplearnError
from templearn.mrc import read_mrc
from templearn.normalize import normalize_tomogram

from . import dfcompat

VOXEL_TOLERANCE = 1e-3  # relative: a tomogram and its label map must share the voxel size


@dataclass
class Pair:
    """One training tomogram: ``data`` normalised float32 ``[z, y, x]``, ``labels`` int8 ``[z, y, x]``,
    ``objects`` ``(n, 4)`` int rows ``[label, z, y, x]`` (voxels)."""

    data: np.ndarray
    labels: np.ndarray
    voxel_size: float
    objects: np.ndarray
    tomogram: str = ""
    targets: str = ""
    meta: dict = field(default_factory=dict)   # the label map's sidecar JSON, if any

    @property
    def shape(self):
        return self.labels.shape


def objects_of(labels: np.ndarray) -> np.ndarray:
    """Centres of the connected components of each class: ``(n, 4)`` int rows ``[label, z, y, x]``."""
    from scipy import ndimage

    rows = []
    for lbl in np.unique(labels[labels > 0]):
        comp, n = ndimage.label(labels == lbl)
        if n == 0:
            continue
        centres = ndimage.center_of_mass(np.ones_like(comp), comp, index=np.arange(1, n + 1))
        for c in np.round(np.asarray(centres)).astype(int).reshape(-1, 3):
            rows.append([int(lbl), *c])
    return np.array(rows, dtype=int).reshape(-1, 4)


def make_pair(data: np.ndarray, labels: np.ndarray, voxel_size: float, *, tomogram: str = "",
              targets: str = "", meta: dict | None = None, patch: int | None = None) -> Pair:
    """Check one (tomogram, label map) pair in memory and build its :class:`Pair`.

    Raises :class:`TemplearnError` (naming ``targets`` or ``tomogram``) for a shape mismatch, a
    label map that is not whole numbers 0..127, one with no labelled voxel, or a patch that does
    not fit in the tomogram.
    """
    where = targets or None
    data = dfcompat.check_volume(data, "tomogram", tomogram or None)
    labels = np.asarray(labels)
    if labels.shape != data.shape:
        raise TemplearnError(f"targets have shape {labels.shape} [z, y, x] but the tomogram {tomogram or ''} has {data.shape}", where)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise TemplearnError("targets must hold whole class labels (0 background, 1..K)", where)
    if labels.size and (labels.min() < 0 or labels.max() > 127):
        raise TemplearnError(f"target labels must be 0..127, found {labels.min():g}..{labels.max():g}", where)
    labels = labels.astype(np.int8)
    if not np.any(labels > 0):
        raise TemplearnError("targets are empty (no labelled voxel): nothing to learn from", where)
    if patch is not None:
        small = [n for n in data.shape if n < patch]
        if small:
            raise TemplearnError(f"patch {patch} does not fit in the tomogram {data.shape} [z, y, x]: use a smaller --patch", tomogram or where)
    return Pair(normalize_tomogram(data, tomogram or None), labels, float(voxel_size), objects_of(labels),
                tomogram, targets, dict(meta or {}))


def read_meta(targets_path: str | os.PathLike) -> dict:
    """The sidecar ``<targets>.json`` written by the ``targets`` command (class names, radii), or {}."""
    side = Path(targets_path).with_suffix(".json")
    if not side.is_file():
        return {}
    return read_json(side, "targets record")


def load_pairs(tomograms, targets, patch: int | None = None, what: str = "training") -> list[Pair]:
    """Read (tomogram, targets) MRC pairs, paired in order, and check them."""
    tomograms, targets = list(tomograms), list(targets)
    if len(tomograms) != len(targets):
        raise TemplearnError(f"{len(tomograms)} {what} tomograms but {len(targets)} target maps: give them in pairs")
    pairs = []
    for t, l in zip(tomograms, targets):
        data, vs = read_mrc(t)
        lab, vs_l = read_mrc(l)
        if abs(vs - vs_l) > VOXEL_TOLERANCE * vs:
            raise TemplearnError(f"targets have voxel size {vs_l:g} Å but the tomogram {t} has {vs:g} Å", l)
        pairs.append(make_pair(data, lab, vs, tomogram=str(t), targets=str(l), meta=read_meta(l), patch=patch))
    return pairs


def check_same_voxel_size(pairs: list[Pair]) -> float:
    vs = pairs[0].voxel_size
    for p in pairs[1:]:
        if abs(p.voxel_size - vs) > VOXEL_TOLERANCE * vs:
            raise TemplearnError(f"all tomograms must share one voxel size: {p.voxel_size:g} Å here, {vs:g} Å in {pairs[0].tomogram}", p.tomogram or None)
    return vs


def sample_batch(rng: np.random.Generator, pairs: list[Pair], pool: np.ndarray, batch: int, patch: int,
                 shift: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch of patches around objects, DeepFinder's way.

    ``pool`` rows are ``[pair index, label, z, y, x]``. Returns data ``[batch, p, p, p, 1]``
    float32 and one-hot targets ``[batch, p, p, p, n_classes]`` float32.
    """
    half = patch // 2
    x = np.empty((batch, patch, patch, patch, 1), np.float32)
    y = np.zeros((batch, patch, patch, patch, n_classes), np.float32)
    eye = np.eye(n_classes, dtype=np.float32)
    picks = rng.integers(0, len(pool), size=batch)
    shifts = rng.integers(-shift, shift + 1, size=(batch, 3))
    flips = rng.random(batch) < 0.5
    for i in range(batch):
        row = pool[picks[i]]
        pair = pairs[row[0]]
        centre = np.clip(row[2:] + shifts[i], half, np.array(pair.shape) - half)
        sl = tuple(slice(c - half, c + half) for c in centre)
        d, lab = pair.data[sl], pair.labels[sl]
        if flips[i]:  # 180 degrees about y: the tilt axis, so the missing wedge stays put
            d, lab = d[::-1, :, ::-1], lab[::-1, :, ::-1]
        x[i, ..., 0] = d
        y[i] = eye[lab.astype(np.intp)]
    return x, y


def pool_of(pairs: list[Pair]) -> np.ndarray:
    """All objects of all pairs: rows ``[pair index, label, z, y, x]``."""
    rows = [np.column_stack([np.full(len(p.objects), i), p.objects]) for i, p in enumerate(pairs)]
    return np.concatenate(rows).astype(int) if rows else np.zeros((0, 5), int)


def split_pool(pool: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hold ``fraction`` of the objects apart for validation (when no validation tomogram is given)."""
    if len(pool) < 2:
        raise TemplearnError("need at least 2 labelled objects to hold some apart for validation (or give --val-tomogram/--val-targets)")
    order = rng.permutation(len(pool))
    n_val = min(len(pool) - 1, max(1, int(round(fraction * len(pool)))))
    return pool[np.sort(order[n_val:])], pool[np.sort(order[:n_val])]
