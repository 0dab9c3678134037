"""The stage graph of a run: every step as the exact stage command line it runs.

The same graph is written in Nextflow in ``pipeline.nf``; both call the stage CLIs with the same
options, so a run folder made here and a Nextflow ``--outdir`` hold the same files. Paths in the
commands are relative to the run folder (the steps run with it as working directory), so the
ledger's record of a step does not depend on where the run folder lives.

Layout of a run folder (``<sample>`` = ``sample_000``..., ``<tomo>`` = ``<sample>_cKK`` for grid
condition KK)::

    grid/grid.json                         templearn-parakeet-sim grid
    nma/<target>/variants.csv              templearn-nma variants
    tetris/<sample>/sample.json            templearn-tetris pack
    simulate/<tomo>/tilt_series.mrc        templearn-parakeet-sim simulate
    reconstruct/<tomo>/tomogram.mrc        templearn-imod-recon reconstruct
    targets/<tomo>/targets.mrc             templearn-deepfinder-train targets
    train/model.h5                         templearn-deepfinder-train train
    finetune/model.h5                      templearn-deepfinder-train finetune (with finetune.tomograms)
    pick/<tomo>/candidates.csv             templearn-pick-eval pick     (test and experimental tomograms;
                                           exp_<name>_finetuned: the fine-tuned model's picks)
    match/<tomo>/candidates.csv                templearn-pick-eval match    (template-matching baseline)
    evaluate/report.json                   templearn-pick-eval evaluate (the simulated test set: learning,
                                           matching as baseline)
    evaluate_exp/<name>[_finetuned]/report.json   each annotated experimental tomogram on its own
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import RunConfig, randomized

# Step kinds, in graph order, and the stage (console script templearn-<stage>) each one calls.
KINDS = {
    "grid": "parakeet-sim",
    "nma": "nma",
    "tetris": "tetris",
    "simulate": "parakeet-sim",
    "reconstruct": "imod-recon",
    "targets": "deepfinder-train",
    "train": "deepfinder-train",
    "finetune": "deepfinder-train",
    "pick": "pick-eval",
    "match": "pick-eval",
    "evaluate": "pick-eval",
}
PICKS_FILE = "candidates.csv"  # every candidate with the accepted flag: evaluate reports both


@dataclass
class Step:
    """One stage command. ``argv[0]`` is the stage's console script; paths are run-folder relative."""

    id: str                       # e.g. "tetris/sample_000"
    kind: str                     # a key of KINDS
    argv: list[str]
    inputs: list[str]             # files this step reads (run-folder relative or absolute)
    outputs: list[str]            # files it must leave behind
    deps: list[str] = field(default_factory=list)   # ids of the steps that make its inputs
    meta: dict = field(default_factory=dict)        # for the report (sample, condition, role)

    @property
    def stage(self) -> str:
        return KINDS[self.kind]

    @property
    def out_dir(self) -> str:
        return self.id


def sample_names(cfg: RunConfig) -> list[str]:
    return [f"sample_{i:03d}" for i in range(cfg.tetris.n_samples)]


def split_samples(cfg: RunConfig) -> dict[str, list[str]]:
    """train / val / test: the last ``split.test`` samples are held out, the ones before them validate."""
    names = sample_names(cfg)
    n_test, n_val = cfg.split.test, cfg.split.val
    test = names[len(names) - n_test:] if n_test else []
    val = names[len(names) - n_test - n_val:len(names) - n_test] if n_val else []
    train = names[:len(names) - n_test - n_val]
    return {"train": train, "val": val, "test": test}


def tomograms(cfg: RunConfig) -> list[tuple[str, int, str]]:
    """(sample, condition, tomo id) for every simulated tomogram."""
    conds = cfg.condition_indices()
    out = []
    for i, s in enumerate(sample_names(cfg)):
        pick = conds if cfg.simulation.pairing == "all" else [conds[i % len(conds)]]
        out += [(s, k, f"{s}_c{k:02d}") for k in pick]
    return out


def tomogram_sample(cfg: RunConfig, sample: str, tomo: str) -> str:
    """The manifest of what tomogram ``tomo`` holds: its sample's, or, randomized, the one its
    simulate step wrote (the molecules in its slab): its targets and its truth."""
    return f"simulate/{tomo}/sample.json" if randomized(cfg) else f"tetris/{sample}/sample.json"


def _opt(argv: list[str], flag: str, value) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        argv.append(flag if value else f"--no-{flag[2:]}")
    elif isinstance(value, (list, tuple)):
        argv += [flag, *map(_num, value)]
    else:
        argv += [flag, _num(value)]


def _rep(flag: str, values) -> list[str]:
    """A list option as Typer takes it: the flag repeated before each value."""
    out: list[str] = []
    for v in values:
        out += [flag, str(v)]
    return out


def _num(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if abs(v) < 1e15 else repr(v)
    return str(v)


def build(cfg: RunConfig) -> list[Step]:
    """All steps of a run, in an order where every step comes after its dependencies."""
    steps: list[Step] = []
    seed = cfg.seed

    # grid: the 48 randomization conditions (indexed); simulate picks one by --condition.
    grid = ["templearn-parakeet-sim", "grid", "--out", "grid/grid.json"]
    grid_inputs = []
    if cfg.simulation.grid_config:
        grid += ["--config", cfg.simulation.grid_config]
        grid_inputs.append(cfg.simulation.grid_config)
    _opt(grid, "--domain", cfg.simulation.domain)
    if cfg.simulation.randomize:
        grid.append("--randomize")
    steps.append(Step("grid", "grid", grid, grid_inputs, ["grid/grid.json"]))

    # nma: flexible variants of every target's templates.
    variants: dict[str, str] = {}
    if cfg.nma.enabled:
        for t in cfg.targets:
            sid = f"nma/{t.name}"
            argv = ["templearn-nma", "variants", *t.templates, "--out", sid]
            _opt(argv, "--n-variants", cfg.nma.n_variants)
            _opt(argv, "--amplitude", cfg.nma.amplitude)
            _opt(argv, "--n-modes", cfg.nma.n_modes)
            _opt(argv, "--cutoff", cfg.nma.cutoff)
            _opt(argv, "--seed", seed)
            steps.append(Step(sid, "nma", argv, _files(t.templates), [f"{sid}/variants.csv"],
                              meta={"target": t.name}))
            variants[t.name] = f"{sid}/variants.csv"

    # tetris: one crowded sample per seed.
    for i, s in enumerate(sample_names(cfg)):
        sid = f"tetris/{s}"
        argv = ["templearn-tetris", "pack"]
        inputs = []
        deps = []
        for t in cfg.targets:
            if len(cfg.targets) == 1:
                argv += _rep("--target", t.templates) + ["--target-name", t.name]
            else:  # several target classes: NAME=SPEC names each template's class
                argv += _rep("--target", [f"{t.name}={spec}" for spec in t.templates])
            inputs += _files(t.templates)
            if t.name in variants:
                argv += ["--variants", variants[t.name]]
                inputs.append(variants[t.name])
                deps.append(f"nma/{t.name}")
        if cfg.distractors:
            argv += _rep("--distractor", cfg.distractors)
            inputs += _files(cfg.distractors)
        if cfg.distractor_list:
            argv += ["--distractor-list", cfg.distractor_list]
            inputs.append(cfg.distractor_list)
        argv += ["--out", sid, "--name", s]
        tt = cfg.tetris
        _opt(argv, "--box", tt.box)
        _opt(argv, "--voxel-size", tt.voxel_size)
        _opt(argv, "--resolution", tt.resolution)
        _opt(argv, "--ratio", tt.ratio)
        _opt(argv, "--dilation", tt.dilation)
        _opt(argv, "--max-molecules", tt.max_molecules)
        _opt(argv, "--max-fraction", tt.max_fraction)
        # the stage draws the sample's crowding from the range with its seed (recorded in sample.json)
        pf = tt.protein_fraction
        _opt(argv, "--protein-fraction", pf if isinstance(pf, (int, float)) else None)
        _opt(argv, "--protein-fraction-range", None if pf is None or isinstance(pf, (int, float)) else pf)
        _opt(argv, "--seed", seed + i)
        argv += tt.extra_args
        steps.append(Step(sid, "tetris", argv, inputs, [f"{sid}/sample.json"], deps, meta={"sample": s}))

    # simulate -> reconstruct -> targets, for every (sample, condition).
    split = split_samples(cfg)
    index = {s: i for i, s in enumerate(sample_names(cfg))}
    drawn = randomized(cfg)
    for s, k, tomo in tomograms(cfg):
        manifest = f"tetris/{s}/sample.json"
        sim = f"simulate/{tomo}"
        argv = ["templearn-parakeet-sim", "simulate", manifest, "--out", sim,
                "--engine", cfg.simulation.engine, "--grid", "grid/grid.json", "--condition", str(k)]
        _opt(argv, "--pixel-size", cfg.simulation.pixel_size)
        _opt(argv, "--seed", seed + 1000 * (index[s] + 1) + k)   # stable when conditions are added
        if cfg.simulation.engine == "parakeet":
            _opt(argv, "--device", cfg.simulation.device)
        argv += cfg.simulation.extra_args
        meta = {"sample": s, "condition": k, "tomo": tomo}
        sim_out = [f"{sim}/tilt_series.mrc", f"{sim}/tilt_series.tlt", f"{sim}/acquisition.json"]
        steps.append(Step(sim, "simulate", argv, [manifest, "grid/grid.json"],
                          sim_out + ([f"{sim}/sample.json"] if drawn else []), [f"tetris/{s}", "grid"], meta))

        rec = f"reconstruct/{tomo}"
        argv = ["templearn-imod-recon", "reconstruct", f"{sim}/tilt_series.mrc", "--out", rec,
                "--tlt", f"{sim}/tilt_series.tlt", "--acquisition", f"{sim}/acquisition.json"]
        r = cfg.reconstruction
        _opt(argv, "--voxel-size", r.voxel_size)
        _opt(argv, "--thickness", r.thickness)
        _opt(argv, "--radial", r.radial)
        _opt(argv, "--engine", r.engine)
        argv += r.extra_args
        steps.append(Step(rec, "reconstruct", argv,
                          [f"{sim}/tilt_series.mrc", f"{sim}/tilt_series.tlt", f"{sim}/acquisition.json"],
                          [f"{rec}/tomogram.mrc"], [sim], meta))

        if s in split["test"] or not cfg.training.enabled:
            continue  # held out: picked and evaluated, never trained on
        tg = f"targets/{tomo}"
        held = tomogram_sample(cfg, s, tomo)   # randomized: the molecules simulate kept in the slab
        argv = ["templearn-deepfinder-train", "targets", held, "--tomogram", f"{rec}/tomogram.mrc",
                "--out", tg, "--mode", cfg.training.mode]
        _opt(argv, "--radius", cfg.training.radius)
        if len(cfg.targets) > 1:  # label k = the k-th target, the same in every sample
            argv += _rep("--target", [t.name for t in cfg.targets])
        steps.append(Step(tg, "targets", argv, [held, f"{rec}/tomogram.mrc"], [f"{tg}/targets.mrc"],
                          [f"tetris/{s}", rec] + ([sim] if drawn else []), meta))

    if not cfg.training.enabled:
        return steps  # a simulation-only run: samples, tilt series, tomograms
    # train on the training samples, validate on the validation samples.
    argv = ["templearn-deepfinder-train", "train"]
    inputs, deps, val = [], [], []
    for s, k, tomo in tomograms(cfg):
        if s in split["train"]:
            argv += ["--tomogram", f"reconstruct/{tomo}/tomogram.mrc", "--targets", f"targets/{tomo}/targets.mrc"]
        elif s in split["val"]:
            val += ["--val-tomogram", f"reconstruct/{tomo}/tomogram.mrc", "--val-targets", f"targets/{tomo}/targets.mrc"]
        else:
            continue
        inputs += [f"reconstruct/{tomo}/tomogram.mrc", f"targets/{tomo}/targets.mrc"]
        deps += [f"reconstruct/{tomo}", f"targets/{tomo}"]
    argv += val + ["--out", "train"]
    tr = cfg.training
    for flag, v in (("--epochs", tr.epochs), ("--steps", tr.steps), ("--patch", tr.patch),
                    ("--batch", tr.batch), ("--shift", tr.shift), ("--seed", seed)):
        _opt(argv, flag, v)
    _opt(argv, "--cluster-radius", cfg.picking.radius)   # calibrates the default cut for this bandwidth
    argv += tr.extra_args
    steps.append(Step("train", "train", argv, inputs, ["train/model.h5"], deps))
    models = [("", "train")]                    # (tomogram-name suffix, the step whose model picks)
    ft = cfg.finetune
    if ft.tomograms:
        argv = ["templearn-deepfinder-train", "finetune", "--weights", "train/model.h5"]
        for a in ft.tomograms:
            argv += ["--tomogram", a.tomogram, "--picks", a.picks]
        argv += ["--out", "finetune"]
        _opt(argv, "--contrast", ft.tomograms[0].contrast if ft.tomograms[0].contrast != "dark" else None)
        for flag, v in (("--epochs", ft.epochs), ("--steps", ft.steps), ("--patch", tr.patch),
                        ("--batch", tr.batch), ("--shift", tr.shift), ("--seed", seed)):
            _opt(argv, flag, v)
        argv += ft.extra_args
        steps.append(Step("finetune", "finetune", argv,
                          ["train/model.h5"] + [f for a in ft.tomograms for f in (a.tomogram, a.picks)],
                          ["finetune/model.h5"], ["train"]))
        models.append(("_finetuned", "finetune"))

    # pick the held-out tomograms (and experimental ones); template matching on the same ones.
    learning: list[tuple[str, str, str, str]] = []   # (picks, truth, pick step id, tomogram): simulated test set
    matching: list[tuple[str, str, str, str]] = []
    exp_evals: list[Step] = []
    template = cfg.template_matching.template or cfg.targets[0].templates[0]
    template_target = cfg.targets[0].templates[0]
    tests = [(tomo, f"reconstruct/{tomo}/tomogram.mrc", tomogram_sample(cfg, s, tomo), None, [f"reconstruct/{tomo}"], s, k)
             for s, k, tomo in tomograms(cfg) if s in split["test"]]
    tests += [(f"exp_{e.name}", e.tomogram, e.truth, e.mask, [], None, None) for e in cfg.experimental]
    contrast = {f"exp_{e.name}": e.contrast for e in cfg.experimental if e.contrast != "dark"}
    for tomo, tomogram, truth, mask, tdeps, s, k in tests:
        meta = {"sample": s, "condition": k, "tomo": tomo}
        experimental = s is None
        picked = []   # (picks file, step id, suffix) of each model
        for suffix, model in (models if experimental else models[:1]):   # fine-tuned on real data only
            pid = f"pick/{tomo}{suffix}"
            argv = ["templearn-pick-eval", "pick", tomogram, "--weights", f"{model}/model.h5", "--out", pid]
            _opt(argv, "--radius", cfg.picking.radius)
            _opt(argv, "--min-size", cfg.picking.min_size)
            _opt(argv, "--patch", cfg.picking.patch)
            _opt(argv, "--crop", cfg.picking.crop)
            _opt(argv, "--overlap", cfg.picking.overlap)
            _opt(argv, "--mask", mask)
            _opt(argv, "--contrast", contrast.get(tomo))
            argv += cfg.picking.extra_args
            steps.append(Step(pid, "pick", argv, [tomogram, f"{model}/model.h5"] + ([mask] if mask else []),
                              [f"{pid}/{PICKS_FILE}"], tdeps + [model], {**meta, "model": model}))
            picked.append((f"{pid}/{PICKS_FILE}", pid, suffix))
        baseline = None
        if cfg.template_matching.enabled:
            mid = f"match/{tomo}"
            tm = cfg.template_matching
            argv = ["templearn-pick-eval", "match", tomogram, "--template", template, "--out", mid]
            _opt(argv, "--angular-step", tm.angular_step)
            _opt(argv, "--time-budget", tm.time_budget)
            _opt(argv, "--n-peaks", tm.n_peaks)
            _opt(argv, "--mask", mask)
            _opt(argv, "--contrast", contrast.get(tomo))
            argv += tm.extra_args
            steps.append(Step(mid, "match", argv, [tomogram] + _files([template]) + ([mask] if mask else []),
                              [f"{mid}/{PICKS_FILE}"], list(tdeps), meta))
            baseline = (f"{mid}/{PICKS_FILE}", mid)
        if not truth:
            continue
        if not experimental:
            learning.append((picked[0][0], truth, picked[0][1], tomogram))
            if baseline:
                matching.append((baseline[0], truth, baseline[1], tomogram))
            continue
        # an experimental tomogram is reported on its own: its own table, threshold and plots
        for picks, pid, suffix in picked:
            eid = f"evaluate_exp/{tomo.removeprefix('exp_')}{suffix}"
            argv = ["templearn-pick-eval", "evaluate", "--picks", picks, "--truth", truth, "--tomogram", tomogram]
            inputs, deps = [picks, truth, tomogram], [pid]
            if baseline:
                argv += ["--baseline", baseline[0]]
                inputs.append(baseline[0])
                deps.append(baseline[1])
            if mask:
                argv += ["--mask", mask]
                inputs.append(mask)
            argv += ["--out", eid]
            _opt(argv, "--distance", cfg.evaluation.distance)
            if cfg.evaluation.distance is None:   # annotations carry no masses: the target's radius
                argv += ["--template", template_target]
                inputs += _files([template_target])
            exp_evals.append(Step(eid, "evaluate", argv, inputs, [f"{eid}/report.json"], deps,
                                  {**meta, "model": "finetune" if suffix else "train"}))

    # one evaluation: Template Learning's picks, with template matching's as the baseline
    # (evaluate pairs --picks, --truth and --baseline by position).
    if learning:
        argv = ["templearn-pick-eval", "evaluate", *_rep("--picks", [p for p, _, _, _ in learning]),
                *_rep("--truth", [t for _, t, _, _ in learning]), *_rep("--tomogram", [m for _, _, _, m in learning])]
        inputs = [p for p, _, _, _ in learning] + [t for _, t, _, _ in learning] + [m for _, _, _, m in learning]
        deps = [d for _, _, d, _ in learning]
        if matching:
            argv += _rep("--baseline", [p for p, _, _, _ in matching])
            inputs += [p for p, _, _, _ in matching]
            deps += [d for _, _, d, _ in matching]
        argv += ["--out", "evaluate"]
        _opt(argv, "--distance", cfg.evaluation.distance)
        deps += sorted({"/".join(t.split("/")[:2]) for _, t, _, _ in learning if t.startswith(("tetris/", "simulate/"))})
        steps.append(Step("evaluate", "evaluate", argv, inputs, ["evaluate/report.json"], deps))
    return steps + exp_evals


def _files(specs: list[str]) -> list[str]:
    """The specs that are files (absolute paths); PDB IDs are resolved by the stage itself."""
    from pathlib import Path

    return [s for s in specs if Path(s).is_absolute()]


def select(steps: list[Step], only: str | None = None, until: str | None = None) -> tuple[list[Step], set[str]]:
    """The steps a run considers, and the ids it must rerun.

    ``only``: the steps of one kind or stage (rerun, forced) plus everything they need (run only
    when out of date). ``until``: the steps of one kind or stage and everything they need, none
    forced (run the graph up to a stage). Neither: every step.
    """
    if only is None and until is None:
        return steps, set()
    name = only if only is not None else until
    chosen = {s.id for s in steps if s.kind == name or s.stage == name}
    if not chosen:
        kinds = sorted(set(KINDS) | set(KINDS.values()))
        flag = "--only" if only is not None else "--until"
        raise ValueError(f"{flag} {name!r}: no such stage or step (choose from {', '.join(kinds)})")
    by_id = {s.id: s for s in steps}
    need = set(chosen)
    todo = list(chosen)
    while todo:
        for d in by_id[todo.pop()].deps:
            if d not in need:
                need.add(d)
                todo.append(d)
    return [s for s in steps if s.id in need], (chosen if only is not None else set())
