"""Picks written in every format users load elsewhere (see :mod:`templearn.picks`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from templearn.picks import Picks, write_picks, write_picks_files


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "class"


def write_all(out_dir: Path, picks: Picks, stem: str = "picks", *, shape=None, star_format: str = "relion5") -> list[Path]:
    """The accepted picks (:meth:`Picks.written`) as ``stem.star`` (RELION 5 with ``tomograms.star``
    beside, which needs the tomogram's ``shape`` [z, y, x], or ``star_format="relion4"``),
    ``stem.csv``, ``stem.xml`` (DeepFinder), ``stem.tbl`` + ``stem.doc`` (Dynamo),
    ``stem_imod.txt`` (IMOD point2model input) and one copick ``stem_<class>.json`` per class
    (every class named in ``picks.class_names``, also when it has no picks)."""
    out_dir = Path(out_dir)
    picks = picks.written()
    paths = write_picks_files(out_dir / f"{stem}.star", picks, shape=shape, star_format=star_format)
    for name in (f"{stem}.csv", f"{stem}.xml", f"{stem}.tbl", f"{stem}_imod.txt"):
        paths += write_picks_files(out_dir / name, picks)
    labels = sorted(set(picks.class_names) | set(int(v) for v in np.unique(picks.label)))
    for lab in labels:
        sub = picks.select(picks.label == lab)
        if len(sub) == 0:  # an empty copick file still names its object
            sub = Picks(np.zeros((0, 3)), picks.voxel_size, np.array([], str), np.array([], int),
                        np.array([], float), None if picks.euler is None else np.zeros((0, 3)), dict(picks.class_names))
        sub.class_names = {lab: picks.class_name(lab)}
        if len(sub) == 0:
            sub.label = np.array([], int)
        paths.append(write_picks(out_dir / f"{stem}_{safe_name(picks.class_name(lab))}.json", _one_label(sub, lab)))
    return paths


def _one_label(p: Picks, lab: int) -> Picks:
    # copick's writer names the object from the (single) label present; an empty table has none,
    # so give it the label through class_names' only key.
    if len(p) == 0:
        p.class_names = {1: p.class_names[lab]}
    return p


def write_copick(target, picks: Picks) -> list[Path]:
    """The accepted picks into the copick project of ``target`` (:mod:`templearn.copick_io`)."""
    from templearn import copick_io

    return copick_io.write_picks(target, picks.written())
