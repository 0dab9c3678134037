"""Anisotropic network model (ANM): a sparse Hessian and its lowest modes.

The model is ProDy's ANM (Atilgan et al. 2001): nodes (here protein CA and nucleic-acid P atoms)
joined by identical springs (force constant ``gamma``) to every node within ``cutoff`` Å. For a
pair ``i, j`` with ``d = x_j - x_i`` the 3x3 super-element of the Hessian is

    H_ij = -gamma * d dᵀ / |d|²,        H_ii = -Σ_j H_ij.

ProDy builds a dense ``3n x 3n`` matrix and diagonalizes it (``O(n³)``: 33 s for 1,918 nodes),
which cannot reach a ribosome (10,591 nodes). Here the contacts come from a KD-tree, the Hessian
is a sparse matrix, and ``scipy.sparse.linalg.eigsh`` in shift-invert mode finds the few lowest
eigenpairs: ``sigma`` slightly below 0 keeps ``H - sigma·I`` positive definite (``H`` itself is
singular: 6 rigid-body zero modes) while placing the shift next to the wanted end of the spectrum.

Zero modes: every rigid body of the network has 6 (a single node 3, two nodes 5). More than 6
means the network falls apart (e.g. a ribosome's proteins without the RNA's P atoms); we count
the connected components, solve for enough modes to step past all zero modes, and report it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Eigenvalues below this (gamma = 1, Å⁻²) count as zero modes: ProDy's ``ZERO`` threshold.
ZERO = 1e-6
# Below this many degrees of freedom a dense solver is quicker and always converges.
DENSE_MAX_DOF = 600


@dataclass
class ANMModes:
    """The lowest non-rigid modes of an ANM.

    ``eigvals`` (k,) in gamma·Å⁻², ascending; ``vectors`` (k, n_nodes, 3), each mode of unit norm
    over all ``3 n_nodes`` coordinates (ProDy's convention for ``getArray``); ``n_zero`` the
    number of zero modes skipped (6 for a connected network); ``n_components`` the connected
    pieces of the contact graph; ``n_contacts`` the springs.
    """

    eigvals: np.ndarray
    vectors: np.ndarray
    n_zero: int
    n_components: int
    n_contacts: int
    warnings: list[str] = field(default_factory=list)


def contact_pairs(coords: np.ndarray, cutoff: float) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, of nodes closer than ``cutoff`` Å: ``(m, 2)`` int array."""
    from scipy.spatial import cKDTree

    tree = cKDTree(coords)
    return tree.query_pairs(float(cutoff), output_type="ndarray").astype(np.int64).reshape(-1, 2)


def hessian(coords: np.ndarray, cutoff: float = 15.0, gamma: float = 1.0, pairs: np.ndarray | None = None):
    """Sparse ANM Hessian (``scipy.sparse.csc_matrix``, ``3n x 3n``) of nodes ``coords`` (n, 3) Å.

    Coordinates are ordered ``[x0, y0, z0, x1, ...]`` as in ProDy. Coincident nodes (distance 0)
    have no defined spring direction and raise ``ValueError``.
    """
    import scipy.sparse as sp

    coords = np.asarray(coords, dtype=float)
    n = len(coords)
    if pairs is None:
        pairs = contact_pairs(coords, cutoff)
    i, j = pairs[:, 0], pairs[:, 1]
    d = coords[j] - coords[i]
    r2 = np.einsum("ij,ij->i", d, d)
    if np.any(r2 < 1e-12):
        k = int(np.argmax(r2 < 1e-12))
        raise ValueError(f"nodes {i[k]} and {j[k]} sit at the same position")
    blocks = -gamma * d[:, :, None] * d[:, None, :] / r2[:, None, None]      # (m, 3, 3)
    diag = np.zeros((n, 3, 3))
    np.add.at(diag, i, -blocks)
    np.add.at(diag, j, -blocks)
    a, b = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")             # block entry (a, b)
    rows = np.concatenate([
        (3 * i[:, None, None] + a).ravel(), (3 * j[:, None, None] + a).ravel(),
        (3 * np.arange(n)[:, None, None] + a).ravel(),
    ])
    cols = np.concatenate([
        (3 * j[:, None, None] + b).ravel(), (3 * i[:, None, None] + b).ravel(),
        (3 * np.arange(n)[:, None, None] + b).ravel(),
    ])
    vals = np.concatenate([blocks.ravel(), blocks.ravel(), diag.ravel()])  # d dᵀ is symmetric
    return sp.csc_matrix((vals, (rows, cols)), shape=(3 * n, 3 * n))


class LowestEigenpairs:
    """The smallest eigenpairs of a symmetric positive semi-definite matrix ``h`` (N x N).

    ``solver``: ``"sparse"`` (eigsh, shift-invert at ``sigma`` slightly below 0), ``"dense"``
    (LAPACK, for small networks) or ``"auto"`` (dense up to 600 degrees of freedom). The sparse
    LU factorization of ``h - sigma·I`` (most of the time for a ribosome) is kept, so asking
    again for more modes costs only the Lanczos iterations.
    """

    def __init__(self, h, *, solver: str = "auto", seed: int = 0):
        if solver == "auto":
            solver = "dense" if h.shape[0] <= DENSE_MAX_DOF else "sparse"
        if solver not in ("sparse", "dense"):
            raise ValueError(f"unknown solver {solver!r}")
        self.h, self.solver, self.seed = h, solver, seed
        self._opinv = None
        # The shift: a tiny fraction of the mean diagonal (a node's total spring stiffness)
        # below 0: H - sigma·I is then positive definite and the zero and lowest modes, the
        # wanted end of the spectrum, map to the largest eigenvalues of its inverse.
        self.sigma = -1e-6 * float(np.mean(h.diagonal()))

    def __call__(self, k: int):
        """``(vals (k,), vecs (N, k))``, ascending."""
        import scipy.linalg
        import scipy.sparse as sp
        import scipy.sparse.linalg as sla

        dof = self.h.shape[0]
        if self.solver == "dense" or k >= dof - 1:
            return scipy.linalg.eigh(self.h.toarray(), subset_by_index=[0, min(k, dof) - 1])
        if self._opinv is None:
            lu = sla.splu((self.h - self.sigma * sp.identity(dof, format="csc")).tocsc())
            self._opinv = sla.LinearOperator((dof, dof), matvec=lu.solve, dtype=float)
        # A fixed start vector makes ARPACK (and so the modes) reproducible.
        v0 = np.random.default_rng(self.seed).standard_normal(dof)
        vals, vecs = sla.eigsh(self.h, k=k, sigma=self.sigma, which="LM", OPinv=self._opinv, v0=v0)
        order = np.argsort(vals)
        return vals[order], vecs[:, order]


def _zero_mode_budget(sizes: np.ndarray) -> int:
    """Expected zero modes: 6 per rigid piece, 3 for a lone node, 5 for a pair."""
    return int(sum(3 if s == 1 else 5 if s == 2 else 6 for s in sizes))


def anm_modes(
    coords: np.ndarray,
    n_modes: int = 20,
    *,
    cutoff: float = 15.0,
    gamma: float = 1.0,
    solver: str = "auto",
) -> ANMModes:
    """The first ``n_modes`` non-zero ANM modes of nodes ``coords`` (n, 3) Å.

    Raises ``ValueError`` when the network has too few degrees of freedom for them. Modes have a
    deterministic sign: the largest-magnitude component of each is positive.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    coords = np.asarray(coords, dtype=float).reshape(-1, 3)
    n = len(coords)
    dof = 3 * n
    if dof < n_modes + 7:
        raise ValueError(
            f"{n} network nodes give {dof} degrees of freedom: too few for {n_modes} modes + 6 rigid-body modes"
        )
    pairs = contact_pairs(coords, cutoff)
    h = hessian(coords, cutoff, gamma, pairs)
    g = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    n_comp, labels = connected_components(g, directed=False)
    expected_zero = _zero_mode_budget(np.bincount(labels))
    warnings = []
    if n_comp > 1:
        warnings.append(
            f"the elastic network (cutoff {cutoff:g} Å) falls into {n_comp} disconnected pieces: "
            f"their {expected_zero - 6} extra zero modes (rigid motions of the pieces) are skipped"
        )
    solve = LowestEigenpairs(h, solver=solver)
    # A few spare modes, so one floppy node (one more zero mode) needs no second solve.
    k = min(n_modes + expected_zero + 4, dof - 1)
    while True:
        vals, vecs = solve(k)
        n_zero = int(np.sum(vals < ZERO))
        if k - n_zero >= n_modes or k >= dof - 1:
            break
        k = min(k + (n_zero - (k - n_modes)) + 6, dof - 1)   # floppy nodes add zero modes: ask for more
    if n_zero > expected_zero:
        warnings.append(f"{n_zero} zero modes where {expected_zero} were expected (loosely attached nodes); all skipped")
    if k - n_zero < n_modes:
        raise ValueError(f"only {k - n_zero} non-zero modes exist for {n} nodes; asked for {n_modes}")
    vals = vals[n_zero:n_zero + n_modes]
    vecs = vecs[:, n_zero:n_zero + n_modes].T.copy()                         # (k, 3n)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    big = np.argmax(np.abs(vecs), axis=1)
    vecs *= np.sign(vecs[np.arange(len(vecs)), big])[:, None]
    return ANMModes(vals, vecs.reshape(n_modes, n, 3), n_zero, int(n_comp), len(pairs), warnings)
