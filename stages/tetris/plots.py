"""slices.png: density and class slices of a packed sample (matplotlib, Agg)."""

from __future__ import annotations

import os

import numpy as np

from templearn.atomic import save_figure


def plot_slices(path: str | os.PathLike, density: np.ndarray, classes: np.ndarray, targets: list[str],
                voxel_size: float, n: int = 4) -> None:
    """Top row: density at ``n`` z slices; bottom row: the same slices coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    nz = density.shape[0]
    zs = np.unique(np.linspace(0, nz - 1, n + 2).round().astype(int)[1:-1]) if nz > 2 else np.arange(nz)
    k = len(targets)
    # -1 distractor (grey), 0 empty (white), 1..K targets (tab10 colours)
    tab = plt.get_cmap("tab10")
    colors = [(0.6, 0.6, 0.6), (1, 1, 1)] + [tab(i % 10)[:3] for i in range(k)]
    cmap = ListedColormap(colors)
    fig, axes = plt.subplots(2, len(zs), figsize=(3.2 * len(zs), 6.6), squeeze=False)
    extent = [0, density.shape[2] * voxel_size / 10, density.shape[1] * voxel_size / 10, 0]
    vmax = float(np.percentile(density, 99.5)) or 1.0
    for j, z in enumerate(zs):
        axes[0, j].imshow(density[z], cmap="gray_r", vmin=0, vmax=vmax, extent=extent)
        axes[0, j].set_title(f"density, z = {z}")
        axes[1, j].imshow(classes[z], cmap=cmap, vmin=-1.5, vmax=k + 0.5, extent=extent, interpolation="nearest")
        axes[1, j].set_title(f"classes, z = {z}")
        for ax in axes[:, j]:
            ax.set_xlabel("x (nm)")
        axes[0, j].set_ylabel("y (nm)")
        axes[1, j].set_ylabel("y (nm)")
    handles = [Patch(color=colors[0], label="distractor")] + [
        Patch(color=colors[2 + i], label=t) for i, t in enumerate(targets)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_figure(fig, path, dpi=90)
