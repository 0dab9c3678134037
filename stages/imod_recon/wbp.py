"""Weighted back projection of a tilt series about the y axis (single-axis tomography).

Geometry (:mod:`templearn.tilts`): image pixel ``j`` and tomogram voxel ``i`` are centred at
``j * voxel`` and ``i * voxel`` Å; the tilt axis is parallel to y through ``(axis_x, axis_z)``;
a point ``(x, y, z)`` lies at ``u = axis_x + (x - axis_x) cos θ + (z - axis_z) sin θ`` in image
``θ``, row ``v = y``. So each tomogram row ``y`` comes from image row ``y`` only.

Method:

1. every image row is padded (linear taper from its last value back to its first, as ``tilt``
   does) to ``N >= 2 n`` samples, Fourier transformed, multiplied by the radial filter of
   :mod:`.radial` and transformed back; the row is scaled by its view's angular interval
   (radians: half the distance between its neighbours, the step itself at the ends), so views
   beside a gap weigh more and a back projection is an inverse Radon transform;
2. back projection is one sparse matrix product per slab of z: the linear interpolation
   ``u -> (floor(u), floor(u) + 1)`` of every tilt for every ``(z, x)`` of the slab is a sparse
   matrix ``B`` (``2 * n_tilts`` entries per row) that does not depend on y, and
   ``B @ F`` with ``F = [tilt * x, y]`` the filtered stack gives all y rows at once, in C.

Memory: the filtered stack (same size as the input) plus one slab (``slab * nx`` rows of ``B``
and of the result). A ray that leaves an image reads that filtered row's mean (as ``tilt`` fills
with a mean), so the tomogram corners do not darken.
"""

from __future__ import annotations

import numpy as np

from .radial import radial_weights


def angular_weights(angles_deg) -> np.ndarray:
    """Angular interval (radians) each view stands for, in the order given (any order).

    Interior views: half the distance between their neighbours in angle; end views: the distance
    to their neighbour. A single view gets π.
    """
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    if a.size == 1:
        return np.array([np.pi])
    order = np.argsort(a, kind="stable")
    s = a[order]
    w = np.empty_like(s)
    w[1:-1] = (s[2:] - s[:-2]) / 2
    w[0] = s[1] - s[0]
    w[-1] = s[-1] - s[-2]
    out = np.empty_like(w)
    out[order] = w
    return out


def pad_length(n: int) -> int:
    """FFT length for filtering a line of ``n`` pixels: at least ``2 n`` (linear, not circular,
    convolution with the ramp kernel), a fast size."""
    from scipy import fft

    return fft.next_fast_len(2 * n, real=True)


def filter_rows(image: np.ndarray, weights: np.ndarray, n_pad: int) -> np.ndarray:
    """Apply ``weights`` (rfft of length ``n_pad``) along x to every row of ``image [y, x]``."""
    from scipy import fft

    ny, nx = image.shape
    padded = np.empty((ny, n_pad), dtype=np.float32)
    padded[:, :nx] = image
    npad = n_pad - nx
    f = np.arange(1, npad + 1, dtype=np.float32) / (npad + 1)
    padded[:, nx:] = (1 - f) * image[:, -1:] + f * image[:, :1]
    spec = fft.rfft(padded, axis=1)
    spec *= weights.astype(np.complex64)
    return fft.irfft(spec, n=n_pad, axis=1)[:, :nx].astype(np.float32, copy=False)


def interpolation_matrix(angles_deg, voxel: float, nx: int, z_indices: np.ndarray,
                         axis_x: float, axis_z: float, fill: bool = False):
    """Sparse ``[(z, x), (tilt, u)]`` matrix of linear-interpolation weights.

    Row ``r = iz * nx + ix`` (``iz`` counting ``z_indices``), column ``t * nx + j``: the weight
    of filtered image ``t`` pixel ``j`` in voxel ``(z_indices[iz], ix)``. Rays that miss the
    image get weight 0, or with ``fill`` weight 1 on an extra column ``n_tilts * nx + t`` (the
    row's fill value, as ``tilt`` fills with the mean). float32 CSR with exactly
    ``2 * n_tilts`` entries per row.
    """
    from scipy import sparse

    t = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    n_t = t.size
    # u (pixels) = axis_x/v + (x - axis_x)/v cos + (z - axis_z)/v sin. float32 (u < 2^24 / 1000
    # keeps interpolation weights exact to 1e-3 of a pixel).
    ux = (((np.arange(nx) * voxel - axis_x) / voxel)[:, None] * np.cos(t)[None, :]
          + axis_x / voxel).astype(np.float32)
    uz = (((np.asarray(z_indices, dtype=np.float64) * voxel - axis_z) / voxel)[:, None]
          * np.sin(t)[None, :]).astype(np.float32)
    kz = uz.shape[0]
    n_rows = kz * nx
    # Whole-slab ufuncs on contiguous (z, x, tilt) planes (np.clip and strided writes are slow),
    # then one interleave into (z, x, [2, tilt]).
    u = ux[None, :, :] + uz[:, None, :]
    i0 = np.floor(u)
    np.maximum(i0, 0, out=i0)
    np.minimum(i0, max(nx - 2, 0), out=i0)
    inside = (u >= -1e-3) & (u <= nx - 1 + 1e-3)
    w1 = u - i0
    del u
    np.maximum(w1, 0, out=w1)
    np.minimum(w1, 1, out=w1)
    w1 *= inside
    w0 = inside - w1
    c0 = i0.astype(np.int32)
    del i0
    c0 += np.arange(n_t, dtype=np.int32) * nx
    c1 = c0 + 1
    if fill:
        # A ray that misses image t reads its fill row (column n_t * nx + t) with weight 1.
        outside = ~inside
        np.copyto(c0, np.broadcast_to(n_t * nx + np.arange(n_t, dtype=np.int32), c0.shape), where=outside)
        w0 += outside
    cols = np.concatenate([c0, c1], axis=2)
    data = np.concatenate([w0, w1], axis=2)
    indptr = np.arange(0, n_rows * 2 * n_t + 1, 2 * n_t, dtype=np.int64)
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    n_cols = n_t * nx + (n_t if fill else 0)
    return sparse.csr_matrix((data.reshape(-1), cols.reshape(-1), indptr), shape=(n_rows, n_cols))


def weighted_back_projection(
    stack: np.ndarray,
    angles_deg,
    voxel_size: float,
    nz: int,
    *,
    axis_x: float | None = None,
    axis_z: float | None = None,
    radial: tuple[float, float] = (0.5, 0.5),
    sirt_iterations: int = 0,
    slab: int | None = None,
    progress=None,
) -> np.ndarray:
    """Reconstruct ``[nz, ny, nx]`` float32 from a tilt series ``stack [tilt, ny, nx]``.

    ``angles_deg`` (one per image, any order), ``voxel_size`` Å (the pixel size of ``stack``),
    ``axis_x``/``axis_z`` Å (default: the image centre ``(nx - 1) / 2 * voxel`` and the middle
    of the thickness ``(nz - 1) / 2 * voxel``), ``radial`` = IMOD RADIAL (cutoff, falloff),
    ``sirt_iterations`` = IMOD FakeSIRTiterations (0: plain R-weighting). ``slab``: z rows per
    sparse product (default: about 32 MB of matrix). ``progress(iterable, description)``
    wraps the loops (e.g. :func:`templearn.progress.track`).

    Values are the density per voxel length in the units of the images (as scikit-image's
    ``iradon``): a projection ``p = sum of density * voxel length along the ray`` comes back as
    that density.
    """
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"expected a [tilt, y, x] stack, got shape {stack.shape}")
    n_t, ny, nx = stack.shape
    angles = np.asarray(angles_deg, dtype=np.float64)
    if angles.shape != (n_t,):
        raise ValueError(f"{angles.size} angles for {n_t} images")
    if nx < 2:
        raise ValueError("images must be at least 2 pixels wide")
    if nz < 1:
        raise ValueError(f"nz must be at least 1, got {nz}")
    if axis_x is None:
        axis_x = (nx - 1) / 2 * voxel_size
    if axis_z is None:
        axis_z = (nz - 1) / 2 * voxel_size
    track = progress or (lambda items, _description: items)

    n_pad = pad_length(nx)
    weights = radial_weights(n_pad, nx, radial[0], radial[1], sirt_iterations)
    dtheta = angular_weights(angles)
    # Rows t * nx .. t * nx + nx - 1: filtered image t transposed to [x, y]; row n_t * nx + t:
    # its mean per y, what a ray that misses the image reads (IMOD's edge fill).
    filtered = np.empty((n_t * nx + n_t, ny), dtype=np.float32)
    for t in track(range(n_t), "filtering"):
        rows = filter_rows(np.asarray(stack[t], dtype=np.float32), weights, n_pad)
        rows *= np.float32(dtheta[t])
        filtered[t * nx:(t + 1) * nx] = rows.T
        filtered[n_t * nx + t] = rows.mean(axis=1)

    if slab is None:
        slab = max(1, int(32e6 // (nx * n_t * 2 * 8 + nx * ny * 4)))
    tomo = np.empty((nz, ny, nx), dtype=np.float32)
    starts = range(0, nz, slab)
    for k0 in track(starts, "back projection"):
        k1 = min(nz, k0 + slab)
        b = interpolation_matrix(angles, voxel_size, nx, np.arange(k0, k1), axis_x, axis_z, fill=True)
        out = b @ filtered                       # [(z, x), y]
        tomo[k0:k1] = np.asarray(out).reshape(k1 - k0, nx, ny).transpose(0, 2, 1)
    return tomo
