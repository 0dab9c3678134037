"""The ablation study (benchmarks/ablation.py): each variant removes exactly one part of the full
method, every variant picks the same test tomograms, and the study's config is checked.

The study itself takes about an hour and a half on 2 cores (README, "Ablation study"); these tests
build its run configs and stage graphs, and run one real tetris pack for the less-crowding rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from templearn.orchestrator import graph
from templearn.orchestrator.ablation import (
    VARIANTS,
    HeldOutTomogram,
    _evaluate_steps,
    _volume_steps,
    border_mask,
    load_study,
    variant_config,
)
from templearn.stages.tetris.cli import app as tetris

from templearn.cli_util import run as run_app
from templearn.errors import TemplearnError

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "benchmarks" / "ablation.yaml"


def _tomos(tmp_path) -> list[HeldOutTomogram]:
    return [HeldOutTomogram(f"sample_00{i}_c00", tmp_path / f"t{i}.mrc", tmp_path / f"s{i}.json", tmp_path / f"m{i}.mrc")
            for i in range(2)]


def _tetris_argv(cfg) -> list[str]:
    return next(s for s in graph.build(cfg) if s.kind == "tetris").argv


@pytest.fixture(scope="module")
def study_out(tmp_path_factory):
    """A study folder holding one real packed sample of the full variant (for less_crowding)."""
    out = tmp_path_factory.mktemp("study")
    with pytest.raises(SystemExit) as done:
        run_app(tetris, ["pack", "--target", "1ake", "--distractor", "3enl", "--out",
                         str(out / "variants" / "full" / "tetris" / "sample_000"), "--box", "12", "24", "24",
                         "--ratio", "1", "--seed", "0", "--cache", str(out / "maps")])
    assert done.value.code in (0, None)
    return out


def test_each_variant_removes_one_part(tmp_path, study_out):
    study = load_study(STUDY)
    tomos = _tomos(tmp_path)
    cfgs = {name: variant_config(study, name, study_out, tomos) for name in VARIANTS}
    full = _tetris_argv(cfgs["full"])
    templates = study.run.targets[0].templates
    assert full.count("--target") == len(templates) == 6 and "--variants" in full and "--distractor-list" in full

    assert _tetris_argv(cfgs["single_template"]).count("--target") == 1
    assert not any(s.kind == "nma" for s in graph.build(cfgs["no_nma"]))
    assert "--variants" not in _tetris_argv(cfgs["no_nma"])
    nod = _tetris_argv(cfgs["no_distractors"])
    assert "--distractor-list" not in nod and "--distractor" not in nod and nod[nod.index("--ratio") + 1] == "0"
    three = _tetris_argv(cfgs["three_distractors"])
    assert three.count("--distractor") == 3 and "--distractor-list" not in three

    prov = json.loads((study_out / "variants/full/tetris/sample_000/provenance.json").read_text())
    fraction = prov["result"]["packing_fraction"]
    less = _tetris_argv(cfgs["less_crowding"])
    assert float(less[less.index("--max-fraction") + 1]) == pytest.approx(0.3 * fraction, abs=1e-4)
    assert "--max-fraction" not in full

    vol = cfgs["volume_template"].targets[0].templates
    assert len(vol) == 6 and all(p.startswith(str(study_out / "volumes")) and p.endswith(".mrc") for p in vol)
    made = {str(study_out / s.outputs[0]) for s in _volume_steps(study, study_out)}
    assert made == set(vol)

    for name, cfg in cfgs.items():
        steps = graph.build(cfg)
        picked = sorted(s.argv[2] for s in steps if s.kind == "pick")
        assert picked == sorted(str(t.tomogram) for t in tomos), name   # the same test tomograms
        assert not any(s.kind in ("match", "evaluate") for s in steps), name  # the study does those once
        assert cfg.seed == study.run.seed and cfg.training == study.run.training, name


def test_evaluations_pair_picks_truth_and_masks(tmp_path):
    study = load_study(STUDY)
    tomos = _tomos(tmp_path)
    steps = {s.id: s for s in _evaluate_steps(study, tomos)}
    assert set(steps) == {f"evaluate/{v}{m}" for v in VARIANTS for m in ("", "_mask")}
    argv = steps["evaluate/no_nma_mask"].argv
    picks = [argv[i + 1] for i, a in enumerate(argv) if a == "--picks"]
    truth = [argv[i + 1] for i, a in enumerate(argv) if a == "--truth"]
    masks = [argv[i + 1] for i, a in enumerate(argv) if a == "--mask"]
    assert picks == [f"variants/no_nma/pick/exp_{t.name}/candidates.csv" for t in tomos]
    assert truth == [str(t.truth) for t in tomos] and masks == [str(t.mask) for t in tomos]
    assert "--mask" not in steps["evaluate/no_nma"].argv
    assert argv.count("--baseline") == len(tomos)


def test_simulation_only_run_ends_at_reconstruction():
    study = load_study(STUDY)
    cfg = study.run
    cfg.training.enabled = False
    cfg.split.val, cfg.split.test = 0, cfg.tetris.n_samples
    kinds = {s.kind for s in graph.build(cfg)}
    assert kinds == {"grid", "nma", "tetris", "simulate", "reconstruct"}


def test_border_mask_leaves_out_the_faces():
    m = border_mask((10, 20, 30), 3)
    assert m.sum() == 4 * 14 * 24 and m[3, 3, 3] and not m[2, 10, 10] and not m[5, 10, 27]
    with pytest.raises(TemplearnError, match="leaves nothing"):
        border_mask((6, 20, 20), 3)


def test_study_config_errors_name_the_key(tmp_path):
    doc = yaml.safe_load(STUDY.read_text())
    doc["run"]["distractor_list"] = str(ROOT / "examples" / "paper_distractors.csv")
    bad = dict(doc, variants={"run": ["full", "no_nmaa"]})
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(TemplearnError, match="unknown variant 'no_nmaa'"):
        load_study(tmp_path / "a.yaml")
    bad = dict(doc, test={"n_tomogram": 2})
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(TemplearnError, match="n_tomograms"):
        load_study(tmp_path / "b.yaml")
    bad = dict(doc, variants={"run": ["less_crowding"]})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(TemplearnError, match="needs full"):
        load_study(tmp_path / "c.yaml")
    assert np.isclose(load_study(STUDY).variants.crowding, 0.3)


def test_variant_configs_pass_the_run_config_checks(tmp_path, study_out):
    from templearn.config import to_dict
    from templearn.orchestrator.config import load_config

    study = load_study(STUDY)
    tomo = tmp_path / "t.mrc"
    tomo.write_bytes(b"")   # load_config checks that experimental tomograms exist
    held = [HeldOutTomogram("t", tomo, tmp_path / "s.json", tmp_path / "m.mrc")]
    doc = to_dict(variant_config(study, "no_distractors", study_out, held))
    (tmp_path / "nod.yaml").write_text(yaml.safe_dump(doc))
    cfg = load_config(tmp_path / "nod.yaml")
    assert cfg.tetris.ratio == 0 and not cfg.distractors and not cfg.distractor_list
    doc["tetris"]["ratio"] = 2.0   # distractors wanted but none given
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(TemplearnError, match="tetris.ratio: 0 for none"):
        load_config(tmp_path / "bad.yaml")
