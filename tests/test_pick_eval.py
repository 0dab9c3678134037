"""pick-eval: matching and scores, evaluation reports, clustering, template matching, spectrum
matching, and the errors users get."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from templearn.cli_util import run
from templearn.euler import random_euler
from templearn.manifest import Instance, Manifest, StructureEntry
from templearn.mrc import read_mrc, write_mrc
from templearn.picks import Picks, read_picks, write_picks
from templearn.stages.pick_eval.cli import app
from templearn.cluster import cluster_labelmap
from templearn.matching import match, prf
from templearn.stages.pick_eval.rotations import rotate_volume
from templearn.stages.pick_eval.spectrum import radial_amplitude
from templearn.stages.pick_eval.template_matching import wedge_weight


def cli(args, capsys=None) -> int:
    """Run the stage CLI in-process; return the exit code (0 when it returns normally)."""
    try:
        run(app, [str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


# --- matching and scores -----------------------------------------------------------------------

def _points(n, seed=0, spacing=50.0):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3) * spacing
    return grid[rng.permutation(len(grid))[:n]] + 100.0


def test_truth_against_itself_scores_one():
    t = _points(20)
    m = match(t, t, 10.0)
    assert (m.tp, m.fp, m.fn) == (20, 0, 0)
    assert prf(m.tp, m.fp, m.fn) == (1.0, 1.0, 1.0)


def test_shift_beyond_the_distance_scores_zero_and_within_it_one():
    t = _points(20)
    far = match(t + [12.0, 0, 0], t, 10.0)
    assert (far.tp, far.fp, far.fn) == (0, 20, 20)
    assert prf(far.tp, far.fp, far.fn)[2] == 0.0
    near = match(t + [0, 0, 9.5], t, 10.0)
    assert near.tp == 20


def test_hand_made_counts():
    truth = _points(5)
    picks = np.concatenate([truth[:3] + [3.0, -2.0, 1.0],            # 3 true positives
                            truth[:1] + [0.0, 4.0, 0.0],             # a duplicate on a found particle
                            [[1000.0, 1000.0, 1000.0]]])             # far from everything
    m = match(picks, truth, 10.0)
    assert (m.tp, m.fp, m.fn) == (3, 2, 2)
    p, r, f = prf(m.tp, m.fp, m.fn)
    assert (p, r) == (0.6, 0.6) and f == pytest.approx(0.6)


def test_matching_is_one_to_one_and_maximal():
    # Pick 0 is equally near both particles; pick 1 only near the first. Taking pick 0's nearest
    # (in input order) would leave one particle unmatched; the Hungarian pairing finds both.
    truth = np.array([[0.0, 0, 0], [6.0, 0, 0]])
    picks = np.array([[3.0, 0, 0], [-2.5, 0, 0]])
    m = match(picks, truth, 4.0)
    assert m.tp == 2
    assert sorted(map(tuple, m.pairs.tolist())) == [(0, 1), (1, 0)]
    assert match(np.zeros((0, 3)), truth, 4.0).fn == 2
    assert prf(0, 0, 0) == (1.0, 1.0, 1.0)


# --- evaluation report -------------------------------------------------------------------------

VS = 10.0
BOX = [40, 60, 60]  # [nz, ny, nx]


def _manifest(path: Path, n=6, seed=0) -> Manifest:
    rng = np.random.default_rng(seed)
    pos = _points(n + 3, seed, spacing=120.0)[:, [0, 1, 2]] * [1, 1, 0.6]
    eul = random_euler(rng, n + 3)
    m = Manifest(
        name=path.stem, voxel_size=VS, box=BOX,
        structures={"ribo": StructureEntry(path="ribo.pdb", cls="target", target="ribosome", mass_kda=2500.0),
                    "junk": StructureEntry(path="junk.pdb", cls="distractor", mass_kda=300.0)},
        instances=[Instance(i + 1, "ribo" if i < n else "junk", pos[i].tolist(), eul[i].tolist()) for i in range(n + 3)],
        targets=["ribosome"],
    )
    m.write(path)
    return m


def _picks_of(m: Manifest, path: Path, n_false=4) -> Path:
    true_xyz = m.positions("target") / VS + 0.4
    false_xyz = m.positions("distractor")[:n_false] / VS
    xyz = np.concatenate([true_xyz, false_xyz])
    score = np.concatenate([100.0 + 10 * np.arange(len(true_xyz)), 10.0 + 10 * np.arange(len(false_xyz))])
    write_picks(path, Picks(xyz, VS, m.name, 1, score, class_names={1: "ribosome"}))
    return path


def test_evaluate_sweeps_the_threshold_and_finds_the_best(tmp_path):
    m1 = _manifest(tmp_path / "s1.json", seed=1)
    m2 = _manifest(tmp_path / "s2.json", seed=2)
    p1 = _picks_of(m1, tmp_path / "p1.csv")
    p2 = _picks_of(m2, tmp_path / "p2.star", n_false=2)
    # A baseline that finds only half of the particles (and nothing else).
    b1, b2 = tmp_path / "b1.csv", tmp_path / "b2.csv"
    for m, b in ((m1, b1), (m2, b2)):
        write_picks(b, Picks(m.positions("target")[:3] / VS, VS, m.name, 1, 0.5, class_names={1: "ribosome"}))
    out = tmp_path / "eval"
    assert cli(["evaluate", "--picks", p1, "--truth", tmp_path / "s1.json", "--picks", p2,
                "--truth", tmp_path / "s2.json", "--out", out, "--baseline", b1, "--baseline", b2]) == 0
    rep = json.loads((out / "report.json").read_text())
    # Default distance: radius of 2.5 MDa of protein (1.21 Å^3/Da) = 90 Å.
    assert rep["distance_angstrom"] == pytest.approx((3 * 2.5e6 * 1.21 / (4 * np.pi)) ** (1 / 3))
    best = rep["best"]
    assert best["threshold"] == 100.0 and best["f1"] == 1.0 and best["tp"] == 12 and best["fp"] == 0
    assert best["f1_per_tomogram"] == [1.0, 1.0]
    th = rep["thresholds"]
    i10 = th.index(10.0)
    assert rep["overall"]["tp"][i10] == 12 and rep["overall"]["fp"][i10] == 5  # 3 + 2 distractors picked
    assert rep["overall"]["precision"][i10] == pytest.approx(12 / 17)
    assert rep["tomograms"][1]["at_best"]["f1"] == 1.0
    # Orientations known: recall per viewing-direction bin, all found at the best threshold.
    assert sum(rep["orientation"]["n_truth"]) == 12
    assert all(r in (None, 1.0) for r in rep["orientation"]["recall"])
    assert rep["baseline"]["best"]["tp"] == 6 and rep["baseline"]["best"]["recall"] == 0.5
    assert rep["baseline"]["best"]["f1"] == pytest.approx(2 / 3)
    for f in ("pr_curve.png", "f1_box.png", "angles.png", "provenance.json"):
        assert (out / f).stat().st_size > 0


def test_evaluate_scores_the_picks_as_written_beside_the_best_threshold(tmp_path):
    """A candidates file with the picker's accepted flag: the 'as written' figures count the accepted
    rows only (here a cut that keeps 4 of 6 particles and 2 of 4 false picks), the sweep all rows;
    with --tomogram, one true/false/missed picture per tomogram and method."""
    m = _manifest(tmp_path / "s.json", seed=3)
    true_xyz = m.positions("target") / VS
    false_xyz = m.positions("distractor")[:3] / VS
    xyz = np.concatenate([true_xyz, false_xyz, [[30.0, 30.0, 20.0]]])
    score = np.array([90, 80, 70, 60, 20, 10, 75, 65, 5, 1], float)   # 6 particles, then 4 false
    cand = tmp_path / "candidates.csv"
    write_picks(cand, Picks(xyz, VS, m.name, 1, score, class_names={1: "ribosome"}, accepted=score >= 60))
    tomo = write_mrc(tmp_path / "tomo.mrc", np.random.default_rng(0).normal(size=BOX).astype(np.float32), VS)
    out = tmp_path / "eval"
    assert cli(["evaluate", "--picks", cand, "--truth", tmp_path / "s.json", "--baseline", cand,
                "--tomogram", tomo, "--out", out]) == 0
    rep = json.loads((out / "report.json").read_text())
    aw = rep["as_written"]
    assert (aw["tp"], aw["fp"], aw["fn"]) == (4, 2, 2) and aw["f1"] == pytest.approx(8 / 12)
    assert aw["cut"] == 60.0 and aw["flagged"]
    assert rep["tomograms"][0]["as_written"]["n_picks"] == 6
    # The sweep over every row: best at 10 (all 6 particles, with the 2 false picks scored 75 and 65).
    assert rep["best"]["threshold"] == 10.0 and rep["best"]["f1"] == pytest.approx(12 / 14)
    assert rep["pictures"] == ["slices_01.png", "slices_01_baseline.png"]
    assert all((out / f).stat().st_size > 1000 for f in rep["pictures"])
    # A file without the flag is scored on all its rows.
    plain = tmp_path / "plain.csv"
    write_picks(plain, Picks(xyz, VS, m.name, 1, score, class_names={1: "ribosome"}))
    assert cli(["evaluate", "--picks", plain, "--truth", tmp_path / "s.json", "--out", tmp_path / "e2"]) == 0
    aw = json.loads((tmp_path / "e2" / "report.json").read_text())["as_written"]
    assert (aw["tp"], aw["fp"], aw["fn"]) == (6, 4, 0) and aw["cut"] is None and not aw["flagged"]
    # --tomogram must pair with --truth, refused before any output.
    assert cli(["evaluate", "--picks", cand, "--truth", tmp_path / "s.json", "--tomogram", tomo, "--tomogram", tomo,
                "--out", tmp_path / "e3"]) == 2
    assert not (tmp_path / "e3").exists()


def test_evaluate_with_picks_as_truth_and_explicit_distance(tmp_path):
    truth = tmp_path / "truth.xml"
    xyz = _points(8) / VS
    write_picks(truth, Picks(xyz, VS, "t", 1, 1.0))
    picks = tmp_path / "picks.csv"
    write_picks(picks, Picks(np.concatenate([xyz[:6] + 1.5, xyz[6:] + 5]), VS, "t", 1, 1.0))
    out = tmp_path / "ev"
    assert cli(["evaluate", "--picks", picks, "--truth", truth, "--voxel-size", VS, "--distance", 30,
                "--out", out]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert (rep["best"]["tp"], rep["best"]["fp"], rep["best"]["fn"]) == (6, 2, 2)
    assert not (out / "angles.png").exists()


def test_evaluate_with_a_mask_counts_only_what_is_inside(tmp_path):
    # 8 true particles; 6 picked (found), 2 missed, plus 2 false picks. The mask keeps x < 175 Å:
    # only the particles and picks there count, so the counts are those of the left half.
    truth = tmp_path / "truth.xml"
    xyz = _points(8) / VS
    write_picks(truth, Picks(xyz, VS, "t", 1, 1.0))
    false = np.array([[120.0, 120.0, 120.0], [260.0, 260.0, 260.0]]) / VS
    picks = tmp_path / "picks.csv"
    write_picks(picks, Picks(np.concatenate([xyz[:6], false]), VS, "t", 1, 1.0))
    mask = np.zeros((48, 48, 48), np.int8)
    mask[:, :, : int(175 / VS)] = 1
    write_mrc(tmp_path / "mask.mrc", mask, VS)
    out = tmp_path / "ev"
    assert cli(["evaluate", "--picks", picks, "--truth", truth, "--voxel-size", VS, "--distance", 30,
                "--mask", tmp_path / "mask.mrc", "--out", out]) == 0
    rep = json.loads((out / "report.json").read_text())
    left = xyz[:, 0] * VS < 175 - VS / 2
    expect = (int(left[:6].sum()), int((false[:, 0] * VS < 175 - VS / 2).sum()), int(left[6:].sum()))
    assert (rep["best"]["tp"], rep["best"]["fp"], rep["best"]["fn"]) == expect
    assert sum(expect) < 10   # the mask did leave something out
    assert rep["tomograms"][0]["n_truth"] == int(left.sum())


def test_evaluate_errors_keep_earlier_outputs(tmp_path, capsys):
    m = _manifest(tmp_path / "s.json")
    good = _picks_of(m, tmp_path / "good.csv")
    out = tmp_path / "eval"
    assert cli(["evaluate", "--picks", good, "--truth", tmp_path / "s.json", "--out", out]) == 0
    before = (out / "report.json").read_bytes()
    capsys.readouterr()
    # A pick outside the 60x60x40 box of 10 Å voxels (wrong voxel size, say).
    bad = tmp_path / "bad.csv"
    write_picks(bad, Picks([[10, 10, 10], [100, 10, 10]], VS, "x", 1, 1.0))
    assert cli(["evaluate", "--picks", bad, "--truth", tmp_path / "s.json", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "outside the tomogram" in err and err.count("\n") == 1
    assert (out / "report.json").read_bytes() == before
    assert cli(["evaluate", "--picks", good, "--picks", good, "--truth", tmp_path / "s.json", "--out", out]) == 2
    assert "pairs" in capsys.readouterr().err
    # A truth picks file gives no default distance.
    assert cli(["evaluate", "--picks", good, "--truth", good, "--out", out]) == 2
    assert "--distance" in capsys.readouterr().err


# --- clustering ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["grid", "deepfinder"])
def test_meanshift_clusters_are_the_particles(method):
    lab = np.zeros((30, 50, 50), np.int8)
    zz, yy, xx = np.indices(lab.shape)
    centres = [((10, 12, 15), 1), ((38, 35, 20), 1), ((25, 30, 8), 2)]  # (x, y, z)
    sizes = []
    for (x, y, z), c in centres:
        ball = (xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2 <= 5 ** 2
        lab[ball] = c
        sizes.append(int(ball.sum()))
    cl = cluster_labelmap(lab, {1: 6.0, 2: 4.0}, method=method)
    assert len(cl) == 3
    assert cl.label.tolist() == [1, 1, 2]
    assert sorted(cl.size.tolist()) == sorted(sizes)
    for (xyz, c) in centres:
        d = np.linalg.norm(cl.xyz - xyz, axis=1)
        assert d.min() < 0.5 and cl.label[np.argmin(d)] == c
    assert len(cluster_labelmap(np.zeros((8, 8, 8), np.int8), 5.0, method=method)) == 0


# --- template matching ----------------------------------------------------------------------------

def _blob(shape, c, s):
    zz, yy, xx = np.indices(shape)
    return np.exp(-((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) / (2 * s * s))


def _asymmetric_template() -> np.ndarray:
    t = np.zeros((17, 17, 17), np.float32)
    t += _blob(t.shape, (8, 8, 8), 2.2)
    t += 0.8 * _blob(t.shape, (8, 8, 12), 1.6)   # arm along +x
    t += 0.6 * _blob(t.shape, (8, 12, 8), 1.3)   # shorter arm along +y
    return t


def _synthetic_tomogram(n=10, shape=(32, 64, 64), seed=0, noise=0.25):
    """Copies of the template at random poses, the missing wedge of ±60°, Gaussian noise; the
    particles are dark (negative), as in cryo-ET reconstructions."""
    rng = np.random.default_rng(seed)
    tpl = _asymmetric_template()
    h = tpl.shape[0] // 2
    vol = np.zeros(shape, np.float32)
    pos, eul = [], []
    while len(pos) < n:
        p = rng.integers([h - 3, h - 3, 5], [shape[2] - h + 3, shape[1] - h + 3, shape[0] - 5])
        if pos and np.min(np.linalg.norm(np.array(pos) - p, axis=1)) < 12:
            continue
        e = random_euler(rng)
        r = rotate_volume(tpl, e)
        lo = p[::-1] - h
        src = tuple(slice(max(0, -lo[i]), tpl.shape[i] - max(0, lo[i] + tpl.shape[i] - shape[i])) for i in range(3))
        dst = tuple(slice(max(0, lo[i]), min(shape[i], lo[i] + tpl.shape[i])) for i in range(3))
        vol[dst] += r[src]
        pos.append(p)
        eul.append(e)
    vol = np.fft.irfftn(np.fft.rfftn(vol) * wedge_weight(shape, 60), s=shape)
    vol = -vol + rng.normal(0, noise, shape)
    return vol.astype(np.float32), np.array(pos, float), np.array(eul)


def test_template_matching_finds_the_particles(tmp_path):
    vol, pos, _ = _synthetic_tomogram()
    tomo = write_mrc(tmp_path / "tomo.mrc", vol, VS)
    tpl = write_mrc(tmp_path / "tpl.mrc", _asymmetric_template(), VS)
    out = tmp_path / "tm"
    assert cli(["match", tomo, "--template", tpl, "--out", out, "--angular-step", 45, "--n-peaks", 20]) == 0
    picks = read_picks(out / "candidates.csv")
    assert len(picks) == 20 and np.all(np.diff(picks.score) <= 0)
    top = picks.select(np.arange(len(picks)) < len(pos))
    m = match(top.xyz, pos, 2.0)
    assert m.tp >= 9  # of 10 particles, the 10 best peaks
    # The false-alarm cut: the NCC one noise peak reaches over voxels x rotations under the search's
    # Gaussian null (pytom-match-pick's formula); the particles are above it, and so is the picks file.
    from scipy.special import erfcinv

    prov = json.loads((out / "provenance.json").read_text())["summary"]
    assert prov["n_trials"] == vol.size * prov["n_rotations"] and prov["search_std"] > 0
    expected = prov["search_mean"] + prov["search_std"] * np.sqrt(2) * erfcinv(2.0 / prov["n_trials"])
    assert prov["cut"] == pytest.approx(expected)
    kept = read_picks(out / "picks.csv")
    assert np.array_equal(picks.accepted, picks.score >= prov["cut"]) and len(kept) == int(picks.accepted.sum())
    assert match(kept.xyz, pos, 2.0).tp >= 9
    picks = kept
    scores, vs = read_mrc(out / "scores.mrc")
    assert scores.shape == vol.shape and vs == VS
    # The same picks in every format.
    for f, kw in (("picks.star", {}), ("picks.xml", {"voxel_size": VS}), ("picks_tpl.json", {})):
        other = read_picks(out / f, **kw)
        assert np.allclose(other.xyz, picks.xyz, atol=1e-3)
    assert (out / "picks.png").stat().st_size > 0
    # Deterministic: a second run gives the same picks.
    out2 = tmp_path / "tm2"
    assert cli(["match", tomo, "--template", tpl, "--out", out2, "--angular-step", 45, "--n-peaks", 20]) == 0
    assert (out2 / "picks.csv").read_text() == (out / "picks.csv").read_text()


def test_default_angular_step_is_the_particles_within_the_time_budget(tmp_path, capsys):
    from templearn.stages.pick_eval.rotations import n_rotations
    from templearn.stages.pick_eval.template_matching import (COARSER_STEPS, Search, choose_angular_step,
                                                              crowther_step)

    # Crowther: the step at which the particle's edge moves by one resolution element.
    assert crowther_step(10.0, 8.0, 16.0) == pytest.approx(np.degrees(np.arctan(16.0 / 160.0)))
    vol, _, _ = _synthetic_tomogram()
    search = Search(-vol, _asymmetric_template(), radius=8.0)
    needed = crowther_step(8.0, VS, 2 * VS)
    per = search.model_seconds_per_rotation()
    roomy = choose_angular_step(search, VS, 2 * VS, budget_s=1e9)
    assert roomy.step == pytest.approx(needed) and roomy.n_rotations == n_rotations(needed)
    assert roomy.seconds == pytest.approx(roomy.n_rotations * per)
    # A budget for 1000 rotations: the finest step that fits, and every finer one would not.
    mid = choose_angular_step(search, VS, 2 * VS, budget_s=1000 * per)
    assert needed < mid.step <= 30 and mid.n_rotations <= 1000 and mid.step in COARSER_STEPS
    assert all(n_rotations(s) > 1000 for s in COARSER_STEPS if s < mid.step)
    # From sizes, not from a timing: the same tomogram gets the same step on every run.
    assert choose_angular_step(Search(-vol, _asymmetric_template(), radius=8.0), VS, 2 * VS, 1000 * per) == mid
    tight = choose_angular_step(search, VS, 2 * VS, budget_s=1e-6)
    assert tight.step == 30.0 and "over" in tight.reason
    assert choose_angular_step(search, VS, 2 * VS, budget_s=1e-6, step=45.0).step == 45.0
    # --time-estimate says what the default would do (and the time measured here), writing nothing.
    tomo = write_mrc(tmp_path / "tomo.mrc", vol, VS)
    tpl = write_mrc(tmp_path / "tpl.mrc", _asymmetric_template(), VS)
    capsys.readouterr()
    assert cli(["match", tomo, "--template", tpl, "--out", tmp_path / "o", "--time-estimate", "--time-budget", 1]) == 0
    line = capsys.readouterr().out
    assert "rotations at" in line and "here" in line and not (tmp_path / "o").exists()
    # The default run records the step it chose.
    out = tmp_path / "tm"
    assert cli(["match", tomo, "--template", tpl, "--out", out, "--time-budget", 1e-6, "--n-peaks", 5]) == 0
    summary = json.loads((out / "provenance.json").read_text())["summary"]
    assert summary["angular_step"] == 30.0 and summary["n_rotations"] == n_rotations(30.0)


def test_template_matching_errors(tmp_path, capsys):
    tpl = write_mrc(tmp_path / "tpl.mrc", _asymmetric_template(), VS)
    flat = write_mrc(tmp_path / "flat.mrc", np.zeros((20, 30, 30), np.float32), VS)
    assert cli(["match", flat, "--template", tpl, "--out", tmp_path / "o"]) == 2
    assert "flat.mrc" in (err := capsys.readouterr().err) and "constant" in err
    tomo = write_mrc(tmp_path / "t.mrc", np.random.default_rng(0).normal(size=(20, 30, 30)), VS)
    mask = write_mrc(tmp_path / "mask.mrc", np.ones((20, 30, 31), np.float32), VS)
    assert cli(["match", tomo, "--template", tpl, "--out", tmp_path / "o", "--mask", mask]) == 2
    assert "mask.mrc" in (err := capsys.readouterr().err) and "shape" in err
    assert not (tmp_path / "o").exists()


# --- spectrum matching ---------------------------------------------------------------------------

def test_spectrum_matching_imposes_the_reference_spectrum(tmp_path):
    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter

    ref = gaussian_filter(rng.normal(size=(40, 64, 64)), 1.5) * 3 + 0.5 * rng.normal(size=(40, 64, 64))
    tomo = rng.normal(size=(32, 48, 56)) * 7.0
    write_mrc(tmp_path / "ref.mrc", ref, VS)
    write_mrc(tmp_path / "tomo.mrc", tomo, VS)
    assert cli(["spectrum-match", tmp_path / "tomo.mrc", "--reference", tmp_path / "ref.mrc",
                "--out", tmp_path / "out" / "matched.mrc"]) == 0
    out, vs = read_mrc(tmp_path / "out" / "matched.mrc")
    assert out.shape == tomo.shape and vs == VS
    fr, ar = radial_amplitude(ref, VS)
    fo, ao = radial_amplitude(out, VS)
    expect = np.interp(fo, fr, ar)
    band = (fo > 0.01) & (fo < 0.045)   # away from k = 0 and the Nyquist corner
    rel = np.abs(ao[band] - expect[band]) / expect[band]
    assert rel.max() < 0.05
    # Before matching the spectra differed by far more.
    _, a0 = radial_amplitude(tomo, VS)
    assert (np.abs(a0[band] - expect[band]) / expect[band]).max() > 1.0
    assert (tmp_path / "out" / "matched_spectra.png").exists()


def test_spectrum_matching_refuses_a_constant_tomogram(tmp_path, capsys):
    write_mrc(tmp_path / "flat.mrc", np.ones((10, 12, 12)), VS)
    write_mrc(tmp_path / "ref.mrc", np.random.default_rng(0).normal(size=(10, 12, 12)), VS)
    assert cli(["spectrum-match", tmp_path / "flat.mrc", "--reference", tmp_path / "ref.mrc",
                "--out", tmp_path / "m.mrc"]) == 2
    assert "flat.mrc" in capsys.readouterr().err


def test_evaluate_empty_picks_scores_zero(tmp_path):
    m = _manifest(tmp_path / "s.json")
    empty = tmp_path / "none.csv"
    write_picks(empty, Picks.empty(VS))   # a CSV with no rows cannot record its voxel size
    out = tmp_path / "ev"
    assert cli(["evaluate", "--picks", empty, "--truth", tmp_path / "s.json", "--out", out]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert (rep["best"]["tp"], rep["best"]["fn"], rep["best"]["f1"]) == (0, len(m.positions("target")), 0.0)
