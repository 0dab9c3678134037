"""Segmentation of a tomogram by a trained DeepFinder model, with the checks users need.

The network, its weights and its tiled inference live in
:mod:`templearn.stages.deepfinder_train.dfcompat` (the one module that imports DeepFinder);
this module checks the tomogram against the model card (voxel size), applies the optional mask
and turns score maps into a label map.

Tiling defaults (patch 48, crop 8, overlap 21): DeepFinder's own defaults (crop 25, overlap 55
on 160-voxel patches) waste most of each patch on CPU; 48/8/21 scores every voxel (overlap >=
2*crop + 1) and segments 256x256x96 in minutes on 2 cores (see README, measured by
benchmarks/bench_pick_eval.py).
"""

from __future__ import annotations

import os

import numpy as np

from templearn.errors import TemplearnError
from templearn.normalize import normalize_tomogram

VOXEL_SIZE_TOLERANCE = 0.02  # relative: 13 vs 13.2 Å passes, 13 vs 16 fails
DEFAULT_PATCH = 48
DEFAULT_CROP = 8
DEFAULT_OVERLAP = 21


def _df():
    from templearn.stages.deepfinder_train import dfcompat

    return dfcompat


def load_model(weights: str | os.PathLike, patch: int | None = None):
    """``(model, card)`` from a ``.h5`` file and the ``model_card.json`` beside it."""
    return _df().load_network(weights, patch)


def check_voxel_size(tomogram_voxel: float, card: dict, tomogram_path=None, weights_path=None) -> None:
    """The tomogram must have the voxel size the model was trained at (when the card records it)."""
    trained = card.get("voxel_size")
    if trained is None:
        return
    trained = float(trained)
    if abs(tomogram_voxel - trained) > VOXEL_SIZE_TOLERANCE * trained:
        raise TemplearnError(
            f"voxel size {tomogram_voxel:g} Å differs from the {trained:g} Å the model was trained at "
            f"({weights_path}): bin it (templearn-imod-recon bin-tomogram {tomogram_path or 'TOMOGRAM'} OUT.mrc "
            f"--voxel-size {trained:g}) or train at this voxel size", tomogram_path)


def check_tomogram(volume: np.ndarray, path=None) -> None:
    if volume.ndim != 3:
        raise TemplearnError(f"a tomogram must be a 3D volume, got shape {volume.shape}", path)
    if float(volume.std()) == 0.0:
        raise TemplearnError("the tomogram is constant (empty): nothing to pick", path)


def read_mask(path: str | os.PathLike, shape) -> np.ndarray:
    """A mask MRC of the tomogram's shape; non-zero voxels are kept. Returns bool [z, y, x]."""
    from templearn.mrc import read_mrc

    mask, _ = read_mrc(path)
    if mask.shape != tuple(shape):
        raise TemplearnError(f"mask has shape {mask.shape} [z, y, x] but the tomogram has {tuple(shape)}", path)
    m = mask != 0
    if not m.any():
        raise TemplearnError("mask is empty (all zero): nothing would be picked", path)
    return m


def segment_labels(model, volume: np.ndarray, patch: int | None = None, crop: int = DEFAULT_CROP,
                   overlap: int = DEFAULT_OVERLAP, mask: np.ndarray | None = None) -> np.ndarray:
    """Label map [z, y, x] int8 (argmax of the class scores, 0 = background), zero outside ``mask``.

    Streamed (:func:`dfcompat.iter_segment`): memory is the label map plus a bounded window of
    scores, with a progress bar over the network's batches."""
    from templearn.progress import track

    # Normalised as the training data were (vacuum-independent), then fed as it is.
    labels = _df().segment(model, normalize_tomogram(volume), patch, crop, overlap, labels=True, normalized=True,
                           progress=lambda it: track(it, "segmentation: batches of patches"))
    if mask is not None:
        labels[~mask] = 0
    return labels


def class_names(card: dict, override: list[str] | None, n_classes: int, weights=None) -> dict[int, str]:
    """Names of the classes 1..K: ``override`` (in order) or the card's ``classes``."""
    if override:
        if len(override) != n_classes - 1:
            raise TemplearnError(f"--class-names gives {len(override)} names but the model has {n_classes - 1} "
                                 f"classes besides background", weights)
        return {i + 1: n for i, n in enumerate(override)}
    names = card.get("classes") or {}
    if isinstance(names, list):
        names = {str(i): n for i, n in enumerate(names)}
    return {i: str(names.get(str(i), f"class{i}")) for i in range(1, n_classes)}


