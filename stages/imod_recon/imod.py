"""The ``imod`` engine: IMOD's ``newstack`` (Fourier reduction) and ``tilt`` (weighted back
projection), as the Template Learning paper ran them, converted to templearn's conventions.

Options written (``newstack.com`` / ``tilt.com`` in the output folder, IMOD's
``-StandardInput`` form, so a user can rerun them by hand):

- ``newstack -FourierReduceByFactor f`` when the voxel size is larger than the pixel size;
- ``tilt``: ``TILTFILE``, ``THICKNESS nz``, ``RADIAL cutoff falloff``, ``FalloffIsTrueSigma 1``,
  ``XAXISTILT 0``, ``PERPENDICULAR``, ``MODE 2``, ``FakeSIRTiterations`` (if > 0),
  ``EXCLUDELIST`` (1-based, if any), ``OFFSET 0 dx`` and ``SHIFT dx dz`` to put the tilt axis
  where the acquisition record says.

Orientation (read from ``tilt.f90``): with ``PERPENDICULAR`` the output MRC is ``nx x thickness
x ny`` (numpy ``[y, t, x]``), and ``tilt`` back-projects with ``-sin θ`` ("rotations viewed from
-Y"), so its thickness index ``t`` runs along ``-z`` of our frame: ``tomogram[z, y, x] =
rec[y, nz - 1 - z, x]`` (what ``trimvol -rx`` plus a z flip does). ``newstack`` keeps the image
centre fixed where templearn keeps sample 0 at 0 Å, so the binned grid starts at
``((n - 1) p - (n' - 1) v) / 2`` Å; the tomogram is Fourier-shifted in x and y back onto the
``i * voxel`` grid. Values keep ``tilt``'s own scale. This conversion follows IMOD's source;
IMOD was not installed where it was written, so it is not tested against a real ``tilt`` run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from templearn.errors import TemplearnError

TOOLS = ("newstack", "tilt")


def find_imod() -> dict[str, str]:
    """Paths of ``newstack`` and ``tilt``; a clear error when they are not on PATH."""
    found = {name: shutil.which(name) for name in TOOLS}
    missing = [name for name, path in found.items() if not path]
    if missing:
        raise TemplearnError(
            f"--engine imod needs IMOD's {' and '.join(missing)} on PATH (not found); install IMOD "
            "(https://bio3d.colorado.edu/imod/) and source its startup script, or use the default "
            "--engine templearn, which needs no IMOD")
    return found  # type: ignore[return-value]


def format_com(program: str, options: list[tuple[str, str]]) -> str:
    """An IMOD command file: ``$program -StandardInput`` then one ``Option value`` per line."""
    lines = ["# written by templearn imod-recon", f"${program} -StandardInput"]
    lines += [f"{key} {value}".rstrip() for key, value in options]
    return "\n".join(lines) + "\n"


def newstack_options(stack: Path, binned: Path, factor: float) -> list[tuple[str, str]]:
    return [("InputFile", str(stack)), ("OutputFile", str(binned)),
            ("FourierReduceByFactor", f"{factor:.6g}"), ("ModeToOutput", "2")]


def exclude_ranges(views_1based) -> str:
    """IMOD list syntax for 1-based view numbers: ``1,4-6``."""
    views = sorted(set(int(v) for v in views_1based))
    parts, i = [], 0
    while i < len(views):
        j = i
        while j + 1 < len(views) and views[j + 1] == views[j] + 1:
            j += 1
        parts.append(str(views[i]) if i == j else f"{views[i]}-{views[j]}")
        i = j + 1
    return ",".join(parts)


def tilt_options(projections: Path, rec: Path, tlt: Path, *, nx: int, nz: int, voxel: float,
                 axis_x: float, axis_z: float, radial=(0.5, 0.5), sirt_iterations: int = 0,
                 exclude=()) -> list[tuple[str, str]]:
    """``tilt`` options for a binned stack ``nx`` pixels wide at ``voxel`` Å.

    ``axis_x`` is in binned pixels of ``projections`` times ``voxel`` (Å from its pixel 0);
    ``axis_z`` in Å from tomogram voxel 0. ``tilt`` centres the axis at ``(nx - 1) / 2``
    (``OFFSET``'s second value moves it) and the output slab's middle ``(nz - 1) / 2`` (``SHIFT``'s
    z moves it, positive = up = our -z): ``SHIFT dx`` equal to the axis offset keeps output x on
    the input grid.
    """
    dx = axis_x / voxel - (nx - 1) / 2
    dz = (nz - 1) / 2 - axis_z / voxel
    opts = [
        ("InputProjections", str(projections)),
        ("OutputFile", str(rec)),
        ("TILTFILE", str(tlt)),
        ("THICKNESS", str(int(nz))),
        ("RADIAL", f"{radial[0]:g} {radial[1]:g}"),
        ("FalloffIsTrueSigma", "1"),
        ("XAXISTILT", "0.0"),
        ("PERPENDICULAR", ""),
        ("MODE", "2"),
        ("OFFSET", f"0.0 {dx:.4f}"),
        ("SHIFT", f"{dx:.4f} {dz:.4f}"),
        ("UseGPU", "0"),
    ]
    if sirt_iterations > 0:
        opts.append(("FakeSIRTiterations", str(int(sirt_iterations))))
    if len(exclude):
        opts.append(("EXCLUDELIST", exclude_ranges(exclude)))
    return opts


def run_imod(program: str, options: list[tuple[str, str]], com_path: Path, log_path: Path) -> None:
    """Write ``com_path`` and run it through ``-StandardInput``; errors quote the log's tail."""
    com_path.write_text(format_com(program, options))
    stdin = "\n".join(f"{k} {v}".rstrip() for k, v in options) + "\n"
    with open(log_path, "w") as log:
        proc = subprocess.run([program, "-StandardInput"], input=stdin, text=True,
                              stdout=log, stderr=subprocess.STDOUT, cwd=com_path.parent)
    if proc.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-3:]
        raise TemplearnError(f"{program} failed (exit {proc.returncode}): {' | '.join(tail)}", log_path)


def fourier_shift(data: np.ndarray, shift: float, axis: int) -> np.ndarray:
    """``out[i] = data[i - shift]`` along ``axis`` (band-limited interpolation), float32."""
    from scipy import fft

    if abs(shift) < 1e-6:
        return data
    n = data.shape[axis]
    k = fft.rfftfreq(n)
    phase = np.exp(-2j * np.pi * k * shift).astype(np.complex64)
    shape = [1] * data.ndim
    shape[axis] = k.size
    spec = fft.rfft(data, axis=axis) * phase.reshape(shape)
    return fft.irfft(spec, n=n, axis=axis).astype(np.float32)


def imod_orientation_to_ours(rec_yzx: np.ndarray) -> np.ndarray:
    """``tilt`` PERPENDICULAR output ``[y, thickness, x]`` -> templearn ``[z, y, x]``."""
    return np.ascontiguousarray(np.asarray(rec_yzx).transpose(1, 0, 2)[::-1])


def reconstruct_imod(stack_path: Path, tlt_path: Path, work: Path, *, pixel: float,
                     voxel_target: float, shape_yx: tuple[int, int], thickness: float,
                     axis_x: float, axis_z: float | None, radial, sirt_iterations: int,
                     exclude) -> tuple[np.ndarray, float]:
    """Run newstack + tilt in ``work``; returns ``(tomogram [z, y, x], voxel Å)``."""
    from templearn.mrc import read_mrc

    find_imod()
    work.mkdir(parents=True, exist_ok=True)
    factor = voxel_target / pixel
    ny0, nx0 = shape_yx
    projections = stack_path.resolve()
    if factor > 1 + 1e-6:
        projections = work / "binned.mrc"
        run_imod("newstack", newstack_options(stack_path.resolve(), projections, factor),
                 work / "newstack.com", work / "newstack.log")
    binned, voxel = read_mrc(projections, mmap=True)
    _, nyb, nxb = binned.shape
    # newstack keeps the image centre: binned pixel 0 sits at off Å in the original frame.
    off_x = ((nx0 - 1) * pixel - (nxb - 1) * voxel) / 2
    off_y = ((ny0 - 1) * pixel - (nyb - 1) * voxel) / 2
    nz = max(1, int(round(thickness / voxel)))
    if axis_z is None:
        axis_z = (nz - 1) / 2 * voxel
    rec_path = work / "tilt.rec"
    run_imod("tilt", tilt_options(projections, rec_path, tlt_path.resolve(), nx=nxb, nz=nz,
                                  voxel=voxel, axis_x=axis_x - off_x, axis_z=axis_z,
                                  radial=radial, sirt_iterations=sirt_iterations, exclude=exclude),
             work / "tilt.com", work / "tilt.log")
    rec, _ = read_mrc(rec_path)
    tomo = imod_orientation_to_ours(rec)
    # Voxel i of IMOD's grid is at off + i * voxel; ours at i * voxel: shift by off / voxel.
    tomo = fourier_shift(tomo, off_x / voxel, axis=2)
    tomo = fourier_shift(tomo, off_y / voxel, axis=1)
    for tmp in (work / "binned.mrc", rec_path):
        if tmp.exists() and tmp != stack_path:
            os.remove(tmp)
    return tomo, voxel
