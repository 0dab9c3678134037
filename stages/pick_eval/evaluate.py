"""Evaluation of picks against annotations: precision, recall and F1 over the score threshold.

Inputs come in pairs, one tomogram each: picks (any :mod:`templearn.picks` format; the score is
the cluster size for segmentation picks, the NCC for template matching) and the truth, either a
tetris ``sample.json`` (its instances of the target class, positions in Å, with orientations) or
another picks file. Picks with ``score >= threshold`` are kept; for every threshold, picks are
matched one-to-one to true particles within the matching distance (:mod:`.matching`), counts are
summed over tomograms, and the best threshold is the one of highest overall F1 (the paper's
Fig. 4). With orientations known, the recall is also given against the viewing direction, the
paper's argument that picking by segmentation is isotropic where template matching is not.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from templearn.density import sphere_radius
from templearn.errors import TemplearnError
from templearn.manifest import Manifest
from templearn.euler import viewing_direction
from templearn.picks import Picks, read_picks

from templearn.matching import match, prf

MAX_THRESHOLDS = 200
ORIENTATION_BINS = 5


@dataclass
class Truth:
    """True particles of one tomogram: ``xyz`` ``(n, 3)`` Å; ``euler`` ``(n, 3)`` degrees or None;
    ``box`` the volume's extent ``[x, y, z]`` in Å (None when unknown); ``radius`` Å or None."""

    path: Path
    xyz: np.ndarray
    euler: np.ndarray | None
    box: np.ndarray | None
    voxel_size: float | None
    target: str | None
    radius: float | None
    label: int | None


@dataclass
class TomogramData:
    picks_path: Path
    picks: Picks          # of the target class only
    truth: Truth


def load_truth(path: str | os.PathLike, target: str | None = None, voxel_size: float | None = None,
               copick=None) -> Truth:
    """Read the truth: a tetris sample manifest (``*.json`` with ``format: templearn.sample``) or picks;
    with ``copick`` (a :class:`templearn.copick_io.CopickPicksSource`), ``path`` names a run of
    the project and its picks of ``target`` are the truth."""
    if copick is not None:
        picks = copick.read(str(path), target, voxel_size)
        return Truth(Path(str(path)), picks.xyz_angstrom(), picks.euler, None, picks.voxel_size,
                     target or picks.class_name(1), None, None)
    path = Path(path)
    if not path.is_file():
        raise TemplearnError("no such truth file", path)
    if path.suffix == ".json" and _is_manifest(path):
        m = Manifest.read(path)
        if not m.targets:
            raise TemplearnError("the sample has no target class, so nothing to find", path)
        if target is None:
            if len(m.targets) > 1:
                raise TemplearnError(f"the sample has several targets {m.targets}: choose one with --target", path)
            target = m.targets[0]
        if target not in m.targets:
            raise TemplearnError(f"target {target!r} is not in the sample's targets {m.targets}", path)
        masses = [s.mass_kda for s in m.structures.values() if s.cls == "target" and s.target == target and s.mass_kda]
        radius = sphere_radius(float(np.mean(masses)) * 1000.0) if masses else None
        return Truth(path, m.positions("target", target), m.eulers("target", target), m.box_angstrom,
                     m.voxel_size, target, radius, m.targets.index(target) + 1)
    picks = read_picks(path, voxel_size)
    euler = picks.euler if picks.euler is not None and np.any(picks.euler) else None
    if target is not None:
        picks = _select_target(picks, target, None, path)
        euler = None if euler is None else picks.euler
    return Truth(path, picks.xyz_angstrom(), euler, None, picks.voxel_size, target, None, None)


def _is_manifest(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TemplearnError("not valid JSON", path) from None
    return isinstance(doc, dict) and doc.get("format") == "templearn.sample"


def _select_target(picks: Picks, target: str | None, label: int | None, path: Path) -> Picks:
    """The picks of the target class: by class name when the file has names, else by label."""
    if len(picks) == 0:
        return picks
    labels = np.unique(picks.label)
    if target is not None:
        named = [lab for lab, name in picks.class_names.items() if name == target]
        if named:
            return picks.select(np.isin(picks.label, named))
    if len(labels) == 1:
        return picks
    if label is not None:
        return picks.select(picks.label == label)
    raise TemplearnError(f"picks of several classes {labels.tolist()}: say which with --target", path)


def _check_inside(picks: Picks, truth: Truth, path: Path) -> None:
    if truth.box is None or len(picks) == 0:
        return
    half = 0.5 * (truth.voxel_size or 0.0)
    xyz = picks.xyz_angstrom()
    bad = np.nonzero(np.any((xyz < -half - 1e-6) | (xyz > truth.box - half + 1e-6), axis=1))[0]
    if len(bad):
        x, y, z = xyz[bad[0]]
        raise TemplearnError(
            f"{len(bad)} pick(s) outside the tomogram (first: [{x:.1f}, {y:.1f}, {z:.1f}] Å; the sample "
            f"spans [0, 0, 0]-{np.round(truth.box - 2 * half, 1).tolist()} Å): wrong voxel size or wrong pairing?",
            path,
        )


def load_pairs(picks_paths, truth_paths, target=None, voxel_size=None, masks=None, copick=None) -> list[TomogramData]:
    picks_paths = [Path(p) for p in picks_paths]
    truth_paths = [Path(p) for p in truth_paths]
    if not picks_paths:
        raise TemplearnError("give at least one --picks file")
    if len(picks_paths) != len(truth_paths):
        raise TemplearnError(f"--picks and --truth come in pairs: got {len(picks_paths)} picks files and {len(truth_paths)} truth files")
    if masks and len(masks) != len(truth_paths):
        raise TemplearnError(f"--mask pairs with --truth: got {len(masks)} masks and {len(truth_paths)} truth files")
    out = []
    for i, (pp, tp) in enumerate(zip(picks_paths, truth_paths)):
        truth = load_truth(tp, target, voxel_size, copick)
        picks = _read_picks_or_empty(pp, voxel_size, truth.voxel_size)
        picks = _select_target(picks, truth.target, truth.label, pp)
        _check_inside(picks, truth, pp)
        if masks:
            picks, truth = _within_mask(Path(masks[i]), picks, truth)
        out.append(TomogramData(pp, picks, truth))
    return out


def inside_mask(mask: np.ndarray, mask_voxel: float, xyz: np.ndarray) -> np.ndarray:
    """Which points (``(n, 3)`` Å, ``[x, y, z]``) fall on a non-zero voxel of ``mask`` ([z, y, x])."""
    idx = np.rint(np.asarray(xyz, float).reshape(-1, 3)[:, ::-1] / mask_voxel).astype(int)
    ok = np.all((idx >= 0) & (idx < np.array(mask.shape)), axis=1)
    keep = np.zeros(len(idx), bool)
    keep[ok] = mask[tuple(idx[ok].T)] != 0
    return keep


def _within_mask(path: Path, picks: Picks, truth: Truth) -> tuple[Picks, Truth]:
    """Picks and true particles inside the mask only (the paper's masked evaluation)."""
    from dataclasses import replace

    from templearn.mrc import read_mrc

    mask, voxel = read_mrc(path)
    if not np.any(mask):
        raise TemplearnError("mask is empty (all zero): nothing would be evaluated", path)
    extent = np.array(mask.shape[::-1], float) * voxel     # [x, y, z] Å; z may differ (slab thickness)
    if truth.box is not None and not np.allclose(extent[:2], truth.box[:2], atol=voxel):
        raise TemplearnError(f"mask spans {np.round(extent[:2], 1).tolist()} Å in x, y but the truth's volume "
                             f"spans {np.round(truth.box[:2], 1).tolist()} Å: a mask of another tomogram?", path)
    keep = inside_mask(mask, voxel, truth.xyz)
    truth = replace(truth, xyz=truth.xyz[keep], euler=None if truth.euler is None else truth.euler[keep])
    return picks.select(inside_mask(mask, voxel, picks.xyz_angstrom())), truth


def _read_picks_or_empty(path: Path, voxel_size: float | None, truth_voxel_size: float | None) -> Picks:
    """Picks; a file with no picks at all (which cannot record a voxel size) is read as empty."""
    try:
        return read_picks(path, voxel_size)
    except TemplearnError:
        if voxel_size is not None or truth_voxel_size is None:
            raise
        picks = read_picks(path, truth_voxel_size)
        if len(picks):
            raise
        return picks


def thresholds_for(scores: np.ndarray, max_n: int = MAX_THRESHOLDS) -> np.ndarray:
    """Thresholds to sweep: every distinct score, or ``max_n`` quantiles of them when there are more."""
    u = np.unique(np.asarray(scores, float))
    if len(u) == 0:
        return np.array([0.0])
    if len(u) > max_n:
        u = np.unique(np.quantile(u, np.linspace(0.0, 1.0, max_n), method="nearest"))
    return u


def sweep(data: list[TomogramData], distance: float, thresholds: np.ndarray) -> dict:
    """Counts ``tp, fp, fn`` of shape ``(n_tomograms, n_thresholds)`` and, per tomogram, the matched
    truth at each threshold (``found`` ``(n_thresholds, n_truth)`` bool)."""
    n_t, n_th = len(data), len(thresholds)
    tp = np.zeros((n_t, n_th), int)
    fp = np.zeros((n_t, n_th), int)
    fn = np.zeros((n_t, n_th), int)
    found = []
    for i, d in enumerate(data):
        xyz = d.picks.xyz_angstrom()
        f = np.zeros((n_th, len(d.truth.xyz)), bool)
        for j, th in enumerate(thresholds):
            keep = d.picks.score >= th
            m = match(xyz[keep], d.truth.xyz, distance)
            tp[i, j], fp[i, j], fn[i, j] = m.tp, m.fp, m.fn
            f[j, m.pairs[:, 1]] = True
        found.append(f)
    return {"tp": tp, "fp": fp, "fn": fn, "found": found}


def _rates(tp, fp, fn):
    arr = np.array([prf(a, b, c) for a, b, c in zip(np.ravel(tp), np.ravel(fp), np.ravel(fn))]).reshape(np.shape(tp) + (3,))
    return arr[..., 0], arr[..., 1], arr[..., 2]


def as_written(data: list[TomogramData], distance: float) -> dict:
    """Precision, recall and F1 of the picks as the picker wrote them (its own default cut, the
    ``accepted`` flag; all picks when the file has none): what a user without truth gets."""
    rows = []
    for d in data:
        kept = d.picks.written()
        m = match(kept.xyz_angstrom(), d.truth.xyz, distance)
        p, r, f = prf(m.tp, m.fp, m.fn)
        rows.append({"n_picks": len(kept), "tp": m.tp, "fp": m.fp, "fn": m.fn, "precision": p, "recall": r, "f1": f})
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    p, r, f = prf(tp, fp, fn)
    accepted = [d.picks.score[d.picks.accepted] for d in data if d.picks.accepted is not None]
    rejected = [d.picks.score[~d.picks.accepted] for d in data if d.picks.accepted is not None]
    cut = None  # the score cut the accepted flags amount to, when they are one threshold
    if accepted and any(len(a) for a in accepted):
        lo = float(min(a.min() for a in accepted if len(a)))
        hi = max((float(r.max()) for r in rejected if len(r)), default=-np.inf)
        cut = lo if hi < lo else None
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f, "cut": cut,
            "flagged": bool(accepted), "f1_per_tomogram": [row["f1"] for row in rows], "tomograms": rows}


def evaluate_method(data: list[TomogramData], distance: float) -> dict:
    """The report of one picking method: the picks as written, and curves per tomogram and overall
    over the score threshold with the best one (an upper bound: it is chosen with the truth)."""
    scores = np.concatenate([d.picks.score for d in data]) if data else np.zeros(0)
    th = thresholds_for(scores)
    s = sweep(data, distance, th)
    tp, fp, fn = s["tp"].sum(0), s["fp"].sum(0), s["fn"].sum(0)
    p, r, f = _rates(tp, fp, fn)
    best = int(np.argmax(f))  # first (lowest) threshold among ties: keeps the most picks
    pt, rt, ft = _rates(s["tp"], s["fp"], s["fn"])
    written = as_written(data, distance)
    tomograms = []
    for i, d in enumerate(data):
        own = int(np.argmax(ft[i]))
        tomograms.append({
            "picks": str(d.picks_path), "truth": str(d.truth.path), "n_truth": int(len(d.truth.xyz)),
            "n_picks": int(len(d.picks)), "as_written": written["tomograms"][i],
            "at_best": {"tp": int(s["tp"][i, best]), "fp": int(s["fp"][i, best]), "fn": int(s["fn"][i, best]),
                        "precision": float(pt[i, best]), "recall": float(rt[i, best]), "f1": float(ft[i, best])},
            "own_best": {"threshold": float(th[own]), "f1": float(ft[i, own])},
            "precision": pt[i].tolist(), "recall": rt[i].tolist(), "f1": ft[i].tolist(),
        })
    report = {
        "as_written": {k: v for k, v in written.items() if k != "tomograms"},
        "thresholds": th.tolist(),
        "overall": {"tp": tp.tolist(), "fp": fp.tolist(), "fn": fn.tolist(),
                    "precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist()},
        "best": {"threshold": float(th[best]), "precision": float(p[best]), "recall": float(r[best]),
                 "f1": float(f[best]), "tp": int(tp[best]), "fp": int(fp[best]), "fn": int(fn[best]),
                 "f1_per_tomogram": [float(v) for v in ft[:, best]]},
        "tomograms": tomograms,
    }
    orient = orientation_recall(data, [fd[best] for fd in s["found"]])
    if orient is not None:
        report["orientation"] = orient
    return report


def orientation_recall(data: list[TomogramData], found: list[np.ndarray]) -> dict | None:
    """Recall against ``|cos|`` of the angle between the beam and the template's z axis (bins equal
    in solid angle, so an isotropic picker has the same recall in every bin)."""
    eulers = [d.truth.euler for d in data]
    if any(e is None for e in eulers) or not data:
        return None
    e = np.concatenate(eulers)
    f = np.concatenate(found)
    if len(e) == 0:
        return None
    c = np.abs(viewing_direction(e)[:, 2])
    edges = np.linspace(0.0, 1.0, ORIENTATION_BINS + 1)
    idx = np.clip(np.digitize(c, edges) - 1, 0, ORIENTATION_BINS - 1)
    recall = [float(f[idx == b].mean()) if np.any(idx == b) else None for b in range(ORIENTATION_BINS)]
    counts = [int(np.sum(idx == b)) for b in range(ORIENTATION_BINS)]
    return {"abs_cos_edges": edges.tolist(), "recall": recall, "n_truth": counts,
            "euler_found": e[f].tolist(), "euler_missed": e[~f].tolist()}


def truth_picture(path: Path, tomogram: Path, volume: np.ndarray, voxel: float, d: TomogramData, distance: float,
                  method: str) -> Path:
    """Slices of ``volume`` (read from ``tomogram``) with the picks as written: true, false, and the
    particles missed."""
    from . import plots

    kept = d.picks.written()
    xyz = kept.xyz_angstrom()
    m = match(xyz, d.truth.xyz, distance)
    hit = np.zeros(len(xyz), bool)
    hit[m.pairs[:, 0]] = True
    found = np.zeros(len(d.truth.xyz), bool)
    found[m.pairs[:, 1]] = True
    p, r, f = prf(m.tp, m.fp, m.fn)
    return plots.truth_on_slices(path, volume, xyz[hit] / voxel, xyz[~hit] / voxel, d.truth.xyz[~found] / voxel,
                                 distance / voxel, title=f"{Path(tomogram).name}, {method}, picks as written: "
                                 f"{m.tp} true, {m.fp} false, {m.fn} missed (F1 {f:.2f})")


def default_distance(data: list[TomogramData], template=None) -> float:
    """The target's radius by its mass: from the truth's manifest, else from ``template`` (a
    structure of the target, for annotations that carry no masses)."""
    radii = [d.truth.radius for d in data if d.truth.radius]
    if not radii and template is not None:
        from templearn.structures import load_atoms, resolve

        return round(sphere_radius(1000.0 * load_atoms(resolve(template)).mass_kda()), 1)
    if not radii:
        raise TemplearnError(
            "no matching distance: give --distance (Å) or --template (a structure of the target); it defaults "
            "to the target's radius only when the truth is a sample manifest that records its mass",
            data[0].truth.path if data else None)
    return float(np.mean(radii))


def run_evaluate(
    picks: list[str | os.PathLike],
    truth: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    distance: float | None = None,
    target: str | None = None,
    voxel_size: float | None = None,
    baseline: list[str | os.PathLike] | None = None,
    name: str = "template learning",
    baseline_name: str = "template matching",
    masks: list[str | os.PathLike] | None = None,
    tomograms: list[str | os.PathLike] | None = None,
    copick=None,
    template=None,
) -> dict:
    """Evaluate ``picks`` (and optionally ``baseline`` picks of another method) against ``truth``,
    pairwise; write ``report.json``, ``pr_curve.png``, ``f1_box.png``, ``angles.png`` (when
    orientations are known) and ``provenance.json`` into ``out_dir``. Returns the report.
    ``masks`` (one MRC per truth): only picks and true particles on non-zero voxels count.
    ``tomograms`` (one MRC per truth): draw ``slices_<nn>[_baseline].png`` (in truth order), the picks as
    written coloured true, false and missed.
    ``copick`` (a :class:`templearn.copick_io.CopickPicksSource`): each ``truth`` names a run of
    that copick project, whose picks are the truth. ``template`` (a structure of the target): the
    matching distance when the truth records no masses (picks files)."""
    from templearn import provenance
    from templearn.atomic import write_json

    from . import plots

    out_dir = Path(out_dir)
    if tomograms and len(tomograms) != len(truth):   # before any work
        raise TemplearnError(f"--tomogram pairs with --truth: got {len(tomograms)} tomograms and {len(truth)} truth files")
    data = load_pairs(picks, truth, target, voxel_size, masks, copick)
    base = load_pairs(baseline, truth, target, voxel_size, masks, copick) if baseline else None
    if distance is None:
        distance = default_distance(data, template)
    if not distance > 0:
        raise TemplearnError(f"--distance must be positive, got {distance}")
    methods = {name: evaluate_method(data, distance)}
    if base is not None:
        methods[baseline_name] = evaluate_method(base, distance)
    main = methods[name]
    report = {"target": data[0].truth.target, "distance_angstrom": float(distance), "method": name, **main}
    if base is not None:
        report["baseline"] = {"method": baseline_name, **methods[baseline_name]}
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = [out_dir / "report.json", out_dir / "pr_curve.png", out_dir / "f1_box.png"]
    plots.pr_curves(outputs[1], methods)
    plots.f1_boxes(outputs[2], methods)
    if any("orientation" in m for m in methods.values()):
        outputs.append(out_dir / "angles.png")
        plots.orientations(outputs[-1], methods)
    if tomograms:
        from templearn.mrc import read_mrc

        for i, tomo in enumerate(map(Path, tomograms), 1):
            volume, voxel = read_mrc(tomo)   # once for both methods
            for suffix, dset, label in (("", data, name), ("_baseline", base, baseline_name)):
                if dset:
                    outputs.append(truth_picture(out_dir / f"slices_{i:02d}{suffix}.png", tomo, volume, voxel,
                                                 dset[i - 1], distance, label))
        report["pictures"] = [p.name for p in outputs if p.name.startswith("slices_")]
    write_json(outputs[0], report)
    inputs = [*map(Path, picks), *map(Path, truth), *map(Path, baseline or []), *map(Path, masks or [])]
    inputs += [copick.config] if copick is not None else []
    provenance.record(out_dir, "pick-eval evaluate",
                      {"distance": distance, "target": report["target"], "voxel_size": voxel_size,
                       "name": name, "baseline_name": baseline_name if base is not None else None,
                       "masked": bool(masks), "copick": None if copick is None else vars(copick)},
                      inputs=inputs, outputs=outputs)
    return report
