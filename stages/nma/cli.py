"""``templearn-nma``: flexible variants of templates by normal mode analysis."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from templearn.cli_util import entrypoint, stage_app

app = stage_app("templearn-nma", "Flexible variants of templates by normal mode analysis (ANM on CA and P atoms).")


@app.command("variants")
def variants(
    structures: List[str] = typer.Argument(..., metavar="STRUCTURE...",
                                           help="Structure files (PDB/mmCIF, gzipped or not), PDB IDs, or MRC maps."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    n_variants: int = typer.Option(25, "--n-variants", help="Variants per structure (paper: 25 ribosome, 100 nucleosome)."),
    amplitude: float = typer.Option(100.0, "--amplitude",
                                    help="Amplitudes uniform in [-A, A] per mode, modes of unit norm over all atoms "
                                         "(paper: 150 ribosome, 100 nucleosome)."),
    n_modes: int = typer.Option(20, "--n-modes", help="Non-rigid modes combined."),
    cutoff: float = typer.Option(15.0, "--cutoff", help="ANM cutoff (Å)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    fmt: str = typer.Option("cif", "--format", metavar="cif|pdb", help="Variant file format: cif or pdb."),
    gamma: float = typer.Option(1.0, "--gamma", help="ANM spring constant (scales eigenvalues only)."),
    map_threshold: Optional[float] = typer.Option(None, "--map-threshold",
                                                  help="MRC inputs: density threshold (default: Otsu)."),
    p_fraction: float = typer.Option(0.1, "--p-fraction", help="MRC inputs: fraction of pseudo-atoms made phosphorus."),
) -> None:
    """Write N random ANM variants of each STRUCTURE, their RMSD table and the modes."""
    from .variants import make_variants

    make_variants(structures, out, n_variants=n_variants, amplitude=amplitude, n_modes=n_modes, cutoff=cutoff,
                  gamma=gamma, seed=seed, fmt=fmt, map_threshold=map_threshold, p_fraction=p_fraction)


main = entrypoint(app)

if __name__ == "__main__":
    main()
