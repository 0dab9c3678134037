"""How particles look in a tomogram: darker than the solvent (``dark``, raw cryo-ET reconstructions:
the models learn them so) or brighter (``bright``, the inverted tomograms some pipelines write)."""

from __future__ import annotations

import numpy as np

from .errors import TemplearnError

CONTRASTS = ("dark", "bright")


def check_contrast(contrast: str) -> None:
    if contrast not in CONTRASTS:
        raise TemplearnError(f"--contrast must be 'dark' (particles darker than the solvent, raw cryo-ET) "
                             f"or 'bright' (inverted tomograms), got {contrast!r}")


def as_dark(volume: np.ndarray, contrast: str) -> np.ndarray:
    """``volume`` with dark particles (negated when ``contrast`` is ``bright``)."""
    check_contrast(contrast)
    return -volume if contrast == "bright" else volume
