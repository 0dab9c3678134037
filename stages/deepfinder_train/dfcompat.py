"""DeepFinder (``cryoet-deepfinder`` 0.2.1, GPL-3.0) behind checks: the one module that imports it.

templearn uses DeepFinder as a dependency, never a copy: its network (``deepfinder.models.my_model``,
a 2-level 3D U-Net, 32-48-64 channels), its Tversky loss, its Adam settings, its tiling of a
tomogram into patches (``deepfinder.inference.Segment``, which :func:`segment` streams with
batches of patches and a bounded window of scores; :func:`segment_deepfinder` runs DeepFinder's
own as the reference) and its clustering (``deepfinder.inference.Cluster``).
Weights written here are Keras ``.h5`` files of that same network, so DeepFinder's own tools load
them (``Segment(Ncl, "model.h5", patch_size)``).

DeepFinder's defects are kept out of templearn here:

- bad arguments make it call ``sys.exit()``: every argument is checked first and a bad one raises
  :class:`~templearn.errors.TemplearnError`;
- it prints every step (``observer_print``) and Keras ``predict`` prints a progress bar: we give
  its classes a silent observer and call the network directly;
- ``Segment`` feeds one patch per network call and sums scores over the whole padded volume
  (``[z, y, x, C]`` float16 and an int8 count: 2.1 GB for 928x928x464 with 2 classes, besides
  float32 copies of the normalised and padded volume, 1.7 GB each): :func:`segment` does the same
  arithmetic on batches, in a window of planes;
- ``Segment`` leaves voxels unscored (division by zero) when ``overlap < 2*crop + 1``, returns an
  empty array for ``crop = 0``, fails with an ``IndexError`` when a padded axis is not longer
  than the patch, and counts overlaps in ``int8``: all checked before it runs;
- ``Cluster`` raises a MeanShift ``ValueError`` on an empty label map: we return no clusters;
- ``smap.bin`` and ``common.plot_volume_orthoslices`` call ``np.int`` (gone from numpy >= 1.24):
  templearn never calls them, so numpy is not patched;
- its console scripts (``No module named 'deepfinder.bin'``) are not used.

Arrays are ``[z, y, x]``; score maps ``[C, z, y, x]`` with class 0 the background.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from templearn.atomic import read_json
from templearn.errors import TemplearnError, require

CARD_NAME = "model_card.json"
CARD_FORMAT = "templearn.deepfinder-model"
CARD_VERSION = 1
NETWORK = "deepfinder.models.my_model"
LEARNING_RATE = 1e-4          # DeepFinder's Adam(lr=1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
DEFAULT_CROP = 8              # segmentation: 25/55 (DeepFinder's defaults) took 161 s for 64^3 on 2 cores,
DEFAULT_OVERLAP = 21          # 8/21 took 5 s; 21 >= 2*8 + 1 keeps every voxel scored
NORMALIZATION = "whole tomogram: (v - mean) / std, float32 (as deepfinder.inference.Segment)"


# --- imports ---------------------------------------------------------------------------------

def _tf():
    """TensorFlow, imported on first use with its C++ log chatter turned down."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return require("tensorflow", "deepfinder-train", "to train or run DeepFinder")


def _deepfinder(module: str):
    _tf()
    return require(f"deepfinder.{module}", "deepfinder-train", "(cryoet-deepfinder) to train or run DeepFinder")


class _Silent:
    """A DeepFinder observer that drops its messages (the library never prints)."""

    @staticmethod
    def display(message):  # noqa: D401 - DeepFinder's observer interface
        pass


def _quiet(obj):
    obj.obs_list = [_Silent]
    return obj


# --- checks ----------------------------------------------------------------------------------

def check_patch(patch: Any, what: str = "patch") -> int:
    """A network input size: an int >= 8 and a multiple of 4 (the U-Net pools twice)."""
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)):
        raise TemplearnError(f"{what} must be an integer number of voxels, got {patch!r}")
    patch = int(patch)
    if patch < 8 or patch % 4:
        raise TemplearnError(f"{what} must be a multiple of 4 and at least 8 voxels (the network pools twice), got {patch}")
    return patch


def check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or int(n_classes) < 2:
        raise TemplearnError(f"the network needs at least 2 classes (background + 1 target), got {n_classes!r}")
    return int(n_classes)


def check_volume(volume: Any, what: str = "tomogram", path=None) -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise TemplearnError(f"{what} must be a 3D array [z, y, x], got shape {volume.shape}", path)
    if not np.all(np.isfinite(volume)):
        raise TemplearnError(f"{what} contains NaN or infinite values", path)
    return volume


# --- the network ------------------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow (``tf.keras.utils.set_random_seed``)."""
    _tf().keras.utils.set_random_seed(int(seed))


def build_network(n_classes: int, patch: int = 48):
    """DeepFinder's own network for ``patch``^3 inputs and ``n_classes`` outputs (background included).

    Returns an uncompiled Keras model: input ``[batch, patch, patch, patch, 1]``, output softmax
    ``[batch, patch, patch, patch, n_classes]``. Fully convolutional: weights fit any patch.
    """
    n_classes = check_n_classes(n_classes)
    patch = check_patch(patch)
    return _deepfinder("models").my_model(patch, n_classes)


def compile_network(model, learning_rate: float = LEARNING_RATE):
    """Compile for training as DeepFinder's ``Train`` does: Tversky loss, Adam, accuracy."""
    tf = _tf()
    losses = _deepfinder("losses")
    if not learning_rate > 0:
        raise TemplearnError(f"learning rate must be positive, got {learning_rate}")
    # DeepFinder uses the legacy Adam of TF 2.13 (Adam(lr=1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8)).
    adam = getattr(tf.keras.optimizers, "legacy", tf.keras.optimizers).Adam
    model.compile(optimizer=adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
                  loss=losses.tversky_loss, metrics=["accuracy"])
    return model


def tversky_loss(y_true, y_pred):
    """DeepFinder's loss (alpha = beta = 0.5: a summed Dice), on one-hot ``[b, z, y, x, C]``."""
    return _deepfinder("losses").tversky_loss(y_true, y_pred)


def n_classes_of(model) -> int:
    return int(model.output_shape[-1])


def patch_of(model) -> int:
    return int(model.input_shape[1])


def with_patch(model, patch: int):
    """The same weights in a network built for ``patch``^3 inputs (a new model if the size differs)."""
    patch = check_patch(patch)
    if patch_of(model) == patch:
        return model
    net = build_network(n_classes_of(model), patch)
    net.set_weights(model.get_weights())
    return net


def save_weights(model, path: str | os.PathLike) -> Path:
    """Write the weights atomically as Keras HDF5 (what DeepFinder's ``load_weights`` reads)."""
    from templearn.atomic import atomic_path

    path = Path(path)
    if path.suffix != ".h5":
        raise TemplearnError("weights must be written to a .h5 file (DeepFinder's format)", path)
    with atomic_path(path) as tmp:
        model.save_weights(str(tmp), save_format="h5")
    return path


def read_card(weights_path: str | os.PathLike) -> dict | None:
    """The ``model_card.json`` beside ``weights_path``, or None when there is none."""
    card_path = Path(weights_path).parent / CARD_NAME
    if not card_path.is_file():
        return None
    card = read_json(card_path, "model card", CARD_FORMAT)
    for key in ("n_classes", "patch", "voxel_size", "classes"):
        if key not in card:
            raise TemplearnError(f"model card has no {key!r}", card_path)
    try:
        check_n_classes(card["n_classes"])
        check_patch(card["patch"])
    except TemplearnError as exc:
        raise TemplearnError(f"bad model card: {exc}", card_path) from None
    return card


def _n_classes_in_h5(path: Path) -> int:
    """The number of output classes stored in a weights file (the last 1x1x1 convolution)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            names = [n.decode() if isinstance(n, bytes) else n for n in root.attrs.get("layer_names", [])]
            last = None
            for name in names:
                group = root[name]
                for wname in group.attrs.get("weight_names", []):
                    wname = wname.decode() if isinstance(wname, bytes) else wname
                    shape = group[wname].shape
                    if len(shape) == 5 and shape[:3] == (1, 1, 1):
                        last = shape[-1]
    except OSError:
        raise TemplearnError("not a readable HDF5 weights file", path) from None
    if last is None:
        raise TemplearnError("no DeepFinder network weights in this file (no 1x1x1 output convolution)", path)
    return int(last)


def load_network(weights_path: str | os.PathLike, patch: int | None = None):
    """Load weights written by templearn or by DeepFinder's ``Train``; return ``(model, card)``.

    ``card`` is the ``model_card.json`` beside the weights (classes, voxel size, patch, training
    data). Without one (weights from DeepFinder's own tools), the number of classes is read from
    the file and the card holds only ``n_classes``, ``patch``, ``classes`` and ``voxel_size: None``.
    ``patch`` overrides the card's patch size (the network is fully convolutional).
    """
    path = Path(weights_path)
    if not path.is_file():
        raise TemplearnError("no such weights file", path)
    if path.suffix != ".h5":
        raise TemplearnError("weights must be a Keras .h5 file (DeepFinder's format)", path)
    card = read_card(path)
    n_h5 = _n_classes_in_h5(path)
    if card is None:
        card = {"format": CARD_FORMAT, "version": CARD_VERSION, "network": NETWORK, "n_classes": n_h5,
                "patch": 48, "voxel_size": None, "classes": _default_names(n_h5), "source": "weights only"}
    elif int(card["n_classes"]) != n_h5:
        raise TemplearnError(f"model card says {card['n_classes']} classes, the weights have {n_h5}", path.parent / CARD_NAME)
    model = build_network(n_h5, card["patch"] if patch is None else patch)
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TemplearnError(f"cannot load these weights into DeepFinder's network ({first})", path) from None
    return model, card


def _default_names(n_classes: int) -> dict[str, str]:
    return {"0": "background", **{str(i): f"class{i}" for i in range(1, n_classes)}}


# --- normalisation and segmentation -----------------------------------------------------------

def normalize(volume: np.ndarray, path=None) -> np.ndarray:
    """Zero mean, unit standard deviation over the whole volume, float32 (DeepFinder's ``Segment``).

    Training patches are cut from the tomogram normalised by this function and segmentation
    normalises the same way, so the network sees the same statistics in both.
    """
    volume = check_volume(volume, path=path).astype(np.float32, copy=False)
    std = float(volume.std(dtype=np.float64))
    if not std > 0:
        raise TemplearnError("tomogram is constant (standard deviation 0): nothing to normalise", path)
    mean = float(volume.mean(dtype=np.float64))
    return ((volume - mean) / std).astype(np.float32)


def check_tiling(shape_zyx, patch: int, crop: int, overlap: int) -> None:
    """Raise if DeepFinder's tiled segmentation would fail or leave voxels unscored."""
    patch = check_patch(patch)
    for name, v in (("crop", crop), ("overlap", overlap)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TemplearnError(f"{name} must be an integer number of voxels, got {v!r}")
    valid = patch - 2 * crop
    if crop < 1 or valid < 4:
        raise TemplearnError(f"crop must be at least 1 and leave at least 4 voxels of the patch (patch {patch} - 2*crop >= 4), got crop {crop}")
    if not 2 * crop + 1 <= overlap <= patch:
        raise TemplearnError(f"overlap must be between 2*crop+1 = {2 * crop + 1} (else voxels go unscored) and the patch {patch}, got {overlap}")
    step = patch + 1 - overlap
    per_axis = -(-valid // step)
    if per_axis ** 3 > 127:  # DeepFinder counts overlapping patches in int8
        raise TemplearnError(f"overlap {overlap} makes {per_axis ** 3} patches cover a voxel (DeepFinder counts at most 127): lower it")
    short = [n for n in shape_zyx if n + 2 * crop <= patch]
    if short:
        raise TemplearnError(
            f"tomogram {tuple(shape_zyx)} is too small for patch {patch} with crop {crop}: every axis must be "
            f"longer than patch - 2*crop = {patch - 2 * crop} voxels (use a smaller patch)")


class _Net:
    """Stands in for the Keras model inside DeepFinder's ``Segment``: a direct call, not ``predict``
    (which prints a progress bar and sets up a data pipeline on every call)."""

    def __init__(self, model):
        self.model = model

    def predict(self, x, batch_size=1):
        return self.model(np.asarray(x, np.float32), training=False).numpy()


SEGMENT_MEMORY = 1 << 30  # bytes for the network's batch and for the window of scores being summed
_ACTIVATION_BYTES = 200 * 4  # per input voxel: the widest point of the U-Net (skip 32 + up 48 + concat 80 + conv 32, float32)


def set_threads(n: int | None = None) -> int:
    """TensorFlow's intra-op threads: the CPUs this process may run on (its affinity, which
    containers and batch systems restrict, not the host's count). Returns the number set; has no
    effect once TensorFlow has run an operation."""
    tf = _tf()
    n = int(n or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, n))
    except RuntimeError:  # TensorFlow already initialised: keep its setting
        pass
    return n


def patch_centres(n: int, patch: int, crop: int, overlap: int) -> list[int]:
    """Patch centres along an axis of ``n`` voxels, padded by ``crop``: DeepFinder's ``Segment``
    grid (every ``patch + 1 - overlap`` voxels from ``patch/2``, plus one flush with the end)."""
    dim, half = n + 2 * crop, patch // 2
    c = list(range(half, dim - half, patch + 1 - overlap))
    if c[-1] < dim - half:
        c.append(dim - half)
    return c


def moments(volume: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of ``volume`` in float64, by slabs (no float64 copy of it)."""
    s = s2 = 0.0
    for z in range(0, volume.shape[0], 8):
        v = np.asarray(volume[z:z + 8], np.float64)
        s += float(v.sum())
        s2 += float(np.square(v).sum())
    n = volume.size
    mean = s / n
    return mean, float(np.sqrt(max(s2 / n - mean * mean, 0.0)))


def iter_segment(model, volume: np.ndarray, patch: int | None = None, crop: int = DEFAULT_CROP,
                 overlap: int = DEFAULT_OVERLAP, *, memory: int = SEGMENT_MEMORY, batch: int | None = None,
                 progress=None, normalized: bool = False):
    """DeepFinder's tiled segmentation (``deepfinder.inference.Segment.launch``), streamed.

    Same patches, crop, average of overlapping patches and normalisation (whole volume to zero
    mean and unit variance, zero padding of ``crop`` voxels) as DeepFinder, with scores summed in
    float32 (DeepFinder: float16). Patches go to the network ``batch`` at a time (default: as many
    as ``memory`` holds, at most 32); scores are summed in a window of z-planes that is flushed as
    soon as no later patch reaches it, so memory stays bounded whatever the volume.
    Yields ``(z0, z1, scores)``: ``scores`` ``[C, z1 - z0, y, x]`` float32 for planes z0..z1-1, in
    order. ``progress`` wraps the iterable of batches (e.g. :func:`templearn.progress.track`).
    ``normalized``: the volume is already normalised as in training
    (:func:`templearn.normalize.normalize_tomogram`), so it goes to the network as it is.
    """
    volume = check_volume(volume)
    patch = patch_of(model) if patch is None else check_patch(patch)
    check_tiling(volume.shape, patch, crop, overlap)
    mean, std = (0.0, 1.0) if normalized else moments(volume)
    if not std > 0:
        raise TemplearnError("tomogram is constant (standard deviation 0): nothing to normalise")
    set_threads()
    tf = _tf()
    net = with_patch(model, patch)
    n_cl = n_classes_of(net)
    call = tf.function(lambda x: net(x, training=False),
                       input_signature=[tf.TensorSpec([None, patch, patch, patch, 1], tf.float32)])
    if batch is None:
        batch = int(np.clip(memory // 2 // (_ACTIVATION_BYTES * patch ** 3), 1, 32))
    nz, ny, nx = volume.shape
    half, lcrop = patch // 2, patch // 2 - crop
    cz, cy, cx = (patch_centres(n, patch, crop, overlap) for n in volume.shape)
    py, px = ny + 2 * crop, nx + 2 * crop
    centres = [(z, y, x) for z in cz for y in cy for x in cx]
    batches = range(0, len(centres), batch)
    # Window of padded z-planes [base, base + W): it must hold every batch's patches; more planes
    # (up to half of ``memory``) mean fewer flushes.
    span = max(centres[min(b + batch, len(centres)) - 1][0] - centres[b][0] for b in batches)
    plane = (n_cl + 1) * 4 * py * px
    W = int(min(nz + 2 * crop, max(2 * lcrop + span, memory // 2 // plane)))
    acc = np.zeros((n_cl, W, py, px), np.float32)
    cnt = np.zeros((W, py, px), np.float32)
    base = 0
    flushed = crop  # first padded plane not yet yielded (planes < crop are padding)

    def flush(upto: int):
        """Yield the final planes [flushed, upto) (padded z); slide the window to start at ``upto``."""
        nonlocal base, flushed
        lo, hi = flushed, min(upto, crop + nz)
        if hi > lo:
            a, b = lo - base, hi - base
            yield lo - crop, hi - crop, acc[:, a:b, crop:crop + ny, crop:crop + nx] / cnt[a:b, crop:crop + ny, crop:crop + nx]
            flushed = hi
        shift = min(upto - base, W)
        if shift > 0:
            acc[:, :W - shift] = acc[:, shift:]
            acc[:, W - shift:] = 0
            cnt[:W - shift] = cnt[shift:]
            cnt[W - shift:] = 0
            base = upto

    def patch_at(z, y, x):
        """The normalised, zero-padded input cube centred at padded (z, y, x)."""
        out = np.zeros((patch, patch, patch), np.float32)
        lo = [c - half - crop for c in (z, y, x)]  # in volume coordinates
        src = tuple(slice(max(0, l), min(n, l + patch)) for l, n in zip(lo, volume.shape))
        dst = tuple(slice(s.start - l, s.stop - l) for s, l in zip(src, lo))
        out[dst] = (np.asarray(volume[src], np.float32) - np.float32(mean)) / np.float32(std)
        return out

    for start in (batches if progress is None else progress(batches)):
        group = centres[start:start + batch]
        if group[-1][0] + lcrop - base > W:  # planes before this batch's first row are final
            yield from flush(group[0][0] - lcrop)
        pred = call(np.stack([patch_at(*c) for c in group])[..., None]).numpy()
        for (z, y, x), p in zip(group, pred):
            sz, sy, sx = (slice(c - lcrop, c + lcrop) for c in (z - base, y, x))
            acc[:, sz, sy, sx] += np.moveaxis(p[half - lcrop:half + lcrop, half - lcrop:half + lcrop,
                                                half - lcrop:half + lcrop], -1, 0)
            cnt[sz, sy, sx] += 1
    yield from flush(crop + nz)


def segment(model, volume: np.ndarray, patch: int | None = None, crop: int = DEFAULT_CROP,
            overlap: int = DEFAULT_OVERLAP, *, labels: bool = False, dtype=np.float32,
            memory: int = SEGMENT_MEMORY, batch: int | None = None, progress=None,
            normalized: bool = False) -> np.ndarray:
    """Segment ``volume`` ``[z, y, x]`` by :func:`iter_segment` (DeepFinder's tiling).

    ``patch`` (default: the model's input size) is the cube fed to the network; ``crop`` voxels
    are dropped from each patch border; neighbouring patches overlap by ``overlap`` voxels.

    Returns the score map ``[C, z, y, x]`` (softmax, class 0 = background) in ``dtype`` (float16
    halves it), or with ``labels=True`` only the label map ``[z, y, x]`` int8 (argmax, one byte a
    voxel whatever the number of classes: what picking needs on large tomograms).
    """
    out = None
    for z0, z1, s in iter_segment(model, volume, patch, crop, overlap, memory=memory, batch=batch,
                                  progress=progress, normalized=normalized):
        if out is None:
            shape = volume.shape if labels else (s.shape[0],) + tuple(volume.shape)
            out = np.zeros(shape, np.int8 if labels else dtype)
        if labels:
            out[z0:z1] = np.argmax(s, axis=0)
        else:
            out[:, z0:z1] = s
    return out


def segment_deepfinder(model, volume: np.ndarray, patch: int | None = None, crop: int = DEFAULT_CROP,
                       overlap: int = DEFAULT_OVERLAP) -> np.ndarray:
    """DeepFinder's own ``Segment.launch`` with ``model`` (one patch per network call, float16
    sums over the whole padded volume): the reference :func:`segment` is compared with. Returns
    ``[C, z, y, x]`` float32."""
    volume = check_volume(volume)
    inference = _deepfinder("inference")
    patch = patch_of(model) if patch is None else check_patch(patch)
    check_tiling(volume.shape, patch, crop, overlap)
    normalize(volume)  # raises on a constant volume, which Segment would turn into NaN
    net = with_patch(model, patch)
    seg = inference.Segment.__new__(inference.Segment)  # its __init__ only re-reads weights from a path
    inference.core.DeepFinder.__init__(seg)
    _quiet(seg)
    seg.Ncl, seg.P, seg.pcrop, seg.poverlap = n_classes_of(net), patch, int(crop), int(overlap)
    seg.path_weights = "in-memory.h5"
    seg.net = _Net(net)
    # DeepFinder divides by a coverage count that is 0 only in the padding it strips off again.
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = seg.launch(np.asarray(volume, dtype=np.float32))  # [z, y, x, C] float16
    return np.moveaxis(scores, -1, 0).astype(np.float32)


def to_labelmap(scores: np.ndarray) -> np.ndarray:
    """Score map ``[C, z, y, x]`` -> label map ``[z, y, x]`` int8 (argmax over classes)."""
    scores = np.asarray(scores)
    if scores.ndim != 4:
        raise TemplearnError(f"score map must be [C, z, y, x], got shape {scores.shape}")
    return np.argmax(scores, axis=0).astype(np.int8)


def cluster(labelmap: np.ndarray, radius: int) -> list[dict]:
    """DeepFinder's MeanShift clustering (``inference.Cluster``) of a label map ``[z, y, x]``.

    ``radius`` is the bandwidth in voxels. Returns DeepFinder's object list (dicts with ``label``,
    ``x``, ``y``, ``z`` in voxels and ``cluster_size``); an empty list for an empty label map
    (where DeepFinder raises a MeanShift ``ValueError``).
    """
    labelmap = check_volume(labelmap, "label map")
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 1:
        raise TemplearnError(f"clustering radius must be a positive integer number of voxels, got {radius!r}")
    if not np.any(labelmap > 0):
        return []
    inference = _deepfinder("inference")
    clus = inference.Cluster.__new__(inference.Cluster)  # its __init__ checks only the radius
    inference.core.DeepFinder.__init__(clus)
    _quiet(clus)
    clus.clustRadius, clus.sizeThr = int(radius), 1
    # Cluster votes over labels 1..(number of classes present), so a map holding only class 2
    # would come back as class 1: number the present classes 1..n, then map back.
    present = np.unique(labelmap[labelmap > 0]).astype(int)
    lut = np.zeros(int(labelmap.max()) + 1, dtype=np.int8)
    lut[present] = np.arange(1, len(present) + 1)
    objl = clus.launch(lut[np.asarray(labelmap).astype(int).clip(0)])
    for obj in objl:
        obj["label"] = int(present[int(obj["label"]) - 1])
    return objl
