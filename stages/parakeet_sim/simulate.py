"""The stage's two library entry points: write the grid, simulate one tilt series.

Outputs of :func:`simulate` in ``out_dir``:

- ``tilt_series.mrc``: float32 stack ``[n, ny, nx]`` of electron counts per pixel, increasing
  angle, pixel size in the header;
- ``tilt_series.tlt``: the angles (IMOD);
- ``acquisition.json``: :class:`templearn.tilts.Acquisition` with order, doses, optics and the
  tilt axis ``axis_x``/``axis_z`` and ``thickness`` that put a reconstruction on the manifest's frame
  (``thickness`` is the box's height even when the specimen is a thinner slab: the reconstruction
  then holds vacuum above and below it); randomized or slab-cut, its ``extra`` records every
  drawn axis, the ranges and the slab;
- ``sample.json`` (randomized, or with ``slab_fraction`` set): the manifest of the molecules
  simulated, those whose centre lies in the slab, in the manifest's own frame, the slab in
  ``params.slab``: the targets/ground truth of this tomogram;
- ``tilt_series.png``: the lowest, zero and highest tilt, for a look;
- ``provenance.json`` (last).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from templearn import provenance
from templearn.errors import TemplearnError
from templearn.manifest import Manifest
from templearn.tilts import write_tlt

from . import grid as gridmod
from .params import SimParams, plan_acquisition, resolve, sample_geometry, slab_extent
from .sample_atoms import placed_structures
from .stack_writer import stack_writer

STAGE = "parakeet-sim"
SAMPLE_NAME = "sample.json"


def write_grid(out: str | os.PathLike, config: str | os.PathLike | None = None,
               domain: str | None = None, randomize: bool = False) -> list[gridmod.Condition]:
    """Expand the grid of ``config`` (default: the paper's 48 conditions) into ``out`` (GRID.json);
    ``randomize`` draws each tilt series' conditions from ranges (the config's, or the defaults)."""
    spec = gridmod.load_spec(config, domain, randomize)
    return gridmod.write_grid(out, spec)


def cut_slab(manifest: Manifest, slab: tuple[float, float] | None, search=()) -> Manifest:
    """The molecules whose centre lies in the slab ``(z0, z1)`` Å (all of them for ``None``), same
    frame, structure paths made absolute; the slab in ``params``."""
    kept = [i for i in manifest.instances if slab is None or slab[0] <= i.position[2] <= slab[1]]
    if not kept:
        raise TemplearnError(f"no molecule has its centre in the slab z = {slab[0]:.1f}..{slab[1]:.1f} Å "
                             f"({len(manifest.instances)} in the box)", manifest.path)
    structures = {}
    for name, entry in manifest.structures.items():   # absolute paths: the cut manifest lives elsewhere
        try:
            path = os.path.abspath(manifest.structure_path(name, search))
        except TemplearnError:
            path = entry.path   # unused by the kept molecules, or found later through --structures
        structures[name] = dataclasses.replace(entry, path=path)
    params = dict(manifest.params)
    if slab is None:
        return dataclasses.replace(manifest, structures=structures, params=params, path=None)
    params["slab"] = {"z": [float(slab[0]), float(slab[1])], "thickness": float(slab[1] - slab[0]),
                      "rule": "molecules whose centre lies in the slab", "kept": len(kept),
                      "dropped": len(manifest.instances) - len(kept),
                      "source": str(manifest.path) if manifest.path else None}
    return dataclasses.replace(manifest, structures=structures, instances=kept, params=params, path=None)


def simulate(
    sample: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    grid: str | os.PathLike | None = None,
    condition: int | None = None,
    structures: Iterable[str | os.PathLike] = (),
    **options,
) -> dict:
    """Simulate the tilt series of the sample manifest ``sample`` into ``out_dir``.

    ``options`` are :class:`SimParams` fields (``engine``, ``pixel_size``, ``defocus_um``, ...);
    ``None`` values fall back to the grid condition (``grid`` + ``condition``) or the defaults.
    Returns a summary (figures, timing).
    """
    if (grid is None) != (condition is None):
        raise TemplearnError("--grid and --condition go together (the grid file and the index of one condition)")
    cond = gridmod.read_condition(grid, condition) if grid is not None else None
    params = resolve(cond, **options)
    manifest = Manifest.read(sample)
    if not manifest.instances:
        raise TemplearnError("the sample has no instances to simulate", sample)
    out_dir = Path(out_dir)
    structures = [Path(s) for s in structures]
    for s in structures:
        if not s.is_dir():
            raise TemplearnError("no such structures folder", s)
    slab = slab_extent(manifest, params)
    # randomized or slab-cut: sample.json says what this tomogram holds (its targets' manifest)
    write_sample = slab is not None or params.randomized is not None
    specimen = cut_slab(manifest, slab, structures) if write_sample else manifest
    placed = placed_structures(specimen, structures)
    geom = sample_geometry(manifest, params.pixel_size, slab)
    acq = plan_acquisition(params, geom)
    out_dir.mkdir(parents=True, exist_ok=True)
    stack_path = out_dir / "tilt_series.mrc"
    t0 = time.perf_counter()
    with stack_writer(stack_path, len(acq.angles), geom.ny, geom.nx, geom.pixel) as stack:
        if params.engine == "fast":
            from .engine_fast import simulate_fast

            figures = simulate_fast(placed, params, acq, geom, stack)
        else:
            from .engine_parakeet import simulate_parakeet

            figures = simulate_parakeet(placed, params, acq, geom, stack, out_dir / "parakeet")
        preview = np.array(stack[[0, int(np.argmin(np.abs(acq.angles))), len(acq.angles) - 1]])
    seconds = time.perf_counter() - t0
    # The time goes in provenance.json only: acquisition.json is an input downstream, the same
    # seed must give the same bytes (resume compares checksums).
    acq.extra.update({"engine_figures": figures, "sample": manifest.name})
    tlt_path = write_tlt(out_dir / "tilt_series.tlt", acq.angles)
    acq_path = acq.write(out_dir / "acquisition.json")
    png_path = _preview_png(out_dir / "tilt_series.png", preview, [acq.angles[0], 0.0, acq.angles[-1]], params)
    outputs = [stack_path, tlt_path, acq_path, png_path]
    if write_sample:
        outputs.append(specimen.write(out_dir / SAMPLE_NAME))
    extra_files = [out_dir / "parakeet" / "config.yaml"] if params.engine == "parakeet" else []
    provenance.record(out_dir, STAGE, params.to_json() | {"grid": grid, "structures": [str(s) for s in structures]},
                      seed=params.seed, inputs=[sample] + ([grid] if grid else []),
                      outputs=outputs + extra_files, extra={"seconds": round(seconds, 3)})
    return {"seconds": seconds, "n_tilts": len(acq.angles), "shape": [len(acq.angles), geom.ny, geom.nx],
            "params": params, "figures": figures, "slab": slab, "n_molecules": len(specimen.instances)}


def _preview_png(path: Path, images: np.ndarray, angles, params: SimParams) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from templearn.atomic import save_figure

    fig, axes = plt.subplots(1, len(images), figsize=(4 * len(images), 4.2))
    for ax, img, a in zip(np.atleast_1d(axes), images, angles):
        lo, hi = np.percentile(img, [1, 99])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower")
        ax.set_title(f"{a:+.1f}°")
        ax.axis("off")
    pp = "phase plate, " if params.phase_plate else ""
    fig.suptitle(f"{params.engine} engine: {pp}defocus {params.defocus_um} µm, {params.dose} e/Å², "
                 f"{params.pixel_size} Å/pixel")
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    return path
