"""The `parakeet` engine: the real Parakeet (python-parakeet, MULTEM multislice) on CPU or GPU.

How Parakeet's frame maps onto templearn's (read from parakeet/simulate/_exit_wave.py, _optics.py
and scan.py, checked with a one-atom experiment, and tested end to end by reconstructing
Parakeet's tilt series in tests/test_parakeet_sim.py):

- Parakeet places a molecule's atoms at ``R(v) (x - mean(x)) + position`` (``R(v)`` the rotation
  vector ``v``, ``mean`` the unweighted mean of the file's atoms). We write each structure's atoms
  relative to the manifest's ``center`` and shift every position by ``A (mean - 0)`` so the atoms
  land exactly at ``A (x - center) + position``.
- For tilt ``θ`` the atoms are rotated by ``Rotation.from_rotvec(θ · (0, 1, 0))`` about the
  sample ``centre``, i.e. ``x' = x cos θ + z sin θ``: templearn's sign. We put the centre at
  ``(axis_x, ·, axis_z)`` (plus a z offset that keeps the sample inside Parakeet's box).
- Image pixel ``j`` of the detector has its centre at ``x = origin + j · pixel`` Å (y likewise);
  we shift the whole sample by the detector origin (Parakeet wants its sample shape inside a box
  starting at 0), so pixel ``j`` lies at ``j · pixel`` Å in templearn's frame. The margin Parakeet
  simulates around the detector is cropped by its optics step.
- The lens' zero-defocus plane is the sample centre (the tilt axis), like the fast engine.
- MULTEM samples each atom's potential at grid points, so it needs a fine grid: a nucleosome's
  phase comes out ~5x too weak at 2 Å/pixel and ~300x at 4 Å. Parakeet therefore runs at
  ``pixel_size / k`` <= ``parakeet_pixel`` (1 Å) and its images are binned by k by cropping
  their spectrum (summing pixels would fold the fine image's Thon rings into the band).
- Parakeet's GRF ice fills the sample cuboid; the cuboid is made wider than everything MULTEM
  simulates at every tilt (an infinite slab, like the fast engine's), because the slab's edges
  otherwise dominate the images' low frequencies. Its thickness is the specimen's: the slab's
  when it is thinner than the volume (Parakeet centres the cuboid on the rotation centre, so the
  tilt axis runs through the slab's middle, as in the fast engine).
- Of the randomized axes Parakeet honours the slab, defocus, dose and ice density; amplitude
  contrast, particle contrast and ice noise texture are the fast engine's (:meth:`SimParams.check`
  rejects them here).

Images are simulated in acquisition order (so Parakeet's damage model, which grows with the
image index, follows the dose-symmetric scheme) and stored in stack order (increasing angle).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from pathlib import Path

import numpy as np

from templearn.atomic import write_text
from templearn.errors import TemplearnError
from templearn.tilts import Acquisition

from .engine_fast import margin_pixels
from .params import Geometry, SimParams
from .sample_atoms import PlacedStructure

PADDING = 16        # fine pixels MULTEM adds around its margin
Z_MARGIN = 20.0     # Å between the molecules' furthest atoms and Parakeet's box in z


def import_parakeet():
    """Import parakeet (and MULTEM), preloading libcufft from the NVIDIA wheels when present."""
    import importlib.util

    if importlib.util.find_spec("parakeet") is None:
        raise TemplearnError("the parakeet engine needs python-parakeet with its MULTEM backend (build it with "
                             "scripts/install-parakeet-cpu.sh, or use its container), or use --engine fast")
    _preload_cufft()  # before parakeet: it imports MULTEM on import
    try:
        import multem  # noqa: F401
        import parakeet.config
        import parakeet.io
        import parakeet.sample
        import parakeet.simulate
    except (ImportError, OSError) as exc:
        raise TemplearnError(f"python-parakeet is installed but its MULTEM backend does not load ({exc})") from None
    return parakeet


def _preload_cufft() -> None:
    """MULTEM links libcufft; the pip NVIDIA wheels keep it outside the loader's path."""
    import site

    roots = site.getsitepackages() + [site.getusersitepackages()]
    for root in roots:
        for lib in sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", "libcufft.so*"))):
            try:
                ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
                return
            except OSError:
                continue


def parakeet_available() -> bool:
    try:
        import_parakeet()
        return True
    except Exception:  # noqa: BLE001 - any failure to load parakeet/MULTEM means "not available"
        return False


def write_atoms_cif(path: Path, xyz: np.ndarray, element: np.ndarray) -> Path:
    """A minimal mmCIF of the atoms (the exact atom set the fast engine uses) for Parakeet to read."""
    cols = ["group_PDB", "id", "type_symbol", "label_atom_id", "label_alt_id", "label_comp_id", "label_asym_id",
            "label_entity_id", "label_seq_id", "Cartn_x", "Cartn_y", "Cartn_z", "occupancy", "B_iso_or_equiv",
            "auth_seq_id", "auth_asym_id", "pdbx_PDB_model_num"]
    lines = ["data_templearn", "loop_"] + [f"_atom_site.{c}" for c in cols]
    body = "\n".join(
        f"ATOM {i + 1} {e} {e} . UNK A 1 1 {x:.3f} {y:.3f} {z:.3f} 1 0 1 A 1"
        for i, (e, (x, y, z)) in enumerate(zip(element, xyz))
    )
    return write_text(path, "\n".join(lines) + "\n" + body + "\n")


def sampling_factor(params: SimParams) -> tuple[int, float]:
    """``(k, fine pixel)``: Parakeet simulates at ``pixel_size / k`` <= ``parakeet_pixel`` Å, then bins by k.

    MULTEM samples the atomic potentials at the grid points, so a coarse grid (say 4 Å) misses most of
    each atom's potential (a nucleosome's phase comes out ~300x too weak at 4 Å, right at 1 Å).
    """
    k = max(1, int(np.ceil(params.pixel_size / params.parakeet_pixel - 1e-9)))
    return k, params.pixel_size / k


def build_config(structures: list[PlacedStructure], params: SimParams, acq: Acquisition, geom: Geometry,
                 work: Path) -> dict:
    """Parakeet's config (plain dict) and the structure files it names, written into ``work``."""
    from scipy.spatial.transform import Rotation

    k, fine = sampling_factor(params)
    lx = geom.nx * geom.pixel
    ly = geom.ny * geom.pixel
    # Molecules may stick out of the slab; the box holds them (its z extent sets the multislice depth).
    reach = max((float(np.sqrt((s.xyz**2).sum(1)).max()) for s in structures if len(s.xyz)), default=0.0)
    z_pad = reach + Z_MARGIN
    t = geom.specimen_thickness
    lz = t + 2 * z_pad
    # Parakeet frame = templearn frame + shift. Parakeet wants its sample shape inside a box that
    # starts at 0, so the sample moves by ``origin`` Å (a whole number: Parakeet's detector origin
    # is an integer) and the detector origin with it. Fine pixel ``j·k`` is output pixel ``j``.
    # The ice slab must fill everything MULTEM simulates (field, margin, padding) at every tilt, like
    # the fast engine's infinite slab: otherwise its edges scatter strongly into the images.
    margin = int(np.ceil(margin_pixels(params) * geom.pixel / fine))
    sim_half = (margin + PADDING) * fine
    tmax = np.deg2rad(min(max(abs(a) for a in acq.angles), 80.0))
    slab_x = (lx + 2 * sim_half) / np.cos(tmax) + t * np.tan(tmax) + 2 * geom.pixel
    slab_y = ly + 2 * sim_half + 2 * geom.pixel
    centre_y = (geom.ny - 1) / 2 * geom.pixel
    origin = int(np.ceil(max(slab_x / 2 - geom.axis_x, slab_y / 2 - centre_y, 0.0))) + 8
    dz = z_pad + t / 2 - geom.axis_z
    shift = np.array([origin, origin, dz], dtype=float)
    molecules = []
    for n, s in enumerate(structures):
        fname = work / f"structure_{n:04d}_{_safe(s.name)}.cif"
        write_atoms_cif(fname, s.xyz, s.element)
        xyz32 = np.round(s.xyz, 3).astype(np.float32)
        mean = xyz32.mean(axis=0).astype(float)
        rotvec = Rotation.from_matrix(s.rotations).as_rotvec().reshape(-1, 3)
        positions = s.positions + np.einsum("nij,j->ni", s.rotations, mean) + shift
        molecules.append({"filename": fname.name, "instances": [   # relative: Parakeet runs in ``work``
            {"position": [float(v) for v in p], "orientation": [float(v) for v in r]} for p, r in zip(positions, rotvec)
        ]})
    order = np.argsort(acq.order)           # image indices in acquisition order
    angles = [float(acq.angles[i]) for i in order]
    centre = np.array([geom.axis_x, centre_y, geom.axis_z]) + shift
    return {
        "sample": {
            "box": [float(lx + 2 * origin), float(ly + 2 * origin), float(lz)],
            "centre": [float(v) for v in centre],
            "shape": {"type": "cuboid", "cuboid": {"length_x": float(slab_x), "length_y": float(slab_y),
                                                 "length_z": float(t)}},
            "molecules": {"local": molecules} if molecules else None,
        },
        "microscope": {
            "beam": {"energy": params.voltage, "electrons_per_angstrom": float(acq.dose[0])},
            "lens": {"c_10": params.defocus_um * 1e4, "c_30": params.cs_mm},
            "phase_plate": {"use": params.phase_plate, "phase_shift": params.phase_shift_deg},
            "detector": {"nx": geom.nx * k, "ny": geom.ny * k, "pixel_size": fine, "dqe": False,
                         "origin": [origin, origin]},
        },
        "scan": {"mode": "manual", "axis": [0, 1, 0], "angles": angles, "positions": [0.0] * len(angles),
                 "exposure_time": 1.0},
        "simulation": {
            "margin": margin, "padding": PADDING,
            "slice_thickness": params.parakeet_slice, "ice": params.ice_density > 0,
            "ice_parameters": {"density": params.ice_density if params.ice_density > 0 else 0.94},
            "radiation_damage_model": params.radiation_damage,
        },
        "multiprocessing": {"device": params.device, "nproc": 1, "gpu_id": [0]},
    }


def bin_fourier(image: np.ndarray, k: int) -> np.ndarray:
    """``[ny*k, nx*k]`` counts -> ``[ny, nx]`` counts per big pixel, by cropping the spectrum.

    Summing k x k pixels would fold the fine image's high frequencies (many Thon rings) back into
    the band and fill the CTF's zeros; cropping the spectrum keeps only what the output pixel can
    carry. The result's mean is k² times the input's (counts per output pixel) and white noise
    keeps its variance-to-mean ratio. Output pixel ``j`` is centred on fine pixel ``j·k``.
    """
    if k == 1:
        return image
    ny, nx = image.shape[0] // k, image.shape[1] // k
    spec = np.fft.fft2(image[:ny * k, :nx * k])
    rows = np.fft.fftfreq(ny, 1.0 / ny).astype(int)
    cols = np.fft.fftfreq(nx, 1.0 / nx).astype(int)
    return np.fft.ifft2(spec[np.ix_(rows % (ny * k), cols % (nx * k))]).real


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


@contextlib.contextmanager
def _progress(log):
    """Parakeet's own log (its ``logging`` INFO lines) into ``log``, and one line per step and per
    image to stderr with the time so far and left: a tomogram takes tens of minutes."""
    import logging
    import time

    from templearn.progress import duration, say

    start = time.monotonic()
    current = {"label": "", "t0": None}

    def step(what: str) -> None:
        current.update(label=what.split(":")[0], t0=None)
        say(f"parakeet: {what} ({duration(time.monotonic() - start)})")

    class Images(logging.Handler):
        def __init__(self):
            super().__init__(logging.INFO)

        def emit(self, record):
            msg = record.getMessage()
            log.write(msg + "\n")
            log.flush()
            if "Running job:" not in msg:
                return
            # "    Running job: i/n for image ...": the time left from the images done so far.
            done, n = (int(v) for v in msg.split("Running job:")[1].split()[0].split("/"))
            now = time.monotonic()
            t0 = current["t0"] = now if current["t0"] is None else current["t0"]
            left = f", ~{duration((now - t0) / (done - 1) * (n - done + 1))} left" if done > 1 else ""
            say(f"parakeet: {current['label']}, image {done}/{n} ({duration(now - start)}{left})")

    logger = logging.getLogger("parakeet")
    handler, level = Images(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield step
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def simulate_parakeet(structures: list[PlacedStructure], params: SimParams, acq: Acquisition, geom: Geometry,
                      stack: np.ndarray, work: Path) -> dict:
    """Run Parakeet's sample/exit-wave/optics/image steps in ``work`` and fill ``stack`` (stack order)."""
    import yaml

    parakeet = import_parakeet()
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cfg_dict = build_config(structures, params, acq, geom, work)
    if not cfg_dict["sample"]["molecules"]:
        raise TemplearnError("the parakeet engine needs at least one molecule in the sample")
    write_text(work / "config.yaml", yaml.safe_dump(cfg_dict, sort_keys=False))
    config = parakeet.config.load(str(work / "config.yaml"))
    files = {k: str(work / f"{k}.h5") for k in ("sample", "exit_wave", "optics", "image")}
    # Parakeet draws its Poisson noise (and ice) from numpy's global generator.
    np.random.seed(params.seed)
    # In ``work``: the config names its structure files relatively, and MULTEM drops FFTW wisdom
    # files into the current folder.
    with open(work / "parakeet.log", "w") as log, contextlib.redirect_stdout(log), contextlib.chdir(work), \
            _progress(log) as step:
        step("sample: placing the molecules' atoms")
        sample = parakeet.sample.new(config, files["sample"])
        sample = parakeet.sample.add_molecules(config.sample, sample)
        step(f"exit wave: {len(acq.angles)} images of multislice (the long part)")
        parakeet.simulate.exit_wave(config, sample, files["exit_wave"])
        step("optics and image")
        parakeet.simulate.optics(config, files["exit_wave"], files["optics"])
        parakeet.simulate.image(config, files["optics"], files["image"])
    reader = parakeet.io.open(files["image"])
    factor, fine = sampling_factor(params)
    order = np.argsort(acq.order)
    for k, i in enumerate(order):
        got = float(reader.header[k]["tilt_alpha"])
        if abs(got - acq.angles[i]) > 1e-3:
            raise TemplearnError(f"parakeet image {k} has tilt {got:.2f}°, expected {acq.angles[i]:.2f}°", files["image"])
        stack[i] = bin_fourier(np.asarray(reader.data[k], dtype=np.float64), factor).astype(np.float32)
    del reader
    for key in ("exit_wave", "optics", "image", "sample"):
        Path(files[key]).unlink(missing_ok=True)
    for wisdom in work.glob("*.wisdom"):
        wisdom.unlink()
    offset = np.subtract(cfg_dict["sample"]["centre"], [geom.axis_x, (geom.ny - 1) / 2 * geom.pixel, geom.axis_z])
    return {"parakeet_config": "parakeet/config.yaml", "margin_pixels": cfg_dict["simulation"]["margin"],
            "slice_thickness": params.parakeet_slice, "simulated_pixel": fine, "binning": factor,
            "frame_offset": [float(v) for v in offset]}
