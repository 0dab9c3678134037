"""Wider domain randomization (issue 16) and normalization that ignores vacuum.

What is proved here (real outcomes):
- ``grid --randomize`` crosses only optical domain x tilt range x tilt step, each condition with
  the ranges it draws from; the paper's grid is unchanged without it;
- every drawn value lies in its range, is recorded in ``acquisition.json`` and is what was
  simulated; the same seed draws the same values (and the same stack), another seed others;
- a slab thinner than the volume leaves vacuum above and below in the reconstruction (fast
  engine, tiny sample), drops the molecules outside it, and the targets made from the
  ``sample.json`` it writes hold only the kept molecules;
- the parakeet engine rejects the fast-only axes with a clear error and takes the others;
- ``normalize_tomogram`` gives a sample region the same values however much vacuum surrounds it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from templearn.errors import TemplearnError
from templearn.manifest import Instance, Manifest, StructureEntry
from templearn.mrc import read_mrc, write_mrc
from templearn.normalize import normalize_tomogram
from templearn.stages.parakeet_sim import grid as gridmod
from templearn.stages.parakeet_sim.params import draw, resolve
from templearn.stages.parakeet_sim.simulate import simulate, write_grid
from templearn.structures import load_atoms
from templearn.tilts import Acquisition

CLI = [sys.executable, "-c", "from templearn.stages.parakeet_sim.cli import main; main()"]


@pytest.fixture(scope="session")
def nucleosome(shared_structures) -> Path:
    return shared_structures / "templates" / "nucleosome" / "2pyo.pdb.gz"


def make_sample(path: Path, structure: Path, box, voxel: float, positions) -> Manifest:
    atoms = load_atoms(structure)
    m = Manifest(
        name=path.stem, voxel_size=voxel, box=list(box),
        structures={"nuc": StructureEntry(path=str(structure), cls="target", target="nucleosome", template="nuc",
                                          center=atoms.center_of_mass().tolist())},
        instances=[Instance(i + 1, "nuc", [float(v) for v in p], [31.0 * i, 40.0 + 25 * i, 13.0 * i])
                   for i, p in enumerate(positions)],
        targets=["nucleosome"],
    )
    m.write(path)
    return m


# --- the grid and the draws ------------------------------------------------------------------------

def test_randomized_grid_crosses_domain_and_tilts_with_ranges(tmp_path):
    r = subprocess.run(CLI + ["grid", "--out", str(tmp_path / "g.json"), "--randomize", "--domain", "both"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    conds = json.loads((tmp_path / "g.json").read_text())["conditions"]
    assert len(conds) == 8                                       # 2 domains x 2 ranges x 2 steps
    assert {(c["phase_plate"], c["tilt_range"], c["tilt_step"]) for c in conds} == {
        (pp, r_, s) for pp in (True, False) for r_ in (40.0, 60.0) for s in (2.0, 4.0)}
    for c in conds:
        assert c["defocus_um"] is None and c["dose"] is None and c["ice_density"] is None
        rg = c["ranges"]
        assert rg["defocus_um"] == ([-1.0, 0.0] if c["phase_plate"] else [-4.0, -2.5])   # within its domain
        assert rg["dose"] == [75.0, 150.0] and rg["ice_density"] == [0.9, 1.1]
        assert rg["amplitude_contrast"] == [0.0, 0.1] and rg["contrast_scale"] == [0.5, 1.0]
        assert rg["slab_fraction"] == [0.5, 1.0] and rg["slab_offset"] == [0.0, 1.0]
    # off: the paper's 48 conditions, no trace of randomization in GRID.json
    write_grid(tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert len(doc["conditions"]) == 48 and "randomize" not in doc["grid"]
    assert all("ranges" not in c for c in doc["conditions"])


def test_grid_yaml_ranges_checked_and_nullable(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text("randomize:\n  dose: [50, 300]\n  contrast_scale: null\n  slab_fraction: [0.6, 0.9]\n")
    write_grid(tmp_path / "g.json", cfg)
    c = json.loads((tmp_path / "g.json").read_text())["conditions"][0]
    assert c["ranges"]["dose"] == [50.0, 300.0] and "contrast_scale" not in c["ranges"]
    assert c["ranges"]["slab_fraction"] == [0.6, 0.9]
    cfg.write_text("randomize:\n  slab_fraction: [0.5, 1.5]\n")
    r = subprocess.run(CLI + ["grid", "--out", str(tmp_path / "g.json"), "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2 and "randomize.slab_fraction" in r.stderr and str(cfg) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_draws_lie_in_their_ranges_and_repeat_with_the_seed():
    spec = gridmod.GridSpec(domain="both", randomize=True)
    conds = gridmod.expand(spec)
    for cond in conds:
        values = [resolve(cond, seed=s) for s in range(40)]
        for p in values:
            for axis, (lo, hi) in cond.ranges.items():
                assert lo <= getattr(p, axis) <= hi, (axis, getattr(p, axis))
            assert p.randomized["drawn"] == {a: getattr(p, a) for a in cond.ranges}
        # the draws spread over the ranges rather than sitting on one value
        doses = np.array([p.dose for p in values])
        assert doses.max() - doses.min() > 0.5 * (150 - 75)
    assert draw(conds[0].ranges, 7) == draw(conds[0].ranges, 7)
    assert draw(conds[0].ranges, 7) != draw(conds[0].ranges, 8)
    assert resolve(conds[0], seed=7, dose=99.0).dose == 99.0          # an explicit option still wins


def test_parakeet_engine_rejects_fast_only_axes_and_takes_the_rest(tmp_path):
    cond = gridmod.expand(gridmod.GridSpec(randomize=True))[0]
    with pytest.raises(TemplearnError, match="parakeet engine cannot vary amplitude_contrast"):
        resolve(cond, seed=1, engine="parakeet")
    spec = gridmod.GridSpec(randomize=gridmod.Randomize(amplitude_contrast=None, contrast_scale=None,
                                                         ice_noise_scale=None, ice_noise_correlation=None))
    p = resolve(gridmod.expand(spec)[0], seed=1, engine="parakeet")
    assert -1.0 <= p.defocus_um <= 0.0 and 75 <= p.dose <= 150 and 0.5 <= p.slab_fraction <= 1.0


def test_randomized_simulation_records_what_it_simulated(tmp_path, nucleosome):
    # z = 60 Å (the box's middle) lies in every slab of at least half the height; z = 115 in some
    make_sample(tmp_path / "s.json", nucleosome, [16, 16, 16], 8.0, [(60, 60, 60), (70, 70, 115)])
    cfg = tmp_path / "g.yaml"
    cfg.write_text("tilt_range: [30]\ntilt_step: [15]\nrandomize: true\n")
    write_grid(tmp_path / "g.json", cfg)
    digests = []
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        simulate(tmp_path / "s.json", tmp_path / name, grid=tmp_path / "g.json", condition=0, pixel_size=8.0, seed=seed)
        digests.append(hashlib.sha256(read_mrc(tmp_path / name / "tilt_series.mrc")[0].tobytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]
    acq = Acquisition.read(tmp_path / "a" / "acquisition.json")
    rec = acq.extra["randomized"]
    assert rec["drawn"] == draw(rec["ranges"], 11)
    d = rec["drawn"]
    assert acq.defocus_um == d["defocus_um"] and sum(acq.dose) == pytest.approx(d["dose"])
    assert acq.extra["ice_density"] == d["ice_density"] and acq.extra["amplitude_contrast"] == d["amplitude_contrast"]
    assert acq.extra["engine_figures"]["amplitude_contrast"] == d["amplitude_contrast"]
    for axis in ("contrast_scale", "ice_noise_scale", "ice_noise_correlation"):
        assert acq.extra[axis] == d[axis]
    slab = acq.extra["slab"]
    assert slab["fraction"] == d["slab_fraction"] and slab["offset"] == d["slab_offset"]
    assert slab["thickness"] == pytest.approx(d["slab_fraction"] * 128.0)
    assert acq.thickness == 128.0 and acq.axis_z == pytest.approx(sum(slab["z"]) / 2)   # volume > slab
    kept = Manifest.read(tmp_path / "a" / "sample.json")
    assert kept.params["slab"]["z"] == slab["z"]
    assert [i.id for i in kept.instances] == [i for i, z in ((1, 60), (2, 115)) if slab["z"][0] <= z <= slab["z"][1]]



def test_ice_noise_amplitude_and_correlation_shape_the_images(tmp_path, nucleosome):
    """Ice alone (the molecule outside the field's middle, high dose, 0°): doubling the noise scale
    raises the fine-band power ~4x; a 16 Å correlation length moves it from fine to coarse detail."""
    make_sample(tmp_path / "s.json", nucleosome, [8, 64, 64], 8.0, [(40, 40, 30)])
    q = None
    power = {}
    for name, kw in (("white", {}), ("loud", dict(ice_noise_scale=2.0)), ("corr", dict(ice_noise_correlation=16.0))):
        simulate(tmp_path / "s.json", tmp_path / name, pixel_size=4.0, tilt_range=0, tilt_step=1, dose=1e5,
                 radiation_damage=False, defocus_um=0.0, phase_plate=True, seed=3, **kw)
        img = read_mrc(tmp_path / name / "tilt_series.mrc")[0][0][64:, 64:].astype(float)   # away from the molecule
        spec = np.abs(np.fft.fft2(img - img.mean())) ** 2
        q = np.hypot(*np.meshgrid(np.fft.fftfreq(64, 4.0), np.fft.fftfreq(64, 4.0)))
        power[name] = {"coarse": spec[(q > 0) & (q < 1 / 48)].mean(), "fine": spec[(q > 1 / 16) & (q < 1 / 10)].mean()}
    assert 3.0 < power["loud"]["fine"] / power["white"]["fine"] < 5.0, power
    assert power["corr"]["fine"] < 0.3 * power["white"]["fine"], power
    assert power["corr"]["coarse"] > 3.0 * power["white"]["coarse"], power

# --- the slab: vacuum, dropped molecules, targets ------------------------------------------------

def test_slab_leaves_vacuum_and_targets_hold_only_the_kept_molecules(tmp_path, nucleosome):
    from templearn.stages.deepfinder_train.targets import run_targets
    from templearn.stages.imod_recon import reconstruct_array

    pos = [(80, 80, 60), (180, 170, 90), (120, 200, 250)]     # Å; the slab (bottom half) holds the first two
    make_sample(tmp_path / "s.json", nucleosome, [40, 32, 32], 8.0, pos)
    # high dose, no damage, no ice fluctuations: what the reconstruction shows is the molecules
    kw = dict(pixel_size=8.0, tilt_range=60, tilt_step=3, dose=1e6, radiation_damage=False, defocus_um=-3.0,
              ice_noise_scale=0.0, seed=1)
    profiles = {}
    for name, frac in (("slab", 0.5), ("full", 1.0)):
        out = tmp_path / name
        simulate(tmp_path / "s.json", out, slab_fraction=frac, slab_offset=0.0, **kw)
        stack, px = read_mrc(out / "tilt_series.mrc")
        acq = Acquisition.read(out / "acquisition.json")
        assert acq.thickness == 320.0                              # the reconstruction spans the whole box
        vol, voxel = reconstruct_array(stack, acq.angles, px, voxel_size=8.0, thickness=acq.thickness,
                                       axis_x=acq.axis_x, axis_z=acq.axis_z)
        assert vol.shape == (40, 32, 32)
        profiles[name] = vol.std(axis=(1, 2))
        write_mrc(out / "tomogram.mrc", vol.astype(np.float32), voxel)
    acq = Acquisition.read(tmp_path / "slab" / "acquisition.json")
    assert acq.extra["slab"]["z"] == [-4.0, 156.0] and acq.axis_z == 76.0
    z = np.arange(40) * 8.0
    above = z > 200                                                 # vacuum, clear of the molecules' streaks
    slab, full = profiles["slab"], profiles["full"]
    assert slab[above].max() < 0.15 * slab[z < 156].max(), slab    # vacuum: nothing there
    assert full[(z > 220) & (z < 280)].max() > 0.5 * full.max(), full   # the same place with the molecule kept
    kept = Manifest.read(tmp_path / "slab" / "sample.json")
    assert [i.id for i in kept.instances] == [1, 2]
    assert kept.params["slab"]["dropped"] == 1
    assert len(Manifest.read(tmp_path / "full" / "sample.json").instances) == 3
    run_targets(tmp_path / "slab" / "sample.json", tmp_path / "slab" / "tomogram.mrc", tmp_path / "targets")
    from scipy import ndimage as ndi

    labels, _ = read_mrc(tmp_path / "targets" / "targets.mrc")
    blobs, n = ndi.label(labels > 0)
    centres = np.array(ndi.center_of_mass(labels > 0, blobs, range(1, n + 1)))[:, ::-1] * 8.0   # Å [x, y, z]
    assert n == 2                                                   # the dropped molecule is not a target
    assert np.abs(np.sort(centres, axis=0) - np.sort(np.array(pos[:2], float), axis=0)).max() < 8.0
    assert not labels[z > 200].any()


def test_slab_with_no_molecule_is_a_clear_error(tmp_path, nucleosome):
    make_sample(tmp_path / "s.json", nucleosome, [40, 16, 16], 8.0, [(60, 60, 280)])
    with pytest.raises(TemplearnError, match="no molecule has its centre in the slab"):
        simulate(tmp_path / "s.json", tmp_path / "o", pixel_size=8.0, tilt_step=30, slab_fraction=0.5, slab_offset=0.0)
    assert not (tmp_path / "o" / "tilt_series.mrc").exists()


# --- normalization -------------------------------------------------------------------------------

def test_normalization_of_the_sample_region_ignores_vacuum():
    rng = np.random.default_rng(0)
    sample = rng.normal(3.0, 2.0, (30, 40, 40)).astype(np.float32)
    sample[10:14, 10:20, 10:20] += 15.0                              # a dense particle (outliers)
    ref = normalize_tomogram(sample)
    background = ref[16:]                                           # away from the particle: N(0, 1)
    assert abs(float(background.mean())) < 0.05 and abs(float(background.std()) - 1) < 0.05
    for below, above in ((10, 10), (0, 60), (45, 5)):
        for vacuum in ("constant", "noise"):
            shape = (below + 30 + above, 40, 40)
            vol = (np.full(shape, -1.0, np.float32) if vacuum == "constant"
                   else rng.normal(-1.0, 0.4, shape).astype(np.float32))   # vacuum: less dense, quieter
            vol[below:below + 30] = sample
            got = normalize_tomogram(vol)[below:below + 30]
            assert np.allclose(got, ref, atol=1e-5), (below, above, vacuum, np.abs(got - ref).max())
    with pytest.raises(TemplearnError, match="constant"):
        normalize_tomogram(np.ones((8, 8, 8)))



def test_normalization_of_a_simulated_lamella_ignores_its_vacuum(tmp_path, nucleosome):
    """The same 160 Å slab (40 nucleosomes, fast engine, 120 e/Å²) reconstructed in a volume of its
    own height and in one 4x taller (75 % vacuum, back-projected noise there): the slab's voxels
    come out nearly the same, where a whole-volume z-score scales them by ~1.2."""
    from templearn.stages.imod_recon import reconstruct_array

    rng = np.random.default_rng(0)
    pos = np.stack([rng.uniform(40, 470, 40), rng.uniform(40, 470, 40), rng.uniform(20, 140, 40)], axis=1)
    vols = {}
    for nz in (20, 80):
        make_sample(tmp_path / f"s{nz}.json", nucleosome, [nz, 64, 64], 8.0, pos)
        simulate(tmp_path / f"s{nz}.json", tmp_path / f"o{nz}", pixel_size=8.0, tilt_range=60, tilt_step=3, dose=120,
                 defocus_um=-3.0, slab_fraction=20 / nz, slab_offset=0.0, seed=1)
        stack, px = read_mrc(tmp_path / f"o{nz}" / "tilt_series.mrc")
        acq = Acquisition.read(tmp_path / f"o{nz}" / "acquisition.json")
        vols[nz], _ = reconstruct_array(stack, acq.angles, px, voxel_size=8.0, thickness=acq.thickness,
                                        axis_x=acq.axis_x, axis_z=acq.axis_z)
    assert np.allclose(vols[80][:20], vols[20], atol=1e-4 * np.abs(vols[20]).max())   # same slab, more vacuum
    robust = np.abs(normalize_tomogram(vols[80])[:20] - normalize_tomogram(vols[20]))
    zscore = np.abs(((vols[80] - vols[80].mean()) / vols[80].std())[:20] - (vols[20] - vols[20].mean()) / vols[20].std())
    assert robust.max() < 0.15 and zscore.max() > 0.5, (robust.max(), zscore.max())

# --- the run config and the stage graph ----------------------------------------------------------

def test_run_config_randomize_wires_grid_simulate_and_targets(tmp_path):
    import yaml

    from templearn.orchestrator.config import load_config
    from templearn.orchestrator.graph import build

    root = Path(__file__).resolve().parents[1] / "examples"
    doc = yaml.safe_load((root / "quickstart.yaml").read_text())
    plain = {s.id: s for s in build(load_config(root / "quickstart.yaml"))}
    doc["simulation"].update(randomize=True, conditions="all")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(doc))
    cfg = load_config(tmp_path / "run.yaml")
    steps = {s.id: s for s in build(cfg)}
    assert "--randomize" in steps["grid"].argv and "--randomize" not in plain["grid"].argv
    sims = [s for s in steps.values() if s.kind == "simulate"]
    assert sorted({s.meta["condition"] for s in sims}) == [0, 1, 2, 3]     # domain x 2 ranges x 2 steps
    for t in (s for s in steps.values() if s.kind == "targets"):
        tomo = t.meta["tomo"]
        assert t.argv[2] == f"simulate/{tomo}/sample.json" and f"simulate/{tomo}" in t.deps
        assert f"simulate/{tomo}/sample.json" in steps[f"simulate/{tomo}"].outputs
    for t in (s for s in plain.values() if s.kind == "targets"):   # off: the tetris sample, as before
        assert t.argv[2] == f"tetris/{t.meta['sample']}/sample.json"
    doc["simulation"]["conditions"] = [47]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(TemplearnError, match="not a grid index 0..3"):
        load_config(tmp_path / "run.yaml")
