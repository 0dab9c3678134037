"""One-to-one matching of picks to true particles, and the counts behind precision and recall.

A pick is a true positive when it is paired with a true particle closer than the matching
distance; each pick and each particle is used at most once. The pairing is the maximum matching
of least total distance (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``), so a
pick between two particles cannot be counted twice and a greedy order cannot lose a match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Match:
    """``pairs`` ``(m, 2)``: indices ``(pick, truth)`` matched; counts for precision and recall."""

    pairs: np.ndarray
    n_picks: int
    n_truth: int

    @property
    def tp(self) -> int:
        return len(self.pairs)

    @property
    def fp(self) -> int:
        return self.n_picks - self.tp

    @property
    def fn(self) -> int:
        return self.n_truth - self.tp


def match(picks_xyz: np.ndarray, truth_xyz: np.ndarray, distance: float) -> Match:
    """Match picks ``(n, 3)`` to truth ``(m, 3)`` (same unit, Å) within ``distance``."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial import cKDTree

    p = np.asarray(picks_xyz, float).reshape(-1, 3)
    t = np.asarray(truth_xyz, float).reshape(-1, 3)
    if len(p) == 0 or len(t) == 0:
        return Match(np.zeros((0, 2), int), len(p), len(t))
    # Sparse candidate pairs first: only picks and particles with a neighbour take part
    # ("ndarray" output keeps pairs at distance 0, which sparse matrices would drop).
    near = cKDTree(p).sparse_distance_matrix(cKDTree(t), distance, output_type="ndarray")
    rows, cols, dist = near["i"].astype(int), near["j"].astype(int), near["v"].astype(float)
    if len(rows) == 0:
        return Match(np.zeros((0, 2), int), len(p), len(t))
    ur, rows = np.unique(rows, return_inverse=True)
    uc, cols = np.unique(cols, return_inverse=True)
    # Forbidden pairs cost more than any set of allowed ones, so the number of matches is
    # maximised first and the total distance second.
    big = (distance + 1.0) * (min(len(ur), len(uc)) + 1)
    cost = np.full((len(ur), len(uc)), big)
    cost[rows, cols] = dist
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < big
    pairs = np.stack([ur[r[ok]], uc[c[ok]]], axis=1).astype(int)
    return Match(pairs[np.argsort(pairs[:, 0])], len(p), len(t))


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1 (0 where undefined, except precision of no picks at all: 1 if
    nothing was to be found)."""
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
