"""What the trained model's clusters look like, so that ``pick`` can cut without any truth.

A user picking their own tomogram has no annotations to choose the cluster-size threshold by. The
training stage has: the size of one particle's label in the target maps it trained on, and, on
its validation tomograms (simulated, so with truth), the sizes of the clusters the trained model
makes on true particles and elsewhere. Both go into the model card; ``pick`` cuts by default at
:data:`CUT_FRACTION` of the median size of true-particle clusters (a particle the model sees
less clearly than in validation still passes; a speck of a few voxels does not).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from templearn.cluster import cluster_labelmap
from templearn.matching import match

from . import dfcompat
from .data import Pair

CUT_FRACTION = 0.5
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def label_sizes(pairs: Sequence[Pair]) -> dict[int, float]:
    """Labelled voxels per particle of each class in the target maps (mean over tomograms): the
    class's labelled voxels over its instances when the targets record them (touching particles
    merge into one component), else the median size of its connected components."""
    from scipy import ndimage

    sizes: dict[int, list[float]] = {}
    for p in pairs:
        names = p.meta.get("classes") or {}
        instances = p.meta.get("instances") or {}
        for k in np.unique(p.labels[p.labels > 0]):
            n_inst = instances.get(names.get(str(int(k)), ""), 0)
            if n_inst:
                sizes.setdefault(int(k), []).append(float(np.sum(p.labels == k)) / n_inst)
                continue
            comp, n = ndimage.label(p.labels == k)
            if n:
                sizes.setdefault(int(k), []).append(float(np.median(np.bincount(comp.ravel())[1:])))
    return {k: float(np.mean(v)) for k, v in sizes.items()}


def _truth(p: Pair, k: int) -> np.ndarray:
    """Centres ``[x, y, z]`` voxels of the particles of class ``k``: as the targets record them, else
    the label map's connected components."""
    name = (p.meta.get("classes") or {}).get(str(k))
    recorded = (p.meta.get("positions_voxels") or {}).get(name)
    if recorded is not None:
        return np.asarray(recorded, float).reshape(-1, 3)
    return p.objects[p.objects[:, 0] == k][:, 1:][:, ::-1].astype(float)


def _tiling(patch: int) -> tuple[int, int]:
    crop = max(1, patch // 8)
    return crop, 2 * crop + 1


def _best_cut(true_sizes: np.ndarray, false_sizes: np.ndarray, n_truth: int) -> tuple[float, float]:
    """The cut of highest F1 on validation: ``(cut, f1)``."""
    best = (1.0, 0.0)
    for cut in np.unique(np.concatenate([true_sizes, false_sizes, [1.0]])):
        tp = int(np.sum(true_sizes >= cut))
        fp = int(np.sum(false_sizes >= cut))
        f1 = 2 * tp / (2 * tp + fp + (n_truth - tp)) if n_truth + tp + fp else 0.0
        if f1 > best[1]:
            best = (float(cut), float(f1))
    return best


def calibrate(model, pairs: Sequence[Pair], radii_voxels: dict[int, float], source: str,
              label_pairs: Sequence[Pair] = ()) -> dict:
    """Cluster-size statistics of ``model`` on ``pairs`` (validation tomograms with their truth).

    Each tomogram is segmented (patch of the model), clustered (MeanShift, bandwidth
    ``radii_voxels[k]``), and clusters within one radius of a true particle of their class are
    true (one-to-one matching). The label size per particle is taken over ``label_pairs`` (default
    ``pairs``). Returns the card's ``calibration`` entry: per class, the label size
    per particle, quantiles of true and false cluster sizes, the validation-best cut and the
    default cut ``pick`` applies.
    """
    patch = dfcompat.patch_of(model)
    crop, overlap = _tiling(patch)
    labels_of = label_sizes(list(label_pairs) or list(pairs))
    true: dict[int, list] = {k: [] for k in radii_voxels}
    false: dict[int, list] = {k: [] for k in radii_voxels}
    n_truth = {k: 0 for k in radii_voxels}
    for p in pairs:
        seg = dfcompat.segment(model, p.data, patch, crop, overlap, labels=True, normalized=True)  # Pair data are normalised
        cl = cluster_labelmap(seg, radii_voxels)
        for k, r in radii_voxels.items():
            xyz = cl.xyz[cl.label == k]
            size = cl.size[cl.label == k].astype(float)
            truth = _truth(p, k)
            n_truth[k] += len(truth)
            m = match(xyz, truth, r)
            hit = np.zeros(len(xyz), bool)
            hit[m.pairs[:, 0]] = True
            true[k] += size[hit].tolist()
            false[k] += size[~hit].tolist()
    classes = {}
    for k, r in radii_voxels.items():
        t, f = np.asarray(true[k], float), np.asarray(false[k], float)
        cut, f1 = _best_cut(t, f, n_truth[k])
        label = labels_of.get(k)
        if len(t):
            default, rule = CUT_FRACTION * float(np.median(t)), f"{CUT_FRACTION:g} x median true cluster size (validation)"
        elif label:
            default, rule = CUT_FRACTION * label, f"{CUT_FRACTION:g} x label size per particle (no true cluster in validation)"
        else:
            default, rule = None, "none: no label and no true cluster"
        classes[str(k)] = {
            "radius_voxels": float(r), "label_voxels_per_particle": label, "n_truth": n_truth[k],
            "n_true_clusters": int(len(t)), "n_false_clusters": int(len(f)),
            "true_size_quantiles": _quantiles(t), "false_size_quantiles": _quantiles(f),
            "validation_best_cut": cut, "validation_best_f1": f1,
            "default_min_size": None if default is None else max(1, int(round(default))), "rule": rule,
        }
    return {"source": source, "patch": patch, "crop": crop, "overlap": overlap, "cut_fraction": CUT_FRACTION,
            "classes": classes}


def cluster_radii(given: Sequence[float] | None, names: dict[str, str], radii_angstrom: dict[str, float],
                  voxel_size: float) -> dict[int, float]:
    """MeanShift bandwidth (voxels) per class 1..K for calibration, as ``pick`` will use it: ``given``
    (one value, or one per class), else the class radius (Å, by name) from the targets, else
    :data:`templearn.cluster.DEFAULT_RADIUS`."""
    from templearn.cluster import DEFAULT_RADIUS
    from templearn.errors import TemplearnError

    classes = sorted(int(k) for k in names if int(k) > 0)
    if given:
        g = list(given) * len(classes) if len(given) == 1 else list(given)
        if len(g) != len(classes) or min(g) <= 0:
            raise TemplearnError(f"--cluster-radius: give one positive value or one per class ({len(classes)}), got {list(given)}")
        return {k: float(v) for k, v in zip(classes, g)}
    return {k: float(radii_angstrom[names[str(k)]]) / voxel_size if names[str(k)] in radii_angstrom else DEFAULT_RADIUS
            for k in classes}


def for_card(model, pairs: Sequence[Pair], val_pairs: Sequence[Pair], radii_voxels: dict[int, float]) -> dict:
    """:func:`calibrate` on the validation tomograms, or on the training ones when there are none."""
    both = list(pairs) + list(val_pairs)
    if val_pairs:
        return calibrate(model, val_pairs, radii_voxels, "validation tomograms", both)
    return calibrate(model, pairs, radii_voxels, "training tomograms (no validation tomogram given: sizes are optimistic)", both)


def _quantiles(v: np.ndarray) -> dict[str, float] | None:
    if not len(v):
        return None
    return {f"q{int(q * 100)}": float(np.quantile(v, q)) for q in QUANTILES}
