"""A user's run, end to end: a ribosome picker trained on simulations (the quickstart), fine-tuned on
one annotated "experimental" tomogram, picks another one it never saw.

The two experimental tomograms come from another optical domain than the training data (defocus
only, -3 µm, where the quickstart trains on phase-plate conditions), are reconstructed at 8 Å,
inverted (bright particles) and binned to the model's 16 Å by ``imod-recon bin-tomogram``; their
annotations are STAR files (no masses: the run derives the matching distance from the template).
The report shows per experimental tomogram the simulation-only, fine-tuned and template-matching
results, and the annotated tomogram is never scored. About 5 minutes on 2 cores.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from stage_cli import templearn
import yaml

from templearn.manifest import Manifest
from templearn.mrc import read_mrc, write_mrc
from templearn.picks import Picks, write_picks

pytestmark = [pytest.mark.slow, pytest.mark.deepfinder]
ROOT = Path(__file__).resolve().parents[1]


def experimental(root: Path, name: str, seed: int, cfg: dict) -> tuple[Path, Path]:
    """An inverted, binned defocus tomogram of a fresh sample and its annotations (STAR)."""
    t = cfg["tetris"]
    templearn("tetris", "pack", "--target", f"ribosome={cfg['targets'][0]['templates'][0]}",
              *[a for d in cfg["distractors"] for a in ("--distractor", d)], "--out", root / name,
              "--box", *t["box"], "--voxel-size", t["voxel_size"], "--ratio", t["ratio"], "--seed", seed,
              "--protein-fraction", 0.15)
    templearn("parakeet-sim", "simulate", root / name / "sample.json", "--out", root / f"{name}_ts",
              "--pixel-size", 8, "--defocus", -3, "--no-phase-plate", "--tilt-range", 60, "--tilt-step", 4,
              "--seed", seed)
    templearn("imod-recon", "reconstruct", root / f"{name}_ts" / "tilt_series.mrc", "--out", root / f"{name}_8A",
              "--voxel-size", 8)
    vol, voxel = read_mrc(root / f"{name}_8A" / "tomogram.mrc")
    write_mrc(root / f"{name}_inverted.mrc", -vol, voxel)
    templearn("imod-recon", "bin-tomogram", root / f"{name}_inverted.mrc", "--voxel-size", 16, "--out", root / "binned")
    tomogram = root / "binned" / f"{name}_inverted.mrc"
    m = Manifest.from_json(json.loads((root / name / "sample.json").read_text()))
    xyz = m.positions("target") / 16.0
    star = write_picks(root / f"{name}.star", Picks(xyz, 16.0, tomogram.stem, 1, 1.0, class_names={1: "ribosome"}),
                       shape=read_mrc(tomogram)[0].shape[::-1])
    return tomogram, star


def test_finetuning_on_one_annotated_tomogram_raises_f1_on_another(tmp_path):
    from templearn.orchestrator.runner import run

    cfg = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    held, held_star = experimental(tmp_path, "cell_a", 11, cfg)
    tuned, tuned_star = experimental(tmp_path, "cell_b", 12, cfg)
    cfg["experimental"] = [{"name": "cell_a", "tomogram": str(held), "truth": str(held_star), "contrast": "bright"}]
    cfg["finetune"] = {"tomograms": [{"name": "cell_b", "tomogram": str(tuned), "picks": str(tuned_star),
                                      "contrast": "bright"}], "epochs": 10, "steps": 10}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    rd = tmp_path / "run"
    result = run(tmp_path / "run.yaml", rd, jobs=2)

    sim = json.loads((rd / "evaluate_exp" / "cell_a" / "report.json").read_text())
    ft = json.loads((rd / "evaluate_exp" / "cell_a_finetuned" / "report.json").read_text())
    summary = (f"held-out experimental tomogram: simulation-only F1 as written {sim['as_written']['f1']:.2f} "
               f"(best {sim['best']['f1']:.2f}), fine-tuned {ft['as_written']['f1']:.2f} (best {ft['best']['f1']:.2f}), "
               f"template matching {sim['baseline']['as_written']['f1']:.2f} (best {sim['baseline']['best']['f1']:.2f})")
    print(summary)
    assert ft["best"]["f1"] >= sim["best"]["f1"] + 0.1, summary
    assert ft["as_written"]["f1"] > sim["as_written"]["f1"], summary
    # the matching distance came from the template (a STAR has no masses), and only cell_a was scored
    assert 50 < sim["distance_angstrom"] < 200
    assert not (rd / "evaluate_exp" / "cell_b").exists() and not (rd / "pick" / "exp_cell_b").exists()
    simulated = json.loads((rd / "evaluate" / "report.json").read_text())
    assert all("exp_" not in t["picks"] for t in simulated["tomograms"])
    text = result.report.read_text()
    assert "## Experimental tomograms" in text and re.search(r"^\| cell_a \| \d+ \| \*\*", text, re.M), text
