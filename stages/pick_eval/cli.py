"""``templearn-pick-eval``: pick, evaluate, match (template-matching baseline), spectrum-match."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from templearn.cli_util import entrypoint, stage_app

app = stage_app("pick-eval", "Picking with a trained model, evaluation, and the template-matching baseline.")


@app.command("pick")
def pick(
    tomogram: Path = typer.Argument(..., help="Tomogram (MRC) at the model's voxel size."),
    weights: Path = typer.Option(..., "--weights", help="Trained model (.h5) with its model_card.json beside it."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    radius: List[float] = typer.Option([10.0], "--radius", help="MeanShift bandwidth in voxels (10 ribosome, 6 nucleosome); repeat once per class for per-class radii."),
    min_size: Optional[int] = typer.Option(None, "--min-size", help="Keep clusters of at least this many voxels [default: 10% of a sphere of the radius]."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="MRC of the tomogram's shape; picks only where it is non-zero."),
    patch: Optional[int] = typer.Option(None, "--patch", help="Network input cube (multiple of 4) [default: the model card's, 48]."),
    crop: int = typer.Option(8, "--crop", help="Voxels dropped from each patch border."),
    overlap: int = typer.Option(21, "--overlap", help="Overlap of neighbouring patches (>= 2*crop+1)."),
    class_names: Optional[List[str]] = typer.Option(None, "--class-names", help="Names of classes 1..K (repeat) [default: the model card's]."),
    clustering: str = typer.Option("grid", "--clustering", help="'grid': MeanShift on fields of voxel counts (scales); 'deepfinder': scikit-learn's MeanShift over every voxel, as DeepFinder (reference, slow)."),
) -> None:
    """Segment TOMOGRAM, cluster (MeanShift), write picks (STAR, CSV, XML, copick), clusters.csv, segmentation.mrc, picks.png."""
    from .pick import run_pick

    run_pick(tomogram, weights, out, radius=radius, min_size=min_size, mask=mask, patch=patch, crop=crop,
             overlap=overlap, class_names=class_names, clustering=clustering)


@app.command("evaluate")
def evaluate(
    picks: List[Path] = typer.Option(..., "--picks", help="Picks of one tomogram (STAR/CSV/XML/copick); repeat, paired with --truth in order."),
    truth: List[Path] = typer.Option(..., "--truth", help="Tetris sample.json (its targets) or a picks file; repeat."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    distance: Optional[float] = typer.Option(None, "--distance", help="Matching distance in Å [default: the target's radius from its mass in the sample]."),
    target: Optional[str] = typer.Option(None, "--target", help="Target class name [default: the sample's only target]."),
    voxel_size: Optional[float] = typer.Option(None, "--voxel-size", help="Voxel size in Å for picks files that do not record it (DeepFinder XML)."),
    baseline: Optional[List[Path]] = typer.Option(None, "--baseline", help="Picks of a second method (e.g. `match`), paired with --truth; reported beside."),
    name: str = typer.Option("template learning", "--name", help="Name of the --picks method in the report and plots."),
    baseline_name: str = typer.Option("template matching", "--baseline-name", help="Name of the --baseline method."),
    mask: Optional[List[Path]] = typer.Option(None, "--mask", help="MRC mask of the tomogram, paired with --truth (repeat): only picks and true particles on non-zero voxels count."),
) -> None:
    """Precision, recall, F1 over the score threshold: report.json, pr_curve.png, f1_box.png, angles.png."""
    from .evaluate import run_evaluate

    run_evaluate(picks, truth, out, distance=distance, target=target, voxel_size=voxel_size,
                 baseline=baseline or None, name=name, baseline_name=baseline_name, masks=mask or None)


@app.command("match")
def match(
    tomogram: Path = typer.Argument(..., help="Tomogram (MRC)."),
    template: str = typer.Option(..., "--template", help="Template: MRC map, structure file or PDB ID."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    angular_step: float = typer.Option(15.0, "--angular-step", help="Angular step in degrees (15: 4416 rotations, 30: 552)."),
    tilt_range: float = typer.Option(60.0, "--tilt-range", help="Largest tilt angle in degrees (missing wedge beyond)."),
    n_peaks: Optional[int] = typer.Option(None, "--n-peaks", help="Peaks to extract [default: as many spheres of --min-distance as the volume holds, <= 2000]."),
    min_distance: Optional[float] = typer.Option(None, "--min-distance", help="Exclusion radius around a peak, voxels [default: radius of the sphere of the template's volume at half maximum]."),
    resolution: Optional[float] = typer.Option(None, "--resolution", help="Low-pass of the template, Å [default: 2x voxel size for structures, none for maps]."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="MRC of the tomogram's shape; peaks only where it is non-zero."),
    contrast: str = typer.Option("dark", "--contrast", help="'dark': particles darker than the solvent (raw cryo-ET); 'bright' otherwise."),
    class_name: Optional[str] = typer.Option(None, "--class-name", help="Name of the picked class [default: the template's file name]."),
) -> None:
    """Template matching (FLCF, missing-wedge aware): picks scored by NCC, scores.mrc, picks.png."""
    from .template_matching import run_match

    run_match(tomogram, template, out, angular_step=angular_step, tilt_range=tilt_range, n_peaks=n_peaks,
              min_distance=min_distance, resolution=resolution, mask=mask, contrast=contrast, class_name=class_name)


@app.command("spectrum-match")
def spectrum_match(
    tomogram: Path = typer.Argument(..., help="Tomogram (MRC) to filter."),
    reference: Path = typer.Option(..., "--reference", help="Tomogram (MRC) whose radial amplitude spectrum is imposed."),
    out: Path = typer.Option(..., "--out", help="Output MRC."),
) -> None:
    """Impose the radially averaged amplitude spectrum of REFERENCE on TOMOGRAM (phases kept)."""
    from .spectrum import run_spectrum_match

    run_spectrum_match(tomogram, reference, out)


main = entrypoint(app)
