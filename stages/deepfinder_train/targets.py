"""Training targets from a sample manifest: a label map at the tomogram's voxel size.

``shape`` mode (the paper's default) draws each placed target with its own shape, rotated and
positioned as the manifest says (:func:`templearn.density.render_instances`: the rotated
density map cut to the molecular volume, mass x 1.21 Å³/Da). ``sphere`` mode (the paper's choice
for shell-like targets such as FAS) draws a ball of ``radius`` Å at each target's position;
without ``radius`` each structure gets the radius of a ball of its molecular volume.

Labels: 0 background, 1..K the target classes in the order of ``--target`` (default: the
manifest's ``targets``); distractors stay 0. Where two targets overlap the later instance wins.
Positions are Å in the sample frame; voxel ``k`` of the tomogram is centred at ``k * voxel`` Å
(templearn's geometry), so no offset is applied.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from templearn import provenance
from templearn.atomic import write_json, save_figure
from templearn.density import VOLUME_PER_DALTON
from templearn.errors import TemplearnError
from templearn.manifest import Manifest
from templearn.mrc import read_mrc, write_mrc



def paint_ball(volume: np.ndarray, center_zyx, radius: float, value: int) -> None:
    """Set the voxels of ``volume`` within ``radius`` (voxels) of ``center_zyx`` to ``value``, in place."""
    c = np.asarray(center_zyx, float)
    lo = np.maximum(np.floor(c - radius).astype(int), 0)
    hi = np.minimum(np.ceil(c + radius).astype(int) + 1, volume.shape)
    if np.any(hi <= lo):
        return
    zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    ball = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= radius * radius
    volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][ball] = value

def equivalent_radius(mass_kda: float) -> float:
    """Radius (Å) of a ball with the molecular volume of ``mass_kda`` (1.21 Å³ per dalton)."""
    return float((3 * mass_kda * 1000 * VOLUME_PER_DALTON / (4 * np.pi)) ** (1 / 3))


def _mass_kda(manifest: Manifest, name: str, search) -> float:
    entry = manifest.structures[name]
    if entry.mass_kda:
        return float(entry.mass_kda)
    from templearn.structures import load_atoms

    return load_atoms(manifest.structure_path(name, search)).mass_kda()


def choose_targets(manifest: Manifest, names: Sequence[str] | None) -> list[str]:
    names = list(names) if names else list(manifest.targets)
    if not names:
        raise TemplearnError("the sample has no target class (its 'targets' list is empty)", manifest.path)
    unknown = [n for n in names if n not in manifest.targets]
    if unknown:
        raise TemplearnError(f"target {unknown[0]!r} is not in this sample (it has {', '.join(manifest.targets)})", manifest.path)
    if len(set(names)) != len(names):
        raise TemplearnError(f"a target is named twice in {names}")
    return names


def sphere_labels(manifest: Manifest, classes: list[str], shape_zyx, voxel_size: float, radius: float | None,
                  search=()) -> tuple[np.ndarray, dict[str, float]]:
    """Balls at the targets' positions: int8 ``[z, y, x]`` labels and the radius used per class (Å)."""
    labels = np.zeros(tuple(shape_zyx), np.int8)
    radii: dict[str, list[float]] = {c: [] for c in classes}
    for inst in manifest.instances:
        entry = manifest.structures[inst.structure]
        if entry.cls != "target" or entry.target not in classes:
            continue
        r = float(radius) if radius is not None else equivalent_radius(_mass_kda(manifest, inst.structure, search))
        radii[entry.target].append(r)
        c = np.asarray(inst.position, float)[::-1] / voxel_size    # [z, y, x] voxels
        rv = r / voxel_size
        paint_ball(labels, c, rv, classes.index(entry.target) + 1)
    return labels, {c: float(np.mean(v)) for c, v in radii.items() if v}


def shape_labels(manifest: Manifest, classes: list[str], shape_zyx, voxel_size: float, search=(),
                 resolution: float | None = None, mask_threshold: float | None = None,
                 ) -> tuple[np.ndarray, dict[str, float]]:
    """Shape masks of the targets: int8 ``[z, y, x]`` labels and each class's mean equivalent radius (Å)."""
    from templearn.density import render_instances

    inst_map = render_instances(manifest, voxel_size, shape_zyx, what="instances", structures_search=search,
                                resolution=resolution, mask_threshold=mask_threshold, classes=classes)
    lut = np.zeros(max((i.id for i in manifest.instances), default=0) + 1, np.int8)
    radii: dict[str, list[float]] = {c: [] for c in classes}
    for inst in manifest.instances:
        entry = manifest.structures[inst.structure]
        if entry.cls == "target" and entry.target in classes:
            lut[inst.id] = classes.index(entry.target) + 1
    labels = lut[inst_map]
    # Radius of the ball with each class's mean mask volume: the default sphere radius for fine-tuning.
    ids, counts = np.unique(inst_map[inst_map > 0], return_counts=True)
    for i, n in zip(ids, counts):
        name = classes[lut[i] - 1]
        radii[name].append((3 * n * voxel_size ** 3 / (4 * np.pi)) ** (1 / 3))
    return labels, {c: float(np.mean(v)) for c, v in radii.items() if v}


def make_targets(manifest: Manifest, shape_zyx, voxel_size: float, *, mode: Literal["shape", "sphere"] = "shape",
                 radius: float | None = None, targets: Sequence[str] | None = None, search=(),
                 resolution: float | None = None, mask_threshold: float | None = None,
                 ) -> tuple[np.ndarray, list[str], dict[str, float]]:
    """The label map ``[z, y, x]`` int8 for a ``shape_zyx`` tomogram of ``voxel_size`` Å.

    Returns ``(labels, class names for labels 1..K, radius per class in Å)``.
    """
    if mode not in ("shape", "sphere"):
        raise TemplearnError(f"mode must be 'shape' or 'sphere', got {mode!r}")
    if radius is not None and not radius > 0:
        raise TemplearnError(f"radius must be positive (Å), got {radius}")
    classes = choose_targets(manifest, targets)
    if mode == "sphere":
        labels, radii = sphere_labels(manifest, classes, shape_zyx, voxel_size, radius, search)
    else:
        labels, radii = shape_labels(manifest, classes, shape_zyx, voxel_size, search, resolution, mask_threshold)
    if not np.any(labels):
        raise TemplearnError(f"no target of {classes} lies inside the tomogram ({tuple(shape_zyx)} voxels of {voxel_size:g} Å)",
                             manifest.path)
    return labels, classes, radii


def plot_targets(path: str | os.PathLike, tomogram: np.ndarray, labels: np.ndarray, classes: list[str], title: str) -> Path:
    """Central z slice of the tomogram with the labels drawn over it, and the labels projected along z."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    k = len(classes)
    colors = plt.get_cmap("tab10")(np.arange(k) % 10)
    cmap = ListedColormap(colors)
    z = labels.shape[0] // 2
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5), constrained_layout=True)
    lo, hi = np.percentile(tomogram[z], [1, 99])
    axes[0].imshow(tomogram[z], cmap="gray", vmin=lo, vmax=hi, origin="lower")
    over = np.ma.masked_equal(labels[z], 0)
    axes[0].imshow(over - 1, cmap=cmap, vmin=-0.5, vmax=k - 0.5, alpha=0.45, origin="lower", interpolation="nearest")
    axes[0].set_title(f"tomogram slice z={z} with targets")
    proj = labels.max(axis=0)
    axes[1].imshow(np.ma.masked_equal(proj, 0) - 1, cmap=cmap, vmin=-0.5, vmax=k - 0.5, origin="lower", interpolation="nearest")
    axes[1].set_title("targets, maximum along z")
    axes[1].set_facecolor("black")
    for a in axes:
        a.set_xlabel("x (voxels)")
        a.set_ylabel("y (voxels)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[i]) for i in range(k)]
    axes[1].legend(handles, [f"{i + 1}: {c}" for i, c in enumerate(classes)], loc="upper right", fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path, dpi=90)
    return Path(path)


def run_targets(sample: str | os.PathLike, tomogram: str | os.PathLike, out: str | os.PathLike, *,
                mode: Literal["shape", "sphere"] = "shape", radius: float | None = None,
                structures: Sequence[str | os.PathLike] = (), targets: Sequence[str] | None = None,
                resolution: float | None = None, mask_threshold: float | None = None) -> dict[str, Path]:
    """``out/targets.mrc`` (int8 labels at the tomogram's voxel size), ``targets.json`` (class names and
    radii, read by ``train``), ``targets.png`` and ``provenance.json``."""
    manifest = Manifest.read(sample)
    data, voxel = read_mrc(tomogram)
    labels, classes, radii = make_targets(manifest, data.shape, voxel, mode=mode, radius=radius, targets=targets,
                                          search=structures, resolution=resolution, mask_threshold=mask_threshold)
    out = Path(out)
    counts = {c: int(np.sum(labels == i + 1)) for i, c in enumerate(classes)}
    files = {"targets": write_mrc(out / "targets.mrc", labels, voxel, dtype=np.int8, label=f"templearn targets {mode}")}
    files["meta"] = write_json(out / "targets.json", {
        "format": "templearn.targets", "version": 1, "sample": manifest.name, "mode": mode, "voxel_size": voxel,
        "shape_zyx": list(labels.shape), "classes": {"0": "background", **{str(i + 1): c for i, c in enumerate(classes)}},
        "radius_angstrom": radii, "voxels": counts,
        # particles per class (labelled voxels / instances = one particle's label, for calibration)
        "instances": {c: int(len(manifest.positions("target", c))) for c in classes},
        # their centres, [x, y, z] voxels: the truth calibration matches clusters to (label
        # components merge touching particles)
        "positions_voxels": {c: np.round(manifest.positions("target", c) / voxel, 2).tolist() for c in classes},
    })
    files["png"] = plot_targets(out / "targets.png", data, labels, classes, f"{manifest.name}: {mode} targets at {voxel:g} Å")
    params = {"sample": str(sample), "tomogram": str(tomogram), "mode": mode, "radius": radius,
              "structures": [str(s) for s in structures], "targets": classes, "resolution": resolution,
              "mask_threshold": mask_threshold}
    files["provenance"] = provenance.record(out, "deepfinder-train targets", params, seed=manifest.seed,
                                            inputs=[sample, tomogram], outputs=[files["targets"], files["meta"], files["png"]])
    return files
