"""Density maps of atomic structures, and a sample's instances drawn into a volume.

The density is EMAN2 ``e2pdb2mrc``'s (``PointArray::pdb2mrc_by_summation``): every atom is a
Gaussian ``Z * exp(-(r / w)**2)`` with ``Z`` its atomic number (electrons) and ``w = resolution / pi``
(Å; EMAN2's "1/e half width", i.e. ``sigma = w / sqrt(2)``). A map's value is therefore in
electrons at the peak of an isolated atom, and its integral is ``sum(Z) * (pi * w**2) ** 1.5`` Å³.

e2pdb2mrc point-samples that function at voxel centres. At the paper's 16 Å voxels and 32 Å
resolution the Gaussian (sigma 7.2 Å) is narrower than a voxel, so point samples alias and lose
or gain mass depending on where atoms fall. :func:`atoms_to_map` instead evaluates the function
on a fine grid (at most ``sigma / 1.5`` apart) and averages it over each voxel: the map is
e2pdb2mrc's density averaged over the voxel, and ``map.sum() * voxel_size**3`` equals the
integral above (tested to 0.1%).

Maps are cubes of odd side centred on the structure's centre of mass (or the ``center`` given):
voxel ``[m, m, m]`` (``m = (n - 1) / 2``) has its centre exactly there, so any rotation about it
stays inside the cube.

:func:`render_instances` draws a :class:`~templearn.manifest.Manifest`'s instances into a
volume at any voxel size: each structure's map is rotated by ``A = euler_to_matrix(euler)``
about its centre and placed with the centre at ``position`` (Å). Per-structure maps are cached
in memory and, optionally, on disk (keyed by the file's sha256, voxel size, resolution and pad).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from .errors import TemplearnError

#: Å³ per dalton of protein (density 1.37 g/cm³): the molecular volume used for shape masks.
VOLUME_PER_DALTON = 1.21


def sphere_radius(mass_da: float) -> float:
    """Radius (Å) of the sphere holding a protein of ``mass_da`` daltons at 1.21 Å³/Da: the matching
    distance evaluation uses by default."""
    return float((3.0 * mass_da * VOLUME_PER_DALTON / (4.0 * np.pi)) ** (1.0 / 3.0))


#: Padding around the atoms, in units of the Gaussian width ``w``: 3 w keeps all but 1e-4 of the mass.
PAD_WIDTHS = 3.0


def gaussian_width(resolution: float) -> float:
    """e2pdb2mrc's Gaussian width ``w = resolution / pi`` (Å): the density is ``exp(-(r/w)**2)``."""
    return float(resolution) / np.pi


def electrons(elements: Iterable[str]) -> np.ndarray:
    """Atomic numbers of element symbols (e2pdb2mrc's weights); unknown symbols count as carbon (6)."""
    import gemmi

    elements = np.asarray(list(elements) if not isinstance(elements, np.ndarray) else elements, dtype=str)
    table = {}
    for e in set(elements.tolist()):
        z = gemmi.Element(e).atomic_number if e else 0
        table[e] = z if z > 0 else 6
    return np.array([table[e] for e in elements], dtype=float)


def map_integral(weights: np.ndarray, resolution: float) -> float:
    """The integral (Å³ x electrons) of the density of atoms with these weights."""
    w = gaussian_width(resolution)
    return float(np.sum(weights) * (np.pi * w * w) ** 1.5)


def splat_trilinear(grid_shape, idx_zyx: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Cloud-in-cell (trilinear) deposit of weighted points onto a grid.

    ``idx_zyx`` ``(n, 3)`` are fractional ``[z, y, x]`` indices (cell centres at integers), all
    within ``[0, shape - 1)``; each point's weight and centroid are kept exactly. Returns float64.
    """
    n0 = np.floor(idx_zyx).astype(np.int64)
    f = idx_zyx - n0
    size = int(np.prod(grid_shape))
    out = np.zeros(size, dtype=np.float64)
    for dz in (0, 1):
        wz = f[:, 0] if dz else 1 - f[:, 0]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1 - f[:, 1]
            for dx in (0, 1):
                wx = f[:, 2] if dx else 1 - f[:, 2]
                flat = np.ravel_multi_index((n0[:, 0] + dz, n0[:, 1] + dy, n0[:, 2] + dx), grid_shape)
                out += np.bincount(flat, weights=weights * wz * wy * wx, minlength=size)
    return out.reshape(grid_shape)


def atoms_to_map(
    atoms,
    voxel_size: float,
    resolution: float,
    *,
    pad: float | None = None,
    center=None,
    weights=None,
    oversample: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """e2pdb2mrc's density of ``atoms``, averaged over voxels of ``voxel_size`` Å.

    ``atoms``: a :class:`~templearn.atoms.Atoms` (weights = atomic numbers) or an ``(n, 3)``
    array of ``[x, y, z]`` Å (then ``weights`` are required). ``resolution`` (Å) sets the
    Gaussian width ``w = resolution / pi``. ``pad`` (Å, default ``3 w``) is added around the
    farthest atom. ``center`` (Å, ``[x, y, z]``) defaults to the centre of mass.

    Returns ``(volume, origin)``: ``volume`` is a float32 cube ``[z, y, x]`` of odd side ``n``
    whose centre voxel sits on ``center``; ``origin`` is the ``[x, y, z]`` Å position (in the
    atoms' frame) of voxel ``[0, 0, 0]``'s centre, so voxel ``(k, j, i)`` is centred at
    ``origin + (i, j, k) * voxel_size``.
    """
    from scipy import ndimage

    if not voxel_size > 0:
        raise ValueError(f"voxel size must be positive, got {voxel_size}")
    if not resolution > 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if hasattr(atoms, "xyz"):
        xyz = np.asarray(atoms.xyz, dtype=float)
        if weights is None:
            weights = electrons(atoms.element)
        if center is None:
            center = atoms.center_of_mass()
    else:
        xyz = np.asarray(atoms, dtype=float).reshape(-1, 3)
        if weights is None:
            raise ValueError("weights are needed when atoms are given as coordinates")
        if center is None:
            center = xyz.mean(0)
    weights = np.broadcast_to(np.asarray(weights, dtype=float), (len(xyz),))
    if len(xyz) == 0:
        raise ValueError("no atoms")
    center = np.asarray(center, dtype=float)
    w = gaussian_width(resolution)
    sigma = w / np.sqrt(2.0)
    pad = PAD_WIDTHS * w if pad is None else float(pad)
    radius = float(np.sqrt(((xyz - center) ** 2).sum(1).max()))
    m = int(np.ceil((radius + pad) / voxel_size))
    n = 2 * m + 1
    origin = center - m * voxel_size

    # Fine grid: f sub-voxels per voxel, spaced at most sigma / 1.5 so the Gaussian is resolved.
    f = oversample or max(1, int(np.ceil(voxel_size / (sigma / 1.5))))
    h = voxel_size / f
    nf = n * f
    # Fine index coordinates (sub-voxel centres at integers), [x, y, z].
    u = (xyz - (origin - voxel_size / 2)) / h - 0.5
    # Cloud-in-cell deposit: keeps each atom's weight and centroid exactly.
    grid = splat_trilinear((nf, nf, nf), u[:, ::-1], weights)
    # The deposit already blurs by h**2 / 6 per axis: take it off the Gaussian's variance.
    sigma_f = np.sqrt(max(sigma**2 - h**2 / 6.0, 1e-6)) / h
    grid = ndimage.gaussian_filter(grid, sigma_f, mode="constant", truncate=4.0)
    # gaussian_filter's kernel sums to 1; e2pdb2mrc's Gaussian peaks at Z instead.
    grid *= (np.pi * w * w) ** 1.5 / h**3
    volume = grid.reshape(n, f, n, f, n, f).mean(axis=(1, 3, 5))
    return volume.astype(np.float32), origin


# --- per-structure maps, cached ------------------------------------------------------------


@dataclass
class StructureMap:
    """A structure's density at one voxel size: a cube whose centre voxel is the structure's ``center``."""

    volume: np.ndarray        # [z, y, x] float32, odd cube
    origin: np.ndarray        # Å [x, y, z] of voxel [0, 0, 0] in the structure file's frame
    center: np.ndarray        # Å [x, y, z], centre of mass (at the centre voxel)
    voxel_size: float
    resolution: float
    mass_kda: float
    n_atoms: int
    sha256: str

    @property
    def half(self) -> int:
        return (self.volume.shape[0] - 1) // 2

    @property
    def n_voxels_molecule(self) -> int:
        """Molecular volume (from the mass) in voxels, at least 1."""
        return max(1, int(round(self.mass_kda * 1000 * VOLUME_PER_DALTON / self.voxel_size**3)))


_MEMORY: dict[tuple, StructureMap] = {}
_SHA: dict[tuple, str] = {}


def _file_sha(path: Path) -> str:
    from .provenance import sha256

    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        _SHA[key] = sha256(path)
    return _SHA[key]


def structure_map(
    spec: str | os.PathLike,
    voxel_size: float,
    resolution: float,
    *,
    pad: float | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> StructureMap:
    """The density map of a structure (path or PDB ID), computed once per file, voxel size, resolution.

    With ``cache_dir`` the map is also kept on disk (``<sha256[:20]>_v<voxel>_r<res>_p<pad>.npz``)
    so later runs and other processes reuse it.
    """
    from .structures import load_atoms, resolve

    path = resolve(spec)
    sha = _file_sha(path)
    pad_key = "auto" if pad is None else f"{float(pad):g}"
    key = (sha, float(voxel_size), float(resolution), pad_key)
    if key in _MEMORY:
        return _MEMORY[key]
    cached = None
    if cache_dir is not None:
        cached = Path(cache_dir) / f"{sha[:20]}_v{voxel_size:g}_r{resolution:g}_p{pad_key}.npz"
        if cached.is_file():
            try:
                with np.load(cached) as z:
                    smap = StructureMap(
                        z["volume"], z["origin"], z["center"], float(voxel_size), float(resolution),
                        float(z["mass_kda"]), int(z["n_atoms"]), sha,
                    )
                _MEMORY[key] = smap
                return smap
            except (OSError, KeyError, ValueError):
                pass  # a damaged cache entry is recomputed and overwritten
    atoms = load_atoms(path)
    center = atoms.center_of_mass()
    try:
        volume, origin = atoms_to_map(atoms, voxel_size, resolution, pad=pad, center=center)
    except ValueError as exc:
        raise TemplearnError(f"cannot make a density map: {exc}", path) from None
    smap = StructureMap(volume, origin, center, float(voxel_size), float(resolution),
                        atoms.mass_kda(), len(atoms), sha)
    if cached is not None:
        from .atomic import atomic_path

        with atomic_path(cached) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, volume=volume, origin=origin, center=center,
                         mass_kda=smap.mass_kda, n_atoms=smap.n_atoms)
    _MEMORY[key] = smap
    return smap


def clear_cache() -> None:
    """Forget the in-memory maps (the disk cache is left alone)."""
    _MEMORY.clear()


# --- rotating, binarizing, pasting ---------------------------------------------------------


def rotate_map(volume: np.ndarray, euler, shift_xyz=(0.0, 0.0, 0.0), *, order: int = 1) -> np.ndarray:
    """Rotate a centred cube by the pose ``A = euler_to_matrix(euler)`` about its centre voxel.

    The result ``out`` (same shape) holds the molecule as placed: ``out(o) = in(c + Aᵀ (o - c - s))``
    where ``c`` is the centre voxel and ``s = shift_xyz`` a sub-voxel shift (voxels, ``[x, y, z]``)
    of the molecule's centre. ``order`` is the spline order (1: linear, keeps values non-negative).
    """
    from scipy import ndimage

    from .euler import euler_to_matrix

    a = euler_to_matrix(euler)
    # The arrays are [z, y, x]: conjugate Aᵀ by the axis reversal.
    m = a.T[::-1, ::-1]
    c = (np.asarray(volume.shape, dtype=float) - 1) / 2
    s = np.asarray(shift_xyz, dtype=float)[::-1]
    offset = c - m @ (c + s)
    return ndimage.affine_transform(volume, m, offset=offset, order=order, mode="constant", cval=0.0,
                                    prefilter=order > 1)


def binarize(volume: np.ndarray, *, n_voxels: int | None = None, threshold: float | None = None,
             sigma: float = 0.0) -> np.ndarray:
    """A molecule's shape as a boolean array.

    The map is first blurred by a Gaussian of ``sigma`` voxels (the paper's Tetris step). Then
    either the ``n_voxels`` highest voxels are kept (the molecular volume: never empty, so even
    tiny molecules have a body), or, with ``threshold``, the voxels at or above ``threshold``
    times the blurred map's maximum.
    """
    from scipy import ndimage

    v = ndimage.gaussian_filter(volume.astype(np.float32), sigma, mode="constant") if sigma > 0 else volume
    if threshold is not None:
        peak = float(v.max())
        return v >= threshold * peak if peak > 0 else np.zeros(v.shape, bool)
    if n_voxels is None:
        raise ValueError("binarize needs n_voxels or threshold")
    flat = v.ravel()
    k = int(min(max(n_voxels, 1), flat.size))
    # argpartition is deterministic: the same map always gives the same shape.
    idx = np.argpartition(-flat, k - 1)[:k] if k < flat.size else np.arange(flat.size)
    out = np.zeros(flat.size, dtype=bool)
    out[idx] = True
    return out.reshape(v.shape)


def paste(target: np.ndarray, block: np.ndarray, corner_zyx, mode: Literal["add", "max", "set"] = "add",
          value=None) -> None:
    """Write ``block`` into ``target`` with its ``[0, 0, 0]`` at ``corner_zyx`` (clipped at the edges).

    ``add`` sums, ``max`` keeps the larger, ``set`` writes ``value`` where ``block`` is true.
    """
    corner = np.asarray(corner_zyx, dtype=int)
    lo = np.maximum(corner, 0)
    hi = np.minimum(corner + block.shape, target.shape)
    if np.any(hi <= lo):
        return
    t = tuple(slice(a, b) for a, b in zip(lo, hi))
    b = block[tuple(slice(a - c, b_ - c) for a, b_, c in zip(lo, hi, corner))]
    if mode == "add":
        target[t] += b
    elif mode == "max":
        np.maximum(target[t], b, out=target[t])
    elif mode == "set":
        target[t][b.astype(bool)] = value
    else:
        raise ValueError(f"unknown paste mode {mode!r}")


def place(smap: StructureMap, position_xyz, euler, voxel_size: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A structure's map as placed at ``position_xyz`` (Å) with ``euler``: ``(block, corner_zyx)``.

    The block is the rotated cube with the sub-voxel part of the position applied; ``corner_zyx``
    is the sample voxel where its ``[0, 0, 0]`` goes.
    """
    vs = smap.voxel_size if voxel_size is None else voxel_size
    p = np.asarray(position_xyz, dtype=float) / vs
    ip = np.round(p)
    block = rotate_map(smap.volume, euler, p - ip)
    corner = ip.astype(int)[::-1] - smap.half
    return block, corner


def render_instances(
    manifest,
    voxel_size: float,
    shape_zyx,
    *,
    what: Literal["density", "mask", "labels", "instances"] = "density",
    structures_search: Iterable[str | os.PathLike] = (),
    resolution: float | None = None,
    mask_threshold: float | None = None,
    mask_sigma: float = 0.0,
    classes: Iterable[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Draw every instance of ``manifest`` into a ``shape_zyx`` volume of ``voxel_size`` Å voxels.

    ``what``:

    - ``density``: float32, the sum of the instances' maps (e2pdb2mrc units, see module doc);
    - ``mask``: uint8, 1 inside any instance's shape;
    - ``labels``: int8, the target class label (``manifest.label_of``, 1..K) inside targets' shapes,
      0 elsewhere (distractors included);
    - ``instances``: int32, the instance id inside its shape, 0 elsewhere.

    An instance's shape is its rotated map blurred by ``mask_sigma`` voxels and cut either to its
    molecular volume (``mask_threshold=None``: mass x 1.21 Å³/Da, the highest voxels) or at
    ``mask_threshold`` times its maximum. ``resolution`` defaults to the manifest's
    ``params["resolution"]`` or else twice the voxel size. ``classes`` keeps only instances whose
    target class (or ``"distractor"``) is listed. Structure files are found with
    :meth:`Manifest.structure_path` (``structures_search``: other folders to look in).
    """
    if what not in ("density", "mask", "labels", "instances"):
        raise ValueError(f"what must be density, mask, labels or instances, got {what!r}")
    shape = tuple(int(s) for s in shape_zyx)
    if resolution is None:
        resolution = float(manifest.params.get("resolution") or 2 * voxel_size)
    keep = None if classes is None else set(classes)
    dtype = {"density": np.float32, "mask": np.uint8, "labels": np.int8, "instances": np.int32}[what]
    out = np.zeros(shape, dtype=dtype)
    maps: dict[str, StructureMap] = {}
    from .progress import track

    for inst in track(manifest.instances, f"rendering {what}"):
        entry = manifest.structures[inst.structure]
        cls_name = entry.target if entry.cls == "target" else "distractor"
        if keep is not None and cls_name not in keep:
            continue
        if what == "labels" and entry.cls != "target":
            continue
        if inst.structure not in maps:
            path = manifest.structure_path(inst.structure, structures_search)
            maps[inst.structure] = structure_map(path, voxel_size, resolution, cache_dir=cache_dir)
        smap = maps[inst.structure]
        # The manifest's "center" is the point placed at "position"; a map is centred on the
        # centre of mass, so shift by the difference (zero for files tetris wrote itself).
        center = np.asarray(entry.center, dtype=float)
        a = _matrix(inst.euler)
        position = np.asarray(inst.position, dtype=float) + a @ (smap.center - center)
        block, corner = place(smap, position, inst.euler, voxel_size)
        if what == "density":
            paste(out, block, corner, "add")
            continue
        shape_mask = binarize(block, n_voxels=None if mask_threshold is not None else smap.n_voxels_molecule,
                              threshold=mask_threshold, sigma=mask_sigma)
        value = {"mask": 1, "labels": manifest.label_of(inst.structure) if what == "labels" else 0,
                 "instances": inst.id}[what]
        paste(out, shape_mask, corner, "set", value)
    return out


def _matrix(euler) -> np.ndarray:
    from .euler import euler_to_matrix

    return euler_to_matrix(euler)
