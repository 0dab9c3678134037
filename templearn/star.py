"""RELION STAR picks, as RELION 5, RELION 4 and Warp write them (through ``starfile``).

RELION 5 (the default we write): ``particles`` table with ``rlnTomoName`` and
``rlnCenteredCoordinateX/Y/ZAngst``, Å from the tomogram's centre; the tomograms table
(``tomograms.star``, block ``global``) gives each tomogram's size ``rlnTomoSizeX/Y/Z`` in
tilt-series pixels of ``rlnTomoTiltSeriesPixelSize`` Å and its ``rlnTomoTomogramBinning``. RELION
converts as ``pixel = centered_Å / pixel_size + size / 2`` (``ParticleSet::
getParticleCoordDecenteredPixel``), so the Å from the tomogram's origin are
``centered + size * pixel_size / 2``. We write binning 1 with the tomogram's own voxel as the
pixel, so ``rlnTomoSizeX/Y/Z`` is the MRC's shape; each particle row also records its
tomogram's ``rlnTomoSizeX/Y/Z`` so that the particles file reads on its own (a ``tomograms`` table
given explicitly comes first, then these columns, then the ``tomograms.star`` beside).

RELION 4 and Warp: ``rlnCoordinateX/Y/Z`` in pixels, the pixel size (Å) from, in this order,
``rlnTomoTiltSeriesPixelSize``, ``rlnImagePixelSize``, ``rlnMicrographPixelSize``, ``rlnPixelSize``
(optics table by ``rlnOpticsGroup`` where present, else the particles table), or
``rlnDetectorPixelSize`` (µm) × 10⁴ / ``rlnMagnification``, or the ``tomograms.star`` beside. The
detector pixel alone is a size in µm on the camera, never the voxel size.

Both: ``rlnAngleRot/Tilt/Psi`` (ZYZ, :mod:`templearn.euler`), ``rlnClassNumber``,
``rlnAutopickFigureOfMerit`` (our score).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import TemplearnError
from .pick_table import Picks

FORMATS = ("relion5", "relion4")
TOMOGRAMS_FILE = "tomograms.star"
CENTERED = ["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]
VOXELS = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
ANGLES = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
SIZES = ["rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ"]
PIXEL_SIZE_COLUMNS = ("rlnTomoTiltSeriesPixelSize", "rlnImagePixelSize", "rlnMicrographPixelSize", "rlnPixelSize")


def check_format(star_format: str) -> str:
    if star_format not in FORMATS:
        raise TemplearnError(f"unknown STAR format {star_format!r} (use one of {', '.join(FORMATS)})")
    return star_format


def _shape_of(shape, name: str, path: Path):
    """The [z, y, x] shape of tomogram ``name``: ``shape`` is one shape or a dict by name."""
    s = shape.get(name) if isinstance(shape, dict) else shape
    if s is None:
        raise TemplearnError(f"RELION 5 STAR needs the shape of tomogram {name!r} (centred coordinates); "
                             "give it, or write RELION 4", path)
    s = tuple(int(v) for v in s)
    if len(s) != 3:
        raise TemplearnError(f"tomogram shape must be [z, y, x], got {s}", path)
    return s


def write_star(path: Path, picks, *, shape=None, star_format: str | None = None) -> list[Path]:
    """Write ``picks`` as RELION 5 (``shape`` [z, y, x] given, one or a dict by tomogram name; the
    tomograms table goes to ``tomograms.star`` beside, merged with what is there) or RELION 4
    (``star_format="relion4"``, or no shape). Returns the files written."""
    import pandas as pd
    import starfile

    star_format = check_format(star_format or ("relion5" if shape is not None else "relion4"))
    n = len(picks)
    a = picks.euler if picks.euler is not None else np.zeros((n, 3))
    cols = {"rlnTomoName": picks.tomogram}
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["optics1"],
                           "rlnTomoTiltSeriesPixelSize": [float(picks.voxel_size)]})
    written = [path]
    if star_format == "relion5":
        names = list(dict.fromkeys(picks.tomogram.tolist())) or ([] if not isinstance(shape, dict) else list(shape))
        shapes = {t: _shape_of(shape, t, path) for t in names}
        half = np.array([np.array(shapes[t][::-1], float) / 2.0 for t in picks.tomogram]).reshape(-1, 3)
        centred = (picks.xyz - half) * picks.voxel_size
        cols.update({c: centred[:, i] for i, c in enumerate(CENTERED)})
        # Each particle also records its tomogram's size (a RELION label), so the file reads alone,
        # e.g. when a workflow stages it without its tomograms.star.
        cols.update({c: np.array([shapes[t][2 - i] for t in picks.tomogram], int) for i, c in enumerate(SIZES)})
        tomos = pd.DataFrame({
            "rlnTomoName": names,
            **{c: [shapes[t][2 - i] for t in names] for i, c in enumerate(SIZES)},
            "rlnTomoTiltSeriesPixelSize": [float(picks.voxel_size)] * len(names),
            "rlnTomoTomogramBinning": [1.0] * len(names),
        })
        written.append(_merge_tomograms(path.parent / TOMOGRAMS_FILE, tomos))
    else:
        cols.update({c: picks.xyz[:, i] for i, c in enumerate(VOXELS)})
    cols.update({c: a[:, i] for i, c in enumerate(ANGLES)})
    cols.update({"rlnClassNumber": picks.label, "rlnAutopickFigureOfMerit": picks.score,
                 "rlnOpticsGroup": np.ones(n, int)})
    with atomic_path(path) as tmp:
        starfile.write({"optics": optics, "particles": pd.DataFrame(cols)}, tmp, overwrite=True)
    return written


def _merge_tomograms(path: Path, table):
    """Write the tomograms table, keeping the rows of other tomograms already in the file."""
    import pandas as pd
    import starfile

    if path.is_file():
        try:
            old = read_tomograms(path)
            table = pd.concat([old[~old["rlnTomoName"].isin(table["rlnTomoName"])], table], ignore_index=True)
        except TemplearnError:
            pass            # not a tomograms table we can read: replace it
    with atomic_path(path) as tmp:
        starfile.write({"global": table}, tmp, overwrite=True)
    return path


def _read_blocks(path: Path) -> dict:
    import starfile

    try:
        data = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises many kinds on garbled text
        raise TemplearnError(f"not a readable STAR file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})", path) from None
    if not data:
        raise TemplearnError("empty STAR file: no data block", path)
    return data


def read_tomograms(path: Path):
    """The tomograms table of a ``tomograms.star`` (``rlnTomoName`` and sizes/pixel sizes)."""
    import pandas as pd

    data = _read_blocks(Path(path))
    df = data.get("global")
    if isinstance(df, dict):        # a single tomogram written as key-value pairs, not a loop
        df = pd.DataFrame({k: [v] for k, v in df.items()})
    if df is None:
        df = next((d for d in data.values() if isinstance(d, pd.DataFrame) and "rlnTomoName" in d), None)
    if not isinstance(df, pd.DataFrame) or "rlnTomoName" not in df:
        raise TemplearnError("no tomograms table (block 'global' with rlnTomoName)", path)
    df = df.copy()
    df["rlnTomoName"] = df["rlnTomoName"].astype(str)
    return df


def _particles(data: dict, path: Path):
    import pandas as pd

    tables = [d for d in data.values() if isinstance(d, pd.DataFrame)]
    df = data.get("particles")
    if not isinstance(df, pd.DataFrame):
        df = next((d for d in tables if set(VOXELS) <= set(d) or set(CENTERED) <= set(d)), None)
    if df is None:
        raise TemplearnError("no particles table with rlnCoordinateX/Y/Z or rlnCenteredCoordinateX/Y/ZAngst", path)
    return df


def _pixel_sizes(df, optics, path: Path) -> np.ndarray | None:
    """Per-row pixel size (Å) where the file defines it, else None."""
    n = len(df)
    sources = []
    if optics is not None and "rlnOpticsGroup" in optics:
        group = df["rlnOpticsGroup"].to_numpy(int) if "rlnOpticsGroup" in df else np.full(n, int(optics["rlnOpticsGroup"].iloc[0]))
        by_group = optics.set_index(optics["rlnOpticsGroup"].astype(int))
        missing = sorted(set(group.tolist()) - set(by_group.index.tolist()))
        if missing:
            raise TemplearnError(f"optics group {missing[0]} is not in the optics table", path)
        sources.append(by_group.loc[group].reset_index(drop=True))
    sources.append(df.reset_index(drop=True))
    for table in sources:
        for col in PIXEL_SIZE_COLUMNS:
            if col in table:
                return table[col].to_numpy(float)
    for table in sources:
        if "rlnDetectorPixelSize" in table and "rlnMagnification" in table:
            return table["rlnDetectorPixelSize"].to_numpy(float) * 1e4 / table["rlnMagnification"].to_numpy(float)
    return None


def read_star(path: Path, voxel_size: float | None, tomogram: str | None, *, tomograms=None, shape=None):
    """Read RELION 5 / RELION 4 / Warp picks (see the module docstring) as :class:`Picks`.

    ``tomograms``: a ``tomograms.star`` (default: the one beside ``path``); ``shape``: [z, y, x]
    of the tomogram(s) at ``voxel_size`` when there is no tomograms table.
    """
    path = Path(path)
    data = _read_blocks(path)
    df = _particles(data, path)
    n = len(df)
    names = np.asarray(df["rlnTomoName"] if "rlnTomoName" in df else
                       df["rlnMicrographName"] if "rlnMicrographName" in df else np.full(n, tomogram or ""), str)
    optics = data.get("optics")
    tomo_path = Path(tomograms) if tomograms is not None else path.parent / TOMOGRAMS_FILE
    tomo_table = read_tomograms(tomo_path) if tomograms is not None or tomo_path.is_file() else None

    if n == 0 and (set(CENTERED) <= set(df) or set(VOXELS) <= set(df)):
        xyz_a, vs = np.zeros((0, 3)), _empty_pixel_size(optics, voxel_size, path)
    elif set(CENTERED) <= set(df):
        if tomograms is None and set(SIZES) <= set(df):     # recorded in the particles themselves
            tomo_table = _recorded_sizes(df, names, optics, path)
            tomo_path = path
        xyz_a, vs = _from_centred(df[CENTERED].to_numpy(float), names, tomo_table, tomo_path, voxel_size, shape, path)
    elif set(VOXELS) <= set(df):
        px = _pixel_sizes(df, optics, path)
        if px is None and tomo_table is not None and "rlnTomoTiltSeriesPixelSize" in tomo_table:
            px = np.array([_tomo_row(tomo_table, t, tomo_path)["rlnTomoTiltSeriesPixelSize"] for t in names], float)
        if px is None:
            if voxel_size is None:
                raise TemplearnError("the STAR file does not give its pixel size (no rlnTomoTiltSeriesPixelSize, "
                                     "rlnImagePixelSize, rlnMicrographPixelSize, nor rlnDetectorPixelSize with "
                                     "rlnMagnification): give it (e.g. --voxel-size)", path)
            px = np.full(n, float(voxel_size))
        xyz_a = df[VOXELS].to_numpy(float) * px[:, None]
        vs = float(px[0])
    else:
        raise TemplearnError("no coordinates: rlnCoordinateX/Y/Z or rlnCenteredCoordinateX/Y/ZAngst", path)
    if not np.isfinite(vs) or vs <= 0:
        raise TemplearnError(f"pixel size must be positive, got {vs}", path)
    euler = df[ANGLES].to_numpy(float) if set(ANGLES) <= set(df) else None
    return Picks(
        xyz_a / vs, vs, names,
        df["rlnClassNumber"].to_numpy(int) if "rlnClassNumber" in df else np.ones(n, int),
        df["rlnAutopickFigureOfMerit"].to_numpy(float) if "rlnAutopickFigureOfMerit" in df else np.ones(n),
        euler,
    )


def _recorded_sizes(df, names, optics, path):
    """A tomograms table from sizes recorded per particle, the pixel size from the optics table."""
    import pandas as pd

    px = _pixel_sizes(df, optics, path)
    if px is None:
        raise TemplearnError("the particles record their tomogram's size but no pixel size "
                             "(rlnTomoTiltSeriesPixelSize in the optics table)", path)
    table = pd.DataFrame({"rlnTomoName": names, **{c: df[c].to_numpy(float) for c in SIZES},
                          "rlnTomoTiltSeriesPixelSize": px})
    return table.drop_duplicates("rlnTomoName")


def _empty_pixel_size(optics, voxel_size, path) -> float:
    """The pixel size of a file with no particles: from its optics table, else as given."""
    for col in PIXEL_SIZE_COLUMNS:
        if optics is not None and col in optics and len(optics):
            return float(optics[col].iloc[0])
    if voxel_size is None:
        raise TemplearnError("this STAR file has no particles and does not record the voxel size: give it "
                             "(e.g. --voxel-size)", path)
    return float(voxel_size)


def _tomo_row(table, name: str, tomo_path: Path):
    rows = table[table["rlnTomoName"] == str(name)]
    if len(rows) == 0:
        raise TemplearnError(f"tomogram {name!r} is not in the tomograms table", tomo_path)
    return rows.iloc[0]


def _from_centred(centred, names, table, tomo_path, voxel_size, shape, path):
    """Å from the tomogram origin, and the voxel size of the tomogram, for RELION 5 coordinates."""
    n = len(centred)
    if table is not None:
        need = [c for c in SIZES + ["rlnTomoTiltSeriesPixelSize"] if c not in table]
        if need:
            raise TemplearnError(f"the tomograms table lacks {need[0]}, needed for centred coordinates", tomo_path)
        rows = [_tomo_row(table, t, tomo_path) for t in names]
        size = np.array([[r[c] for c in SIZES] for r in rows], float).reshape(n, 3)
        px = np.array([r["rlnTomoTiltSeriesPixelSize"] for r in rows], float)
        binning = np.array([r.get("rlnTomoTomogramBinning", 1.0) for r in rows], float)
        return centred + size * px[:, None] / 2.0, float(px[0] * binning[0])
    if shape is None or voxel_size is None:
        raise TemplearnError(f"RELION 5 centred coordinates need the tomogram's size: put its {TOMOGRAMS_FILE} "
                             "beside, or give the tomograms table", path)
    half = np.array([np.array(_shape_of(shape, t, path)[::-1], float) for t in names]).reshape(n, 3) / 2.0
    return centred + half * float(voxel_size), float(voxel_size)
