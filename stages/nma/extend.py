"""Coarse-graining to network nodes, and modes extended from the nodes back to every atom.

Nodes: one per residue, its CA (protein) or P (nucleic acid) atom: the first such atom, so
alternate locations do not make two nodes at one place. Extension follows ProDy's
``extendModel``: every atom of a residue moves with its residue's node; atoms in residues that
have no node (ligands, ions, modified residues without CA/P) move with the nearest node.

Density maps become pseudo-atoms (one per voxel above the threshold); their nodes are one
pseudo-atom per cubic cell of the voxel size but at least about the CA-CA distance (4 Å), cells
grown further to keep at most 15,000 nodes, so a finely sampled map does not make a network of
hundreds of thousands of nodes; every other pseudo-atom follows its nearest node.
"""

from __future__ import annotations

import numpy as np

# About the CA-CA distance: the node spacing for pseudo-atoms of density maps.
MAP_NODE_SPACING = 4.0
# Beyond this many nodes a map's cells grow: the sparse LU of ~17,000 nodes already needs 2.5 GB.
MAP_MAX_NODES = 15000


def residue_index(st) -> np.ndarray:
    """Residue number (0, 1, ...) of every atom of a gemmi structure, in ``atoms_of`` order."""
    out = []
    r = 0
    for chain in st[0]:
        for res in chain:
            out.extend([r] * len(res))
            r += 1
    return np.array(out, dtype=np.int64)


def nodes_by_residue(atoms, residue: np.ndarray) -> np.ndarray:
    """Atom indices of the nodes: the first CA or P atom of each residue that has one."""
    cand = atoms.nodes()
    _, first = np.unique(residue[cand], return_index=True)
    return np.sort(cand[first])


def nodes_by_cell(xyz: np.ndarray, spacing: float) -> np.ndarray:
    """Atom indices of nodes for pseudo-atoms: the first atom in each cubic cell of ``spacing`` Å."""
    cell = np.floor((xyz - xyz.min(0)) / spacing).astype(np.int64)
    _, first = np.unique(cell, axis=0, return_index=True)
    return np.sort(first)


def map_nodes(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """Nodes for a map's pseudo-atoms: cells of ``max(voxel, 4 Å)``, grown until <= 15,000 nodes."""
    spacing = max(voxel_size, MAP_NODE_SPACING)
    nodes = nodes_by_cell(xyz, spacing)
    while len(nodes) > MAP_MAX_NODES:
        spacing *= 1.05 * (len(nodes) / MAP_MAX_NODES) ** (1 / 3)
        nodes = nodes_by_cell(xyz, spacing)
    return nodes


def atom_to_node(xyz: np.ndarray, nodes: np.ndarray, residue: np.ndarray | None = None) -> np.ndarray:
    """For every atom, the index (into ``nodes``) of the node it moves with: ``(n_atoms,)``.

    With ``residue`` given, atoms share their residue's node; the rest take the nearest node.
    """
    from scipy.spatial import cKDTree

    out = np.full(len(xyz), -1, dtype=np.int64)
    if residue is not None:
        node_of_res = dict(zip(residue[nodes].tolist(), range(len(nodes))))
        out = np.array([node_of_res.get(r, -1) for r in residue.tolist()], dtype=np.int64)
    orphans = np.flatnonzero(out < 0)
    if len(orphans):
        out[orphans] = cKDTree(xyz[nodes]).query(xyz[orphans])[1]
    return out


def extend_modes(node_modes: np.ndarray, atom_node: np.ndarray) -> np.ndarray:
    """Node modes ``(k, n_nodes, 3)`` -> all-atom modes ``(k, n_atoms, 3)``, each of unit norm.

    Unit norm over all ``3 n_atoms`` coordinates is ProDy's ``extendMode(..., norm=True)``, the
    convention of the paper's code: a mode scaled by amplitude ``a`` moves the atoms by an RMSD of
    ``|a| / sqrt(n_atoms)`` Å.
    """
    ext = node_modes[:, atom_node, :]
    ext /= np.sqrt(np.einsum("kas,kas->k", ext, ext))[:, None, None]
    return ext
