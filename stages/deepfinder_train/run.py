"""The ``train`` command as one library call: read pairs, train, write the outputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from templearn.errors import TemplearnError

from . import calibrate, dfcompat
from .data import Pair, check_same_voxel_size, load_pairs
from .report import write_outputs
from .training import TrainParams, n_classes_of_pairs, train


def class_names(pairs: Sequence[Pair], given: Sequence[str] | None = None) -> dict[str, str]:
    """Names of labels ``"0".."K"``: given, else from the targets' sidecar JSON, else ``classN``."""
    n = n_classes_of_pairs(list(pairs))
    if given:
        return {"0": "background", **{str(i): name for i, name in enumerate(given, 1)},
                **{str(i): f"class{i}" for i in range(len(given) + 1, n)}}
    found: dict[str, str] = {}
    for p in pairs:
        for k, v in (p.meta.get("classes") or {}).items():
            if found.get(k, v) != v:
                raise TemplearnError(f"class {k} is {v!r} here but {found[k]!r} in an earlier target map: give --class-name", p.targets or None)
            found[k] = v
    return {"0": "background", **{str(i): found.get(str(i), f"class{i}") for i in range(1, n)}}


def class_radii(pairs: Sequence[Pair]) -> dict[str, float]:
    """Per-class radius (Å) recorded by the ``targets`` command, used as fine-tuning's sphere radius."""
    out: dict[str, float] = {}
    for p in pairs:
        for k, v in (p.meta.get("radius_angstrom") or {}).items():
            out.setdefault(k, float(v))
    return out


def run_train(tomograms: Sequence[str | os.PathLike], targets: Sequence[str | os.PathLike], out: str | os.PathLike, *,
              val_tomograms: Sequence[str | os.PathLike] = (), val_targets: Sequence[str | os.PathLike] = (),
              params: TrainParams | None = None, init_weights: str | os.PathLike | None = None,
              names: Sequence[str] | None = None, cluster_radius: Sequence[float] | None = None) -> dict[str, Path]:
    """Train DeepFinder on (tomogram, targets) MRC pairs and write ``out/model.h5``, ``history.csv``,
    ``curves.png``, ``model_card.json`` and ``provenance.json``. The card's ``calibration`` holds the
    cluster sizes the trained model makes (:mod:`.calibrate`, MeanShift bandwidth ``cluster_radius``
    voxels per class), from which ``pick`` takes its default cut."""
    params = (params or TrainParams()).check()
    if not tomograms:
        raise TemplearnError("give at least one --tomogram/--targets pair")
    pairs = load_pairs(tomograms, targets, params.patch)
    val_pairs = load_pairs(val_tomograms, val_targets, params.patch, "validation")
    voxel = check_same_voxel_size(pairs + val_pairs)
    labels = class_names(pairs + val_pairs, names)
    n_classes = max(len(labels), n_classes_of_pairs(pairs + val_pairs))
    init = None
    if init_weights is not None:
        init, card = dfcompat.load_network(init_weights)
        _check_card_voxel(card, voxel, init_weights)
    radii_vox = calibrate.cluster_radii(cluster_radius, labels, class_radii(pairs + val_pairs), voxel)
    result = train(pairs, val_pairs, params, n_classes=n_classes, init_model=init)
    run_params = {**vars(params), "tomograms": [str(t) for t in tomograms], "targets": [str(t) for t in targets],
                  "val_tomograms": [str(t) for t in val_tomograms], "val_targets": [str(t) for t in val_targets],
                  "init_weights": None if init_weights is None else str(init_weights), "class_names": labels,
                  "cluster_radius": radii_vox}
    extra = {"calibration": calibrate.for_card(result.model, pairs, val_pairs, radii_vox)}
    return write_outputs(out, result, pairs, val_pairs, labels, class_radii(pairs + val_pairs), voxel, "train",
                         run_params, init_weights=None if init_weights is None else str(init_weights), extra_card=extra)


VOXEL_MISMATCH = 0.05  # relative: a model applies to tomograms of about its voxel size


def _check_card_voxel(card: dict, voxel: float, weights) -> None:
    vs = card.get("voxel_size")
    if vs and abs(float(vs) - voxel) > VOXEL_MISMATCH * float(vs):
        raise TemplearnError(f"the model was trained at {float(vs):g} Å/voxel but the tomograms are {voxel:g} Å/voxel: "
                             "rescale the tomograms first", Path(weights).parent / dfcompat.CARD_NAME)
