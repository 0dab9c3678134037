"""Flexible variants of templates: random combinations of their lowest ANM modes.

For each template: nodes (CA, P) -> ANM (:mod:`.anm`) -> the first ``n_modes`` non-rigid modes
-> extended to every atom (:mod:`.extend`), each of unit norm over all atoms -> ``n_variants``
conformations ``x + Σ_k a_k m_k`` with amplitudes ``a_k`` drawn uniformly in
``[-amplitude, amplitude]``, independently per mode and variant.

Amplitude scale: unit-norm all-atom modes are the convention of the paper's code (ProDy
``extendMode(norm=True)``, amplitudes added to the coordinates), so the paper's ranges (100 for
nucleosomes, 150 for ribosomes) mean the same here. The expected RMSD to the input is about
``amplitude * sqrt(n_modes / (3 n_atoms))``: 2.1 Å for a nucleosome (12,400 atoms) at 100,
0.9 Å for the 70S ribosome 4v5d (148,000 atoms) at 150.

Outputs in ``out_dir``: ``<id>_v000.<fmt>`` ... (the input's atoms, displaced), ``variants.csv``
(``template,variant,file,rmsd``), ``modes_<id>.npz``, ``rmsd_histogram.png``, and
``provenance.json`` last.
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from templearn import provenance
from templearn.atomic import atomic_path, write_text, save_figure
from templearn.errors import TemplearnError
from templearn.structures import MAP_SUFFIXES, is_pdb_id, resolve, structure_id

from . import extend
from .anm import anm_modes

STAGE = "nma"
FORMATS = ("cif", "pdb")
TABLE_NAME = "variants.csv"
PLOT_NAME = "rmsd_histogram.png"


@dataclass
class Template:
    """One input structure, read and coarse-grained (nothing computed yet)."""

    id: str
    path: Path
    structure: object            # gemmi.Structure, written back with displaced coordinates
    xyz: np.ndarray              # (n_atoms, 3) Å
    nodes: np.ndarray            # (n_nodes,) atom indices of the network nodes
    atom_node: np.ndarray        # (n_atoms,) index into nodes of the node each atom follows
    is_map: bool = False


@dataclass
class TemplateResult:
    id: str
    files: list[Path]
    rmsd: np.ndarray             # (n_variants,) Å
    eigvals: np.ndarray
    n_atoms: int
    n_nodes: int
    n_zero: int
    seconds_anm: float
    warnings: list[str] = field(default_factory=list)


@dataclass
class VariantsResult:
    out_dir: Path
    templates: list[TemplateResult]
    table: Path
    plot: Path
    provenance: Path


def load_template(spec: str | os.PathLike, *, seed: int = 0, map_threshold: float | None = None,
                  p_fraction: float = 0.1) -> Template:
    """Resolve ``spec`` (path, PDB ID, or MRC map) and choose its network nodes."""
    from templearn.mrc import read_mrc
    from templearn.pseudoatoms import pseudoatoms_to_structure, volume_to_pseudoatoms
    from templearn.atoms import atoms_of, read_structure

    path = resolve(spec)
    # A PDB ID names its variants, whatever the file found for it is called (pdb1ake.pdb, ...).
    name = str(spec).lower() if not Path(spec).is_file() and is_pdb_id(str(spec)) else structure_id(path)
    if path.suffix.lower() in MAP_SUFFIXES:
        volume, voxel = read_mrc(path)
        try:
            atoms = volume_to_pseudoatoms(volume, voxel, threshold=map_threshold,
                                          phosphorus_fraction=p_fraction, seed=seed)
        except ValueError as exc:
            raise TemplearnError(str(exc), path) from None
        st = pseudoatoms_to_structure(atoms)
        nodes = extend.map_nodes(atoms.xyz, voxel)
        atom_node = extend.atom_to_node(atoms.xyz, nodes)
        return Template(name, path, st, atoms.xyz, nodes, atom_node, is_map=True)
    st = read_structure(path)
    atoms = atoms_of(st)
    residue = extend.residue_index(st)
    nodes = extend.nodes_by_residue(atoms, residue)
    if len(nodes) == 0:
        raise TemplearnError("no CA or P atoms: the elastic network needs protein CA or nucleic-acid P atoms", path)
    return Template(name, path, st, atoms.xyz, nodes, extend.atom_to_node(atoms.xyz, nodes, residue))


def variant_name(template_id: str, index: int, fmt: str) -> str:
    return f"{template_id}_v{index:03d}.{fmt}"


def template_rng(seed: int, template_id: str) -> np.random.Generator:
    """One stream per (seed, template): a template's variants do not depend on the others listed."""
    return np.random.default_rng([int(seed), zlib.crc32(template_id.encode())])


def make_variants(
    structures: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    n_variants: int = 25,
    amplitude: float = 100.0,
    n_modes: int = 20,
    cutoff: float = 15.0,
    gamma: float = 1.0,
    seed: int = 0,
    fmt: str = "cif",
    map_threshold: float | None = None,
    p_fraction: float = 0.1,
) -> VariantsResult:
    """Write ``n_variants`` NMA variants of every structure into ``out_dir`` (see module docstring).

    All inputs are read and checked before anything is written, so a bad input leaves an earlier
    run's outputs intact.
    """
    from templearn.progress import track

    _check_params(structures, n_variants, amplitude, n_modes, cutoff, gamma, fmt)
    out_dir = Path(out_dir)
    templates = [load_template(s, seed=seed, map_threshold=map_threshold, p_fraction=p_fraction) for s in structures]
    seen: dict[str, Path] = {}
    for t in templates:
        if t.id in seen:
            raise TemplearnError(f"two inputs are named {t.id!r} ({seen[t.id]} and this one): rename one", t.path)
        seen[t.id] = t.path
        _check_template(t, n_modes, cutoff, fmt)

    results = []
    rows = ["template,variant,file,rmsd"]
    for t in templates:
        res = _variants_of(t, out_dir, n_variants, amplitude, n_modes, cutoff, gamma, seed, fmt, track)
        results.append(res)
        rows += [f"{t.id},{i},{f.name},{r:.4f}" for i, (f, r) in enumerate(zip(res.files, res.rmsd))]
    table = write_text(out_dir / TABLE_NAME, "\n".join(rows) + "\n")
    plot = plot_rmsd(out_dir / PLOT_NAME, results, amplitude)

    outputs = [f for r in results for f in r.files] + [out_dir / f"modes_{r.id}.npz" for r in results] + [table, plot]
    prov = provenance.record(
        out_dir, STAGE,
        {"structures": [str(s) for s in structures], "n_variants": n_variants, "amplitude": amplitude,
         "n_modes": n_modes, "cutoff": cutoff, "gamma": gamma, "format": fmt,
         "map_threshold": map_threshold, "p_fraction": p_fraction,
         "amplitude_convention": "uniform in [-amplitude, amplitude] per mode; all-atom modes of unit norm",
         "extension": "atoms follow their residue's CA/P node (ProDy extendModel); others the nearest node"},
        seed=seed, inputs=[t.path for t in templates], outputs=outputs,
        extra={
            "templates": {
                r.id: {"n_atoms": r.n_atoms, "n_nodes": r.n_nodes, "n_zero_modes": r.n_zero,
                       "eigenvalues": [float(v) for v in r.eigvals], "anm_seconds": round(r.seconds_anm, 2),
                       "rmsd_mean": float(r.rmsd.mean()), "rmsd_sd": float(r.rmsd.std()),
                       "rmsd_min": float(r.rmsd.min()), "rmsd_max": float(r.rmsd.max())}
                for r in results
            },
            "warnings": [f"{r.id}: {w}" for r in results for w in r.warnings],
        },
    )
    return VariantsResult(out_dir, results, table, plot, prov)


def _check_params(structures, n_variants, amplitude, n_modes, cutoff, gamma, fmt) -> None:
    if not structures:
        raise TemplearnError("no structure given")
    if fmt not in FORMATS:
        raise TemplearnError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if n_variants < 1:
        raise TemplearnError(f"n_variants must be at least 1, got {n_variants}")
    if n_modes < 1:
        raise TemplearnError(f"n_modes must be at least 1, got {n_modes}")
    if not (amplitude >= 0 and np.isfinite(amplitude)):
        raise TemplearnError(f"amplitude must be a finite number >= 0, got {amplitude}")
    if not cutoff > 0 or not gamma > 0:
        raise TemplearnError(f"cutoff and gamma must be positive, got {cutoff} and {gamma}")


def _check_template(t: Template, n_modes: int, cutoff: float, fmt: str) -> None:
    n = len(t.nodes)
    if 3 * n < n_modes + 7:
        raise TemplearnError(
            f"{n} CA/P nodes give {3 * n} degrees of freedom: too few for {n_modes} modes + 6 rigid-body modes", t.path)
    if t.is_map:
        spacing = np.median(_nearest_distance(t.xyz[t.nodes]))
        if cutoff < 1.5 * spacing:
            raise TemplearnError(
                f"cutoff {cutoff:g} Å is too short for this map's node spacing ({spacing:.1f} Å): "
                f"use --cutoff {np.ceil(2.5 * spacing):.0f} or more", t.path)
    if fmt == "pdb":
        chains = [c.name for c in t.structure[0]]
        if len(t.xyz) > 99999 or any(len(c) > 1 for c in chains):
            raise TemplearnError("too many atoms or chains for PDB format: use --format cif", t.path)


def _nearest_distance(xyz: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    return cKDTree(xyz).query(xyz, k=2)[0][:, 1]


def _variants_of(t: Template, out_dir: Path, n_variants, amplitude, n_modes, cutoff, gamma, seed, fmt, track) -> TemplateResult:
    from templearn.atoms import write_structure

    start = time.monotonic()
    try:
        modes = anm_modes(t.xyz[t.nodes], n_modes, cutoff=cutoff, gamma=gamma)
    except ValueError as exc:
        raise TemplearnError(str(exc), t.path) from None
    seconds = time.monotonic() - start
    ext = extend.extend_modes(modes.vectors, t.atom_node)                       # (k, n_atoms, 3)
    rng = template_rng(seed, t.id)
    amps = rng.uniform(-amplitude, amplitude, size=(n_variants, n_modes))
    files, rmsd = [], np.empty(n_variants)
    for i in track(range(n_variants), f"nma: variants of {t.id}"):
        disp = np.tensordot(amps[i], ext, axes=1)                                 # (n_atoms, 3) Å
        rmsd[i] = np.sqrt(np.einsum("as,as->", disp, disp) / len(disp))
        files.append(write_structure(out_dir / variant_name(t.id, i, fmt), t.structure, t.xyz + disp))
    with atomic_path(out_dir / f"modes_{t.id}.npz") as tmp:
        np.savez(
            tmp, eigenvalues=modes.eigvals, node_indices=t.nodes, modes=modes.vectors,
            atom_node=t.atom_node, amplitudes=amps, n_zero_modes=modes.n_zero, cutoff=cutoff, gamma=gamma,
        )
    return TemplateResult(t.id, files, rmsd, modes.eigvals, len(t.xyz), len(t.nodes), modes.n_zero, seconds,
                          list(modes.warnings))


def plot_rmsd(path: Path, results: list[TemplateResult], amplitude: float) -> Path:
    """One RMSD histogram per template, in a grid of up to 4 columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, r in zip(axes.ravel(), results):
        ax.hist(r.rmsd, bins=min(20, max(5, len(r.rmsd) // 3)), color="tab:blue")
        ax.set_title(f"{r.id}: {r.rmsd.mean():.2f} ± {r.rmsd.std():.2f} Å", fontsize=9)
        ax.set_xlabel("RMSD to input (Å)")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"NMA variants, amplitude {amplitude:g}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return path
