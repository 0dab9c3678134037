"""templearn-tetris: crowded samples (Tetris packing) and density maps of structures."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from templearn.cli_util import entrypoint, stage_app

from .packing import GRAY_LEVEL

app = stage_app("tetris", "Crowded samples of templates and distractors (Tetris packing), and density maps.")


@app.command()
def pack(
    target: List[str] = typer.Option(..., "--target", help="target structure: path or PDB ID, or NAME=SPEC for target class NAME; repeat"),
    target_name: str = typer.Option("nucleosome", "--target-name", help="class name of targets given without NAME="),
    variants: List[Path] = typer.Option([], "--variants", help="the nma stage's variants.csv (template,variant,file,rmsd); repeat"),
    distractor: List[str] = typer.Option([], "--distractor", help="distractor structure: path or PDB ID (1 copy per round); repeat"),
    distractor_list: Optional[Path] = typer.Option(None, "--distractor-list", help="CSV of distractors: pdb_id[,copies_per_round]"),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="leave out list entries that cannot be found instead of failing"),
    out: Path = typer.Option(..., "--out", help="output folder"),
    name: str = typer.Option("sample", "--name", help="sample name in the manifest"),
    box: tuple[int, int, int] = typer.Option((64, 192, 192), "--box", help="sample size in voxels: NZ NY NX"),
    voxel_size: float = typer.Option(16.0, "--voxel-size", help="voxel size (Å)"),
    resolution: float = typer.Option(32.0, "--resolution", help="map resolution (Å); Gaussian width resolution/pi as in e2pdb2mrc"),
    ratio: float = typer.Option(5.0, "--ratio", help="distractors per target (exact)"),
    dilation: int = typer.Option(1, "--dilation", help="insertion shell radius (voxels): how close molecules are put"),
    sigma: float = typer.Option(2.0, "--sigma", help="Gaussian blur (voxels) before binarizing a molecule"),
    footprint: str = typer.Option("auto", "--footprint", help="what a molecule occupies: paper (blurred map above --gray-level, the reference's halo), volume (its own volume: densest), auto (paper; volume for a --protein-fraction beyond the paper's reach)"),
    gray_level: float = typer.Option(GRAY_LEVEL, "--gray-level", help="paper footprint: level of the blurred map (e2pdb2mrc units; the reference's gray_level_threshold)"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="volume footprint: binarize at this fraction of the blurred maximum (default: the molecular volume from the mass)"),
    protein_fraction: Optional[float] = typer.Option(None, "--protein-fraction", help="stop once the molecules' volume (mass x 1.21 A^3/Da) is this fraction of the box"),
    protein_fraction_range: Optional[tuple[float, float]] = typer.Option(None, "--protein-fraction-range", help="draw the --protein-fraction target uniformly in LO HI with the seed"),
    max_molecules: Optional[int] = typer.Option(None, "--max-molecules", help="stop after this many molecules"),
    max_fraction: Optional[float] = typer.Option(None, "--max-fraction", help="stop when this fraction of the box is covered by footprints"),
    max_failures: int = typer.Option(3, "--max-failures", help="retire a structure after it fitted nowhere this many times"),
    candidates: Optional[int] = typer.Option(None, "--candidates", help="positions scored exactly per molecule, the most crowded of the whole box where it may fit (doubling while none fits); default 4096 with the paper footprint, 256 with the volume one"),
    spread: Optional[bool] = typer.Option(None, "--spread/--no-spread", help="grow from random points (each molecule at the most contact near one), so a partial packing is crowded alike everywhere; default: with --max-fraction"),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="folder caching density maps between runs"),
) -> None:
    """Pack targets and distractors into a crowded sample (sample.json, occupancy/instances/classes/density.mrc, slices.png)."""
    from .sample import pack_sample

    pack_sample(target, out=out, target_name=target_name, variants=variants, distractors=distractor,
                distractor_list=distractor_list, skip_missing=skip_missing, name=name, box=box,
                voxel_size=voxel_size, resolution=resolution, ratio=ratio, dilation=dilation, sigma=sigma,
                footprint=footprint, gray_level=gray_level, threshold=threshold, protein_fraction=protein_fraction,
                protein_fraction_range=protein_fraction_range, max_molecules=max_molecules, max_fraction=max_fraction,
                max_failures=max_failures, candidates=candidates, spread=spread, seed=seed, cache=cache)


@app.command()
def density(
    spec: str = typer.Argument(..., help="structure: path or PDB ID"),
    out: Path = typer.Option(..., "--out", help="output map (.mrc); a .json beside it records centre and origin"),
    voxel_size: float = typer.Option(16.0, "--voxel-size", help="voxel size (Å)"),
    resolution: float = typer.Option(32.0, "--resolution", help="resolution (Å); Gaussian width resolution/pi as in e2pdb2mrc"),
) -> None:
    """Density map of one structure, centred on its centre of mass."""
    from .maps import write_density_map

    write_density_map(spec, out, voxel_size=voxel_size, resolution=resolution)


main = entrypoint(app)
