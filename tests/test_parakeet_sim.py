"""The parakeet-sim stage: the condition grid, the fast engine and the real Parakeet engine.

What is proved here (real outcomes, no mocks):
- the default grid is the paper's 48 conditions; a typo in GRID.yaml names the key;
- both engines honour templearn's tilt geometry: particles simulated by each and reconstructed
  by a weighted back projection written here from templearn/tilts.py, and by the imod-recon
  stage where it is installed, come back at the manifest's positions (within ~1 voxel);
- the fast engine's CTF zeros fall where theory and Parakeet put them, and the contrast sign
  agrees with and without a Volta phase plate;
- same seed, same stack; bad input gives a one-line error and leaves earlier outputs intact.

Parakeet tests are marked ``parakeet`` and skip only where python-parakeet cannot be imported.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from templearn.manifest import Instance, Manifest, StructureEntry
from templearn.mrc import read_mrc
from templearn.stages.parakeet_sim import ctf
from templearn.stages.parakeet_sim.simulate import simulate
from templearn.structures import load_atoms
from templearn.tilts import Acquisition, dose_symmetric_order, read_tlt

CLI = [sys.executable, "-c", "from templearn.stages.parakeet_sim.cli import main; main()"]


def _parakeet_ok() -> bool:
    from templearn.stages.parakeet_sim.engine_parakeet import parakeet_available

    return parakeet_available()


needs_parakeet = pytest.mark.skipif(not _parakeet_ok(), reason="python-parakeet (with MULTEM) is not importable here")


# --- helpers -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def nucleosome(nucleosome_paths) -> Path:
    return nucleosome_paths[0]   # 2pyo.pdb.gz from ../shared


def make_sample(path: Path, structure: Path, box, voxel: float, positions, eulers=None) -> Manifest:
    """A manifest with one structure placed at ``positions`` (Å, [x, y, z]); ``box`` is [nz, ny, nx]."""
    atoms = load_atoms(structure)
    eulers = eulers if eulers is not None else [[37.0 * i, 50.0 + 20 * i, 11.0 * i] for i in range(len(positions))]
    m = Manifest(
        name=path.stem, voxel_size=voxel, box=[int(b) for b in box],
        structures={"nuc": StructureEntry(path=str(structure), cls="target", target="nucleosome", template="nuc",
                                          center=atoms.center_of_mass().tolist())},
        instances=[Instance(i + 1, "nuc", [float(v) for v in p], [float(v) for v in e])
                   for i, (p, e) in enumerate(zip(positions, eulers))],
        targets=["nucleosome"],
    )
    m.write(path)
    return m


def back_project(stack: np.ndarray, angles, pixel: float, axis_x: float, axis_z: float, nz: int) -> np.ndarray:
    """Ramp-filtered back projection ``[nz, ny, nx]`` at voxel = ``pixel``, in templearn's geometry:
    voxel ``k`` sits at ``k·pixel`` Å and, at tilt θ, samples image column
    ``(axis_x + (x - axis_x) cos θ + (z - axis_z) sin θ) / pixel``."""
    n, ny, nx = stack.shape
    ramp = np.abs(np.fft.fftfreq(nx))
    ramp[0] = 0.5 / nx
    x = np.arange(nx) * pixel
    z = np.arange(nz) * pixel
    vol = np.zeros((nz, ny, nx))
    for img, a in zip(stack, angles):
        f = np.fft.ifft(np.fft.fft(img, axis=1) * ramp, axis=1).real
        t = np.deg2rad(a)
        u = (axis_x + (x[None, :] - axis_x) * np.cos(t) + (z[:, None] - axis_z) * np.sin(t)) / pixel
        c0 = np.floor(u).astype(int)
        w = u - c0
        ok = (c0 >= 0) & (c0 < nx - 1)
        c0 = np.clip(c0, 0, nx - 2)
        vals = f[:, c0] * (1 - w) + f[:, c0 + 1] * w          # (ny, nz, nx)
        vol += np.where(ok, vals, 0.0).transpose(1, 0, 2)
    return vol


def contrast(stack: np.ndarray) -> np.ndarray:
    """Images as ``1 - I/mean``: dark particles come out positive."""
    return 1.0 - stack / stack.mean(axis=(1, 2), keepdims=True)


def find_peaks(vol: np.ndarray, n: int, sigma: float = 3.0, radius: int = 5, border: int = 2) -> np.ndarray:
    """The ``n`` strongest maxima of the smoothed volume, refined to the centroid of the density above
    half the peak within ``radius`` voxels; ``[x, y, z]`` voxel coordinates."""
    from scipy import ndimage as ndi

    s = ndi.gaussian_filter(vol, sigma)
    peaks = np.argwhere(s == ndi.maximum_filter(s, size=2 * radius + 1))
    peaks = peaks[np.all((peaks >= border) & (peaks < np.array(s.shape) - border), axis=1)]
    out = []
    for p in peaks[np.argsort(s[tuple(peaks.T)])[::-1][:n]]:
        lo = np.maximum(p - radius, 0)
        hi = np.minimum(p + radius + 1, s.shape)
        win = s[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        w = np.clip(win - 0.5 * win.max(), 0, None).ravel()
        out.append(((np.indices(win.shape).reshape(3, -1) * w).sum(1) / w.sum() + lo)[::-1])
    return np.array(out)


def nearest_distances(found: np.ndarray, expected: np.ndarray) -> np.ndarray:
    d = np.sqrt(((expected[:, None, :] - found[None, :, :]) ** 2).sum(-1))
    return d.min(axis=1)


def radial_power(image: np.ndarray, pixel: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotationally averaged power spectrum ``(q 1/Å, power)``, one Fourier pixel per bin."""
    p = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean()))) ** 2
    n = min(image.shape)
    yy, xx = np.indices(image.shape)
    r = np.round(np.hypot((yy - image.shape[0] // 2) / image.shape[0], (xx - image.shape[1] // 2) / image.shape[1]) * n)
    r = r.astype(int).ravel()
    power = np.bincount(r, p.ravel()) / np.maximum(np.bincount(r), 1)
    return np.arange(n // 2) / (n * pixel), power[: n // 2]


def spectrum_minima(q: np.ndarray, power: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """For each expected zero, the frequency of least (trend-flattened) power within a third of the ring spacing."""
    from scipy import ndimage as ndi

    logp = np.log(power + 1e-30)
    flat = ndi.gaussian_filter1d(logp - ndi.gaussian_filter1d(logp, 6), 0.7)
    out = []
    for i, q0 in enumerate(expected):
        gap = (expected[i + 1] - q0) if i + 1 < len(expected) else (q0 - expected[i - 1])
        sel = np.flatnonzero(np.abs(q - q0) <= gap / 3)
        out.append(q[sel[np.argmin(flat[sel])]])
    return np.array(out)


def theory_zeros(defocus_um: float, qmax: float, qmin: float = 0.03) -> np.ndarray:
    q = np.linspace(1e-4, qmax, 20000)
    s = np.sin(ctf.chi(q**2, defocus_um * 1e4, 2.7, 300.0))
    z = q[np.flatnonzero(np.diff(np.sign(s)) != 0)]
    return z[z > qmin]


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True)


GEOMETRY_POSITIONS = np.array([(90, 100, 50), (230, 190, 180), (110, 250, 120)], float)  # Å; axis_z = 116 Å


def reconstruct_and_locate(out: Path, n: int) -> tuple[list[np.ndarray], Acquisition]:
    """Particle positions (Å, [x, y, z]) found in reconstructions of ``out``'s tilt series: by the
    back projection above and, where the imod-recon stage is installed, by its own."""
    stack, pixel = read_mrc(out / "tilt_series.mrc")
    acq = Acquisition.read(out / "acquisition.json")
    images = contrast(stack)
    vols = [back_project(images, acq.angles, pixel, acq.axis_x, acq.axis_z, int(round(acq.thickness / pixel)))]
    try:
        from templearn.stages.imod_recon import reconstruct_array
    except ImportError:
        reconstruct_array = None
    if reconstruct_array is not None:
        tomo, voxel = reconstruct_array(images, acq.angles, pixel, voxel_size=pixel, thickness=acq.thickness,
                                        axis_x=acq.axis_x, axis_z=acq.axis_z)
        assert voxel == pytest.approx(pixel)
        vols.append(tomo)
    return [find_peaks(v, n) * pixel for v in vols], acq


# --- grid ----------------------------------------------------------------------------------------

def test_grid_default_is_the_papers_48_conditions(tmp_path):
    r = run_cli("grid", "--out", tmp_path / "GRID.json")
    assert r.returncode == 0, r.stderr
    conds = json.loads((tmp_path / "GRID.json").read_text())["conditions"]
    assert len(conds) == 48
    assert [c["index"] for c in conds] == list(range(48))
    keys = {(c["defocus_um"], c["dose"], c["tilt_range"], c["tilt_step"], c["ice_density"]) for c in conds}
    assert len(keys) == 48
    assert all(c["phase_plate"] for c in conds)
    assert {c["defocus_um"] for c in conds} == {0.0, -0.5, -1.0}
    assert {c["dose"] for c in conds} == {75.0, 150.0}
    assert {c["tilt_range"] for c in conds} == {40.0, 60.0}
    assert {c["tilt_step"] for c in conds} == {2.0, 4.0}
    assert {c["ice_density"] for c in conds} == {0.9, 1.1}
    r = run_cli("grid", "--out", tmp_path / "D.json", "--domain", "defocus")
    conds = json.loads((tmp_path / "D.json").read_text())["conditions"]
    assert len(conds) == 48 and not any(c["phase_plate"] for c in conds)
    assert {c["defocus_um"] for c in conds} == {-2.5, -3.25, -4.0}
    assert run_cli("grid", "--out", tmp_path / "B.json", "--domain", "both").returncode == 0
    assert len(json.loads((tmp_path / "B.json").read_text())["conditions"]) == 96


def test_grid_yaml_typo_names_the_key(tmp_path):
    cfg = tmp_path / "GRID.yaml"
    cfg.write_text("doses: [100]\ntilt_range: [50]\n")
    (tmp_path / "GRID.json").write_text("earlier")
    r = run_cli("grid", "--out", tmp_path / "GRID.json", "--config", cfg)
    assert r.returncode == 2
    assert "doses" in r.stderr and "did you mean 'dose'" in r.stderr and str(cfg) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert (tmp_path / "GRID.json").read_text() == "earlier"


def test_custom_grid_condition_and_explicit_override(tmp_path, nucleosome):
    cfg = tmp_path / "GRID.yaml"
    cfg.write_text("domain: phase_plate\nphase_plate_defocus_um: [-0.7]\ndose: [80, 160]\ntilt_range: [30]\n"
                   "tilt_step: [10]\nice_density: [1.0]\n")
    assert run_cli("grid", "--out", tmp_path / "GRID.json", "--config", cfg).returncode == 0
    assert len(json.loads((tmp_path / "GRID.json").read_text())["conditions"]) == 2
    make_sample(tmp_path / "s.json", nucleosome, [8, 16, 16], 8.0, [(60, 60, 30)])
    doc = json.loads((tmp_path / "s.json").read_text())
    doc["structures"]["nuc"]["path"] = "elsewhere/" + nucleosome.name    # moved: found through --structures
    (tmp_path / "s.json").write_text(json.dumps(doc))
    r = run_cli("simulate", tmp_path / "s.json", "--out", tmp_path / "o", "--grid", tmp_path / "GRID.json",
                "--condition", 1, "--tilt-step", 15, "--pixel-size", 8, "--structures", nucleosome.parent)
    assert r.returncode == 0, r.stderr
    acq = Acquisition.read(tmp_path / "o" / "acquisition.json")
    assert acq.phase_plate and acq.defocus_um == -0.7 and acq.extra["ice_density"] == 1.0
    assert acq.angles == [-30.0, -15.0, 0.0, 15.0, 30.0]          # step overridden, range from the grid
    assert sum(acq.dose) == pytest.approx(160.0)                   # condition 1 = the second dose
    r = run_cli("simulate", tmp_path / "s.json", "--out", tmp_path / "o2", "--grid", tmp_path / "GRID.json", "--condition", 2)
    assert r.returncode == 2 and "condition 2 does not exist" in r.stderr


# --- fast engine -----------------------------------------------------------------------------------

def test_fast_engine_geometry_particles_reconstruct_at_manifest_positions(tmp_path, nucleosome):
    make_sample(tmp_path / "s.json", nucleosome, [30, 40, 40], 8.0, GEOMETRY_POSITIONS)
    simulate(tmp_path / "s.json", tmp_path / "o", engine="fast", pixel_size=8.0, tilt_range=60, tilt_step=5,
             dose=200, defocus_um=-0.5, phase_plate=True, ice_density=0.94, seed=1)
    stack, pixel = read_mrc(tmp_path / "o" / "tilt_series.mrc")
    assert stack.shape == (25, 40, 40) and pixel == 8.0
    angles = read_tlt(tmp_path / "o" / "tilt_series.tlt")
    assert np.allclose(angles, np.arange(-60, 61, 5))
    founds, acq = reconstruct_and_locate(tmp_path / "o", 3)
    assert acq.axis_x == pytest.approx(39 / 2 * 8) and acq.axis_z == pytest.approx(29 / 2 * 8) and acq.thickness == 240
    assert acq.order == dose_symmetric_order(angles).tolist()
    assert np.allclose(acq.dose_before, np.array(acq.order) * 8.0)
    assert stack.mean() == pytest.approx(8.0 * 64, rel=0.05)        # counts = dose per tilt x pixel area
    for found in founds:
        dist = nearest_distances(found, GEOMETRY_POSITIONS) / 8.0
        assert dist.max() < 1.5, (found, dist)
    assert (tmp_path / "o" / "tilt_series.png").stat().st_size > 1000
    prov = json.loads((tmp_path / "o" / "provenance.json").read_text())
    assert prov["stage"] == "parakeet-sim" and prov["seed"] == 1 and "tilt_series.mrc" in prov["outputs"]


def test_fast_engine_same_seed_same_stack(tmp_path, nucleosome):
    make_sample(tmp_path / "s.json", nucleosome, [8, 16, 16], 8.0, [(60, 60, 30)])
    kw = dict(engine="fast", pixel_size=8.0, tilt_range=20, tilt_step=10, dose=60)
    digests = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate(tmp_path / "s.json", tmp_path / name, seed=seed, **kw)
        digests.append(hashlib.sha256(read_mrc(tmp_path / name / "tilt_series.mrc")[0].tobytes()).hexdigest())
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_fast_engine_ctf_zeros_follow_theory(tmp_path, nucleosome):
    pos = [(x, y, 60) for x in (70, 210, 350) for y in (70, 210, 350)]
    make_sample(tmp_path / "s.json", nucleosome, [16, 64, 64], 8.0, pos)
    simulate(tmp_path / "s.json", tmp_path / "o", engine="fast", pixel_size=4.0, tilt_range=0, tilt_step=1,
             dose=20000, radiation_damage=False, defocus_um=-2.0, ice_density=0.94, seed=2)
    img = read_mrc(tmp_path / "o" / "tilt_series.mrc")[0][0]
    q, p = radial_power(img, 4.0)
    zeros = theory_zeros(-2.0, 0.12)
    assert len(zeros) >= 5
    assert np.abs(spectrum_minima(q, p, zeros) - zeros).max() <= 1.5 / (128 * 4.0)   # within 1.5 Fourier pixels


def test_bad_input_one_line_error_and_earlier_outputs_intact(tmp_path, nucleosome):
    make_sample(tmp_path / "s.json", nucleosome, [8, 16, 16], 8.0, [(60, 60, 30)])
    out = tmp_path / "o"
    assert run_cli("simulate", tmp_path / "s.json", "--out", out, "--pixel-size", 8, "--tilt-step", 30).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # a manifest whose structure file has gone
    doc = json.loads((tmp_path / "s.json").read_text())
    doc["structures"]["nuc"]["path"] = str(tmp_path / "gone.pdb")
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    r = run_cli("simulate", tmp_path / "bad.json", "--out", out, "--pixel-size", 8)
    assert r.returncode == 2 and "bad.json" in r.stderr and "gone.pdb" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    for args, words in ((["--tilt-step", "-2"], "tilt step"), (["--engine", "magic"], "engine"),
                        (["--grid", tmp_path / "nope.json", "--condition", "0"], "no such grid file")):
        r = run_cli("simulate", tmp_path / "s.json", "--out", out, *args)
        assert r.returncode == 2 and words in r.stderr, r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


# --- the real Parakeet -----------------------------------------------------------------------------

@pytest.mark.parakeet
@needs_parakeet
def test_parakeet_engine_geometry_matches_the_manifest(tmp_path, nucleosome):
    make_sample(tmp_path / "s.json", nucleosome, [30, 40, 40], 8.0, GEOMETRY_POSITIONS)
    simulate(tmp_path / "s.json", tmp_path / "o", engine="parakeet", pixel_size=8.0, tilt_range=60, tilt_step=15,
             dose=300, defocus_um=-0.5, phase_plate=True, ice_density=0.0, seed=1, parakeet_slice=10.0)
    stack, pixel = read_mrc(tmp_path / "o" / "tilt_series.mrc")
    assert stack.shape == (9, 40, 40) and pixel == 8.0
    assert stack.mean() == pytest.approx(300 / 9 * 64, rel=0.05)
    assert (tmp_path / "o" / "parakeet" / "config.yaml").is_file()
    founds, _ = reconstruct_and_locate(tmp_path / "o", 3)
    for found in founds:
        dist = nearest_distances(found, GEOMETRY_POSITIONS) / 8.0
        assert dist.max() < 1.5, (found, dist)


@pytest.mark.parakeet
@needs_parakeet
def test_parakeet_engine_slab_geometry(tmp_path, nucleosome):
    """A slab in the top 60 % of the box: Parakeet's cuboid is the slab, the molecule below it is
    dropped, and the three in it reconstruct at their positions in a volume as tall as the box."""
    inside = np.array([(90, 100, 130), (230, 190, 200), (110, 250, 160)], float)
    make_sample(tmp_path / "s.json", nucleosome, [30, 40, 40], 8.0, np.vstack([inside, [(200, 80, 40)]]))
    simulate(tmp_path / "s.json", tmp_path / "o", engine="parakeet", pixel_size=8.0, tilt_range=60, tilt_step=15,
             dose=300, defocus_um=-0.5, phase_plate=True, ice_density=0.0, seed=1, parakeet_slice=10.0,
             slab_fraction=0.6, slab_offset=1.0)
    import yaml

    cfg = yaml.safe_load((tmp_path / "o" / "parakeet" / "config.yaml").read_text())
    assert cfg["sample"]["shape"]["cuboid"]["length_z"] == pytest.approx(144.0)
    assert len(cfg["sample"]["molecules"]["local"][0]["instances"]) == 3
    kept = Manifest.read(tmp_path / "o" / "sample.json")
    assert [i.id for i in kept.instances] == [1, 2, 3] and kept.params["slab"]["z"] == [92.0, 236.0]
    founds, acq = reconstruct_and_locate(tmp_path / "o", 3)
    assert acq.thickness == 240.0 and acq.axis_z == pytest.approx(164.0)
    for found in founds:
        dist = nearest_distances(found, inside) / 8.0
        assert dist.max() < 1.5, (found, dist)


@pytest.mark.parakeet
@needs_parakeet
def test_parakeet_and_fast_ctf_zeros_agree(tmp_path, nucleosome):
    pos = [(x, y, 60) for x in (70, 210, 350) for y in (70, 210, 350)]
    make_sample(tmp_path / "s.json", nucleosome, [16, 64, 64], 8.0, pos)
    minima = {}
    zeros = theory_zeros(-2.0, 0.12)
    for engine in ("fast", "parakeet"):
        simulate(tmp_path / "s.json", tmp_path / engine, engine=engine, pixel_size=4.0, tilt_range=0, tilt_step=1,
                 dose=20000, radiation_damage=False, defocus_um=-2.0, ice_density=0.94, seed=2, parakeet_slice=10.0)
        q, p = radial_power(read_mrc(tmp_path / engine / "tilt_series.mrc")[0][0], 4.0)
        minima[engine] = spectrum_minima(q, p, zeros)
    bin_ = 1 / (128 * 4.0)
    assert np.abs(minima["parakeet"] - zeros).max() <= 1.5 * bin_, (minima, zeros)
    assert np.abs(minima["parakeet"] - minima["fast"]).max() <= 2 * bin_, minima


@pytest.mark.parakeet
@needs_parakeet
def test_contrast_sign_agrees_with_and_without_phase_plate(tmp_path, nucleosome):
    centres = np.array([(64, 64, 48), (190, 180, 48)], float)
    make_sample(tmp_path / "s.json", nucleosome, [12, 32, 32], 8.0, centres)
    yy, xx = np.mgrid[0:64, 0:64] * 4.0
    inside = np.zeros((64, 64), bool)
    for x, y, _ in centres:
        inside |= (xx - x) ** 2 + (yy - y) ** 2 < 35.0**2
    signs = {}
    for pp, df in ((True, -0.5), (False, -3.0)):
        for engine in ("fast", "parakeet"):
            out = tmp_path / f"{engine}_{pp}"
            simulate(tmp_path / "s.json", out, engine=engine, pixel_size=4.0, tilt_range=0, tilt_step=1, dose=2000,
                     radiation_damage=False, defocus_um=df, phase_plate=pp, ice_density=0.94, seed=5, parakeet_slice=10.0)
            img = read_mrc(out / "tilt_series.mrc")[0][0]
            c = img / img.mean() - 1
            signs[(engine, pp)] = float(c[inside].mean() - c[~inside].mean())
    for pp in (True, False):
        assert np.sign(signs[("fast", pp)]) == np.sign(signs[("parakeet", pp)]), signs
        assert signs[("fast", pp)] < 0, signs           # particles dark in both domains
        assert abs(signs[("parakeet", pp)]) > 0.002, signs


def test_parakeet_progress_lines_and_log(monkeypatch, capsys, tmp_path):
    """Parakeet's log lines reach parakeet.log, and each simulated image gives a line with its number
    and, from the second on, the time left (Parakeet itself prints nothing for tens of minutes)."""
    import logging

    from templearn.stages.parakeet_sim.engine_parakeet import _progress

    monkeypatch.delenv("TEMPLEARN_QUIET", raising=False)
    logger = logging.getLogger("parakeet.simulate.simulation")
    with open(tmp_path / "parakeet.log", "w") as log, _progress(log) as step:
        step("exit wave: 3 images")
        for i in (1, 2, 3):
            logger.info(f"    Running job: {i}/3 for image {i - 1} fraction 0 with tilt 0 degrees")
        logger.info("some other line")
    logger.info("after the block: not ours")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("parakeet: exit wave: 3 images")
    assert [line.split(" (")[0] for line in err[1:]] == [f"parakeet: exit wave, image {i}/3" for i in (1, 2, 3)]
    assert "left" not in err[1] and all("left)" in line for line in err[2:])
    logged = (tmp_path / "parakeet.log").read_text()
    assert logged.count("Running job") == 3 and "some other line" in logged and "not ours" not in logged
