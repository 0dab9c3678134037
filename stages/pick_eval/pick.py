"""``pick``: segment a tomogram with a trained model, cluster, threshold, write picks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from templearn.contrast import as_dark, check_contrast
from templearn.errors import TemplearnError

from templearn.cluster import DEFAULT_RADIUS, Clusters, check_method, cluster_labelmap

from . import segment as seg



def fallback_min_size(radius: float) -> int:
    """For a model card without calibration (older models): 10% of the volume of a sphere of the
    clustering radius, which drops specks of noise while keeping partly segmented particles."""
    return max(1, int(round(0.1 * 4.0 / 3.0 * np.pi * radius ** 3)))


def calibrated(card: dict) -> dict[int, dict]:
    """The card's per-class cluster-size calibration (see deepfinder_train.calibrate), by label."""
    return {int(k): v for k, v in ((card.get("calibration") or {}).get("classes") or {}).items()}


def default_radii(card: dict, n_classes: int) -> dict[int, float]:
    """The bandwidth the model was calibrated with, else DEFAULT_RADIUS."""
    cal = calibrated(card)
    return {k: float(cal[k]["radius_voxels"]) if k in cal else DEFAULT_RADIUS for k in range(1, n_classes)}


def cuts_for(clusters: Clusters, card: dict, radii: dict[int, float], min_size: int | None,
             n_particles: int | None) -> tuple[dict[int, float], dict[int, str]]:
    """Cluster-size cut per class and how it was chosen: ``min_size`` by hand, else the
    ``n_particles`` largest clusters of each class, else the card's calibrated default."""
    cal = calibrated(card)
    cuts, rules = {}, {}
    for k, r in radii.items():
        if min_size is not None:
            cuts[k], rules[k] = float(min_size), "--min-size"
        elif n_particles is not None:
            size = np.sort(clusters.size[clusters.label == k])[::-1]
            cuts[k] = float(size[n_particles - 1]) if len(size) >= n_particles else 0.0
            rules[k] = f"the {n_particles} largest clusters (--n-particles)"
        elif cal.get(k, {}).get("default_min_size"):
            cuts[k], rules[k] = float(cal[k]["default_min_size"]), "model card: " + cal[k]["rule"]
        else:
            cuts[k], rules[k] = float(fallback_min_size(r)), "10% of a sphere of the radius (no calibration in the model card)"
    return cuts, rules


def radii_for(radius: list[float] | float, n_classes: int) -> dict[int, float]:
    """One radius for every class, or one per class 1..K in order."""
    r = [radius] if np.isscalar(radius) else list(radius)
    if len(r) == 1:
        r = r * (n_classes - 1)
    if len(r) != n_classes - 1:
        raise TemplearnError(f"--radius gives {len(r)} values; give one, or one per class ({n_classes - 1})")
    if min(r) <= 0:
        raise TemplearnError(f"--radius must be positive, got {min(r)}")
    return {i + 1: float(v) for i, v in enumerate(r)}


CANDIDATES = "candidates.csv"  # every cluster or peak, with the accepted flag (pick and match)


def clusters_to_picks(clusters: Clusters, voxel_size: float, tomogram: str, names: dict[int, str]):
    from templearn.picks import Picks

    return Picks(clusters.xyz, voxel_size, np.full(len(clusters), tomogram), clusters.label,
                 clusters.size.astype(float), None, dict(names))


def run_pick(
    tomogram: str | os.PathLike,
    weights: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    radius: list[float] | float | None = None,
    min_size: int | None = None,
    n_particles: int | None = None,
    mask: str | os.PathLike | None = None,
    patch: int | None = None,
    crop: int = seg.DEFAULT_CROP,
    overlap: int = seg.DEFAULT_OVERLAP,
    class_names: list[str] | None = None,
    star_format: str = "relion5",
    copick=None,
    clustering: str = "grid",
    contrast: str = "dark",
) -> dict:
    """Segment ``tomogram`` with the model ``weights``, cluster each class (MeanShift, bandwidth
    ``radius`` voxels, default the model card's), accept clusters at or above a size cut: ``min_size``
    voxels by hand, the ``n_particles`` largest per class, or by default the cut the model card
    derives from validation (:func:`cuts_for`).

    Writes into ``out_dir``: the accepted picks (:func:`.outputs.write_all`: STAR as
    ``star_format``, CSV, XML, Dynamo, IMOD, copick); ``candidates.csv`` (every cluster, score =
    size, ``accepted`` 1/0, so the cut can be moved and ``evaluate`` can sweep it);
    ``segmentation.mrc`` (label map, int8); ``picks.png`` (accepted and rejected on slices),
    ``cluster_sizes.png`` (histogram with the cut) and ``provenance.json``. Returns a summary
    (counts per class). ``copick`` (a :class:`templearn.copick_io.CopickTarget`, with ``tomogram``
    None): the tomogram comes from a copick project and the picks go into it too. ``contrast``
    ``bright``: the tomogram is inverted (particles brighter than the solvent); it is negated
    before segmentation, since models learn dark particles as reconstructions show them.
    """
    from templearn import copick_io, provenance
    from templearn.mrc import write_mrc
    from templearn.picks import write_picks
    from templearn.star import check_format as check_star_format

    from . import inputs, outputs, plots

    check_method(clustering)  # before minutes of segmentation
    check_contrast(contrast)
    weights, out_dir = Path(weights), Path(out_dir)
    check_star_format(star_format)
    volume, voxel, name, tomogram = inputs.read_tomogram(tomogram, copick)
    seg.check_tomogram(volume, tomogram)
    volume = as_dark(volume, contrast)
    mask_arr = seg.read_mask(mask, volume.shape) if mask is not None else None
    model, card = seg.load_model(weights, patch)
    seg.check_voxel_size(voxel, card, tomogram, weights)
    n_classes = int(card["n_classes"])
    names = seg.class_names(card, class_names, n_classes, weights)
    radii = default_radii(card, n_classes) if radius is None or (not np.isscalar(radius) and not len(radius)) \
        else radii_for(radius, n_classes)
    if copick is not None:
        copick_io.object_names(copick, names)
    if min_size is not None and min_size < 0:
        raise TemplearnError(f"--min-size must be >= 0, got {min_size}")
    if n_particles is not None and n_particles < 1:
        raise TemplearnError(f"--n-particles must be >= 1, got {n_particles}")

    labels = seg.segment_labels(model, volume, patch, crop, overlap, mask_arr)
    clusters = cluster_labelmap(labels, radii, method=clustering)
    every = clusters_to_picks(clusters, voxel, name, names)
    cuts, rules = cuts_for(clusters, card, radii, min_size, n_particles)
    every.accepted = every.score >= np.array([cuts[int(k)] for k in every.label]) if len(every) else np.zeros(0, bool)
    kept = every.written()

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_mrc(out_dir / "segmentation.mrc", labels, voxel, dtype=np.int8,
                         label=f"templearn pick-eval labels of {name}")]
    written.append(write_picks(out_dir / CANDIDATES, every))
    written += outputs.write_all(out_dir, kept, shape=volume.shape, star_format=star_format)
    if copick is not None:
        written += outputs.write_copick(copick, kept)
    cut_text = ", ".join(f"{names[k]} >= {cuts[k]:g}" for k in cuts)
    written.append(plots.picks_on_slices(out_dir / "picks.png", volume, kept.xyz, kept.label, max(radii.values()),
                                         title=f"{name}: {len(kept)} picks (clusters {cut_text} voxels; rejected dashed)",
                                         rejected=every.select(~every.accepted).xyz))
    written.append(plots.score_histogram(
        out_dir / "cluster_sizes.png", {names[k]: every.score[every.label == k] for k in cuts},
        {names[k]: cuts[k] for k in cuts}, "cluster size (voxels)", f"{name}: clusters and the cut"))
    summary = {
        "tomogram": str(tomogram), "voxel_size": voxel, "n_clusters": len(clusters), "n_picks": len(kept),
        "per_class": {names[k]: int(np.sum(kept.label == k)) for k in names},
        "cut": {names[k]: cuts[k] for k in cuts}, "cut_rule": {names[k]: rules[k] for k in rules}, "radius": radii,
    }
    provenance.record(out_dir, "pick-eval pick",
                      {"radius": radii, "min_size": min_size, "n_particles": n_particles, "cut": cuts,
                       "mask": mask, "patch": patch or card.get("patch"),
                       "crop": crop, "overlap": overlap, "class_names": names, "star_format": star_format,
                       "copick": copick.as_dict() if copick else None,
                       "clustering": clustering, "contrast": contrast},
                      inputs=[tomogram, weights] + ([Path(mask)] if mask else []) + ([copick.config] if copick else []),
                      outputs=written,
                      extra={"summary": summary})
    return summary
