"""Figures people look at: picks on tomogram slices, precision/recall against threshold (the
paper's Fig. 4), per-tomogram F1 box plots, and found vs missed orientations."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    from templearn.atomic import save_figure

    save_figure(fig, path, dpi=110, bbox_inches="tight")


def marks_on_slices(path: str | os.PathLike, tomogram: np.ndarray, groups: list[dict], radius: float,
                    n_slices: int = 4, title: str = "") -> Path:
    """Four z slices of ``tomogram`` ``[z, y, x]`` with points drawn as circles (size shrinking with
    distance to the slice). ``groups``: dicts with ``xyz`` ``(n, 3)`` voxels, ``label`` (legend),
    ``color`` (one, or one per point) and optional ``ls`` (line style)."""
    from scipy.ndimage import gaussian_filter

    plt = _plt()
    nz = tomogram.shape[0]
    zs = np.unique(np.linspace(nz * 0.2, nz * 0.8, n_slices).round().astype(int).clip(0, nz - 1))
    fig, axes = plt.subplots(1, len(zs), figsize=(4.2 * len(zs), 4.6), squeeze=False)
    for ax, z in zip(axes[0], zs):
        # A 3-slice slab, lightly smoothed: particles are visible where single voxels are noise.
        img = gaussian_filter(tomogram[max(0, z - 1): z + 2].mean(0), 1.0)
        lo, hi = np.percentile(img, [1, 99])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower")
        counts = []
        for g in groups:
            xyz = np.asarray(g["xyz"], float).reshape(-1, 3)
            c_all = g["color"] if isinstance(g["color"], (list, tuple)) else [g["color"]] * len(xyz)
            dz = np.abs(xyz[:, 2] - z)
            near = dz < radius
            for (x, y, _), c, d in zip(xyz[near], [c_all[i] for i in np.nonzero(near)[0]], dz[near]):
                r = np.sqrt(max(radius ** 2 - d ** 2, 1.0))
                ax.add_patch(plt.Circle((x, y), r, fill=False, lw=1.2, color=c, ls=g.get("ls", "-")))
            counts.append(f"{int(near.sum())} {g['label']}")
        ax.set_title(f"z = {z}: " + ", ".join(counts), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)
    return Path(path)


def picks_on_slices(path: str | os.PathLike, tomogram: np.ndarray, xyz: np.ndarray, label: np.ndarray,
                    radius: float, n_slices: int = 4, title: str = "", rejected: np.ndarray | None = None) -> Path:
    """Picks (``xyz`` voxels) coloured by class; ``rejected`` candidates dashed in grey."""
    plt = _plt()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups = [{"xyz": xyz, "label": "picks", "color": [colors[(int(k) - 1) % len(colors)] for k in label] or "C0"}]
    if rejected is not None:
        groups.append({"xyz": rejected, "label": "rejected", "color": "0.6", "ls": "--"})
    return marks_on_slices(path, tomogram, groups, radius, n_slices, title)


def truth_on_slices(path: str | os.PathLike, tomogram: np.ndarray, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray,
                    radius: float, title: str = "") -> Path:
    """True positives (green), false positives (red) and missed particles (yellow, dashed)."""
    return marks_on_slices(path, tomogram, [
        {"xyz": tp, "label": "true", "color": "tab:green"},
        {"xyz": fp, "label": "false", "color": "tab:red"},
        {"xyz": fn, "label": "missed", "color": "gold", "ls": "--"}], radius, title=title)


def score_histogram(path: str | os.PathLike, scores: dict[str, np.ndarray], cuts: dict[str, float], xlabel: str,
                    title: str = "") -> Path:
    """Histogram of candidate scores per class with the cut drawn: what a user without truth
    chooses a threshold by (particles form a mode apart from the many small specks)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, (name, v) in enumerate(scores.items()):
        v = np.asarray(v, float)
        if len(v):
            pos = v[v > 0]
            log = len(pos) == len(v) and pos.max() / pos.min() > 30
            bins = np.geomspace(pos.min(), pos.max(), 40) if log else 40
            ax.hist(v, bins=bins, alpha=0.6, color=f"C{i}", label=f"{name} ({len(v)} candidates)")
            if log:
                ax.set_xscale("log")
        if name in cuts:
            ax.axvline(cuts[name], color=f"C{i}", ls="--", lw=1.5, label=f"cut {cuts[name]:.3g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("candidates")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    _save(fig, path)
    return Path(path)


def pr_curves(path, methods: dict[str, dict]) -> None:
    """Precision and recall (and F1) against the score threshold, one panel per method; a dashed
    line at the best threshold."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(methods), figsize=(5.2 * len(methods), 4), squeeze=False)
    for ax, (name, rep) in zip(axes[0], methods.items()):
        th = np.asarray(rep["thresholds"])
        o = rep["overall"]
        ax.plot(th, o["precision"], label="precision", lw=1.8)
        ax.plot(th, o["recall"], label="recall", lw=1.8)
        ax.plot(th, o["f1"], label="F1", lw=1.2, ls=":", color="k")
        ax.axvline(rep["best"]["threshold"], ls="--", color="gray", lw=1, label="best (needs truth)")
        aw = rep.get("as_written") or {}
        if aw.get("cut") is not None:
            ax.axvline(aw["cut"], ls="-", color="tab:red", lw=1.2, label="default cut")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("score threshold (cluster size, voxels)" if name != "template matching" else "score threshold (NCC)")
        ax.set_title(f"{name}: F1 as written {aw.get('f1', float('nan')):.2f}; "
                     f"best {rep['best']['f1']:.2f} at {rep['best']['threshold']:.3g}", fontsize=9)
        ax.legend(fontsize=8, loc="best")
    _save(fig, path)


def f1_boxes(path, methods: dict[str, dict]) -> None:
    """Box plot of the per-tomogram F1 at each method's best threshold, points overlaid."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(methods), 4))
    data = [rep["best"]["f1_per_tomogram"] for rep in methods.values()]
    ax.boxplot(data, widths=0.5)
    ax.set_xticks(range(1, len(methods) + 1), list(methods))
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    for i, vals in enumerate(data, 1):
        ax.scatter(i + rng.uniform(-0.08, 0.08, len(vals)), vals, s=14, zorder=3)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("F1 per tomogram")
    _save(fig, path)


def orientations(path, methods: dict[str, dict]) -> None:
    """Recall against |cos| of the beam in the template frame (left) and the viewing directions
    of found and missed particles (right, per method)."""
    plt = _plt()
    with_orient = {k: v["orientation"] for k, v in methods.items() if "orientation" in v}
    if not with_orient:
        return
    fig, axes = plt.subplots(1, 1 + len(with_orient), figsize=(4.6 * (1 + len(with_orient)), 4), squeeze=False)
    ax = axes[0, 0]
    for name, o in with_orient.items():
        edges = np.asarray(o["abs_cos_edges"])
        centers = 0.5 * (edges[1:] + edges[:-1])
        rec = [np.nan if v is None else v for v in o["recall"]]
        ax.plot(centers, rec, marker="o", label=name)
    ax.set_xlabel("|cos| (beam, template z)   0 = side view, 1 = top view")
    ax.set_ylabel("recall")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    from templearn.euler import viewing_direction

    for ax, (name, o) in zip(axes[0, 1:], with_orient.items()):
        for key, style in (("euler_missed", dict(color="tab:red", marker="x", label="missed")),
                           ("euler_found", dict(color="tab:green", marker="o", label="found"))):
            e = np.asarray(o[key]).reshape(-1, 3)
            if len(e):
                v = viewing_direction(e)
                v = v * np.where(v[:, 2:] < 0, -1, 1)  # fold onto the upper hemisphere
                ax.scatter(np.degrees(np.arctan2(v[:, 1], v[:, 0])), v[:, 2], s=10, alpha=0.7, **style)
        ax.set_xlabel("azimuth of the beam in the template frame (°)")
        ax.set_ylabel("|cos| polar angle")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8)
    _save(fig, path)


def spectra(path, freq: np.ndarray, curves: dict[str, np.ndarray]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, c in curves.items():
        ax.semilogy(freq, c, label=name)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("radial amplitude")
    ax.legend(fontsize=8)
    _save(fig, path)
