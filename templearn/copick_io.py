"""copick projects (the CZ Imaging Institute's layout, also the CryoET Data Portal's) through the
``copick`` package: read a tomogram, write picks into the project, read picks back.

A project is a config JSON (``copick.from_file``); inside it a *run* holds tomograms by voxel
spacing (Å) and type (``wbp``, ``denoised``, ...), stored as OME-Zarr, and picks per pickable
object, user and session. copick locations are in Å with the first voxel's centre at 0, so
``location = xyz_voxels * voxel_size`` (:mod:`templearn.picks`). The transformation of a point
is our pose matrix ``A`` (:mod:`templearn.euler`) in a 4x4. Tools write with session ``"0"``.

``copick`` is an optional dependency (extra ``copick``), imported only here and only when used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import TemplearnError, require

DEFAULT_USER = "templearn"
DEFAULT_SESSION = "0"           # copick's mark of picks made by a tool


@dataclass
class CopickTarget:
    """Where in a copick project to read a tomogram from and write picks to."""

    config: Path
    run: str
    voxel_spacing: float | None = None        # Å; None: the run's only one
    tomo_type: str | None = None              # None: the only type at that spacing
    user_id: str = DEFAULT_USER
    session_id: str = DEFAULT_SESSION
    objects: list[str] = field(default_factory=list)   # object names of classes 1..K [default: class names]

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}

    def describe(self) -> str:
        return f"copick {self.config} run {self.run!r}"


@dataclass
class CopickPicksSource:
    """Picks of a copick project to read (e.g. the truth): any user/session unless given."""

    config: Path
    user_id: str | None = None
    session_id: str | None = None

    def read(self, run: str, object_name: str | None = None, voxel_size: float | None = None):
        return read_picks(self.config, run, object_name, user_id=self.user_id, session_id=self.session_id,
                          voxel_size=voxel_size)


def target(config, run, voxel_spacing=None, tomo_type=None, user_id=None, session_id=None, objects=None,
           tomogram=None) -> CopickTarget | None:
    """The copick target of a command's options, or None without ``config``; ``tomogram`` (an MRC
    path) and a copick project exclude each other."""
    if config is None:
        if run is not None or voxel_spacing is not None or tomo_type is not None:
            raise TemplearnError("--run, --voxel-spacing and --tomo-type name a tomogram of a copick project: give --copick-config")
        if tomogram is None:
            raise TemplearnError("give a tomogram (MRC), or a copick project with --copick-config and --run")
        return None
    if tomogram is not None:
        raise TemplearnError("give either a tomogram (MRC) or a copick project (--copick-config), not both")
    if not run:
        raise TemplearnError("a copick project needs the run to pick: give --run", config)
    return CopickTarget(Path(config), str(run), voxel_spacing, tomo_type, user_id or DEFAULT_USER,
                        str(session_id) if session_id is not None else DEFAULT_SESSION, list(objects or []))


def open_project(config: str | os.PathLike):
    copick = require("copick", "copick", "to use copick projects")
    config = Path(config)
    if not config.is_file():
        raise TemplearnError("no such copick config", config)
    try:
        return copick.from_file(str(config))
    except Exception as exc:  # invalid JSON or a config copick's models reject
        first = (str(exc).splitlines() or [""])[0]
        raise TemplearnError(f"not a copick config ({type(exc).__name__}: {first})", config) from None


def _run(root, name: str, config: Path):
    run = root.get_run(name)
    if run is None:
        names = sorted(r.name for r in root.runs)
        raise TemplearnError(f"no run {name!r} in the project (runs: {', '.join(names[:20]) or 'none'})", config)
    return run


def _voxel_spacing(run, voxel_spacing: float | None, config: Path):
    sizes = sorted(v.voxel_size for v in run.voxel_spacings)
    if voxel_spacing is None:
        if len(sizes) != 1:
            raise TemplearnError(f"run {run.name!r} has voxel spacings {sizes}: choose one with --voxel-spacing", config)
        voxel_spacing = sizes[0]
    vs = run.get_voxel_spacing(float(voxel_spacing))
    if vs is None:
        raise TemplearnError(f"run {run.name!r} has no voxel spacing {voxel_spacing:g} Å (it has {sizes})", config)
    return vs


def read_tomogram(t: CopickTarget) -> tuple[np.ndarray, float]:
    """The tomogram ``[z, y, x]`` (float32, full resolution) and its voxel size in Å."""
    root = open_project(t.config)
    vs = _voxel_spacing(_run(root, t.run, t.config), t.voxel_spacing, t.config)
    types = sorted({tomo.tomo_type for tomo in vs.tomograms})
    tomo_type = t.tomo_type
    if tomo_type is None:
        if len(types) != 1:
            raise TemplearnError(f"run {t.run!r} at {vs.voxel_size:g} Å has tomograms {types}: choose one with --tomo-type", t.config)
        tomo_type = types[0]
    found = vs.get_tomograms(tomo_type)
    if not found:
        raise TemplearnError(f"run {t.run!r} at {vs.voxel_size:g} Å has no {tomo_type!r} tomogram (it has {types})", t.config)
    try:
        volume = np.asarray(found[0].numpy(), dtype=np.float32)
    except Exception as exc:  # a missing or broken OME-Zarr
        first = (str(exc).splitlines() or [""])[0]
        raise TemplearnError(f"cannot read the {tomo_type!r} tomogram of run {t.run!r} ({type(exc).__name__}: {first})", t.config) from None
    return volume, float(vs.voxel_size)


def object_names(t: CopickTarget, class_names: dict[int, str]) -> dict[int, str]:
    """The copick object of each class (``t.objects`` in order, else the class names), checked
    against the project's pickable objects (before any work is done on the tomogram)."""
    labels = sorted(class_names)
    if t.objects and len(t.objects) != len(labels):
        raise TemplearnError(f"--copick-object gives {len(t.objects)} names for {len(labels)} classes", t.config)
    names = {lab: (t.objects[i] if t.objects else class_names[lab]) for i, lab in enumerate(labels)}
    known = [o.name for o in open_project(t.config).pickable_objects]
    unknown = [n for n in names.values() if n not in known]
    if unknown:
        raise TemplearnError(f"object {unknown[0]!r} is not a pickable object of the project ({', '.join(known)}): "
                             "name the classes' objects with --copick-object", t.config)
    return names


def write_picks(t: CopickTarget, picks) -> list[Path]:
    """Store ``picks`` (one run) in the project: one copick picks set per class, object named
    ``t.objects[label - 1]`` or the class name, user ``t.user_id``, session ``t.session_id``
    (replacing that set if it exists). Returns the picks files when the overlay is local."""
    require("copick", "copick", "to use copick projects")
    from copick.models import CopickLocation, CopickPoint

    from .euler import euler_to_matrix

    labels = sorted(set(picks.class_names) | set(int(v) for v in np.unique(picks.label)))
    names = object_names(t, {lab: picks.class_name(lab) for lab in labels})
    run = _run(open_project(t.config), t.run, t.config)
    xyz_a = picks.xyz_angstrom()
    mats = euler_to_matrix(picks.euler) if picks.euler is not None and len(picks) else np.tile(np.eye(3), (len(picks), 1, 1))
    out = []
    for lab, obj in names.items():
        idx = np.nonzero(picks.label == lab)[0]
        points = []
        for k, i in enumerate(idx):
            m = np.eye(4)
            m[:3, :3] = mats[i]
            points.append(CopickPoint(location=CopickLocation(x=xyz_a[i, 0], y=xyz_a[i, 1], z=xyz_a[i, 2]),
                                      transformation_=m.tolist(), instance_id=k, score=float(picks.score[i])))
        existing = run.get_picks(object_name=obj, user_id=t.user_id, session_id=t.session_id)
        p = existing[0] if existing else run.new_picks(obj, t.session_id, t.user_id)
        p.meta.voxel_spacing = float(picks.voxel_size)
        p.meta.trust_orientation = picks.euler is not None
        p.points = points
        p.store()
        path = getattr(p, "path", None)
        if isinstance(path, str) and Path(path).is_file():
            out.append(Path(path))
    return out


def read_picks(config: str | os.PathLike, run_name: str, object_name: str | None = None, *,
               user_id: str | None = None, session_id: str | None = None, voxel_size: float | None = None):
    """One picks set of a run as :class:`~templearn.picks.Picks` (voxels of ``voxel_size``, else
    of the set's recorded voxel spacing, else of the run's only voxel spacing; else 1 Å).
    ``object_name``/``user_id``/``session_id`` select it; exactly one set must match."""
    from .euler import matrix_to_euler
    from .picks import Picks

    config = Path(config)
    root = open_project(config)
    run = _run(root, run_name, config)
    sets = run.get_picks(object_name=object_name, user_id=user_id, session_id=session_id)
    if object_name is None:        # only particles' picks (not e.g. membrane points) are truth
        particles = {o.name for o in root.pickable_objects if o.is_particle}
        sets = [s for s in sets if s.pickable_object_name in particles]
    if len(sets) != 1:
        have = sorted({(s.pickable_object_name, s.user_id, s.session_id) for s in run.picks})
        what = "no" if not sets else f"{len(sets)}"
        raise TemplearnError(f"{what} picks sets of run {run_name!r} match object {object_name!r}, user {user_id!r}, "
                             f"session {session_id!r} (the run has {have or 'none'}): say which with --target, "
                             "--copick-user, --copick-session", config)
    s = sets[0]
    xyz, transforms = s.numpy()
    vs = voxel_size or s.meta.voxel_spacing
    if vs is None:
        sizes = [v.voxel_size for v in run.voxel_spacings]
        vs = sizes[0] if len(sizes) == 1 else 1.0
    n = len(xyz)
    # copick's default transformation is the identity: no orientation recorded
    oriented = n and s.trust_orientation and not np.allclose(transforms[:, :3, :3], np.eye(3))
    euler = matrix_to_euler(transforms[:, :3, :3]) if oriented else None
    return Picks(np.asarray(xyz, float).reshape(-1, 3) / float(vs), float(vs), np.full(n, run_name), np.ones(n, int),
                 np.array([p.score if p.score is not None else 1.0 for p in s.points], float), euler,
                 {1: s.pickable_object_name})
