"""pick-eval pick: the errors users get before any segmentation (a trained model picking a held-out
simulated tomogram is tested in tests/test_end_to_end.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from templearn.cli_util import run
from templearn.mrc import write_mrc
from templearn.stages.pick_eval.cli import app

pytestmark = pytest.mark.deepfinder
VS = 12.0
PATCH = 16


def cli(args) -> int:
    try:
        run(app, [str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An (untrained) 2-class DeepFinder network saved with its model card: enough for the checks
    made before segmenting. Picking by a trained model is tested in tests/test_end_to_end.py."""
    from templearn.stages.deepfinder_train import dfcompat

    dfcompat.seed_everything(0)
    d = tmp_path_factory.mktemp("model")
    dfcompat.save_weights(dfcompat.build_network(2, PATCH), d / "model.h5")
    (d / dfcompat.CARD_NAME).write_text(json.dumps({
        "format": dfcompat.CARD_FORMAT, "version": dfcompat.CARD_VERSION, "n_classes": 2, "patch": PATCH,
        "voxel_size": VS, "classes": {"0": "background", "1": "blob"}}))
    return d


def test_pick_errors(model_dir, tmp_path, capsys):
    rng = np.random.default_rng(1)
    w = model_dir / "model.h5"
    wrong_vs = write_mrc(tmp_path / "binned.mrc", rng.normal(size=(24, 32, 32)), 16.0)
    assert cli(["pick", wrong_vs, "--weights", w, "--out", tmp_path / "o"]) == 2
    err = capsys.readouterr().err
    assert "binned.mrc" in err and "16 Å" in err and "12 Å" in err
    flat = write_mrc(tmp_path / "flat.mrc", np.zeros((24, 32, 32)), VS)
    assert cli(["pick", flat, "--weights", w, "--out", tmp_path / "o"]) == 2
    assert "constant" in capsys.readouterr().err
    tomo = write_mrc(tmp_path / "t.mrc", rng.normal(size=(24, 32, 32)), VS)
    write_mrc(tmp_path / "mask.mrc", np.ones((24, 32, 30)), VS)
    assert cli(["pick", tomo, "--weights", w, "--out", tmp_path / "o", "--mask", tmp_path / "mask.mrc"]) == 2
    assert "mask.mrc" in (err := capsys.readouterr().err) and "shape" in err
    assert cli(["pick", tomo, "--weights", tmp_path / "none.h5", "--out", tmp_path / "o"]) == 2
    assert "none.h5" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_pick_inverted_tomogram_with_bright_contrast(model_dir, tmp_path, capsys):
    """An inverted tomogram picked with --contrast bright is segmented as the original is with the
    default (dark): the same label map, the contrast recorded; a wrong value is one line."""
    rng = np.random.default_rng(2)
    vol = rng.normal(size=(24, 32, 32)).astype(np.float32)
    vol[8:16, 10:20, 10:20] -= 3.0                           # a dark blob
    w = model_dir / "model.h5"
    dark = write_mrc(tmp_path / "dark.mrc", vol, VS)
    bright = write_mrc(tmp_path / "bright.mrc", -vol, VS)
    args = ["--weights", w, "--crop", 2, "--overlap", 5, "--min-size", 1]
    assert cli(["pick", dark, "--out", tmp_path / "d", *args]) == 0
    assert cli(["pick", bright, "--out", tmp_path / "b", "--contrast", "bright", *args]) == 0
    from templearn.mrc import read_mrc

    seg_dark = read_mrc(tmp_path / "d" / "segmentation.mrc")[0]
    np.testing.assert_array_equal(seg_dark, read_mrc(tmp_path / "b" / "segmentation.mrc")[0])
    # the network does see the sign: the inverted tomogram taken as dark segments otherwise
    assert cli(["pick", bright, "--out", tmp_path / "wrong", *args]) == 0
    assert np.any(read_mrc(tmp_path / "wrong" / "segmentation.mrc")[0] != seg_dark)
    assert json.loads((tmp_path / "b" / "provenance.json").read_text())["params"]["contrast"] == "bright"
    capsys.readouterr()
    assert cli(["pick", bright, "--out", tmp_path / "x", "--contrast", "inverted", *args]) == 2
    assert "--contrast" in capsys.readouterr().err and not (tmp_path / "x").exists()
