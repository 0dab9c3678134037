"""The tomogram a picker works on: an MRC file, or a tomogram of a copick project."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_tomogram(tomogram, copick=None) -> tuple[np.ndarray, float, str, object]:
    """``(volume [z, y, x], voxel size Å, name, source)``: ``source`` is the MRC path, or a
    description of the copick tomogram (for messages and provenance)."""
    if copick is not None:
        from templearn import copick_io

        volume, voxel = copick_io.read_tomogram(copick)
        return volume, voxel, copick.run, copick.describe()
    from templearn.mrc import read_mrc

    tomogram = Path(tomogram)
    volume, voxel = read_mrc(tomogram)
    return volume, voxel, tomogram.stem, tomogram
