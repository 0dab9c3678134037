"""MRC volumes and image stacks: arrays are ``[z, y, x]`` (stacks ``[tilt, y, x]``), voxel size in Å
in the header.

All stages read and write maps through these two functions so the header conventions live in
one place: float32 data (mode 2), isotropic voxel size, origin 0 (voxel ``i`` has its centre at
``i * voxel_size`` Å, see :mod:`templearn.manifest`), and for tilt series the MRC "image stack"
space group 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import TemplearnError


def read_mrc(path: str | os.PathLike, *, mmap: bool = False) -> tuple[np.ndarray, float]:
    """Read an MRC file; return ``(data [z, y, x] float32, voxel_size Å)``.

    Raises :class:`TemplearnError` naming the file for a missing, truncated or malformed file,
    a non-isotropic or zero voxel size, or data that is not finite.
    """
    import mrcfile

    path = Path(path)
    if not path.is_file():
        raise TemplearnError("no such file", path)
    _check_claimed_size(path)
    try:
        if mmap:
            mrc = mrcfile.mmap(path, mode="r", permissive=False)
        else:
            mrc = mrcfile.open(path, mode="r", permissive=False)
    except Exception as exc:  # mrcfile raises ValueError for short/garbled files
        raise TemplearnError(f"not a readable MRC file ({_first_line(exc)})", path) from None
    with mrc:
        if mrc.data is None:
            raise TemplearnError("MRC file has no data", path)
        if mrc.data.ndim not in (2, 3):
            raise TemplearnError(f"MRC file holds a {mrc.data.ndim}D array; expected a volume or an image stack", path)
        if np.iscomplexobj(mrc.data):
            raise TemplearnError(f"MRC mode {int(mrc.header.mode)} holds complex numbers; expected a real-valued map", path)
        vs = mrc.voxel_size
        sizes = (float(vs.x), float(vs.y), float(vs.z))
        data = np.asarray(mrc.data) if mmap else np.array(mrc.data, dtype=np.float32, copy=True)
    if not all(np.isfinite(sizes)):
        raise TemplearnError(f"MRC header voxel size is not a number ({sizes[0]}, {sizes[1]}, {sizes[2]} Å)", path)
    nonzero = [s for s in sizes if s > 0]
    if not nonzero:
        raise TemplearnError("MRC header has no voxel size (0 Å); set it with templearn's writer or IMOD's alterheader", path)
    voxel = nonzero[0]
    # Stacks (tilt series) may carry a z "voxel size" that is not a length; compare x and y only.
    if abs(sizes[0] - sizes[1]) > 1e-3 * voxel:
        raise TemplearnError(f"voxel size is not isotropic in x/y ({sizes[0]:.4g} vs {sizes[1]:.4g} Å)", path)
    if data.ndim == 2:
        data = data[None]
    if data.size == 0:
        raise TemplearnError("MRC file holds an empty array", path)
    if not mmap and not np.all(np.isfinite(data)):
        raise TemplearnError("MRC data contains NaN or infinite values", path)
    return (data if mmap else data.astype(np.float32, copy=False)), voxel


def _check_claimed_size(path: Path) -> None:
    """Refuse a header that claims more data than the file holds before mrcfile allocates it (a
    corrupt header can claim terabytes)."""
    import io
    import warnings

    from mrcfile import utils
    from mrcfile.mrcinterpreter import MrcInterpreter

    with open(path, "rb") as f:
        head = f.read(1024)
    compressed = head[:2] == b"\x1f\x8b" or head[:3] == b"BZh"
    if compressed:
        return _check_claimed_memory(path)
    if len(head) < 1024:
        raise TemplearnError(f"not a readable MRC file ({len(head)} bytes, shorter than an MRC header)", path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            h = MrcInterpreter(io.BytesIO(head), permissive=True, header_only=True).header
            itemsize = utils.data_dtype_from_header(h).itemsize
        except Exception:   # an unknown mode: mrcfile names it below
            return
    dims = [int(h.nx), int(h.ny), int(h.nz)]
    if min(dims) < 0 or int(h.nsymbt) < 0:
        raise TemplearnError(f"not a readable MRC file (header gives negative sizes {dims}, extended header {int(h.nsymbt)})", path)
    need = 1024 + int(h.nsymbt) + itemsize * dims[0] * dims[1] * dims[2]
    have = path.stat().st_size
    if need > have:
        raise TemplearnError(f"not a readable MRC file (its header claims {dims[0]}x{dims[1]}x{dims[2]} voxels, "
                             f"{need} bytes, but the file holds {have}: truncated?)", path)


def _check_claimed_memory(path: Path) -> None:
    import warnings

    import mrcfile
    from mrcfile import utils

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                h = mrc.header
                need = utils.data_dtype_from_header(h).itemsize * abs(int(h.nx) * int(h.ny) * int(h.nz))
        except Exception:
            return
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > ram // 2:
        raise TemplearnError(f"compressed MRC header claims {need} bytes of data, more than half this machine's memory", path)


def read_voxel_size(path: str | os.PathLike) -> float:
    """The voxel size in Å from an MRC header, without reading the data."""
    return read_mrc(path, mmap=True)[1]


def write_mrc(
    path: str | os.PathLike,
    data: np.ndarray,
    voxel_size: float,
    *,
    stack: bool = False,
    label: str | None = None,
    dtype=np.float32,
) -> Path:
    """Write ``data`` ([z, y, x], or [n, y, x] with ``stack=True``) atomically with its voxel size."""
    import mrcfile

    data = np.asarray(data)
    if data.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D array, got shape {data.shape}")
    if not voxel_size > 0:
        raise ValueError(f"voxel size must be positive, got {voxel_size}")
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data, dtype=dtype))
            if stack and data.ndim == 3:
                mrc.set_image_stack()
            mrc.voxel_size = float(voxel_size)
            set_labels(mrc.header, label)
            mrc.update_header_stats()
    return Path(path)


def set_labels(header, label: str | None = None) -> None:
    """Header labels without mrcfile's creation time, so the same data gives the same bytes (the
    run ledger and resumed runs compare outputs by checksum); ``label`` goes in the second one."""
    header.label[0] = b"templearn (mrcfile)"
    header.nlabl = 1
    if label:
        header.label[1] = label[:80].encode("ascii", "replace")
        header.nlabl = 2


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
