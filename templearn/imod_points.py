"""IMOD point files: the text ``point2model`` reads (and ``model2point -object`` writes).

One line per particle: ``object contour x y z``, objects and contours numbered from 1; the
object is the class label, each particle its own contour. IMOD puts model coordinates (0, 0)
at the corner of the first pixel in x and y but at the centre of the first section in z, so a
voxel centre ``[x, y, z]`` (ours, voxel centres at integers) is written ``x + 0.5, y + 0.5, z``.
Make a model with ``point2model -scat -sphere R picks_imod.txt picks.mod``. The file holds one
tomogram and no voxel size (point2model's model takes the image's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import write_text
from .errors import TemplearnError
from .pick_table import Picks

OFFSET = np.array([0.5, 0.5, 0.0])


def write_points(path: Path, picks) -> list[Path]:
    if len(set(picks.tomogram.tolist())) > 1:
        raise TemplearnError("an IMOD point file holds one tomogram: split the picks first", path)
    lines = []
    for lab in sorted(set(picks.label.tolist())):
        xyz = picks.xyz[picks.label == lab] + OFFSET
        lines += [f"{int(lab)} {i + 1} {x:.3f} {y:.3f} {z:.3f}" for i, (x, y, z) in enumerate(xyz)]
    write_text(path, "".join(line + "\n" for line in lines))
    return [Path(path)]


def read_points(path: Path, voxel_size: float | None, tomogram: str | None):
    if voxel_size is None:
        raise TemplearnError("an IMOD point file does not record the voxel size: give it (e.g. --voxel-size)", path)
    rows = []
    for k, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) not in (3, 4, 5):
            raise TemplearnError(f"line {k}: expected 'x y z', 'contour x y z' or 'object contour x y z', "
                                 f"got {len(parts)} values", path)
        try:
            vals = [float(v) for v in parts]
        except ValueError:
            raise TemplearnError(f"line {k}: not numbers: {line.strip()[:60]!r}", path) from None
        rows.append(([vals[0]] if len(vals) == 5 else [1.0]) + vals[-3:])
    arr = np.array(rows, float).reshape(-1, 4)
    n = len(arr)
    return Picks(arr[:, 1:] - OFFSET, float(voxel_size), np.full(n, tomogram or ""), arr[:, 0].astype(int), np.ones(n))
