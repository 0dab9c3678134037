"""Density map -> pseudo-atoms (the paper's Extended Data Fig. 4: volume templates).

The map is binarized and every voxel inside becomes one pseudo-atom at the voxel centre; a
chosen fraction of them (drawn at random, seeded) become phosphorus, whose larger scattering
factor restores some of the contrast that nucleic acids give real structures. Carbon elsewhere.
The atoms are centred on the map centre, so a centred map gives a centred structure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atoms import Atoms, write_structure
from .errors import TemplearnError
from .mrc import read_mrc


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers) / np.maximum(w0, 1)
    m1 = ((hist * centers).sum() - np.cumsum(hist * centers)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centers[np.argmax(between)])


def volume_to_pseudoatoms(
    volume: np.ndarray,
    voxel_size: float,
    *,
    threshold: float | None = None,
    phosphorus_fraction: float = 0.1,
    seed: int = 0,
):
    """Binarize ``volume`` ([z, y, x]) and return :class:`~templearn.atoms.Atoms`.

    ``threshold`` defaults to Otsu's threshold of the map. Raises ``ValueError`` if nothing is
    above it.
    """
    if not 0 <= phosphorus_fraction <= 1:
        raise ValueError(f"phosphorus fraction must lie in [0, 1], got {phosphorus_fraction}")
    t = otsu_threshold(volume.ravel()) if threshold is None else float(threshold)
    zyx = np.argwhere(volume > t)
    if len(zyx) == 0:
        raise ValueError(f"no voxel above the threshold {t:.4g}")
    center = (np.array(volume.shape, float) - 1) / 2
    xyz = (zyx - center)[:, ::-1] * voxel_size
    rng = np.random.default_rng(seed)
    element = np.full(len(xyz), "C", dtype="<U2")
    n_p = int(round(phosphorus_fraction * len(xyz)))
    element[rng.choice(len(xyz), n_p, replace=False)] = "P"
    name = np.where(element == "P", "P", "C").astype("<U4")
    return Atoms(xyz, element, name, np.full(len(xyz), "PSA"), np.zeros(len(xyz)))


def map_to_pseudoatoms(path: str | os.PathLike, **kwargs):
    volume, voxel = read_mrc(path)
    try:
        return volume_to_pseudoatoms(volume, voxel, **kwargs)
    except ValueError as exc:
        raise TemplearnError(str(exc), path) from None


def pseudoatoms_to_structure(atoms):
    """Build a ``gemmi.Structure`` from pseudo-atoms (one residue per atom, chains of 9,999)."""
    import gemmi

    st = gemmi.Structure()
    model = gemmi.Model("1")
    chain = None
    for i, (p, el) in enumerate(zip(atoms.xyz, atoms.element)):
        if i % 9999 == 0:
            if chain is not None:
                model.add_chain(chain)
            chain = gemmi.Chain(_chain_name(i // 9999))
        res = gemmi.Residue()
        res.name = "PSA"
        res.seqid = gemmi.SeqId(i % 9999 + 1, " ")
        a = gemmi.Atom()
        a.name = str(el)
        a.element = gemmi.Element(str(el))
        a.pos = gemmi.Position(*p)
        a.occ = 1.0
        res.add_atom(a)
        chain.add_residue(res)
    if chain is not None:
        model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    return st


def _chain_name(i: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[i] if i < 26 else f"{letters[i // 26 - 1]}{letters[i % 26]}"


def write_pseudoatoms(path: str | os.PathLike, atoms) -> Path:
    return write_structure(path, pseudoatoms_to_structure(atoms))
