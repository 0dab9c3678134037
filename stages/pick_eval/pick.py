"""``pick``: segment a tomogram with a trained model, cluster, threshold, write picks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from templearn.errors import TemplearnError

from . import segment as seg
from templearn.cluster import Clusters, cluster_labelmap

DEFAULT_RADIUS = 10.0  # voxels: the paper's ribosome value (6 for nucleosomes)


def default_min_size(radius: float) -> int:
    """10% of the volume of a sphere of the clustering radius: drops specks of noise while keeping
    partly segmented particles; ``evaluate`` sweeps the threshold anyway (clusters.csv)."""
    return max(1, int(round(0.1 * 4.0 / 3.0 * np.pi * radius ** 3)))


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


def clusters_to_picks(clusters: Clusters, voxel_size: float, tomogram: str, names: dict[int, str]):
    from templearn.picks import Picks

    return Picks(clusters.xyz, voxel_size, np.full(len(clusters), tomogram), clusters.label,
                 clusters.size.astype(float), None, dict(names))


def run_pick(
    tomogram: str | os.PathLike,
    weights: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    radius: list[float] | float = DEFAULT_RADIUS,
    min_size: int | None = None,
    mask: str | os.PathLike | None = None,
    patch: int | None = None,
    crop: int = seg.DEFAULT_CROP,
    overlap: int = seg.DEFAULT_OVERLAP,
    class_names: list[str] | None = None,
    star_format: str = "relion5",
    copick=None,
) -> dict:
    """Segment ``tomogram`` with the model ``weights``, cluster each class (MeanShift, bandwidth
    ``radius`` voxels), keep clusters of at least ``min_size`` voxels.

    Writes into ``out_dir``: the picks (:func:`.outputs.write_all`: STAR as ``star_format``, CSV,
    XML, Dynamo, IMOD, copick),
    ``clusters.csv`` (every cluster, score = size, for ``evaluate``), ``segmentation.mrc`` (label
    map, int8), ``picks.png`` and ``provenance.json``. Returns a summary (counts per class).
    ``copick`` (a :class:`templearn.copick_io.CopickTarget`, with ``tomogram`` None): the tomogram
    comes from a copick project and the picks go into it too.
    """
    from templearn import copick_io, provenance
    from templearn.mrc import write_mrc
    from templearn.picks import write_picks
    from templearn.star import check_format as check_star_format

    from . import inputs, outputs, plots

    weights, out_dir = Path(weights), Path(out_dir)
    check_star_format(star_format)
    volume, voxel, name, tomogram = inputs.read_tomogram(tomogram, copick)
    seg.check_tomogram(volume, tomogram)
    mask_arr = seg.read_mask(mask, volume.shape) if mask is not None else None
    model, card = seg.load_model(weights, patch)
    seg.check_voxel_size(voxel, card, tomogram, weights)
    n_classes = int(card["n_classes"])
    names = seg.class_names(card, class_names, n_classes, weights)
    radii = radii_for(radius, n_classes)
    if copick is not None:
        copick_io.object_names(copick, names)
    if min_size is None:
        min_size = default_min_size(min(radii.values()))
    if min_size < 0:
        raise TemplearnError(f"--min-size must be >= 0, got {min_size}")

    labels = seg.segment_labels(model, volume, patch, crop, overlap, mask_arr)
    clusters = cluster_labelmap(labels, radii)
    every = clusters_to_picks(clusters, voxel, name, names)
    kept = every.select(every.score >= min_size)

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_mrc(out_dir / "segmentation.mrc", labels, voxel, dtype=np.int8,
                         label=f"templearn pick-eval labels of {name}")]
    written.append(write_picks(out_dir / "clusters.csv", every))
    written += outputs.write_all(out_dir, kept, shape=volume.shape, star_format=star_format)
    if copick is not None:
        written += outputs.write_copick(copick, kept)
    png = out_dir / "picks.png"
    plots.picks_on_slices(png, volume, kept.xyz, kept.label, max(radii.values()),
                          title=f"{name}: {len(kept)} picks (clusters >= {min_size} voxels)")
    written.append(png)
    summary = {
        "tomogram": str(tomogram), "voxel_size": voxel, "n_clusters": len(clusters), "n_picks": len(kept),
        "per_class": {names[k]: int(np.sum(kept.label == k)) for k in names},
        "min_size": int(min_size), "radius": radii,
    }
    provenance.record(out_dir, "pick-eval pick",
                      {"radius": radii, "min_size": min_size, "mask": mask, "patch": patch or card.get("patch"),
                       "crop": crop, "overlap": overlap, "class_names": names, "star_format": star_format,
                       "copick": copick.as_dict() if copick else None},
                      inputs=[tomogram, weights] + ([Path(mask)] if mask else []) + ([copick.config] if copick else []),
                      outputs=written,
                      extra={"summary": summary})
    return summary
