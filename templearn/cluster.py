"""Clusters of a segmentation: one particle per MeanShift cluster of labelled voxels.

DeepFinder's recipe (Moebel et al. 2021, kept by the paper): the voxels of each class are
clustered with MeanShift (flat kernel, ``bin_seeding``) whose bandwidth is the particle radius in
voxels (10 for ribosomes, 6 for nucleosomes); every voxel joins its nearest mode, a cluster's
size (number of voxels) is its score, thresholded afterwards. We cluster each class separately
so each target can have its own radius; DeepFinder's single pass over all classes then a
majority vote gives the same clusters when classes do not touch.

DeepFinder runs scikit-learn's ``MeanShift`` over every labelled voxel: one ball query per seed
per iteration over millions of voxels (18 minutes for a 256x256x96 tomogram on 2 cores, hours
for a noisy 928x928x464 one). ``method="grid"`` (the default) runs the same iteration on fields:
the voxel counts on a grid of cells (``cell`` voxels per axis, 1 where memory allows) are
correlated once, by FFT in slabs, with the flat ball and with its first moments, which gives at
every cell the number of labelled voxels within the bandwidth and the sum of their offsets; each
MeanShift step is then a trilinear look-up of those fields. Seeds (scikit-learn's bins of one
bandwidth), the stopping rule (a step under 1e-3 bandwidth, 300 steps at most), the removal of
modes within a bandwidth of a stronger one and the nearest-mode assignment are scikit-learn's.
The cost grows with the volume (FFTs) and the number of seeds, not with the labelled voxels times
the ball; memory is bounded by ``memory`` plus the label map. ``method="deepfinder"`` runs
scikit-learn's MeanShift over the voxels, as ``deepfinder.inference.Cluster`` does: the reference
(``benchmarks/bench_pick_eval.py`` compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from templearn.errors import TemplearnError

DEFAULT_RADIUS = 10.0  # voxels: the paper's ribosome bandwidth (6 for nucleosomes)
METHODS = ("grid", "deepfinder")
DEFAULT_MEMORY = 1 << 30  # bytes for the fields of the grid method (4 float32 per cell)
MAX_ITER = 300            # scikit-learn's MeanShift defaults
STOP = 1e-3               # (stop when a step is under 1e-3 bandwidth)
_SLAB_POINTS = 1 << 21    # labelled voxels per slab in the nearest-mode assignment


@dataclass
class Clusters:
    """Every cluster found: ``xyz`` ``(n, 3)`` voxels ``[x, y, z]``, ``size`` ``(n,)`` voxels,
    ``label`` ``(n,)`` class 1..K."""

    xyz: np.ndarray
    size: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.size)


def cluster_labelmap(labelmap: np.ndarray, radius: float | dict[int, float], *, method: str = "grid",
                     cell: int | None = None, memory: int = DEFAULT_MEMORY) -> Clusters:
    """MeanShift clusters of each non-zero class of ``labelmap`` ``[z, y, x]`` (int).

    ``radius`` is the MeanShift bandwidth in voxels, one value for all classes or ``{label: r}``.
    ``method``: ``grid`` (fields on a grid of cells, see the module docstring) or ``deepfinder``
    (scikit-learn over every voxel, as DeepFinder). ``cell``: the grid's cell in voxels per axis
    (default: the smallest whose fields fit in ``memory`` bytes). Every voxel of the class joins
    its nearest mode and counts in the cluster's size and centroid. Clusters come sorted by class,
    then by decreasing size, then by position, so the output is deterministic.
    """
    labelmap = np.asarray(labelmap)
    if labelmap.ndim != 3:
        raise ValueError(f"labelmap must be 3D [z, y, x], got shape {labelmap.shape}")
    check_method(method)
    xyz_all, size_all, label_all = [], [], []
    for lab in _classes(labelmap):
        r = float(radius[lab] if isinstance(radius, dict) else radius)
        if not r > 0:
            raise TemplearnError(f"clustering radius must be positive, got {r} for class {lab}")
        if method == "deepfinder":
            modes = _modes_sklearn(labelmap, lab, r)
        else:
            modes = _modes_grid(labelmap, lab, r, cell, memory)
        centroids, sizes = _assign(labelmap, lab, modes)
        xyz_all.append(centroids[:, ::-1])
        size_all.append(sizes)
        label_all.append(np.full(len(sizes), lab))
    if not xyz_all:
        return Clusters(np.zeros((0, 3)), np.zeros(0, int), np.zeros(0, int))
    xyz = np.concatenate(xyz_all)
    size = np.concatenate(size_all)
    label = np.concatenate(label_all)
    order = np.lexsort((xyz[:, 0], xyz[:, 1], xyz[:, 2], -size, label))
    return Clusters(xyz[order], size[order], label[order])


def check_method(method: str) -> None:
    if method not in METHODS:
        raise TemplearnError(f"--clustering must be one of {', '.join(METHODS)}, got {method!r}")


# --- shared steps -------------------------------------------------------------------------------

def _classes(labelmap: np.ndarray) -> list[int]:
    """Labels > 0 present, by slabs (np.unique of a whole tomogram would sort a copy of it)."""
    present = set()
    for z0, z1 in _slabs(labelmap.shape, 1 << 24):
        present.update(int(v) for v in np.unique(labelmap[z0:z1]) if v > 0)
    return sorted(present)


def _slabs(shape, points: int):
    """``(z0, z1)`` ranges of whole z-planes, about ``points`` voxels each."""
    step = max(1, int(points) // max(1, int(shape[1]) * int(shape[2])))
    return [(z, min(z + step, shape[0])) for z in range(0, shape[0], step)]


def _assign(labelmap: np.ndarray, lab: int, modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every voxel of class ``lab`` joins its nearest mode (``[z, y, x]``); returns the centroids
    ``[z, y, x]`` and sizes of the clusters that got voxels. The position is the centroid of the
    cluster's voxels, not the mode: on a discrete, flat-topped blob the mode can stop a voxel off
    centre."""
    from scipy.spatial import cKDTree

    tree = cKDTree(modes)
    sizes = np.zeros(len(modes), np.int64)
    sums = np.zeros((len(modes), 3))
    for z0, z1 in _slabs(labelmap.shape, _SLAB_POINTS):
        zyx = np.argwhere(labelmap[z0:z1] == lab)
        if not len(zyx):
            continue
        zyx[:, 0] += z0
        members = tree.query(zyx, workers=-1)[1]
        sizes += np.bincount(members, minlength=len(modes))
        for i in range(3):
            sums[:, i] += np.bincount(members, weights=zyx[:, i], minlength=len(modes))
    keep = sizes > 0
    return sums[keep] / sizes[keep, None], sizes[keep]


def _unique_modes(centres: np.ndarray, intensity: np.ndarray, r: float) -> np.ndarray:
    """scikit-learn's post-processing: strongest first (ties by position), drop every mode within
    the bandwidth of a stronger one kept."""
    from scipy.spatial import cKDTree

    order = np.lexsort(tuple(centres[:, i] for i in range(centres.shape[1] - 1, -1, -1)) + (intensity,))[::-1]
    centres = centres[order]
    unique = np.ones(len(centres), bool)
    tree = cKDTree(centres)
    for i in range(len(centres)):
        if unique[i]:
            near = tree.query_ball_point(centres[i], r)
            unique[near] = False
            unique[i] = True
    return centres[unique]


# --- DeepFinder's (scikit-learn over every voxel) ---------------------------------------------------

def _modes_sklearn(labelmap: np.ndarray, lab: int, r: float) -> np.ndarray:
    from sklearn.cluster import MeanShift

    zyx = np.argwhere(labelmap == lab).astype(float)
    if len(zyx) == 1:
        return zyx
    return MeanShift(bandwidth=r, bin_seeding=True).fit(zyx).cluster_centers_


# --- the grid method ------------------------------------------------------------------------------

def choose_cell(shape, memory: int = DEFAULT_MEMORY) -> int:
    """The smallest cell (voxels per axis) whose grid of fields (4 float32 per cell) fits ``memory``."""
    g = 1
    while 16 * int(np.prod([-(-int(n) // g) for n in shape])) > memory:
        g += 1
    return g


def _count_grid(labelmap: np.ndarray, lab: int, g: int, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of ``lab`` per cell (float32 grid) and scikit-learn's bin seeds (voxels ``[z, y, x]``:
    ``round(p / r) * r`` for every bin holding a voxel p)."""
    nz, ny, nx = labelmap.shape
    grid = np.zeros([-(-n // g) for n in labelmap.shape], np.float32)
    bins = [np.round(np.arange(n) / r).astype(np.int64) for n in labelmap.shape]
    occupied = np.zeros([int(b[-1]) + 1 for b in bins], bool)
    starts_y = np.flatnonzero(np.r_[True, np.diff(bins[1]) != 0])
    starts_x = np.flatnonzero(np.r_[True, np.diff(bins[2]) != 0])
    plane = max(1, _SLAB_POINTS // (ny * nx)) * g  # whole cells per slab
    for z0 in range(0, nz, plane):
        z1 = min(z0 + plane, nz)
        m = labelmap[z0:z1] == lab
        if not m.any():
            continue
        pad = [(0, -(-s // g) * g - s) for s in m.shape]
        c = np.pad(m, pad).reshape(-(-m.shape[0] // g), g, grid.shape[1], g, grid.shape[2], g)
        grid[z0 // g: z0 // g + c.shape[0]] = c.sum(axis=(1, 3, 5), dtype=np.float32)
        bz = bins[0][z0:z1]
        starts_z = np.flatnonzero(np.r_[True, np.diff(bz) != 0])
        o = np.logical_or.reduceat(m, starts_z, axis=0)
        o = np.logical_or.reduceat(o, starts_y, axis=1)
        o = np.logical_or.reduceat(o, starts_x, axis=2)
        occupied[bz[starts_z]] |= o
    seeds = np.argwhere(occupied).astype(np.float32) * np.float32(r)  # scikit-learn's float32 seeds
    return grid, seeds.astype(float)


def _kernels(g: int, r: float):
    """Flat ball of radius ``r`` voxels on cells of ``g`` voxels, and its first moments (voxels)."""
    R = int(np.floor(r / g))
    d = np.arange(-R, R + 1) * float(g)
    dz, dy, dx = np.meshgrid(d, d, d, indexing="ij")
    ball = (dz ** 2 + dy ** 2 + dx ** 2 <= r * r).astype(np.float32)
    return R, [ball, ball * dz, ball * dy, ball * dx]


def _fields(grid: np.ndarray, g: int, r: float, memory: int) -> np.ndarray:
    """``[4, z, y, x]`` float32 on the cell grid: labelled voxels within ``r`` of each cell centre
    and the sums of their offsets (z, y, x), by FFT correlation in z-slabs."""
    from scipy import fft as sfft

    R, kernels = _kernels(g, r)
    nz, ny, nx = grid.shape
    ly, lx = sfft.next_fast_len(ny + 2 * R, real=True), sfft.next_fast_len(nx + 2 * R, real=True)
    # Slab thickness: the slab's FFT arrays (about 9 float32 copies of it) within a quarter of memory.
    per_plane = 9 * 4 * ly * lx
    t = max(2 * R + 1, min(nz + 2 * R, max(1, memory // 4 // per_plane)))
    lz = sfft.next_fast_len(t, real=True)
    out_t = lz - 2 * R  # output planes per slab
    spectra = []
    for k in kernels:
        big = np.zeros((lz, ly, lx), np.float32)
        big[:2 * R + 1, :2 * R + 1, :2 * R + 1] = k
        big = np.roll(big, (-R, -R, -R), axis=(0, 1, 2))
        spectra.append(np.conj(sfft.rfftn(big, workers=-1)))
        del big
    fields = np.zeros((4, nz, ny, nx), np.float32)
    buf = np.zeros((lz, ly, lx), np.float32)
    for z0 in range(0, nz, out_t):
        z1 = min(z0 + out_t, nz)
        buf[:] = 0
        lo = max(0, z0 - R)
        hi = min(nz, z1 + R)
        buf[lo - (z0 - R): hi - (z0 - R), R:R + ny, R:R + nx] = grid[lo:hi]
        F = sfft.rfftn(buf, workers=-1)
        for i, S in enumerate(spectra):
            c = sfft.irfftn(F * S, s=buf.shape, workers=-1)
            fields[i, z0:z1] = c[R:R + z1 - z0, R:R + ny, R:R + nx]
    # Counts are integers: FFT round-off below 0.5 must not leave ghost voxels in empty space.
    np.rint(fields[0], out=fields[0])
    return fields


def _modes_grid(labelmap: np.ndarray, lab: int, r: float, cell: int | None, memory: int) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    g = choose_cell(labelmap.shape, memory) if cell is None else int(cell)
    if g < 1:
        raise TemplearnError(f"clustering cell must be at least 1 voxel, got {cell}")
    grid, seeds = _count_grid(labelmap, lab, g, r)
    fields = _fields(grid, g, r, memory)
    del grid
    offset = (g - 1) / 2.0  # voxel coordinate of the centre of cell 0

    def look(p):
        u = ((p - offset) / g).T
        return [map_coordinates(f, u, order=1, mode="constant", cval=0.0, prefilter=False) for f in fields]

    x = seeds
    n0 = look(x)[0]
    x = x[n0 > 0]  # scikit-learn drops seeds with no voxel within the bandwidth
    intensity = np.zeros(len(x))
    active = np.arange(len(x))
    for _ in range(MAX_ITER + 1):
        if not len(active):
            break
        n, mz, my, mx = look(x[active])
        alive = n > 0
        step = np.zeros((len(active), 3))
        step[alive] = np.stack([mz, my, mx], 1)[alive] / n[alive, None]
        new = x[active] + step
        done = (np.linalg.norm(step, axis=1) < STOP * r) | ~alive
        x[active] = new
        intensity[active] = n  # voxels within the bandwidth before the last step, as scikit-learn
        active = active[~done]
    keep = intensity > 0  # seeds stopped by MAX_ITER are kept where they are, as scikit-learn does
    if not keep.any():
        return np.argwhere(labelmap == lab)[:1].astype(float)
    return _unique_modes(x[keep], intensity[keep], r)
