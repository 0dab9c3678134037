"""Dynamo tables (``.tbl``) through the ``dynamotable`` package.

Columns (Dynamo's table convention, 1-based): 1 ``tag`` (1..n), 2 ``aligned_value`` (1), 7-9
``tdrot, tilt, narot`` (degrees), 10 ``cc`` (our score), 20 ``tomo`` (tomogram index, 1..,
in order of first appearance), 22 ``class`` (our label), 24-26 ``x, y, z`` (voxels, as RELION
coordinates, with the shifts ``dx, dy, dz`` in 4-6 added on reading), 36 ``apix`` (Å per voxel).
The tomogram names go to the table map beside (``<stem>.doc``: ``index name`` per line), which
Dynamo and ``dynamotable.read(tbl, doc)`` read.

Angles: Dynamo's ``(tdrot, tilt, narot)`` are extrinsic z-x-z angles of the same rotation
matrix as RELION's intrinsic Z-Y-Z ``(rot, tilt, psi)`` (the ``eulerangles`` package's
conventions), so ``scipy``'s ``from_euler("zxz", dynamo) == from_euler("ZYZ", relion)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_text
from .errors import TemplearnError
from .pick_table import Picks


def _convert(angles, source: str, dest: str) -> np.ndarray:
    import warnings

    from scipy.spatial.transform import Rotation

    angles = np.asarray(angles, float).reshape(-1, 3)
    if not len(angles):
        return angles
    with warnings.catch_warnings():  # tilt 0 (gimbal lock): scipy picks one of the equal triples
        warnings.simplefilter("ignore", UserWarning)
        return Rotation.from_euler(source, angles, degrees=True).as_euler(dest, degrees=True)


def relion_to_dynamo(euler) -> np.ndarray:
    return _convert(euler, "ZYZ", "zxz")


def dynamo_to_relion(angles) -> np.ndarray:
    return _convert(angles, "zxz", "ZYZ")


def table_map_path(path: Path) -> Path:
    return Path(path).with_suffix(".doc")


def write_tbl(path: Path, picks) -> list[Path]:
    import pandas as pd

    import dynamotable
    n = len(picks)
    names = list(dict.fromkeys(picks.tomogram.tolist()))
    index = {t: i + 1 for i, t in enumerate(names)}
    angles = relion_to_dynamo(picks.euler if picks.euler is not None else np.zeros((n, 3)))
    df = pd.DataFrame({
        "tag": np.arange(1, n + 1), "aligned_value": np.ones(n, int),
        "tdrot": angles[:, 0], "tilt": angles[:, 1], "narot": angles[:, 2], "cc": picks.score,
        "tomo": [index[t] for t in picks.tomogram], "class": picks.label,
        "x": picks.xyz[:, 0], "y": picks.xyz[:, 1], "z": picks.xyz[:, 2],
        "apix": np.full(n, float(picks.voxel_size)),
    })
    with atomic_path(path) as tmp:
        dynamotable.write(df, str(tmp))
    doc = write_text(table_map_path(path), "".join(f"{index[t]} {t}\n" for t in names))
    return [Path(path), doc]


def read_tbl(path: Path, voxel_size: float | None, tomogram: str | None):
    import dynamotable
    path = Path(path)
    if not path.read_text().strip():        # no particles: valid, but then no apix either
        if voxel_size is None:
            raise TemplearnError("an empty Dynamo table does not record the voxel size: give it (e.g. --voxel-size)", path)
        return Picks.empty(float(voxel_size))
    df = dynamotable.read(str(path))
    need = [c for c in ("x", "y", "z") if c not in df]
    if need:
        raise TemplearnError(f"a Dynamo table has at least 26 columns (x, y, z in 24-26); this one has {df.shape[1]}", path)
    bad = [c for c in df.columns[:26] if not np.issubdtype(df[c].dtype, np.number)]
    if bad:
        raise TemplearnError(f"column {bad[0]!r} is not numeric", path)
    n = len(df)
    shift = df[["dx", "dy", "dz"]].to_numpy(float)
    xyz = df[["x", "y", "z"]].to_numpy(float) + shift
    apix = df["apix"].to_numpy(float) if "apix" in df else np.zeros(n)
    if n and apix[0] > 0:
        vs = float(apix[0])
        xyz = xyz * (apix / vs)[:, None]
    elif voxel_size is not None:
        vs = float(voxel_size)
    else:
        raise TemplearnError("the table's apix column (36) is empty, so it does not record the voxel size: "
                             "give it (e.g. --voxel-size)", path)
    tomo = df["tomo"].to_numpy(int)
    names = {}
    doc = table_map_path(path)
    if doc.is_file():
        for line in doc.read_text().splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0].lstrip("-").isdigit():
                names[int(parts[0])] = parts[1].strip()
    tomogram_names = [names.get(int(t), tomogram if tomogram is not None else str(int(t))) for t in tomo]
    return Picks(xyz, vs, np.array(tomogram_names, str).reshape(-1),
                 df["class"].to_numpy(int) if "class" in df else np.ones(n, int),
                 df["cc"].to_numpy(float), dynamo_to_relion(df[["tdrot", "tilt", "narot"]].to_numpy(float)))
