"""Picks files: the formats users load elsewhere, read and written by suffix.

A :class:`~templearn.pick_table.Picks` table holds, for each particle, the tomogram it is in, its position in voxels
``[x, y, z]`` (voxel centres at integers, see :mod:`templearn.manifest`) with the voxel size in
Å, a class label (1..K), a score (cluster size for DeepFinder picks, correlation for template
matching) and optionally ZYZ RELION Euler angles in degrees.

Formats, chosen by the file suffix:

- ``.star``  RELION STAR (:mod:`templearn.star`): RELION 5 centred Å coordinates with the
  ``tomograms.star`` beside (written when the tomogram's shape is known), or RELION 4 / Warp
  voxel coordinates; ``rlnTomoName``, ``rlnAngleRot/Tilt/Psi``, ``rlnClassNumber``,
  ``rlnAutopickFigureOfMerit``; the pixel size from the optics table.
- ``.csv``   ``tomogram,x,y,z,voxel_size,class_label,class_name,score,rot,tilt,psi[,accepted]``
  (voxels); ``accepted`` (1/0) marks candidates the picker's default cut keeps (``candidates.csv``).
- ``.xml``   DeepFinder object list: ``<objlist><object tomo_idx obj_id class_label x y z phi psi
  the cluster_size/>``, voxels; ``phi, the, psi`` carry our ``rot, tilt, psi``; tomograms are
  numbered in order of first appearance. The XML has no voxel size: readers must be told.
- ``.json``  copick: ``{"pickable_object_name", "user_id", "session_id", "run_name", "points":
  [{"location": {"x","y","z"} (Å), "transformation_": 4x4, "instance_id", "score"}]}``, one
  tomogram (run) and one object per file. :mod:`templearn.copick_io` reads and writes picks in a
  copick project through the ``copick`` package.
- ``.tbl``   Dynamo table (:mod:`templearn.dynamo`, ``dynamotable``), with its ``.doc`` map.
- ``.txt``   IMOD point file, ``object contour x y z`` (:mod:`templearn.imod_points`); no voxel size.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .atomic import write_json, write_text
from .errors import TemplearnError
from .euler import euler_to_matrix, matrix_to_euler
from .pick_table import Picks

FORMATS = (".star", ".csv", ".xml", ".json", ".tbl", ".txt")


# --- writing ---------------------------------------------------------------------------------

def write_picks(path: str | os.PathLike, picks: Picks, *, shape=None, star_format: str | None = None) -> Path:
    """Write picks in the format given by the suffix (see the module docstring).

    ``shape`` ([z, y, x] voxels, one for all tomograms or a dict by name) and ``star_format``
    (``relion5``, the default when the shape is known, or ``relion4``) concern STAR only.
    """
    return write_picks_files(path, picks, shape=shape, star_format=star_format)[0]


def write_picks_files(path: str | os.PathLike, picks: Picks, *, shape=None, star_format: str | None = None) -> list[Path]:
    """:func:`write_picks`, returning every file written (a STAR's ``tomograms.star``, a Dynamo
    table's ``.doc``)."""
    path = Path(path)
    if path.suffix == ".star":
        from .star import write_star

        return write_star(path, picks, shape=shape, star_format=star_format)
    if path.suffix == ".tbl":
        from .dynamo import write_tbl

        return write_tbl(path, picks)
    if path.suffix == ".txt":
        from .imod_points import write_points

        return write_points(path, picks)
    writer = {".csv": _write_csv, ".xml": _write_xml, ".json": _write_copick}.get(path.suffix)
    if writer is None:
        raise TemplearnError(f"unknown picks format {path.suffix!r} (use one of {', '.join(FORMATS)})", path)
    writer(path, picks)
    return [path]


def _angles(picks: Picks) -> np.ndarray:
    return picks.euler if picks.euler is not None else np.zeros((len(picks), 3))


def _write_csv(path: Path, picks: Picks) -> None:
    a = _angles(picks)
    flag = picks.accepted is not None
    lines = ["tomogram,x,y,z,voxel_size,class_label,class_name,score,rot,tilt,psi" + (",accepted" if flag else "")]
    for i in range(len(picks)):
        x, y, z = picks.xyz[i]
        lines.append(
            f"{picks.tomogram[i]},{x:.3f},{y:.3f},{z:.3f},{picks.voxel_size:g},{picks.label[i]},"
            f"{picks.class_name(picks.label[i])},{picks.score[i]:.6g},{a[i,0]:.3f},{a[i,1]:.3f},{a[i,2]:.3f}"
            + (f",{int(picks.accepted[i])}" if flag else "")
        )
    write_text(path, "\n".join(lines) + "\n")


def _write_xml(path: Path, picks: Picks) -> None:
    root = ET.Element("objlist")
    tomo_idx: dict[str, int] = {}
    a = _angles(picks)
    for i in range(len(picks)):
        t = tomo_idx.setdefault(str(picks.tomogram[i]), len(tomo_idx))
        x, y, z = picks.xyz[i]
        ET.SubElement(root, "object", {
            "tomo_idx": str(t), "obj_id": str(i), "class_label": str(int(picks.label[i])),
            "x": f"{x:.3f}", "y": f"{y:.3f}", "z": f"{z:.3f}",
            "phi": f"{a[i,0]:.3f}", "the": f"{a[i,1]:.3f}", "psi": f"{a[i,2]:.3f}",
            "cluster_size": f"{picks.score[i]:.6g}",
        })
    ET.indent(root)
    write_text(path, ET.tostring(root, encoding="unicode") + "\n")


def _write_copick(path: Path, picks: Picks) -> None:
    tomos = set(picks.tomogram.tolist())
    labels = set(picks.label.tolist())
    if len(tomos) > 1 or len(labels) > 1:
        raise TemplearnError("a copick file holds one tomogram and one object: split the picks first", path)
    points = []
    mats = euler_to_matrix(_angles(picks)) if len(picks) else np.zeros((0, 3, 3))
    for i in range(len(picks)):
        x, y, z = picks.xyz_angstrom()[i]
        t = np.eye(4)
        t[:3, :3] = mats[i]
        points.append({
            "location": {"x": float(x), "y": float(y), "z": float(z)},
            "transformation_": t.tolist(), "instance_id": i, "score": float(picks.score[i]),
        })
    label = labels.pop() if labels else 1
    write_json(path, {
        "pickable_object_name": picks.class_name(label), "user_id": "templearn", "session_id": "0",
        "run_name": tomos.pop() if tomos else "", "voxel_spacing": picks.voxel_size, "unit": "angstrom",
        "points": points, "trust_orientation": picks.euler is not None,
    })


# --- reading ---------------------------------------------------------------------------------

def read_picks(path: str | os.PathLike, voxel_size: float | None = None, *, tomogram: str | None = None,
               tomograms: str | os.PathLike | None = None) -> Picks:
    """Read picks from any of the formats.

    ``voxel_size`` (Å) is needed for formats that do not record it (DeepFinder XML, IMOD points,
    STAR or Dynamo files without a pixel size) and otherwise overrides nothing: coordinates stay
    in the voxels of the file. ``tomogram`` names the tomogram for XML (``tomo_idx`` is an index),
    IMOD points, and copick (when ``run_name`` is empty). ``tomograms``: the RELION 5
    ``tomograms.star`` of a STAR file (default: the one beside it).
    """
    path = Path(path)
    if not path.is_file():
        raise TemplearnError("no such picks file", path)
    if path.suffix == ".star":
        from .star import read_star

        reader = lambda p, v, t: read_star(p, v, t, tomograms=tomograms)  # noqa: E731
    elif path.suffix == ".tbl":
        from .dynamo import read_tbl as reader
    elif path.suffix == ".txt":
        from .imod_points import read_points as reader
    else:
        reader = {".csv": _read_csv, ".xml": _read_xml, ".json": _read_copick}.get(path.suffix)
    if reader is None:
        raise TemplearnError(f"unknown picks format {path.suffix!r} (use one of {', '.join(FORMATS)})", path)
    try:
        picks = reader(path, voxel_size, tomogram)
    except TemplearnError:
        raise
    except Exception as exc:  # parsers (pandas, expat, json) raise their own kinds on malformed text
        if isinstance(exc, KeyError):
            detail = f"missing column or field {exc}"
        else:
            first = (str(exc).splitlines() or [""])[0]
            detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        raise TemplearnError(f"cannot read picks: {detail}", path) from None
    if not (np.isfinite(picks.voxel_size) and picks.voxel_size > 0):
        raise TemplearnError(f"cannot read picks: voxel size {picks.voxel_size} is not a positive number", path)
    if not np.isfinite(picks.xyz).all():
        raise TemplearnError("cannot read picks: coordinates that are not numbers (NaN or infinite)", path)
    return picks


def _need_voxel_size(path, voxel_size):
    if voxel_size is None:
        raise TemplearnError("this picks format does not record the voxel size: give it (e.g. --voxel-size)", path)
    return float(voxel_size)


def _read_csv(path, voxel_size, tomogram):
    import pandas as pd

    df = pd.read_csv(path)
    n = len(df)
    if "voxel_size" in df and n:
        vs = float(df["voxel_size"].iloc[0])
    else:
        vs = _need_voxel_size(path, voxel_size)
    names = {}
    if "class_name" in df and "class_label" in df:
        names = {int(k): str(v) for k, v in zip(df["class_label"], df["class_name"])}
    euler = df[["rot", "tilt", "psi"]].to_numpy(float) if {"rot", "tilt", "psi"} <= set(df) else None
    return Picks(
        df[["x", "y", "z"]].to_numpy(float), vs,
        df["tomogram"].astype(str).to_numpy() if "tomogram" in df else np.full(n, tomogram or ""),
        df["class_label"].to_numpy(int) if "class_label" in df else np.ones(n, int),
        df["score"].to_numpy(float) if "score" in df else np.ones(n), euler, names,
        df["accepted"].to_numpy(int).astype(bool) if "accepted" in df else None,
    )


def _read_xml(path, voxel_size, tomogram):
    vs = _need_voxel_size(path, voxel_size)
    root = ET.parse(path).getroot()
    objs = root.findall("object")
    g = lambda o, k, d=0.0: float(o.get(k, d))  # noqa: E731
    xyz = [[g(o, "x"), g(o, "y"), g(o, "z")] for o in objs]
    tomo = [tomogram if tomogram is not None else o.get("tomo_idx", "0") for o in objs]
    euler = [[g(o, "phi"), g(o, "the"), g(o, "psi")] for o in objs]
    return Picks(
        np.array(xyz).reshape(-1, 3), vs, np.array(tomo, str),
        np.array([int(o.get("class_label", 1)) for o in objs], int),
        np.array([g(o, "cluster_size", 1.0) for o in objs]), np.array(euler).reshape(-1, 3),
    )


def _read_copick(path, voxel_size, tomogram):
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("points", []), (list, type(None))):
        raise TemplearnError("not a copick picks file (a JSON object with a list of points)", path)
    vs = doc.get("voxel_spacing") or _need_voxel_size(path, voxel_size)
    pts = doc.get("points") or []
    xyz = np.array([[p["location"]["x"], p["location"]["y"], p["location"]["z"]] for p in pts], float).reshape(-1, 3) / vs
    mats = np.array([np.asarray(p.get("transformation_", np.eye(4)))[:3, :3] for p in pts]).reshape(-1, 3, 3)
    name = doc.get("run_name") or tomogram or ""
    return Picks(
        xyz, float(vs), np.full(len(pts), name), np.ones(len(pts), int),
        np.array([p.get("score", 1.0) or 1.0 for p in pts], float),
        matrix_to_euler(mats) if len(pts) else np.zeros((0, 3)), {1: doc.get("pickable_object_name", "class1")},
    )
