"""The paper's ablation study (Fig. 4 A-H) as one command: which parts of Template Learning matter.

One study config (``benchmarks/ablation.yaml``, CPU-sized; ``benchmarks/ablation_full.yaml``, the
paper's sizes) holds the full method as an ordinary run config (``run:``), the test set
(``test:``) and the settings of the ablated variants (``variants:``). The study folder::

    testset/            a simulation-only run (templearn-run layout): crowded samples of all the
                        templates (NMA variants with their own seed) and all the distractors, imaged
                        by the *other* simulator (Parakeet by default; the training runs use the
                        fast engine), with seeds and acquisition kept apart from training
    masks/<tomo>.mrc    the masked evaluation's region: the tomogram minus a border
    volumes/<id>.mrc    the templates as density maps (the volume-template variant)
    variants/<name>/    one templearn-run per variant, picking the test tomograms
    match/<tomo>/       template matching on the same test tomograms
    evaluate/<name>[_mask]/  pick-eval evaluate of each variant, template matching as baseline
    ablation.md/.json/.csv, f1_bars.png, pr_curves.png   the table of Fig. 4I and its plots

Every step goes through the orchestrator's ledger, so an interrupted study resumes, and
changing one variant's settings reruns that variant only.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from templearn.atomic import write_json, write_text
from templearn.config import load, to_dict
from templearn.errors import TemplearnError

from . import graph
from .config import RunConfig, prepare
from .runner import Event, Ledger, execute, run

# name -> what the variant changes (the rows of the paper's Fig. 4I, in its order)
VARIANTS = {
    "full": "full method: all templates, NMA variants, all distractors, full crowding, atomic templates",
    "single_template": "one template instead of all",
    "no_nma": "no flexible (NMA) variants",
    "no_distractors": "no distractors (templates only)",
    "three_distractors": "3 distractors instead of all",
    "less_crowding": "crowding at ~30% of the full method's packing fraction",
    "volume_template": "templates given as density maps (pseudo-atoms) instead of atoms",
}


@dataclass
class TestSet:
    """The held-out test tomograms, the same for every variant."""

    n_tomograms: int = 2
    seed: int = 100_000                      # tetris, NMA and noise seeds: far from any training seed
    box: list[int] | None = None             # [nz, ny, nx] at the run's tetris voxel size; default: the run's
    engine: Literal["parakeet", "fast"] = "parakeet"   # independent of the training engine (fast)
    parakeet_pixel: float = 1.0              # Å, Parakeet's simulation pixel (then binned)
    # one acquisition (a grid of one condition): Volta phase plate, like the paper's nucleosome data
    phase_plate: bool = True
    defocus_um: float = -0.75                # between the grid's values, so not a training condition
    dose: float = 100.0                      # e/Å², whole series
    tilt_range: float = 60.0
    tilt_step: float = 3.0
    ice_density: float = 0.94
    mask_border: float = 48.0                # Å left out at every face in the masked evaluation


@dataclass
class VariantSettings:
    run: list[str] = field(default_factory=lambda: list(VARIANTS))
    single_template: str | None = None       # default: the first template of the first target
    three_distractors: list[str] = field(default_factory=lambda: ["1qvr", "6w6m", "7e8h"])
    crowding: float = 0.3                    # less_crowding: this fraction of full's packing fraction
    volume_voxel_size: float = 2.0           # Å, volume templates (maps -> pseudo-atoms, one per voxel)
    volume_resolution: float = 10.0          # Å, like a good subtomogram average


@dataclass
class Study:
    run: RunConfig
    test: TestSet = field(default_factory=TestSet)
    variants: VariantSettings = field(default_factory=VariantSettings)
    # the paper's Fig. 4I values beside ours: variant -> [F1 without mask, F1 with mask] (null: unknown)
    paper: dict[str, list[float | None]] = field(default_factory=dict)


def load_study(path: str | os.PathLike) -> Study:
    path = Path(path)
    study = load(path, Study)
    study.run = prepare(study.run, path)
    unknown = [v for v in study.variants.run if v not in VARIANTS]
    if unknown:
        raise TemplearnError(f"variants.run: unknown variant {unknown[0]!r} (choose from {', '.join(VARIANTS)})", path)
    if "full" not in study.variants.run and "less_crowding" in study.variants.run:
        raise TemplearnError("variants.run: less_crowding needs full (its crowding is a fraction of full's)", path)
    if study.test.n_tomograms < 1:
        raise TemplearnError("test.n_tomograms must be >= 1", path)
    if not 0 < study.variants.crowding < 1:
        raise TemplearnError(f"variants.crowding must be in (0, 1), got {study.variants.crowding}", path)
    return study


def run_study(path: str | os.PathLike, out: str | os.PathLike, *, jobs: int = 1,
              on_event: Callable[[str, Event], None] | None = None) -> Path:
    """Run (or resume) the whole study in ``out``; returns the path of ``ablation.md``."""
    path, out = Path(path), Path(out).resolve()
    study = load_study(path)
    emit = on_event or (lambda where, e: None)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "study.yaml", path.read_text())

    from concurrent.futures import ThreadPoolExecutor

    ledger = Ledger(out)   # one ledger for the study's own steps, shared by both threads (it locks)

    def tests() -> list[HeldOutTomogram]:
        tomos = build_testset(study, out, emit)
        execute(match_steps(study.run, tomos), out, emit=lambda e: emit("match", e), ledger=ledger)
        return tomos

    # The test set (the slow, independent simulator) and template matching are made beside the
    # trainings: one process each, which is what a 2-core machine holds.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(tests)
        execute(_volume_steps(study, out), out, jobs=jobs, emit=lambda e: emit("volumes", e), ledger=ledger)
        for name in study.variants.run:
            _run_variant(study, name, out, [], jobs, emit, until="train")
        tomos = pending.result()
    for name in study.variants.run:
        _run_variant(study, name, out, tomos, jobs, emit)

    evals = _evaluate_steps(study, tomos)
    execute(evals, out, jobs=jobs, emit=lambda e: emit("evaluate", e), ledger=ledger)
    return write_report(study, out)


def _run_variant(study: Study, name: str, out: Path, tomos: list, jobs: int, emit, until: str | None = None) -> None:
    vdir = out / "variants" / name
    vdir.mkdir(parents=True, exist_ok=True)
    cfg_path = _write_yaml(vdir / "config.yaml", to_dict(variant_config(study, name, out, tomos)))
    run(cfg_path, vdir, until=until, jobs=jobs, on_event=lambda e: emit(name, e))


# -- the test set --------------------------------------------------------------------------------

@dataclass
class HeldOutTomogram:
    name: str            # e.g. sample_000_c00
    tomogram: Path
    truth: Path          # the test sample's manifest
    mask: Path


def build_testset(study: Study, out: Path, emit) -> list[HeldOutTomogram]:
    """Simulate the test tomograms (a simulation-only run) and write their masks."""
    t = study.test
    tdir = out / "testset"
    tdir.mkdir(parents=True, exist_ok=True)
    grid = {"domain": "phase_plate" if t.phase_plate else "defocus",
            ("phase_plate_defocus_um" if t.phase_plate else "defocus_um"): [t.defocus_um],
            "dose": [t.dose], "tilt_range": [t.tilt_range], "tilt_step": [t.tilt_step],
            "ice_density": [t.ice_density]}
    grid_path = _write_yaml(tdir / "grid.yaml", grid)
    cfg = copy.deepcopy(study.run)
    cfg.name, cfg.seed = "testset", t.seed
    cfg.tetris.n_samples = t.n_tomograms
    cfg.tetris.box = list(t.box or cfg.tetris.box)
    cfg.simulation.engine = t.engine
    cfg.simulation.grid_config, cfg.simulation.domain = str(grid_path), None
    cfg.simulation.conditions, cfg.simulation.pairing = [0], "all"
    cfg.simulation.extra_args = ["--parakeet-pixel", str(t.parakeet_pixel)] if t.engine == "parakeet" else []
    cfg.training.enabled = False
    cfg.split.val, cfg.split.test = 0, t.n_tomograms
    cfg.template_matching.enabled = False
    cfg.experimental = []
    cfg_path = _write_yaml(tdir / "config.yaml", to_dict(cfg))
    run(cfg_path, tdir, on_event=lambda e: emit("testset", e))

    from templearn.mrc import read_mrc, write_mrc

    tomos = []
    for s, _, tomo in graph.tomograms(cfg):
        tomogram = tdir / "reconstruct" / tomo / "tomogram.mrc"
        mask_path = out / "masks" / f"{tomo}.mrc"
        volume, voxel = read_mrc(tomogram)
        mask = border_mask(volume.shape, round(t.mask_border / voxel))
        if not mask_path.is_file() or not np.array_equal(read_mrc(mask_path)[0] != 0, mask):
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            write_mrc(mask_path, mask.astype(np.int8), voxel)
        tomos.append(HeldOutTomogram(tomo, tomogram, tdir / "tetris" / s / "sample.json", mask_path))
    from templearn import provenance

    provenance.record(out / "masks", "ablation masks", {"mask_border_angstrom": t.mask_border},
                      inputs=[h.tomogram for h in tomos], outputs=[h.mask for h in tomos])
    return tomos


def border_mask(shape: tuple[int, int, int], border: int) -> np.ndarray:
    """True inside the volume, ``border`` voxels away from every face: where a user would pick
    (partial molecules at the faces and the reconstruction's edges left out)."""
    if any(n <= 2 * border for n in shape):
        raise TemplearnError(f"test.mask_border leaves nothing of a tomogram of shape {tuple(shape)}")
    mask = np.zeros(shape, bool)
    mask[border:shape[0] - border, border:shape[1] - border, border:shape[2] - border] = True
    return mask


# -- the variants --------------------------------------------------------------------------------

def variant_config(study: Study, name: str, out: Path, tomos: list[HeldOutTomogram]) -> RunConfig:
    """The full method's run config with one part removed; every variant picks the test tomograms."""
    from .config import Experimental

    cfg = copy.deepcopy(study.run)
    cfg.name = f"{study.run.name}_{name}"
    v = study.variants
    if name == "single_template":
        one = v.single_template or cfg.targets[0].templates[0]
        cfg.targets[0].templates = [one]
    elif name == "no_nma":
        cfg.nma.enabled = False
    elif name == "no_distractors":
        cfg.distractors, cfg.distractor_list, cfg.tetris.ratio = [], None, 0.0
    elif name == "three_distractors":
        cfg.distractors, cfg.distractor_list = list(v.three_distractors), None
    elif name == "less_crowding":
        cfg.tetris.max_fraction = round(v.crowding * full_packing_fraction(out), 4)
    elif name == "volume_template":
        cfg.targets[0].templates = [str(out / p) for p in _volume_maps(study).values()]
    cfg.split.test = 0
    cfg.template_matching.enabled = False      # run once, on the same tomograms, by the study
    cfg.experimental = [Experimental(name=t.name, tomogram=str(t.tomogram)) for t in tomos]
    return cfg


def full_packing_fraction(out: Path) -> float:
    """Mean packing fraction of the full method's training samples (their tetris provenance)."""
    from templearn.atomic import read_json

    fractions = [read_json(p)["result"]["packing_fraction"]
                 for p in sorted((out / "variants" / "full" / "tetris").glob("sample_*/provenance.json"))]
    if not fractions:
        raise TemplearnError("less_crowding needs the full variant's samples, which are missing", out / "variants" / "full")
    return float(np.mean(fractions))


def _volume_maps(study: Study) -> dict[str, str]:
    from templearn.structures import is_pdb_id, structure_id

    maps = {}
    for spec in study.run.targets[0].templates:
        ident = spec if is_pdb_id(spec) and not Path(spec).is_file() else structure_id(Path(spec))
        maps[spec] = f"volumes/{ident}.mrc"
    return maps


def _volume_steps(study: Study, out: Path) -> list[graph.Step]:
    if "volume_template" not in study.variants.run:
        return []
    v = study.variants
    steps = []
    for spec, rel in _volume_maps(study).items():
        argv = ["templearn-tetris", "density", spec, "--out", rel, "--voxel-size", graph._num(v.volume_voxel_size),
                "--resolution", graph._num(v.volume_resolution)]
        steps.append(graph.Step(rel.removesuffix(".mrc"), "tetris", argv, graph._files([spec]), [rel]))
    return steps


def match_steps(run_cfg: RunConfig, tomos: list) -> list[graph.Step]:
    """Template matching on held-out tomograms (anything with ``.name`` and ``.tomogram``)."""
    tm = run_cfg.template_matching
    if not tm.enabled:
        return []
    template = tm.template or run_cfg.targets[0].templates[0]
    steps = []
    for t in tomos:
        sid = f"match/{t.name}"
        argv = ["templearn-pick-eval", "match", str(t.tomogram), "--template", template, "--out", sid]
        graph._opt(argv, "--angular-step", tm.angular_step)
        graph._opt(argv, "--time-budget", tm.time_budget)
        graph._opt(argv, "--n-peaks", tm.n_peaks)
        argv += tm.extra_args
        steps.append(graph.Step(sid, "match", argv, [str(t.tomogram), *graph._files([template])],
                                [f"{sid}/{graph.PICKS_FILE}"]))
    return steps


def _evaluate_steps(study: Study, tomos: list[HeldOutTomogram]) -> list[graph.Step]:
    steps = []
    for name in study.variants.run:
        picks = [f"variants/{name}/pick/exp_{t.name}/{graph.PICKS_FILE}" for t in tomos]
        base = [f"match/{t.name}/{graph.PICKS_FILE}" for t in tomos] if study.run.template_matching.enabled else []
        for masked in (False, True):
            sid = f"evaluate/{name}" + ("_mask" if masked else "")
            argv = ["templearn-pick-eval", "evaluate", *graph._rep("--picks", picks),
                    *graph._rep("--truth", [str(t.truth) for t in tomos]), *graph._rep("--baseline", base),
                    "--name", name, "--out", sid]
            if masked:
                argv += graph._rep("--mask", [str(t.mask) for t in tomos])
            if study.run.evaluation.distance:
                argv += ["--distance", graph._num(study.run.evaluation.distance)]
            inputs = picks + base + [str(t.truth) for t in tomos] + ([str(t.mask) for t in tomos] if masked else [])
            steps.append(graph.Step(sid, "evaluate", argv, inputs, [f"{sid}/report.json"]))
    return steps


def _write_yaml(path: Path, doc: dict) -> Path:
    import yaml

    write_text(path, yaml.safe_dump(doc, sort_keys=False))
    return path


# -- the report ----------------------------------------------------------------------------------

def collect(study: Study, out: Path) -> list[dict]:
    """One row per variant (and template matching): F1, precision, recall without and with mask."""
    from templearn.atomic import read_json

    rows = []
    tm = None
    for name in study.variants.run:
        row = {"variant": name, "what": VARIANTS[name], "paper": study.paper.get(name, [None, None])}
        for key, sid in (("all", f"evaluate/{name}"), ("mask", f"evaluate/{name}_mask")):
            rep = read_json(out / sid / "report.json")
            row[key] = {k: rep["best"][k] for k in ("f1", "precision", "recall", "tp", "fp", "fn", "threshold")}
            row[key]["curve"] = {"precision": rep["overall"]["precision"], "recall": rep["overall"]["recall"]}
            if "baseline" in rep:
                tm = tm or {}
                tm.setdefault(key, {k: rep["baseline"]["best"][k] for k in ("f1", "precision", "recall", "tp", "fp", "fn")})
                tm[key].setdefault("curve", {"precision": rep["baseline"]["overall"]["precision"],
                                             "recall": rep["baseline"]["overall"]["recall"]})
        row["training_samples"] = _samples(out / "variants" / name)
        card = out / "variants" / name / "train" / "model_card.json"
        row["train_seconds"] = _train_seconds(out / "variants" / name)
        row["model_card"] = str(card.relative_to(out)) if card.is_file() else None
        rows.append(row)
    if tm:
        rows.append({"variant": "template_matching", "what": "template matching (the baseline), same tomograms",
                     "paper": study.paper.get("template_matching", [None, None]), **tm})
    return rows


def _samples(vdir: Path) -> dict:
    """What the variant trained on: packing fraction and molecules per sample (tetris provenance)."""
    from templearn.atomic import read_json

    res = [read_json(p)["result"] for p in sorted((vdir / "tetris").glob("sample_*/provenance.json"))]
    return {"packing_fraction": float(np.mean([r["packing_fraction"] for r in res])) if res else None,
            "targets": float(np.mean([r["targets"] for r in res])) if res else None,
            "distractors": float(np.mean([r["distractors"] for r in res])) if res else None}


def _train_seconds(vdir: Path) -> float | None:
    ledger = vdir / "ledger.json"
    if not ledger.is_file():
        return None
    rec = Ledger(vdir).steps.get("train")
    return rec.get("seconds") if rec else None


def write_report(study: Study, out: Path) -> Path:
    rows = collect(study, out)
    write_json(out / "ablation.json", {"format": "templearn.ablation", "version": 1, "rows": rows,
                                       "study": to_dict(study)})
    lines = ["variant,f1,precision,recall,f1_mask,precision_mask,recall_mask,paper_f1,paper_f1_mask"]
    for r in rows:
        p = r["paper"]
        lines.append(",".join([r["variant"], *(f"{r[k][m]:.3f}" for k in ("all", "mask") for m in ("f1", "precision", "recall")),
                               *("" if x is None else f"{x:.2f}" for x in p)]))
    write_text(out / "ablation.csv", "\n".join(lines) + "\n")
    _plots(rows, out)
    write_text(out / "ablation.md", _markdown(study, rows, out))
    return out / "ablation.md"


def table(rows: list[dict]) -> str:
    """The markdown table of Fig. 4I: F1 (precision / recall) without and with the mask."""
    def cell(d):
        return f"**{d['f1']:.2f}** ({d['precision']:.2f} / {d['recall']:.2f})"

    def paper(x):
        return "–" if x is None else f"{x:.2f}"

    def samples(r):
        t = r.get("training_samples") or {}
        if t.get("packing_fraction") is None:
            return "–"
        return f"{t['packing_fraction']:.2f}, {t['targets']:.0f} + {t['distractors']:.0f}"

    out = [("| variant | F1 (P / R) | F1 with mask (P / R) | paper F1 | paper F1 with mask "
            "| training samples: packing fraction, targets + distractors |"),
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['variant']} | {cell(r['all'])} | {cell(r['mask'])} | {paper(r['paper'][0])} "
                   f"| {paper(r['paper'][1])} | {samples(r)} |")
    return "\n".join(out) + "\n"


def _markdown(study: Study, rows: list[dict], out: Path) -> str:
    t, run_cfg = study.test, study.run
    n = {r["variant"]: r for r in rows}
    full = n.get("full")
    lines = [
        f"# Ablation study: {run_cfg.name}\n\n",
        ("F1 at the best size threshold over all test tomograms (precision / recall), each model "
        f"picking the same {t.n_tomograms} test tomogram(s): {t.engine} engine, "
        f"{'Volta phase plate' if t.phase_plate else 'no phase plate'}, defocus {t.defocus_um} µm, "
        f"{t.dose:g} e/Å², ±{t.tilt_range:g}° step {t.tilt_step:g}°, tetris seeds from {t.seed}. "
        f"With mask: picks and particles within {t.mask_border:g} Å of a face left out.\n\n"),
        table(rows),
        "\nVariants:\n\n",
        *(f"- `{r['variant']}`: {r['what']}" + (f" (training {r['train_seconds']:.0f} s)" if r.get("train_seconds") else "")
          + "\n" for r in rows),
    ]
    if full:
        lines.append("\nThe full method's F1 minus each variant's: " + ", ".join(
            f"{r['variant']} {full['all']['f1'] - r['all']['f1']:+.2f}" for r in rows if r is not full) + ".\n")
    lines += ["\n![F1 per variant](f1_bars.png)\n", "\n![Precision-recall](pr_curves.png)\n",
              "\nTraining curves: " + ", ".join(f"[{v}](variants/{v}/train/curves.png)" for v in study.variants.run) + ".\n"]
    return "".join(lines)


def _plots(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from templearn.atomic import save_figure

    names = [r["variant"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.1 * len(rows) + 2, 3.6))
    ax.bar(x - 0.2, [r["all"]["f1"] for r in rows], 0.4, label="F1")
    ax.bar(x + 0.2, [r["mask"]["f1"] for r in rows], 0.4, label="F1 with mask")
    known = [(i, r["paper"][0]) for i, r in enumerate(rows) if r["paper"][0] is not None]
    if known:
        ax.plot([i - 0.2 for i, _ in known], [v for _, v in known], "kx", ms=9, label="paper")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.legend(frameon=False)
    fig.tight_layout()
    save_figure(fig, out / "f1_bars.png", bbox_inches="tight")
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, key, title in ((axes[0], "all", "without mask"), (axes[1], "mask", "with mask")):
        for r in rows:
            c = r[key]["curve"]
            ax.plot(c["recall"], c["precision"], label=r["variant"], ls="--" if r["variant"] == "template_matching" else "-")
        ax.set_xlabel("recall")
        ax.set_title(title)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("precision")
    axes[1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "pr_curves.png", bbox_inches="tight")
    plt.close(fig)
