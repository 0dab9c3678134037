"""``templearn view``: a tomogram with its picks, the truth and a segmentation in napari.

Everything is placed in Å (each layer scaled by its own voxel size), so picks of any format and
voxel size fall where they belong: napari's axes are ``[z, y, x]``, points are
``xyz_angstrom()[:, ::-1]``. Picks are points coloured by class (one colour per label, the same
in every pick set), drawn as discs of the particle radius on the slices they cut
(``out_of_slice_display``); the truth is drawn as rings. napari is an optional dependency (extra
``view``), imported only here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import TemplearnError, require

# Class colours (RGBA), label 1, 2, ...: distinct on a grey tomogram.
CLASS_COLOURS = [(1.0, 0.2, 0.2, 1.0), (0.2, 0.6, 1.0, 1.0), (1.0, 0.8, 0.1, 1.0), (0.7, 0.3, 1.0, 1.0),
                 (0.1, 0.9, 0.6, 1.0), (1.0, 0.5, 0.0, 1.0)]
TRUTH_COLOUR = (0.1, 1.0, 0.1, 1.0)
DEFAULT_RADIUS_VOXELS = 10.0   # the picker's default clustering radius (ribosomes)


def class_colour(label: int) -> tuple:
    return CLASS_COLOURS[(int(label) - 1) % len(CLASS_COLOURS)]


def _points(picks, radius: float) -> dict:
    return {"data": picks.xyz_angstrom()[:, ::-1], "size": 2.0 * radius, "out_of_slice_display": True,
            "features": {"class": picks.label, "score": picks.score}}


def open_viewer(tomogram: str | os.PathLike, picks=(), truth: str | os.PathLike | None = None,
                segmentation: str | os.PathLike | None = None, *, voxel_size: float | None = None,
                radius: float | None = None, show: bool = True):
    """A napari viewer with ``tomogram`` (MRC), each ``picks`` file as a points layer, ``truth``
    (picks file or tetris ``sample.json``) as rings and ``segmentation`` (MRC label map) as labels.
    ``voxel_size`` (Å) for picks formats that do not record it [default: the tomogram's];
    ``radius`` (Å) of the drawn particles [default: 10 voxels]. Returns the viewer."""
    from .mrc import read_mrc
    from .picks import read_picks

    tomogram = Path(tomogram)
    volume, vs = read_mrc(tomogram)
    picks_sets = [(Path(p), read_picks(p, voxel_size or vs)) for p in picks]
    truth_xyz = _truth(Path(truth), voxel_size or vs) if truth is not None else None
    labels = None
    if segmentation is not None:
        labels, lvs = read_mrc(segmentation)
        if not np.allclose(np.array(labels.shape) * lvs, np.array(volume.shape) * vs, rtol=0.02):
            raise TemplearnError(f"segmentation spans {np.round(np.array(labels.shape) * lvs).tolist()} Å, the tomogram "
                                 f"{np.round(np.array(volume.shape) * vs).tolist()} Å: of another tomogram?", segmentation)
    radius = float(radius) if radius is not None else DEFAULT_RADIUS_VOXELS * vs
    if not radius > 0:
        raise TemplearnError(f"--radius must be positive, got {radius}")

    napari = require("napari", "view", "to view tomograms")
    viewer = napari.Viewer(title=f"templearn: {tomogram.name}", show=show)
    lo, hi = np.percentile(volume, [1, 99]) if volume.size else (0.0, 1.0)
    viewer.add_image(volume, name=tomogram.stem, scale=(vs,) * 3, colormap="gray",
                     contrast_limits=(float(lo), float(hi) if hi > lo else float(lo) + 1.0))
    if labels is not None:
        viewer.add_labels(np.asarray(labels).astype(np.int32), name=Path(segmentation).stem, scale=(lvs,) * 3,
                          opacity=0.4)
    if truth_xyz is not None:
        viewer.add_points(truth_xyz[:, ::-1], size=2.0 * radius, name="truth", face_color="transparent",
                          border_color=[TRUTH_COLOUR], border_width=0.15, out_of_slice_display=True)
    for path, p in picks_sets:
        viewer.add_points(**_points(p, radius), name=path.name,
                          face_color=[class_colour(lab) for lab in p.label] or "red", border_width=0)
    viewer.dims.set_point(0, (volume.shape[0] - 1) / 2.0 * vs)
    return viewer


def _truth(path: Path, voxel_size: float) -> np.ndarray:
    """True positions ``(n, 3)`` Å ``[x, y, z]``: the targets of a tetris sample, or picks."""
    from .manifest import Manifest
    from .picks import read_picks

    if path.suffix == ".json" and path.is_file():
        import json

        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TemplearnError("not valid JSON", path) from None
        if isinstance(doc, dict) and doc.get("format") == "templearn.sample":
            m = Manifest.read(path)
            return np.concatenate([m.positions("target", t) for t in m.targets]) if m.targets else np.zeros((0, 3))
    return read_picks(path, voxel_size).xyz_angstrom()


def run_view(tomogram, picks=(), truth=None, segmentation=None, *, voxel_size=None, radius=None) -> None:
    """Open the viewer and run napari's event loop until the window is closed."""
    napari = require("napari", "view", "to view tomograms")
    open_viewer(tomogram, picks, truth, segmentation, voxel_size=voxel_size, radius=radius)
    napari.run()
