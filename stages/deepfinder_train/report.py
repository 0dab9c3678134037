"""What a training run leaves behind: weights, history CSV, curves PNG, model card, provenance.

All files are written atomically, and only after training succeeded, so a failed run leaves the
outputs of an earlier one whole. ``provenance.json`` comes last.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from templearn import provenance
from templearn.atomic import write_json, write_text, save_figure

from . import dfcompat
from .data import Pair
from .training import TrainResult, history_columns, params_dict


def history_csv(result: TrainResult) -> str:
    cols = history_columns(result.n_classes)
    lines = [",".join(cols)]
    for row in result.history:
        lines.append(",".join(f"{row[c]:.6g}" if c != "epoch" else str(row[c]) for c in cols))
    return "\n".join(lines) + "\n"


def plot_curves(path: str | os.PathLike, result: TrainResult, names: dict[str, str], title: str = "") -> Path:
    """Loss (train, validation) and validation F1 per class against the epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    h = result.history
    ep = [r["epoch"] for r in h]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    a.plot([0] + ep, [np.nan] + [r["loss"] for r in h], "o-", ms=3, label="training")
    a.plot([0] + ep, [result.before.get("val_loss", np.nan)] + [r["val_loss"] for r in h], "o-", ms=3, label="validation")
    a.set_xlabel("epoch")
    a.set_ylabel("Tversky loss")
    a.grid(alpha=0.3)
    a.legend()
    for c in range(1, result.n_classes):
        b.plot([0] + ep, [result.before.get(f"val_f1_{c}", np.nan)] + [r[f"val_f1_{c}"] for r in h], "o-", ms=3,
               label=names.get(str(c), f"class {c}"))
    b.set_xlabel("epoch")
    b.set_ylabel("validation F1 (voxels)")
    b.set_ylim(0, 1)
    b.grid(alpha=0.3)
    b.legend()
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    save_figure(fig, path, dpi=100)
    return Path(path)


def _data_entry(p: Pair) -> dict:
    entry = {"tomogram": p.tomogram, "targets": p.targets, "shape_zyx": list(p.shape), "objects": int(len(p.objects))}
    for key, path in (("tomogram_sha256", p.tomogram), ("targets_sha256", p.targets)):
        if path and Path(path).is_file():
            entry[key] = provenance.sha256(path)
    return entry


def model_card(result: TrainResult, pairs: list[Pair], val_pairs: list[Pair], names: dict[str, str],
               radii: dict[str, float], voxel_size: float, *, init_weights: str | None = None,
               extra: dict | None = None) -> dict:
    last = result.history[-1]
    card = {
        "format": dfcompat.CARD_FORMAT, "version": dfcompat.CARD_VERSION, "network": dfcompat.NETWORK,
        "weights": "model.h5", "n_classes": result.n_classes, "classes": names,
        "voxel_size": voxel_size, "patch": result.params.patch,
        "class_radius_angstrom": radii,
        "normalization": dfcompat.NORMALIZATION,
        "loss": "deepfinder.losses.tversky_loss (alpha = beta = 0.5)",
        "optimizer": f"Adam(learning_rate={result.params.learning_rate:g}, beta_1=0.9, beta_2=0.999, epsilon=1e-8)",
        "params": params_dict(result.params),
        "init_weights": init_weights,
        "training_data": [_data_entry(p) for p in pairs],
        "validation_data": [_data_entry(p) for p in val_pairs] or "held-apart objects of the training tomograms",
        "objects": result.n_objects,
        "result": {"epochs": len(result.history), "final_loss": last["loss"], "final_val_loss": last["val_loss"],
                   "val_loss_before": result.before.get("val_loss"), "seconds": result.seconds,
                   "patches_per_second": result.patches_per_second},
        "versions": provenance.versions(),
    }
    if extra:
        card.update(extra)
    return card


def write_outputs(out: str | os.PathLike, result: TrainResult, pairs: list[Pair], val_pairs: list[Pair],
                  names: dict[str, str], radii: dict[str, float], voxel_size: float, stage: str, params: dict,
                  *, init_weights: str | None = None, extra_card: dict | None = None) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "model": dfcompat.save_weights(result.model, out / "model.h5"),
        "history": write_text(out / "history.csv", history_csv(result)),
        "curves": plot_curves(out / "curves.png", result, names, title=f"{stage}: {out.name}"),
    }
    card = model_card(result, pairs, val_pairs, names, radii, voxel_size, init_weights=init_weights, extra=extra_card)
    files["card"] = write_json(out / dfcompat.CARD_NAME, card)
    inputs = [p.tomogram for p in pairs + val_pairs] + [p.targets for p in pairs + val_pairs]
    if init_weights:
        inputs.append(init_weights)
    files["provenance"] = provenance.record(
        out, f"deepfinder-train {stage}", params, seed=result.params.seed,
        inputs=[i for i in inputs if i], outputs=[files[k] for k in ("model", "history", "curves", "card")],
        extra={"result": card["result"]})
    return files
