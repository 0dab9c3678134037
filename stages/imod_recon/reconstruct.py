"""``reconstruct``: a tilt series file -> ``tomogram.mrc`` (+ preview PNG, provenance).

Reads the tilt series, its ``.tlt`` and (optionally) its acquisition record, checks them, bins
by Fourier cropping (:mod:`.binning`) and reconstructs by weighted back projection
(:mod:`.wbp`), or hands both steps to IMOD (:mod:`.imod`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from templearn import provenance
from templearn.atomic import save_figure
from templearn.errors import TemplearnError
from templearn.mrc import read_mrc, write_mrc
from templearn.progress import track
from templearn.tilts import Acquisition, check_tilts_match, read_tlt

from .binning import bin_stack, bin_volume, detect_orientation, plan_binning, to_zyx
from .wbp import weighted_back_projection

STAGE = "imod-recon"
TOMOGRAM_NAME = "tomogram.mrc"
PREVIEW_NAME = "tomogram.png"
ENGINES = ("templearn", "imod")


@dataclass
class Reconstruction:
    tomogram: Path
    preview: Path
    provenance: Path
    voxel_size: float
    shape: tuple[int, int, int]


def parse_exclude(text: str | None) -> list[int]:
    """``"1,4-6"`` -> ``[1, 4, 5, 6]`` (1-based image numbers, IMOD's EXCLUDELIST syntax)."""
    if not text:
        return []
    out: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise TemplearnError(f"--exclude: {part!r} is not an image number or a range like 4-6") from None
    return sorted(set(out))


def reconstruct(
    tilt_series: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    tlt: str | os.PathLike | None = None,
    acquisition: str | os.PathLike | None = None,
    voxel_size: float | None = None,
    thickness: float | None = None,
    radial: tuple[float, float] = (0.5, 0.5),
    sirt_like: int = 0,
    exclude: list[int] | str | None = None,
    engine: str = "templearn",
) -> Reconstruction:
    """Reconstruct ``tilt_series`` (MRC ``[tilt, y, x]``) into ``out_dir/tomogram.mrc``.

    - ``tlt``: default ``<stem>.tlt`` beside the tilt series; one angle per image.
    - ``acquisition``: default ``acquisition.json`` beside it if present; gives the tilt axis
      (``axis_x``, ``axis_z``, Å) and ``thickness``.
    - ``voxel_size``: target Å (default the pixel size); must not be smaller than the pixel size.
    - ``thickness``: Å (default ``acquisition.thickness``, else the image width); the tomogram
      has ``round(thickness / voxel)`` z slices, voxel ``k`` at ``k * voxel`` Å.
    - ``radial``: IMOD RADIAL cutoff, falloff (sigma); ``sirt_like``: FakeSIRTiterations.
    - ``exclude``: 1-based image numbers to leave out (list or ``"1,4-6"``).
    - ``engine``: ``templearn`` (this package) or ``imod`` (newstack + tilt on PATH).
    """
    tilt_series = Path(tilt_series)
    out_dir = Path(out_dir)
    if engine not in ENGINES:
        raise TemplearnError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if not tilt_series.is_file():
        raise TemplearnError("no such tilt series", tilt_series)
    tlt_path = Path(tlt) if tlt else tilt_series.with_suffix(".tlt")
    if not tlt_path.is_file():
        raise TemplearnError(
            "no such tilt-angle file" + ("" if tlt else f" (the default for {tilt_series.name}; give --tlt)"),
            tlt_path)
    acq_path = Path(acquisition) if acquisition else tilt_series.parent / "acquisition.json"
    acq = None
    if acquisition or acq_path.is_file():
        acq = Acquisition.read(acq_path)

    stack, pixel = read_mrc(tilt_series)
    n_images, ny, nx = stack.shape
    angles = read_tlt(tlt_path)
    check_tilts_match(tilt_series, n_images, angles, tlt_path)
    if nx < 2 or ny < 1:
        raise TemplearnError(f"images of {nx} x {ny} pixels are too small to reconstruct", tilt_series)
    if acq is not None and abs(acq.pixel_size - pixel) > 1e-3 * pixel:
        raise TemplearnError(
            f"pixel size {acq.pixel_size:g} Å differs from the tilt series header ({pixel:g} Å)", acq_path)

    excluded = parse_exclude(exclude) if isinstance(exclude, (str, type(None))) else sorted(set(int(e) for e in exclude))
    bad = [e for e in excluded if not 1 <= e <= n_images]
    if bad:
        raise TemplearnError(f"--exclude {bad} out of range: images are numbered 1..{n_images}", tilt_series)
    keep = np.array([i for i in range(n_images) if i + 1 not in set(excluded)], dtype=int)
    if keep.size < 2:
        raise TemplearnError(f"only {keep.size} image(s) left after --exclude; need at least 2", tilt_series)
    used = stack[keep]
    if float(used.max()) == float(used.min()):
        raise TemplearnError("the tilt series is constant (every pixel the same): nothing to reconstruct", tilt_series)

    target = pixel if voxel_size is None else float(voxel_size)
    plan = plan_binning(pixel, target, path=tilt_series)  # errors before any work
    if thickness is None:
        thickness = acq.thickness if acq is not None and acq.thickness else nx * pixel
    thickness = float(thickness)
    if not thickness > 0:
        raise TemplearnError(f"thickness must be positive, got {thickness} Å")
    if not (radial[0] > 0 and radial[1] >= 0):
        raise TemplearnError(f"--radial needs a positive cutoff and a non-negative falloff, got {radial[0]} {radial[1]}")
    if sirt_like < 0:
        raise TemplearnError(f"--sirt-like must be 0 or more, got {sirt_like}")
    axis_x = acq.axis_x if acq is not None and acq.axis_x is not None else (nx - 1) / 2 * pixel
    axis_z = acq.axis_z if acq is not None and acq.axis_z is not None else None

    if engine == "imod":
        from .imod import reconstruct_imod

        tomo, voxel = reconstruct_imod(
            tilt_series, tlt_path, out_dir / "imod", pixel=pixel, voxel_target=plan.voxel_size,
            shape_yx=(ny, nx), thickness=thickness, axis_x=axis_x, axis_z=axis_z, radial=radial,
            sirt_iterations=sirt_like, exclude=excluded)
        nz = tomo.shape[0]
    else:
        del stack
        tomo, voxel = reconstruct_array(used, angles[keep], pixel, voxel_size=target, thickness=thickness,
                                        axis_x=axis_x, axis_z=axis_z, radial=radial,
                                        sirt_iterations=sirt_like, path=tilt_series)
        nz = tomo.shape[0]
    if axis_z is None:
        axis_z = (nz - 1) / 2 * voxel

    out_dir.mkdir(parents=True, exist_ok=True)
    tomo_path = write_mrc(out_dir / TOMOGRAM_NAME, tomo, voxel, label=f"templearn {STAGE} ({engine})")
    preview = write_preview(out_dir / PREVIEW_NAME, tomo, voxel, axis_z)
    params = {
        "engine": engine, "pixel_size": pixel, "voxel_size_target": target, "voxel_size": voxel,
        "bin_factor": voxel / pixel, "thickness": thickness, "shape_zyx": list(tomo.shape),
        "axis_x": axis_x, "axis_z": axis_z, "radial": list(radial), "sirt_like": sirt_like,
        "excluded_images": excluded, "angles_used": angles[keep].tolist(),
    }
    inputs = [tilt_series, tlt_path] + ([acq_path] if acq is not None else [])
    prov = provenance.record(out_dir, STAGE, params, inputs=inputs, outputs=[tomo_path, preview])
    return Reconstruction(tomo_path, preview, prov, voxel, tuple(tomo.shape))


def bin_tomogram(tomogram: str | os.PathLike, out_dir: str | os.PathLike, voxel_size: float, *,
                 orientation: str = "auto") -> Reconstruction:
    """Bin a tomogram to ``voxel_size`` Å (a model's voxel size) by Fourier cropping, turned to
    ``[z, y, x]`` first when ``orientation`` (``auto``: detected from the shape) says it is IMOD's
    unrotated ``yzx``. Writes ``out_dir/<stem>.mrc``, ``<stem>.png`` and ``provenance.json``."""
    tomogram, out_dir = Path(tomogram), Path(out_dir)
    volume, voxel = read_mrc(tomogram, mmap=True)
    if volume.ndim != 3:
        raise TemplearnError(f"a tomogram must be a 3D volume, got shape {volume.shape}", tomogram)
    found = detect_orientation(volume.shape) if orientation == "auto" else orientation
    binned, achieved = bin_volume(to_zyx(volume, found), voxel, voxel_size, path=tomogram, progress=track)
    if float(binned.std()) == 0.0:
        raise TemplearnError("the tomogram is constant (empty)", tomogram)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = write_mrc(out_dir / f"{tomogram.stem}.mrc", binned, achieved, label=f"templearn {STAGE} bin-tomogram")
    preview = write_preview(out_dir / f"{tomogram.stem}.png", binned, achieved, (binned.shape[0] - 1) / 2 * achieved)
    params = {"voxel_size_in": voxel, "voxel_size_target": voxel_size, "voxel_size": achieved,
              "bin_factor": achieved / voxel, "orientation": orientation, "orientation_used": found,
              "shape_in": list(volume.shape), "shape_zyx": list(binned.shape)}
    prov = provenance.record(out_dir, f"{STAGE} bin-tomogram", params, inputs=[tomogram], outputs=[out, preview])
    return Reconstruction(out, preview, prov, achieved, tuple(binned.shape))


def reconstruct_array(
    stack: np.ndarray,
    angles_deg,
    pixel_size: float,
    *,
    voxel_size: float | None = None,
    thickness: float | None = None,
    axis_x: float | None = None,
    axis_z: float | None = None,
    radial: tuple[float, float] = (0.5, 0.5),
    sirt_iterations: int = 0,
    path=None,
) -> tuple[np.ndarray, float]:
    """Bin and reconstruct an in-memory tilt series ``[tilt, y, x]`` (pixel ``pixel_size`` Å).

    The array form of :func:`reconstruct` (for simulators and tests): ``voxel_size`` target Å
    (default the pixel size), ``thickness`` Å (default the image width), tilt axis ``axis_x``,
    ``axis_z`` Å in the sample frame (default the image centre and the middle of the thickness).
    Returns ``(tomogram [z, y, x] float32, voxel_size Å actually used)``.
    """
    stack = np.asarray(stack)
    target = pixel_size if voxel_size is None else float(voxel_size)
    binned, voxel = bin_stack(stack, pixel_size, target, path=path, progress=track)
    if thickness is None:
        thickness = stack.shape[-1] * pixel_size
    nz = max(1, int(round(float(thickness) / voxel)))
    tomo = weighted_back_projection(binned, angles_deg, voxel, nz, axis_x=axis_x, axis_z=axis_z,
                                    radial=radial, sirt_iterations=sirt_iterations, progress=track)
    return tomo, voxel


def write_preview(path: Path, tomo: np.ndarray, voxel: float, axis_z: float) -> Path:
    """PNG: the x-y slice through the tilt axis and the x-z slice through the middle of y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nz, ny, nx = tomo.shape
    kz = int(np.clip(round(axis_z / voxel), 0, nz - 1))
    xy, xz = tomo[kz], tomo[:, ny // 2, :]
    lo, hi = np.percentile(np.concatenate([xy.ravel(), xz.ravel()]), [1, 99])
    fig, axes = plt.subplots(2, 1, figsize=(6, 6 * (ny + nz) / max(nx, 1) + 0.8),
                             gridspec_kw={"height_ratios": [ny, max(nz, 1)]})
    for ax, img, title in ((axes[0], xy, f"x-y at z = {kz} ({kz * voxel:.0f} Å)"),
                           (axes[1], xz, f"x-z at y = {ny // 2}")):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"tomogram {nx} x {ny} x {nz} at {voxel:.3g} Å", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    return path
