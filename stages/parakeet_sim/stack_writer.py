"""Tilt series written one image at a time (bounded memory), appearing whole or not at all."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from templearn.atomic import atomic_path


@contextlib.contextmanager
def stack_writer(path: str | os.PathLike, n: int, ny: int, nx: int, pixel_size: float) -> Iterator[np.ndarray]:
    """Yield a memory-mapped float32 ``[n, ny, nx]`` stack; on success it is renamed onto ``path``.

    The header carries the pixel size and the MRC image-stack flag, as :func:`templearn.mrc.write_mrc` does.
    """
    import mrcfile

    with atomic_path(Path(path)) as tmp:
        mrc = mrcfile.new_mmap(tmp, shape=(n, ny, nx), mrc_mode=2, overwrite=True)
        try:
            yield mrc.data
            mrc.set_image_stack()
            mrc.voxel_size = float(pixel_size)
            mrc.update_header_stats()
        finally:
            mrc.close()
