"""``templearn-deepfinder-train``: training targets, DeepFinder training and fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from templearn.cli_util import contrast_option, entrypoint, stage_app

app = stage_app("templearn-deepfinder-train",
                "Training targets from sample manifests, DeepFinder training (paper defaults) and fine-tuning.")

_PATCH = "Patch edge in voxels, a multiple of 4 (paper: 48)."
_SHIFT = "Random shift of patch centres around objects, voxels (paper: 13)."


@app.command("targets")
def targets(
    sample: Path = typer.Argument(..., metavar="SAMPLE.json", help="Sample manifest (from tetris)."),
    tomogram: Path = typer.Option(..., "--tomogram", help="Tomogram (MRC) the targets must match: shape and voxel size."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    mode: str = typer.Option("shape", "--mode", help="shape: each target's own shape (paper default); sphere: balls."),
    radius: Optional[float] = typer.Option(None, "--radius",
                                           help="Sphere radius (Å); default: the ball of each structure's molecular volume."),
    structures: List[Path] = typer.Option([], "--structures", help="Folder to look for structure files in (repeat)."),
    target: List[str] = typer.Option([], "--target", help="Target class to label, in label order 1..K (repeat); "
                                                          "default: the sample's targets."),
    resolution: Optional[float] = typer.Option(None, "--resolution",
                                               help="Shape mode: density resolution (Å); default: the sample's, else 2 voxels."),
    mask_threshold: Optional[float] = typer.Option(None, "--mask-threshold",
                                                   help="Shape mode: cut at this fraction of each map's maximum "
                                                        "instead of the molecular volume."),
) -> None:
    """Write DIR/targets.mrc (int8 labels, 0 background, 1..K targets), targets.json and targets.png."""
    from .targets import run_targets

    run_targets(sample, tomogram, out, mode=mode, radius=radius, structures=structures, targets=target or None,
                resolution=resolution, mask_threshold=mask_threshold)


@app.command("train")
def train(
    tomogram: List[Path] = typer.Option(..., "--tomogram", help="Training tomogram (MRC); repeat, paired in order with --targets."),
    targets: List[Path] = typer.Option(..., "--targets", help="Its label map (MRC int8, from `targets`); repeat."),
    val_tomogram: List[Path] = typer.Option([], "--val-tomogram", help="Validation tomogram; repeat. Default: 10% of "
                                                                      "the training objects are held apart."),
    val_targets: List[Path] = typer.Option([], "--val-targets", help="Its label map; repeat."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    epochs: int = typer.Option(100, "--epochs", help="Epochs (paper: 100)."),
    steps: int = typer.Option(100, "--steps", help="Training batches per epoch (paper: 100)."),
    patch: int = typer.Option(48, "--patch", help=_PATCH),
    batch: int = typer.Option(25, "--batch", help="Patches per batch (paper: 25)."),
    shift: int = typer.Option(13, "--shift", help=_SHIFT),
    val_steps: int = typer.Option(10, "--val-steps", help="Validation batches per epoch (DeepFinder: 10)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (numpy sampling and TensorFlow)."),
    init_weights: Optional[Path] = typer.Option(None, "--init-weights", help="Start from these weights (.h5)."),
    learning_rate: float = typer.Option(1e-4, "--learning-rate", help="Adam learning rate (DeepFinder: 1e-4)."),
    class_name: List[str] = typer.Option([], "--class-name", help="Name of label 1, 2, ... (repeat); default: from "
                                                                   "targets.json beside the label maps."),
    cluster_radius: List[float] = typer.Option([], "--cluster-radius", help="MeanShift bandwidth (voxels) that `pick` "
                                               "will use, once or per class, for the card's cluster-size calibration "
                                               "[default: the class radius from the targets]."),
) -> None:
    """Train DeepFinder; write DIR/model.h5, history.csv, curves.png and model_card.json (with the
    cluster sizes the model makes on validation, from which `pick` takes its default cut)."""
    from .run import run_train
    from .training import TrainParams

    params = TrainParams(epochs=epochs, steps=steps, patch=patch, batch=batch, shift=shift, val_steps=val_steps,
                         seed=seed, learning_rate=learning_rate)
    run_train(tomogram, targets, out, val_tomograms=val_tomogram, val_targets=val_targets, params=params,
              init_weights=init_weights, names=class_name or None, cluster_radius=cluster_radius or None)


@app.command("finetune")
def finetune(
    weights: Path = typer.Option(..., "--weights", help="Trained weights (model.h5, with model_card.json beside it)."),
    tomogram: List[Path] = typer.Option(..., "--tomogram", help="Annotated tomogram (MRC); repeat, paired with --picks."),
    picks: List[Path] = typer.Option(..., "--picks", help="Its picks: .star, .csv, .xml (DeepFinder) or .json (copick)."),
    val_tomogram: List[Path] = typer.Option([], "--val-tomogram", help="Validation tomogram; repeat."),
    val_picks: List[Path] = typer.Option([], "--val-picks", help="Its picks; repeat."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    radius: Optional[float] = typer.Option(None, "--radius", help="Sphere radius at each pick (Å); default: the "
                                                                  "class radius in the model card."),
    voxel_size: Optional[float] = typer.Option(None, "--voxel-size", help="Voxel size (Å) of the pick coordinates for "
                                                                          "XML; default: the tomogram's."),
    class_label: Optional[int] = typer.Option(None, "--class-label", help="Label every pick with this class; "
                                                                          "default: the picks' own classes."),
    epochs: int = typer.Option(10, "--epochs", help="Epochs (paper: 10 or 30)."),
    steps: int = typer.Option(10, "--steps", help="Batches per epoch (paper: 10)."),
    patch: int = typer.Option(48, "--patch", help=_PATCH),
    batch: int = typer.Option(25, "--batch", help="Patches per batch (paper: 25)."),
    shift: int = typer.Option(13, "--shift", help=_SHIFT),
    val_steps: int = typer.Option(10, "--val-steps", help="Validation batches per epoch."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    learning_rate: float = typer.Option(1e-4, "--learning-rate", help="Adam learning rate."),
    contrast: str = contrast_option(),
) -> None:
    """Continue training on picked tomograms; write the same files as `train`."""
    from .finetune import run_finetune
    from .training import TrainParams

    params = TrainParams(epochs=epochs, steps=steps, patch=patch, batch=batch, shift=shift, val_steps=val_steps,
                         seed=seed, learning_rate=learning_rate)
    run_finetune(weights, tomogram, picks, out, radius=radius, voxel_size=voxel_size, class_label=class_label,
                 val_tomograms=val_tomogram, val_picks=val_picks, params=params, contrast=contrast)


main = entrypoint(app)

if __name__ == "__main__":
    main()
