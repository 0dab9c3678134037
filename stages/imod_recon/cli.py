"""``templearn-imod-recon``: binning and weighted back projection of a tilt series."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from templearn.cli_util import entrypoint, stage_app

app = stage_app("imod-recon", "Bin a tilt series (Fourier cropping) and reconstruct it by weighted back projection; bin a tomogram.")


@app.command("reconstruct")
def reconstruct_cmd(
    tilt_series: Path = typer.Argument(..., help="Tilt series MRC [tilt, y, x], pixel size in the header."),
    out: Path = typer.Option(..., "--out", help="Output folder: tomogram.mrc, tomogram.png, provenance.json."),
    tlt: Optional[Path] = typer.Option(None, "--tlt", help="Tilt angles (IMOD .tlt); default: <stem>.tlt beside the tilt series."),
    acquisition: Optional[Path] = typer.Option(None, "--acquisition", help="Acquisition record (tilt axis, thickness); default: acquisition.json beside the tilt series, if any."),
    voxel_size: Optional[float] = typer.Option(None, "--voxel-size", help="Target voxel size in Å (>= the pixel size); default: the pixel size."),
    thickness: Optional[float] = typer.Option(None, "--thickness", help="Tomogram thickness in Å; default: the acquisition's thickness, else the image width."),
    radial: tuple[float, float] = typer.Option((0.5, 0.5), "--radial", help="IMOD RADIAL: cutoff and Gaussian falloff (sigma), cycles/pixel if < 1, else frequency steps."),
    sirt_like: int = typer.Option(0, "--sirt-like", help="SIRT-like filter equivalent to N iterations (IMOD FakeSIRTiterations); 0 = plain R-weighting."),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="Images to leave out, 1-based, e.g. 1,2,40-45."),
    engine: str = typer.Option("templearn", "--engine", help="templearn (built in) or imod (newstack + tilt on PATH)."),
) -> None:
    """Reconstruct TILT_SERIES into OUT/tomogram.mrc ([z, y, x], voxel k at k * voxel Å)."""
    from .reconstruct import reconstruct

    reconstruct(tilt_series, out, tlt=tlt, acquisition=acquisition, voxel_size=voxel_size,
                thickness=thickness, radial=radial, sirt_like=sirt_like, exclude=exclude, engine=engine)


@app.command("bin-tomogram")
def bin_tomogram_cmd(
    tomogram: Path = typer.Argument(..., help="Tomogram MRC, voxel size in the header."),
    voxel_size: float = typer.Option(..., "--voxel-size", help="Target voxel size in Å (the model's: model_card.json), >= the tomogram's."),
    out: Path = typer.Option(..., "--out", help="Output folder: <stem>.mrc ([z, y, x]), <stem>.png, provenance.json."),
    orientation: str = typer.Option("auto", "--orientation", help="Axes of the file: 'zyx' (beam axis first: templearn, Warp, RELION, IMOD after trimvol -rx), 'yzx' (IMOD tilt's raw output: turned as trimvol -rx does), 'auto' (yzx when the second axis is clearly the thinnest)."),
) -> None:
    """Bin TOMOGRAM to a model's voxel size by Fourier cropping (anti-aliased, any factor >= 1), as reconstruct bins tilt series."""
    from .reconstruct import bin_tomogram

    r = bin_tomogram(tomogram, out, voxel_size, orientation=orientation)
    typer.echo(f"{r.tomogram}: {r.shape[2]} x {r.shape[1]} x {r.shape[0]} at {r.voxel_size:.4g} Å")


main = entrypoint(app)
