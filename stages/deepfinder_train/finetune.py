"""Fine-tuning: continue a trained model on a few annotated (experimental) tomograms.

The annotations are picks (RELION STAR, CSV, DeepFinder XML or copick JSON, see
:mod:`templearn.picks`); targets are balls of ``radius`` Å at the picks (the paper annotates
experimental data with spheres), labelled with the picks' class (or ``class_label``). The
paper's short schedules: 10 epochs x 10 steps (or 30 epochs), batch and patch as trained.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from templearn.errors import TemplearnError
from templearn.contrast import as_dark, check_contrast
from templearn.mrc import read_mrc
from templearn.picks import Picks, read_picks

from . import calibrate, dfcompat
from .data import Pair, check_same_voxel_size, make_pair
from .targets import paint_ball
from .report import write_outputs
from .run import _check_card_voxel
from .training import TrainParams, train


def finetune_params(**kw) -> TrainParams:
    """The paper's fine-tuning schedule: 10 epochs x 10 steps; other values as in training."""
    return TrainParams(**{"epochs": 10, "steps": 10, **kw})


def picks_for(picks: Picks, tomogram: str | os.PathLike, n_picks_files: int, path) -> Picks:
    """The picks of one tomogram: all of them when the file names one tomogram (or we pair files with
    tomograms one to one), else the rows whose tomogram name is the tomogram file's stem."""
    names = set(picks.tomogram.tolist())
    if len(names) <= 1:
        return picks
    stem = Path(tomogram).name.split(".")[0]
    sel = picks.select(np.array([Path(str(t)).name.split(".")[0] == stem for t in picks.tomogram]))
    if len(sel) == 0:
        raise TemplearnError(f"picks name several tomograms ({', '.join(sorted(names)[:4])}...) and none is {stem!r}", path)
    return sel


def sphere_targets(xyz_voxels: np.ndarray, labels: np.ndarray, shape_zyx, radius_voxels: dict[int, float]) -> np.ndarray:
    """Balls at ``xyz_voxels`` (``(n, 3)`` ``[x, y, z]``) of each label's radius (voxels): int8 ``[z, y, x]``."""
    out = np.zeros(tuple(shape_zyx), np.int8)
    for (x, y, z), lbl in zip(np.asarray(xyz_voxels, float).reshape(-1, 3), labels):
        paint_ball(out, (z, y, x), radius_voxels[int(lbl)], int(lbl))
    return out


def picks_pair(tomogram, picks_path, n_classes: int, radii_angstrom: dict[int, float], *,
               voxel_size: float | None = None, class_label: int | None = None, patch: int | None = None,
               n_picks_files: int = 1, contrast: str = "dark") -> Pair:
    """A training :class:`Pair` from a tomogram and its picks (balls of the class radius); a
    ``bright`` tomogram is negated (models learn dark particles)."""
    data, voxel = read_mrc(tomogram)
    data = as_dark(data, contrast)
    picks = read_picks(picks_path, voxel_size=voxel if voxel_size is None else voxel_size)
    picks = picks_for(picks, tomogram, n_picks_files, picks_path)
    if len(picks) == 0:
        raise TemplearnError("no picks in this file: nothing to fine-tune on", picks_path)
    labels = np.full(len(picks), class_label) if class_label is not None else picks.label
    bad = sorted({int(lbl) for lbl in labels if not 1 <= lbl < n_classes})
    if bad:
        raise TemplearnError(f"pick class {bad[0]} is not one of the model's classes 1..{n_classes - 1} (use --class-label)", picks_path)
    xyz = picks.xyz_angstrom() / voxel          # picks' voxels -> this tomogram's voxels
    inside = np.all((xyz >= -0.5) & (xyz <= np.array(data.shape[::-1]) - 0.5), axis=1)
    if not inside.any():
        raise TemplearnError(f"no pick lies inside the tomogram {tomogram} ({data.shape[::-1]} voxels [x, y, z] of {voxel:g} Å; "
                             f"picks at {picks.voxel_size:g} Å/voxel)", picks_path)
    missing = [lbl for lbl in set(labels.tolist()) if lbl not in radii_angstrom]
    if missing:
        raise TemplearnError(f"no radius for class {missing[0]}: give --radius (Å)")
    radius_vox = {int(k): float(v) / voxel for k, v in radii_angstrom.items()}
    target = sphere_targets(xyz[inside], labels[inside], data.shape, radius_vox)
    return make_pair(data, target, voxel, tomogram=str(tomogram), targets=str(picks_path), patch=patch,
                     meta={"picks": str(picks_path), "n_picks": int(inside.sum())})


def run_finetune(weights: str | os.PathLike, tomograms: Sequence[str | os.PathLike], picks: Sequence[str | os.PathLike],
                 out: str | os.PathLike, *, radius: float | None = None, voxel_size: float | None = None,
                 class_label: int | None = None, val_tomograms: Sequence[str | os.PathLike] = (),
                 val_picks: Sequence[str | os.PathLike] = (), params: TrainParams | None = None,
                 contrast: str = "dark") -> dict[str, Path]:
    """Continue training ``weights`` on tomograms annotated by picks; write the same outputs as ``train``.

    ``radius`` (Å) defaults to the class radii in the model card (from the ``targets`` command).
    ``voxel_size`` (Å) is the picks' voxel size for formats that do not record it (DeepFinder
    XML); default: the tomogram's. ``contrast``: ``bright`` for inverted tomograms.
    """
    params = (params or finetune_params()).check()
    check_contrast(contrast)
    if not tomograms:
        raise TemplearnError("give at least one --tomogram/--picks pair")
    for what, t, p in (("", tomograms, picks), ("validation ", val_tomograms, val_picks)):
        if len(t) != len(p):
            raise TemplearnError(f"{len(t)} {what}tomograms but {len(p)} picks files: give them in pairs")
    model, card = dfcompat.load_network(weights)
    n_classes = int(card["n_classes"])
    names = {str(k): v for k, v in card["classes"].items()}
    if radius is not None:
        if not radius > 0:
            raise TemplearnError(f"radius must be positive (Å), got {radius}")
        radii = {c: float(radius) for c in range(1, n_classes)}
    else:
        by_name = card.get("class_radius_angstrom") or {}
        radii = {c: float(by_name[names[str(c)]]) for c in range(1, n_classes) if names.get(str(c)) in by_name}
    mk = lambda t, p: picks_pair(t, p, n_classes, radii, voxel_size=voxel_size, class_label=class_label,  # noqa: E731
                                 patch=params.patch, n_picks_files=len(picks), contrast=contrast)
    pairs = [mk(t, p) for t, p in zip(tomograms, picks)]
    val_pairs = [mk(t, p) for t, p in zip(val_tomograms, val_picks)]
    voxel = check_same_voxel_size(pairs + val_pairs)
    _check_card_voxel(card, voxel, weights)
    result = train(pairs, val_pairs, params, n_classes=n_classes, init_model=model, progress="fine-tuning")
    run_params = {**vars(params), "weights": str(weights), "tomograms": [str(t) for t in tomograms],
                  "picks": [str(p) for p in picks], "val_tomograms": [str(t) for t in val_tomograms],
                  "val_picks": [str(p) for p in val_picks], "radius": radius, "voxel_size": voxel_size,
                  "class_label": class_label, "contrast": contrast}
    radii_by_name = {names.get(str(c), f"class{c}"): r for c, r in radii.items()}
    # Cluster with the bandwidth the model was calibrated with before, so picking stays consistent.
    before = (card.get("calibration") or {}).get("classes") or {}
    radii_vox = {c: float(before[str(c)]["radius_voxels"]) if str(c) in before else calibrate.cluster_radii(None, names, radii_by_name, voxel)[c]
                 for c in range(1, n_classes)}
    extra = {"finetuned_from": {"weights": str(weights), "card": card.get("training_data")},
             "calibration": calibrate.for_card(result.model, pairs, val_pairs, radii_vox)}
    return write_outputs(out, result, pairs, val_pairs, names, radii_by_name, voxel, "finetune", run_params,
                         init_weights=str(weights), extra_card=extra)
