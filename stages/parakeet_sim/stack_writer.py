"""Tilt series written one image at a time (bounded memory), appearing whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from templearn.atomic import atomic_path
from templearn.mrc import set_labels


@contextlib.contextmanager
def stack_writer(path: str | os.PathLike, n: int, ny: int, nx: int, pixel_size: float) -> Iterator[np.ndarray]:
    """Yield a memory-mapped float32 ``[n, ny, nx]`` stack; on success it is renamed onto ``path``.

    The header carries the pixel size and the MRC image-stack flag, as :func:`templearn.mrc.write_mrc` does.
    """
    import mrcfile

    with atomic_path(Path(path)) as tmp:
        mrc = mrcfile.new_mmap(tmp, shape=(n, ny, nx), mrc_mode=2, overwrite=True)
        try:
            # Reserve the blocks now: a full disk is then an OSError here, not a SIGBUS in the mmap.
            with open(tmp, "r+b") as f:
                try:
                    os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
            yield mrc.data
            mrc.set_image_stack()
            mrc.voxel_size = float(pixel_size)
            set_labels(mrc.header)
            mrc.update_header_stats()
        finally:
            mrc.close()
