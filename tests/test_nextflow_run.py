"""pipeline.nf run for real by Nextflow (local executor, -profile test): to the F1 report, then
``-resume`` with every task cached, then a changed reconstruction parameter reruns reconstruct and
what follows it only; ``-stub-run`` walks the same graph. The trace, report, timeline and DAG files
are read back. The same config run by templearn-run gives the same files up to the model.

Nextflow comes from PATH or from the venv (scripts/bootstrap.sh resolves it from Maven Central);
without it these tests skip, saying so. About 12 minutes on 2 cores.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = {"GRID", "NMA", "TETRIS", "SIMULATE"}   # not downstream of the reconstruction


def _nextflow() -> str | None:
    venv_nf = Path(sys.prefix) / "bin" / "nextflow"
    return str(venv_nf) if venv_nf.is_file() else shutil.which("nextflow")


def _run(work: Path, *args: str, timeout: int = 1200) -> tuple[list[dict], str]:
    """Run pipeline.nf in ``work``; return the trace rows (one per task) and the log."""
    nf = _nextflow()
    env = dict(os.environ, NXF_HOME=str(work / ".nxf"), NXF_ANSI_LOG="false", NXF_OFFLINE="true",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    p = subprocess.run([nf, "run", str(ROOT / "pipeline.nf"), "-profile", "test", "--outdir", "out", *args],
                       cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-4000:]
    with open(work / "out" / "pipeline_info" / "trace.txt") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return rows, log


def _star_of(manifest: Path, star: Path) -> None:
    """The targets of a sample manifest as a RELION STAR file (no masses: as a user's annotations)."""
    from templearn.manifest import Manifest
    from templearn.picks import Picks, write_picks

    m = Manifest.from_json(json.loads(manifest.read_text()))
    write_picks(star, Picks(m.positions("target") / m.voxel_size, m.voxel_size, star.stem, 1, 1.0,
                            class_names={1: m.targets[0]}), shape=m.box[::-1])


def _process(row: dict) -> str:
    return row["name"].split(" ")[0].split(":")[-1]


@pytest.fixture(scope="module")
def nf_work(tmp_path_factory):
    if _nextflow() is None:
        pytest.skip("nextflow is not on PATH nor in the venv (scripts/bootstrap.sh installs it from Maven Central)")
    return tmp_path_factory.mktemp("nextflow")


def test_pipeline_runs_resumes_and_reruns_only_what_a_change_touches(nf_work):
    rows, log = _run(nf_work)
    procs = {_process(r) for r in rows}
    assert procs >= {"GRID", "NMA", "TETRIS", "SIMULATE", "RECONSTRUCT", "TARGETS", "TRAIN", "PICK", "MATCH", "EVALUATE"}, procs
    assert all(r["status"] == "COMPLETED" and r["exit"] == "0" for r in rows), rows
    n = len(rows)
    # The test profile: 4 samples x 2 conditions simulated and reconstructed, 2 test tomograms picked.
    assert sum(_process(r) == "SIMULATE" for r in rows) == 8 and sum(_process(r) == "PICK" for r in rows) == 2
    report = json.loads((nf_work / "out" / "evaluate" / "report.json").read_text())
    assert len(report["tomograms"]) == 2 and 0.0 <= report["best"]["f1"] <= 1.0
    assert 0.0 <= report["baseline"]["best"]["f1"] <= 1.0   # template matching beside it
    for name in ("report.html", "timeline.html", "dag.html"):
        assert (nf_work / "out" / "pipeline_info" / name).stat().st_size > 1000, name
    # The card travels with the weights: picking used the trained patch, not the fallback.
    card = json.loads((nf_work / "out" / "train" / "model_card.json").read_text())
    assert card["patch"] == 16

    # One graph, two engines: templearn-run on the same config (the test profile is the quickstart)
    # writes the same bytes up to the model: tilt series, tomograms, targets; the manifests too, but
    # for where each engine kept the structure files (their sha256 is in the manifest and equal).
    from orchestrator.runner import run as run_embedded

    def manifest(path: Path) -> dict:
        doc = json.loads(path.read_text())
        for entry in doc["structures"].values():
            entry["path"] = Path(entry["path"]).name
        return doc

    embedded = nf_work / "embedded"
    run_embedded(ROOT / "examples" / "quickstart.yaml", embedded, jobs=2)
    compared = 0
    for stage, name in (("tetris", "sample.json"), ("simulate", "tilt_series.mrc"), ("simulate", "tilt_series.tlt"),
                        ("simulate", "acquisition.json"), ("reconstruct", "tomogram.mrc"),
                        ("targets", "targets.mrc"), ("targets", "targets.json")):
        ours = sorted(f.relative_to(embedded) for f in (embedded / stage).glob(f"*/{name}"))
        theirs = sorted(f.relative_to(nf_work / "out") for f in (nf_work / "out" / stage).glob(f"*/{name}"))
        assert ours == theirs and ours, (stage, name, ours, theirs)
        for rel in ours:
            if name == "sample.json":
                assert manifest(embedded / rel) == manifest(nf_work / "out" / rel), f"{rel} differs between engines"
            else:
                assert (embedded / rel).read_bytes() == (nf_work / "out" / rel).read_bytes(), f"{rel} differs between engines"
            compared += 1
    assert compared == 4 + 8 * 3 + 8 + 6 * 2, compared   # 4 samples, 8 tilt series, 6 targeted tomograms

    rows, log = _run(nf_work, "-resume")
    assert len(rows) == n and all(r["status"] == "CACHED" for r in rows), [(r["name"], r["status"]) for r in rows]

    # A reconstruction parameter changed: reconstruct and what follows it run again, the rest is cached.
    # The same run fine-tunes on one "experimental" tomogram (a test tomogram of the first run, its
    # truth as a STAR file) and scores another on its own, before and after fine-tuning.
    exp = nf_work / "exp"
    exp.mkdir()
    for tomo, sample in (("sample_003_c02", "sample_003"), ("sample_003_c47", "sample_003")):
        shutil.copy(nf_work / "out" / "reconstruct" / tomo / "tomogram.mrc", exp / f"{tomo}.mrc")
        _star_of(nf_work / "out" / "tetris" / sample / "sample.json", exp / f"{tomo}.star")
    params = nf_work / "radial.json"
    params.write_text(json.dumps({
        "reconstruction": {"voxel_size": 16.0, "radial": [0.4, 0.5]},
        "experimental": [{"name": "a", "tomogram": str(exp / "sample_003_c02.mrc"), "truth": str(exp / "sample_003_c02.star")}],
        "finetune": {"tomograms": [{"name": "b", "tomogram": str(exp / "sample_003_c47.mrc"),
                                    "picks": str(exp / "sample_003_c47.star")}], "epochs": 2, "steps": 4}}))
    rows, log = _run(nf_work, "-resume", "-params-file", str(params))
    status = {}
    for r in rows:
        status.setdefault(_process(r), set()).add(r["status"])
    assert all(status[p] == {"CACHED"} for p in UPSTREAM), status
    assert all(status[p] == {"COMPLETED"} for p in status.keys() - UPSTREAM), status
    assert {"FINETUNE", "PICK_FINETUNED", "EVALUATE_EXP"} <= status.keys(), status
    for name in ("a", "a_finetuned"):
        rep = json.loads((nf_work / "out" / "evaluate_exp" / name / "report.json").read_text())
        assert rep["tomograms"][0]["n_truth"] > 0 and 50 < rep["distance_angstrom"] < 300, name


def test_stub_run_walks_the_whole_graph_with_finetuning(nf_work):
    """-stub-run with experimental tomograms (one annotated, one not) and fine-tuning: both models pick
    every experimental tomogram, the annotated one is scored on its own per model, the simulated
    test set apart."""
    work = nf_work / "stub"
    work.mkdir()
    for f in ("cell1.mrc", "cell1.star", "mask1.mrc", "cell2.mrc", "cell2.star"):
        (work / f).write_text("stub")
    (work / "exp.json").write_text(json.dumps({
        "experimental": [{"name": "cell1", "tomogram": "cell1.mrc", "truth": "cell1.star", "mask": "mask1.mrc",
                          "contrast": "bright"}, {"name": "cellx", "tomogram": "cell1.mrc"}],
        "finetune": {"tomograms": [{"name": "cell2", "tomogram": "cell2.mrc", "picks": "cell2.star"}],
                     "epochs": 3, "steps": 4}}))
    rows, log = _run(work, "-stub-run", "-params-file", "exp.json")
    assert all(r["exit"] == "0" for r in rows), rows
    names = {r["name"] for r in rows}
    assert {"FINETUNE (finetune)", "PICK (exp_cell1)", "PICK_FINETUNED (exp_cell1_finetuned)",
            "PICK_FINETUNED (exp_cellx_finetuned)", "MATCH (exp_cell1)", "EVALUATE (evaluate)",
            "EVALUATE_EXP (evaluate_exp/cell1)", "EVALUATE_EXP (evaluate_exp/cell1_finetuned)"} <= names, names
    assert not any("cell2" in n for n in names if not n.startswith("FINETUNE"))   # fine-tuned on: never scored
    assert (work / "out" / "evaluate_exp" / "cell1_finetuned" / "report.json").is_file()
