"""DeepFinder training driven by templearn: our loop, DeepFinder's network, loss and optimiser.

DeepFinder's ``Train.launch`` cannot be used as is: it reads tomograms from paths as HDF5 or
through its own readers, needs XML object lists, prints every step, writes its history and
weights every epoch (not atomically) into a folder, and exits the process on a bad argument.
The loop here does what it does, in order: per epoch ``steps`` calls of ``train_on_batch`` on
batches of ``batch`` patches sampled around objects with a random shift (:mod:`.data`), then
``val_steps`` validation batches. Differences, on purpose:

- tomograms are normalised once as a whole (as DeepFinder's ``Segment`` does), not patch by
  patch, so training and segmentation see the same intensities;
- the validation batches are drawn once (fixed seed) so validation losses of different epochs
  compare the same patches;
- without validation tomograms, 10 % of the training objects are held apart for validation.

Determinism: numpy sampling comes from ``np.random.default_rng(seed)`` and TensorFlow is seeded
with ``tf.keras.utils.set_random_seed(seed)``; see the README for what is bit-reproducible.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from templearn.errors import TemplearnError
from templearn.progress import track

from . import dfcompat
from .data import Pair, check_same_voxel_size, pool_of, sample_batch, split_pool


@dataclass
class TrainParams:
    """Paper defaults (Harastani et al. 2024, Extended Data Tab. 2) and DeepFinder's."""

    epochs: int = 100
    steps: int = 100            # training batches per epoch
    patch: int = 48             # voxels, cube edge; multiple of 4
    batch: int = 25             # patches per batch
    shift: int = 13             # voxels: random shift of a patch centre around its object
    val_steps: int = 10         # validation batches per epoch (DeepFinder's steps_per_valid)
    seed: int = 0
    learning_rate: float = dfcompat.LEARNING_RATE
    val_fraction: float = 0.1   # objects held apart when no validation tomogram is given

    def check(self) -> "TrainParams":
        for name in ("epochs", "steps", "batch", "val_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TemplearnError(f"{name.replace('_', '-')} must be a positive integer, got {v!r}")
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise TemplearnError(f"shift must be a non-negative integer number of voxels, got {self.shift!r}")
        dfcompat.check_patch(self.patch)
        if not 0 < self.val_fraction < 1:
            raise TemplearnError(f"validation fraction must be between 0 and 1, got {self.val_fraction}")
        if not self.learning_rate > 0:
            raise TemplearnError(f"learning rate must be positive, got {self.learning_rate}")
        return self


@dataclass
class TrainResult:
    model: object                          # the Keras model (DeepFinder's network), trained
    history: list[dict]                    # one row per epoch (see HISTORY_COLUMNS)
    n_classes: int
    params: TrainParams
    seconds: float = 0.0
    patches_per_second: float = 0.0        # training throughput (train_on_batch only)
    n_objects: dict = field(default_factory=dict)
    before: dict = field(default_factory=dict)   # validation scores of the starting weights


def history_columns(n_classes: int) -> list[str]:
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    for c in range(1, n_classes):
        cols += [f"val_f1_{c}", f"val_precision_{c}", f"val_recall_{c}"]
    return cols + ["seconds"]


def _scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """Tversky loss (as DeepFinder's, summed over classes), accuracy, per-class P/R/F1 of a batch."""
    axes = (0, 1, 2, 3)
    num = (y_pred * y_true).sum(axes, dtype=np.float64)
    den = num + 0.5 * (y_pred * (1 - y_true)).sum(axes, dtype=np.float64) + 0.5 * ((1 - y_pred) * y_true).sum(axes, dtype=np.float64)
    loss = n_classes - float(np.sum(num / np.maximum(den, 1e-12)))
    t, p = y_true.argmax(-1).ravel(), y_pred.argmax(-1).ravel()
    out = {"val_loss": loss, "val_accuracy": float(np.mean(t == p))}
    for c in range(1, n_classes):
        tp = float(np.sum((p == c) & (t == c)))
        prec = tp / max(1.0, float(np.sum(p == c)))
        rec = tp / max(1.0, float(np.sum(t == c)))
        out[f"val_f1_{c}"] = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
        out[f"val_precision_{c}"], out[f"val_recall_{c}"] = prec, rec
    return out


def n_classes_of_pairs(pairs: list[Pair], names: dict | None = None) -> int:
    top = max(int(p.labels.max()) for p in pairs)
    return max(top, len(names or {}) - 1) + 1


def train(pairs: list[Pair], val_pairs: list[Pair] | None = None, params: TrainParams | None = None, *,
          n_classes: int | None = None, init_model=None, progress: str = "training") -> TrainResult:
    """Train DeepFinder's network on ``pairs`` (checked, normalised :class:`Pair` objects).

    ``n_classes`` counts the background (default: highest label + 1). ``init_model`` (a Keras
    model of DeepFinder's network, e.g. from :func:`dfcompat.load_network`) starts from its
    weights (fine-tuning); otherwise the network starts from Keras' seeded initialisation.
    Returns the trained model and one history row per epoch.
    """
    params = (params or TrainParams()).check()
    if not pairs:
        raise TemplearnError("no training tomogram given")
    val_pairs = list(val_pairs or [])
    check_same_voxel_size(pairs + val_pairs)
    for p in pairs + val_pairs:
        small = [n for n in p.shape if n < params.patch]
        if small:
            raise TemplearnError(f"patch {params.patch} does not fit in the tomogram {p.shape} [z, y, x]: use a smaller --patch", p.tomogram or None)
    top = n_classes_of_pairs(pairs + val_pairs)
    n_classes = top if n_classes is None else dfcompat.check_n_classes(n_classes)
    if n_classes < top:
        raise TemplearnError(f"targets hold label {top - 1} but the network has only {n_classes} classes (0..{n_classes - 1})")

    dfcompat.seed_everything(params.seed)
    rng = np.random.default_rng(params.seed)
    train_pool = pool_of(pairs)
    if val_pairs:
        all_pairs, val_pool = pairs + val_pairs, pool_of(val_pairs) + np.array([len(pairs), 0, 0, 0, 0])
    else:
        all_pairs = pairs
        train_pool, val_pool = split_pool(train_pool, params.val_fraction, np.random.default_rng(params.seed + 1))

    # Fixed validation batches: the same patches every epoch, so the curve compares like with like.
    val_rng = np.random.default_rng(params.seed + 2)
    val_batches = [sample_batch(val_rng, all_pairs, val_pool, params.batch, params.patch, params.shift, n_classes)
                   for _ in range(params.val_steps)]

    if init_model is not None:
        if dfcompat.n_classes_of(init_model) != n_classes:
            raise TemplearnError(f"the starting weights have {dfcompat.n_classes_of(init_model)} classes, the targets need {n_classes}")
        model = dfcompat.build_network(n_classes, params.patch)
        model.set_weights(init_model.get_weights())
    else:
        model = dfcompat.build_network(n_classes, params.patch)
    dfcompat.compile_network(model, params.learning_rate)

    def validate() -> dict:
        val = [_scores(y, model(x, training=False).numpy(), n_classes) for x, y in val_batches]
        return {k: float(np.mean([v[k] for v in val])) for k in val[0]}

    before = validate()
    history = []
    start = time.perf_counter()
    fit_seconds = 0.0
    for epoch in track(range(1, params.epochs + 1), progress):
        t0 = time.perf_counter()
        losses, accs = [], []
        for _ in range(params.steps):
            x, y = sample_batch(rng, all_pairs, train_pool, params.batch, params.patch, params.shift, n_classes)
            t_fit = time.perf_counter()
            loss, acc = model.train_on_batch(x, y)
            fit_seconds += time.perf_counter() - t_fit
            losses.append(float(loss))
            accs.append(float(acc))
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "accuracy": float(np.mean(accs))}
        row.update(validate())
        row["seconds"] = time.perf_counter() - t0
        if not np.isfinite(row["loss"]):
            raise TemplearnError(f"training diverged at epoch {epoch} (loss {row['loss']}): lower the learning rate")
        history.append(row)
    seconds = time.perf_counter() - start
    n_obj = {"train": int(len(train_pool)), "validation": int(len(val_pool))}
    return TrainResult(model, history, n_classes, params, seconds,
                       params.epochs * params.steps * params.batch / max(fit_seconds, 1e-9), n_obj, before)


def params_dict(params: TrainParams) -> dict:
    return asdict(params)
