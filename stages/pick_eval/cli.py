"""``templearn-pick-eval``: pick, evaluate, match (template-matching baseline), spectrum-match."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from templearn.cli_util import contrast_option, entrypoint, stage_app

# A copick project as input (instead of TOMOGRAM) and output, shared by pick and match.
COPICK_CONFIG = typer.Option(None, "--copick-config", help="copick project config (JSON): pick its tomogram (--run, --voxel-spacing, --tomo-type) instead of TOMOGRAM and write the picks into it.")
RUN = typer.Option(None, "--run", help="copick run to pick.")
VOXEL_SPACING = typer.Option(None, "--voxel-spacing", help="copick voxel spacing in Å [default: the run's only one].")
TOMO_TYPE = typer.Option(None, "--tomo-type", help="copick tomogram type, e.g. wbp, denoised [default: the only one].")
COPICK_USER = typer.Option("templearn", "--copick-user", help="copick user_id of the written picks.")
COPICK_SESSION = typer.Option("0", "--copick-session", help="copick session_id of the written picks ('0': a tool's).")
COPICK_OBJECT = typer.Option(None, "--copick-object", help="copick object name of class 1..K (repeat) [default: the class names].")

CONTRAST = contrast_option()
STAR_FORMAT = typer.Option("relion5", "--star-format", help="picks.star as 'relion5' (centred Å, tomograms.star beside) or 'relion4' (voxels).")

app = stage_app("pick-eval", "Picking with a trained model, evaluation, and the template-matching baseline.")


@app.command("pick")
def pick(
    tomogram: Optional[Path] = typer.Argument(None, help="Tomogram (MRC) at the model's voxel size (or --copick-config)."),
    weights: Path = typer.Option(..., "--weights", help="Trained model (.h5) with its model_card.json beside it."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    radius: List[float] = typer.Option([], "--radius", help="MeanShift bandwidth in voxels (10 ribosome, 6 nucleosome); repeat once per class for per-class radii [default: the model card's, else 10]."),
    min_size: Optional[int] = typer.Option(None, "--min-size", help="Accept clusters of at least this many voxels [default: the model card's cut, half the median size of true clusters in validation]."),
    n_particles: Optional[int] = typer.Option(None, "--n-particles", help="Accept the N largest clusters of each class instead (when the number of particles is known)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="MRC of the tomogram's shape; picks only where it is non-zero."),
    patch: Optional[int] = typer.Option(None, "--patch", help="Network input cube (multiple of 4) [default: the model card's, 48]."),
    crop: int = typer.Option(8, "--crop", help="Voxels dropped from each patch border."),
    overlap: int = typer.Option(21, "--overlap", help="Overlap of neighbouring patches (>= 2*crop+1)."),
    class_names: Optional[List[str]] = typer.Option(None, "--class-names", help="Names of classes 1..K (repeat) [default: the model card's]."),
    star_format: str = STAR_FORMAT,
    copick_config: Optional[Path] = COPICK_CONFIG, run: Optional[str] = RUN, voxel_spacing: Optional[float] = VOXEL_SPACING,
    tomo_type: Optional[str] = TOMO_TYPE, copick_user: str = COPICK_USER, copick_session: str = COPICK_SESSION,
    copick_object: Optional[List[str]] = COPICK_OBJECT,
    clustering: str = typer.Option("grid", "--clustering", help="'grid': MeanShift on fields of voxel counts (scales); 'deepfinder': scikit-learn's MeanShift over every voxel, as DeepFinder (reference, slow)."),
    contrast: str = CONTRAST,
) -> None:
    """Segment TOMOGRAM, cluster (MeanShift), cut by cluster size; write accepted picks (STAR, CSV, XML, Dynamo, IMOD, copick), candidates.csv (all, with the accepted flag), segmentation.mrc, picks.png, cluster_sizes.png."""
    from templearn.copick_io import target

    from .pick import run_pick

    copick = target(copick_config, run, voxel_spacing, tomo_type, copick_user, copick_session, copick_object, tomogram)
    run_pick(tomogram, weights, out, radius=radius or None, min_size=min_size, n_particles=n_particles, mask=mask,
             patch=patch, crop=crop, overlap=overlap, class_names=class_names, star_format=star_format, copick=copick,
             clustering=clustering, contrast=contrast)


@app.command("evaluate")
def evaluate(
    picks: List[Path] = typer.Option(..., "--picks", help="Picks of one tomogram (STAR/CSV/XML/copick); repeat, paired with --truth in order."),
    truth: List[Path] = typer.Option(..., "--truth", help="Tetris sample.json (its targets), a picks file, or with --copick-config a copick run; repeat."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    distance: Optional[float] = typer.Option(None, "--distance", help="Matching distance in Å [default: the target's radius from its mass in the sample]."),
    target: Optional[str] = typer.Option(None, "--target", help="Target class name [default: the sample's only target]."),
    voxel_size: Optional[float] = typer.Option(None, "--voxel-size", help="Voxel size in Å for picks files that do not record it (DeepFinder XML)."),
    baseline: Optional[List[Path]] = typer.Option(None, "--baseline", help="Picks of a second method (e.g. `match`), paired with --truth; reported beside."),
    name: str = typer.Option("template learning", "--name", help="Name of the --picks method in the report and plots."),
    baseline_name: str = typer.Option("template matching", "--baseline-name", help="Name of the --baseline method."),
    mask: Optional[List[Path]] = typer.Option(None, "--mask", help="MRC mask of the tomogram, paired with --truth (repeat): only picks and true particles on non-zero voxels count."),
    tomogram: Optional[List[Path]] = typer.Option(None, "--tomogram", help="The tomogram (MRC), paired with --truth (repeat): draws its slices with true, false and missed picks."),
    copick_config: Optional[Path] = typer.Option(None, "--copick-config", help="copick project: each --truth names one of its runs, whose picks of --target are the truth."),
    copick_user: Optional[str] = typer.Option(None, "--copick-user", help="user_id of the copick truth picks [default: any]."),
    copick_session: Optional[str] = typer.Option(None, "--copick-session", help="session_id of the copick truth picks [default: any]."),
    template: Optional[str] = typer.Option(None, "--template", help="A structure of the target (PDB ID or file): the matching distance is its radius by mass when the truth is a picks file [default: give --distance]."),
) -> None:
    """Precision, recall, F1 of the picks as written and over the score threshold: report.json, pr_curve.png, f1_box.png, angles.png, slices_*.png."""
    from templearn.copick_io import CopickPicksSource

    from .evaluate import run_evaluate

    copick = CopickPicksSource(copick_config, copick_user, copick_session) if copick_config else None
    run_evaluate(picks, truth, out, distance=distance, target=target, voxel_size=voxel_size,
                 baseline=baseline or None, name=name, baseline_name=baseline_name, masks=mask or None,
                 tomograms=tomogram or None, copick=copick, template=template)


@app.command("match")
def match(
    tomogram: Optional[Path] = typer.Argument(None, help="Tomogram (MRC) (or --copick-config)."),
    template: str = typer.Option(..., "--template", help="Template: MRC map, structure file or PDB ID."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    angular_step: Optional[float] = typer.Option(None, "--angular-step", help="Angular step in degrees (15: 4416 rotations, 30: 552) [default: the particle's Crowther step, atan(resolution / diameter), coarsened to fit --time-budget]."),
    tilt_range: float = typer.Option(60.0, "--tilt-range", help="Largest tilt angle in degrees (missing wedge beyond)."),
    time_budget: float = typer.Option(30.0, "--time-budget", help="Minutes on a 2-core CPU the default angular step must fit in (estimated from the tomogram's and template's sizes)."),
    time_estimate: bool = typer.Option(False, "--time-estimate", help="Print the angular step, rotations and estimated time (and one rotation timed here), then stop (nothing written)."),
    n_peaks: Optional[int] = typer.Option(None, "--n-peaks", help="Peaks to extract [default: as many spheres of --min-distance as the volume holds, <= 2000]."),
    min_distance: Optional[float] = typer.Option(None, "--min-distance", help="Exclusion radius around a peak, voxels [default: radius of the sphere of the template's volume at half maximum]."),
    resolution: Optional[float] = typer.Option(None, "--resolution", help="Low-pass of the template, Å [default: 2x voxel size for structures, none for maps]."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="MRC of the tomogram's shape; peaks only where it is non-zero."),
    contrast: str = CONTRAST,
    class_name: Optional[str] = typer.Option(None, "--class-name", help="Name of the picked class [default: the template's file name]."),
    false_alarms: float = typer.Option(1.0, "--false-alarms", help="Accept peaks above the NCC at which this many noise peaks are expected over the whole search (voxels x rotations)."),
    min_score: Optional[float] = typer.Option(None, "--min-score", help="Accept peaks of at least this NCC instead."),
    star_format: str = STAR_FORMAT,
    copick_config: Optional[Path] = COPICK_CONFIG, run: Optional[str] = RUN, voxel_spacing: Optional[float] = VOXEL_SPACING,
    tomo_type: Optional[str] = TOMO_TYPE, copick_user: str = COPICK_USER, copick_session: str = COPICK_SESSION,
    copick_object: Optional[List[str]] = COPICK_OBJECT,
) -> None:
    """Template matching (FLCF, missing-wedge aware): peaks scored by NCC, cut at a false-alarm rate; picks, candidates.csv, scores.mrc, picks.png, scores.png."""
    from templearn.copick_io import target

    from .template_matching import run_match

    copick = target(copick_config, run, voxel_spacing, tomo_type, copick_user, copick_session, copick_object, tomogram)
    run_match(tomogram, template, out, angular_step=angular_step, tilt_range=tilt_range, time_budget=time_budget,
              time_estimate=time_estimate, n_peaks=n_peaks,
              min_distance=min_distance, resolution=resolution, mask=mask, contrast=contrast, class_name=class_name,
              false_alarms=false_alarms, min_score=min_score, star_format=star_format, copick=copick)


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
