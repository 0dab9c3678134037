"""``templearn-tetris density``: one structure's map written as MRC, with a JSON record beside it."""

from __future__ import annotations

import os
from pathlib import Path

from templearn.atomic import write_json
from templearn.density import gaussian_width, structure_map
from templearn.errors import TemplearnError
from templearn.mrc import write_mrc
from templearn.structures import resolve


def write_density_map(spec, out: str | os.PathLike, *, voxel_size: float = 16.0, resolution: float = 32.0) -> Path:
    """Write ``out`` (MRC, cube centred on the centre of mass) and ``out`` with ``.json``.

    The JSON records the structure, its sha256, the centre of mass and the origin (Å, ``[x, y, z]``
    in the structure's frame, of voxel ``[0, 0, 0]``): the MRC header origin stays 0 (templearn's
    convention), so this is where to find the map's placement.
    """
    from templearn import provenance

    out = Path(out)
    if out.suffix.lower() not in (".mrc", ".map"):
        raise TemplearnError("output map must end in .mrc or .map", out)
    if not voxel_size > 0 or not resolution > 0:
        raise TemplearnError(f"voxel size and resolution must be positive (got {voxel_size}, {resolution})")
    path = resolve(spec)
    smap = structure_map(path, voxel_size, resolution)
    write_mrc(out, smap.volume, voxel_size, label=f"templearn density of {path.name} at {resolution:g} A")
    write_json(out.with_suffix(".json"), {
        "structure": os.path.abspath(path), "sha256": smap.sha256, "voxel_size": voxel_size,
        "resolution": resolution, "gaussian_width": gaussian_width(resolution),
        "center": smap.center, "origin": smap.origin, "shape_zyx": list(smap.volume.shape),
        "mass_kda": smap.mass_kda, "n_atoms": smap.n_atoms, "versions": provenance.versions(),
    })
    return out
