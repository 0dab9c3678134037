"""``templearn-parakeet-sim``: the domain-randomization grid and tilt-series simulation."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from templearn.cli_util import entrypoint, stage_app

app = stage_app("parakeet-sim", "Tilt series of a sample manifest (Parakeet or the fast engine), and the condition grid.")


@app.command("grid")
def grid_cmd(
    out: Path = typer.Option(..., "--out", help="GRID.json to write (the list of conditions, each with its index)."),
    config: Optional[Path] = typer.Option(None, "--config", help="GRID.yaml with your own grid (default: the paper's 48 conditions)."),
    domain: Optional[str] = typer.Option(None, "--domain", help="phase_plate (0/-0.5/-1 µm), defocus (-2.5/-3.25/-4 µm) or both [phase_plate, or the config's]."),
    randomize: bool = typer.Option(False, "--randomize", help="Draw defocus, dose, ice, contrast and slab per tilt series from ranges (the config's `randomize:`, else the defaults); the grid then crosses domain x tilt range x step only."),
) -> None:
    """Write the list of acquisition conditions to simulate (one task each)."""
    from .simulate import write_grid

    write_grid(out, config, domain, randomize)


@app.command("simulate")
def simulate_cmd(
    sample: Path = typer.Argument(..., help="Sample manifest (SAMPLE.json from tetris)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    engine: str = typer.Option("fast", "--engine", help="fast (projection approximation) or parakeet (MULTEM multislice)."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Image pixel size in Å [4.0]."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="GRID.json from `grid`; use with --condition."),
    condition: Optional[int] = typer.Option(None, "--condition", help="Index of the grid condition to simulate."),
    defocus: Optional[float] = typer.Option(None, "--defocus", help="Defocus in µm, negative = underfocus [-3.0]."),
    phase_plate: Optional[bool] = typer.Option(None, "--phase-plate/--no-phase-plate", help="Volta phase plate [off]."),
    dose: Optional[float] = typer.Option(None, "--dose", help="Total dose of the series in e/Å² [120]."),
    tilt_range: Optional[float] = typer.Option(None, "--tilt-range", help="Tilt range ± degrees [60]."),
    tilt_step: Optional[float] = typer.Option(None, "--tilt-step", help="Tilt step in degrees [3]."),
    ice_density: Optional[float] = typer.Option(None, "--ice-density", help="Ice density in g/cm³ (0: no ice) [0.94]."),
    voltage: Optional[float] = typer.Option(None, "--voltage", help="Acceleration voltage in kV [300]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed [0]; same seed, same stack."),
    structures: Optional[List[Path]] = typer.Option(None, "--structures", help="Extra folders to find the manifest's structure files (repeatable)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or gpu: where Parakeet runs (the fast engine runs on the CPU) [cpu]."),
    damage: Optional[bool] = typer.Option(None, "--damage/--no-damage", help="Exposure-dependent radiation damage [on]."),
    parakeet_pixel: Optional[float] = typer.Option(None, "--parakeet-pixel", help="Finest pixel (Å) Parakeet simulates at before binning to --pixel-size [1.0]."),
    parakeet_slice: Optional[float] = typer.Option(None, "--parakeet-slice", help="Parakeet's multislice thickness in Å [3.0]."),
    amplitude_contrast: Optional[float] = typer.Option(None, "--amplitude-contrast", help="Fast engine: fraction of the phase lost as amplitude [0.07]."),
    contrast_scale: Optional[float] = typer.Option(None, "--contrast-scale", help="Fast engine: molecules' potential x this [1.0]."),
    ice_noise_scale: Optional[float] = typer.Option(None, "--ice-noise-scale", help="Fast engine: ice fluctuations' std x this [1.0]."),
    ice_noise_correlation: Optional[float] = typer.Option(None, "--ice-noise-correlation", help="Fast engine: ice fluctuations' correlation length in Å [0: white]."),
    slab_fraction: Optional[float] = typer.Option(None, "--slab-fraction", help="Specimen slab thickness / box height; molecules outside are dropped (sample.json), vacuum above and below [whole box]."),
    slab_offset: Optional[float] = typer.Option(None, "--slab-offset", help="Where the slab lies in the free height: 0 bottom, 1 top [0.5]."),
) -> None:
    """Simulate the tilt series of SAMPLE into OUT (tilt_series.mrc, .tlt, acquisition.json; sample.json with a slab)."""
    from .simulate import simulate

    simulate(sample, out, grid=grid, condition=condition, structures=structures or (), engine=engine,
             pixel_size=pixel_size, defocus_um=defocus, phase_plate=phase_plate, dose=dose, tilt_range=tilt_range,
             tilt_step=tilt_step, ice_density=ice_density, voltage=voltage, seed=seed, device=device,
             radiation_damage=damage, parakeet_pixel=parakeet_pixel, parakeet_slice=parakeet_slice,
             amplitude_contrast=amplitude_contrast, contrast_scale=contrast_scale, ice_noise_scale=ice_noise_scale,
             ice_noise_correlation=ice_noise_correlation, slab_fraction=slab_fraction, slab_offset=slab_offset)


main = entrypoint(app)
