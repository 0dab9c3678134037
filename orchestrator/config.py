"""The run config: one YAML file describing a whole Template Learning run.

Every section maps onto one stage's command-line options (see ``orchestrator/graph.py`` for the
exact command lines, and ``pipeline.nf`` for the same graph in Nextflow). Lengths are in Å,
angles in degrees. Loaded with :func:`templearn.config.load`, so a typo names the key::

    name: quickstart
    seed: 0
    targets:
      - name: ribosome
        templates: [6zu5]          # paths or PDB IDs (mirror folder, else downloaded)
    distractors: [7pbl, 3o21, 7cth]
    nma: {n_variants: 2, amplitude: 150}
    tetris: {n_samples: 4, box: [24, 80, 80]}
    simulation: {engine: fast, conditions: [0, 47]}
    reconstruction: {voxel_size: 16}
    training: {epochs: 2, steps: 4}
    split: {val: 1, test: 1}
    picking: {radius: 3}
    evaluation: {distance: 120}
    template_matching: {enabled: true}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from templearn.config import load
from templearn.errors import TemplearnError

MAX_SAMPLES = 100_000
PROTEIN_FRACTION = (0.05, 0.30)   # default crowding range of the tetris samples
N_GRID = 48  # the paper's randomization grid (Extended Data Tab. 1): 3 defoci x 2 x 2 x 2 x 2, one domain


@dataclass
class Target:
    name: str
    templates: list[str]                     # paths or PDB IDs


@dataclass
class NMA:
    enabled: bool = True
    n_variants: int = 25                     # paper: 25 per ribosome PDB, 100 per nucleosome PDB
    amplitude: float = 100.0                 # paper: 150 ribosomes, 100 nucleosomes
    n_modes: int = 20
    cutoff: float = 15.0                     # Å, elastic network cutoff


@dataclass
class Tetris:
    n_samples: int = 4
    box: list[int] = field(default_factory=lambda: [64, 192, 192])   # [nz, ny, nx] voxels (paper)
    voxel_size: float = 16.0                 # Å (paper: 16)
    resolution: float = 32.0                 # Å (paper: 32)
    ratio: float = 5.0                       # distractors per template (ribosome 5, nucleosome 2)
    dilation: int = 1                        # voxels; compactness of the packing
    max_molecules: int | None = None
    max_fraction: float | None = None        # of the box covered by footprints
    # Crowding: each sample's protein fraction (molecules' mass x 1.21 Å³/Da over the box) drawn
    # uniformly from [lo, hi] with its seed, from the paper's density (~0.065 at saturation) to
    # cytoplasm-like; one number: every sample at it; null: saturate (the paper's density).
    protein_fraction: list[float] | float | None = field(default_factory=lambda: list(PROTEIN_FRACTION))
    extra_args: list[str] = field(default_factory=list)   # passed through to `templearn-tetris pack`


@dataclass
class Simulation:
    engine: Literal["fast", "parakeet"] = "fast"
    pixel_size: float = 4.0                  # Å
    device: Literal["cpu", "gpu"] = "cpu"
    grid_config: str | None = None           # YAML for `templearn-parakeet-sim grid --config`
    # optical domain of the grid: Volta phase plate (0/-0.5/-1 µm), defocus only (-2.5/-3.25/-4 µm),
    # or both (96 conditions); default: the grid stage's (phase_plate, or the grid config's)
    domain: Literal["phase_plate", "defocus", "both"] | None = None
    conditions: list[int] | Literal["all"] = "all"   # grid indices (0..47) or every condition
    # "all": every sample under every condition; "cycle": sample i under condition i mod n
    pairing: Literal["all", "cycle"] = "all"
    # draw defocus, dose, ice, contrast and a slab (vacuum above and below) per tilt series
    # (`grid --randomize`; the grid config's `randomize:` ranges, else the defaults); the grid then
    # crosses optical domain x tilt range x tilt step only (4 conditions per domain)
    randomize: bool = False
    extra_args: list[str] = field(default_factory=list)


@dataclass
class Reconstruction:
    voxel_size: float = 16.0                 # Å (paper: 13 ribosomes, 8 nucleosomes)
    thickness: float | None = None           # Å; default: from the acquisition record
    radial: list[float] = field(default_factory=lambda: [0.5, 0.5])
    engine: Literal["templearn", "imod"] = "templearn"
    extra_args: list[str] = field(default_factory=list)


@dataclass
class Training:
    enabled: bool = True                     # false: simulate only (the graph ends at reconstruction)
    mode: Literal["shape", "sphere"] = "shape"
    radius: float | None = None              # Å, sphere targets
    epochs: int = 100                        # paper, Tab. 2
    steps: int = 100
    patch: int = 48
    batch: int = 25
    shift: int = 13
    extra_args: list[str] = field(default_factory=list)


@dataclass
class Split:
    val: int = 1                             # the last samples: validation during training
    test: int = 1                            # ... and held out for picking + evaluation


@dataclass
class Picking:
    radius: float = 10.0                     # MeanShift bandwidth, voxels (ribosome 10, nucleosome 6)
    min_size: int | None = None              # cluster size threshold, voxels
    patch: int | None = None                 # network input cube; default: the model card's
    crop: int | None = None                  # voxels dropped from each patch border (stage default 8)
    overlap: int | None = None               # overlap of neighbouring patches (>= 2*crop+1)
    extra_args: list[str] = field(default_factory=list)


@dataclass
class Evaluation:
    distance: float | None = None            # Å, matching distance; default: the stage's


@dataclass
class TemplateMatching:
    enabled: bool = True
    template: str | None = None              # default: the first target's first template
    angular_step: float | None = None        # degrees; default: the particle's Crowther step, coarsened to fit time_budget
    time_budget: float | None = None         # minutes (2-core CPU) the default step must fit in; default: the stage's (30)
    n_peaks: int | None = None
    extra_args: list[str] = field(default_factory=list)


@dataclass
class Experimental:
    """A real tomogram to pick with the trained model (and evaluate when annotations are given)."""

    name: str
    tomogram: str
    truth: str | None = None                 # picks file (.star/.csv/.xml/.json) or sample.json
    mask: str | None = None
    contrast: Literal["dark", "bright"] = "dark"   # bright: an inverted tomogram


@dataclass
class Annotated:
    """An experimental tomogram with a few picks of the target, to fine-tune on (never scored)."""

    name: str
    tomogram: str
    picks: str                               # .star, .csv, .xml (DeepFinder) or .json (copick)
    contrast: Literal["dark", "bright"] = "dark"


@dataclass
class Finetune:
    """The paper's second half: continue the trained model on annotated experimental tomograms;
    the experimental tomograms are then picked by both models and reported side by side."""

    tomograms: list[Annotated] = field(default_factory=list)   # empty: no fine-tuning step
    epochs: int = 10                         # paper: 10 or 30
    steps: int = 10
    extra_args: list[str] = field(default_factory=list)


@dataclass
class RunConfig:
    targets: list[Target]
    distractors: list[str] = field(default_factory=list)
    distractor_list: str | None = None       # CSV of distractors (paper_distractors.csv)
    name: str = "templearn"
    seed: int = 0
    nma: NMA = field(default_factory=NMA)
    tetris: Tetris = field(default_factory=Tetris)
    simulation: Simulation = field(default_factory=Simulation)
    reconstruction: Reconstruction = field(default_factory=Reconstruction)
    training: Training = field(default_factory=Training)
    split: Split = field(default_factory=Split)
    picking: Picking = field(default_factory=Picking)
    evaluation: Evaluation = field(default_factory=Evaluation)
    template_matching: TemplateMatching = field(default_factory=TemplateMatching)
    experimental: list[Experimental] = field(default_factory=list)
    finetune: Finetune = field(default_factory=Finetune)

    def condition_indices(self) -> list[int]:
        c = self.simulation.conditions
        return list(range(grid_size(self))) if c == "all" else list(c)


def grid_size(cfg: RunConfig) -> int:
    """How many conditions the grid step will write (the grid stage's own expansion, so the
    fan-out is known before anything runs)."""
    try:
        from templearn.stages.parakeet_sim.grid import expand, load_spec
    except ImportError:  # the stage is not installed: the paper's grid (randomized: domain x 2 ranges x 2 steps)
        n = 4 if cfg.simulation.randomize else N_GRID
        return 2 * n if cfg.simulation.domain == "both" else n
    try:
        return len(expand(load_spec(cfg.simulation.grid_config, cfg.simulation.domain, cfg.simulation.randomize)))
    except (TemplearnError, ValueError) as exc:
        raise TemplearnError(f"simulation.grid_config: {exc}", cfg.simulation.grid_config) from None


def randomized(cfg: RunConfig) -> bool:
    """Whether the grid draws each tilt series' conditions (then simulate writes the sample.json
    of what it simulated, which the targets and the truth of that tomogram are made from)."""
    if cfg.simulation.randomize:
        return True
    if not cfg.simulation.grid_config:
        return False
    try:
        from templearn.stages.parakeet_sim.grid import load_spec
    except ImportError:
        return False
    try:
        return load_spec(cfg.simulation.grid_config).randomize is not None
    except (TemplearnError, ValueError) as exc:
        raise TemplearnError(f"simulation.grid_config: {exc}", cfg.simulation.grid_config) from None


def _max_protein_fraction() -> float:
    """The most crowding the tetris stage can pack (its own limit, so both say the same)."""
    try:
        from templearn.stages.tetris.sample import MAX_PROTEIN_FRACTION
    except ImportError:  # the stage is not installed: it checks for itself
        return 1.0
    return MAX_PROTEIN_FRACTION


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read and check a run config; relative paths in it are taken relative to the config file."""
    path = Path(path)
    return prepare(load(path, RunConfig), path)


def prepare(cfg: RunConfig, path: Path) -> RunConfig:
    """Check ``cfg`` (read from ``path``) and make its paths absolute, relative to that file."""
    base = path.resolve().parent
    if cfg.simulation.grid_config:
        cfg.simulation.grid_config = _file(cfg.simulation.grid_config, base, path, "simulation.grid_config")
    _check(cfg, path)
    for t in cfg.targets:
        t.templates = [_spec(s, base) for s in t.templates]
    cfg.distractors = [_spec(s, base) for s in cfg.distractors]
    if cfg.distractor_list:
        cfg.distractor_list = _file(cfg.distractor_list, base, path, "distractor_list")
    if cfg.template_matching.template:
        cfg.template_matching.template = _spec(cfg.template_matching.template, base)
    for e in cfg.experimental:
        e.tomogram = _file(e.tomogram, base, path, f"experimental.{e.name}.tomogram")
        if e.truth:
            e.truth = _file(e.truth, base, path, f"experimental.{e.name}.truth")
        if e.mask:
            e.mask = _file(e.mask, base, path, f"experimental.{e.name}.mask")
    for a in cfg.finetune.tomograms:
        a.tomogram = _file(a.tomogram, base, path, f"finetune.{a.name}.tomogram")
        a.picks = _file(a.picks, base, path, f"finetune.{a.name}.picks")
    scored = {e.tomogram: e.name for e in cfg.experimental}
    for a in cfg.finetune.tomograms:   # annotations a model learned from say nothing about it
        if a.tomogram in scored:
            raise TemplearnError(f"finetune.{a.name}: its tomogram is also experimental.{scored[a.tomogram]}: "
                                 "a tomogram fine-tuned on is never scored; pick another to evaluate on", path)
    return cfg


def _check(cfg: RunConfig, path: Path) -> None:
    def bad(msg: str):
        raise TemplearnError(msg, path)

    if not cfg.targets:
        bad("targets: give at least one target with its templates")
    names = [t.name for t in cfg.targets]
    if len(set(names)) != len(names):
        bad(f"targets: names must differ, got {names}")
    for t in cfg.targets:
        if not t.templates:
            bad(f"targets.{t.name}.templates is empty")
        if not t.name.replace("_", "").replace("-", "").isalnum():
            bad(f"targets: name {t.name!r} must be letters, digits, '-' or '_'")
    if not cfg.distractors and not cfg.distractor_list and cfg.tetris.ratio > 0:
        bad("give distractors (a list) or distractor_list (a CSV), or set tetris.ratio: 0 for none")
    if not 1 <= cfg.tetris.n_samples <= MAX_SAMPLES:   # the graph holds a few steps per sample
        bad(f"tetris.n_samples must be 1..{MAX_SAMPLES}, got {cfg.tetris.n_samples}")
    if len(cfg.tetris.box) != 3 or min(cfg.tetris.box) < 8:
        bad(f"tetris.box must be [nz, ny, nx] of at least 8 voxels each, got {cfg.tetris.box}")
    pf = cfg.tetris.protein_fraction
    if pf is not None:
        span = [pf, pf] if isinstance(pf, (int, float)) else list(pf)
        top = _max_protein_fraction()
        if len(span) != 2 or not 0 < span[0] <= span[1] <= top:
            bad(f"tetris.protein_fraction must be a fraction or a range [lo, hi] with 0 < lo <= hi <= {top:g}, got {pf}")
    n_train = cfg.tetris.n_samples - cfg.split.val - cfg.split.test
    if cfg.split.val < 0 or cfg.split.test < 0 or (n_train < 1 and cfg.training.enabled):
        bad(f"split: tetris.n_samples={cfg.tetris.n_samples} leaves no training sample "
            f"after val={cfg.split.val} and test={cfg.split.test}")
    conds = cfg.condition_indices()
    if not conds:
        bad("simulation.conditions is empty")
    n_grid = grid_size(cfg)
    for k in conds:
        if not 0 <= k < n_grid:
            bad(f"simulation.conditions: {k} is not a grid index 0..{n_grid - 1}")
    if len(set(conds)) != len(conds):
        bad(f"simulation.conditions lists an index twice: {conds}")
    if cfg.training.mode == "sphere" and cfg.training.radius is None:
        bad("training.radius (Å) is needed with training.mode: sphere")
    if cfg.nma.enabled and cfg.nma.n_variants < 1:
        bad("nma.n_variants must be >= 1 (or set nma.enabled: false)")
    names = [e.name for e in cfg.experimental]
    if len(set(names)) != len(names):
        bad(f"experimental: names must differ, got {names}")
    ft = cfg.finetune
    if ft.tomograms and not cfg.training.enabled:
        bad("finetune needs training (training.enabled: true)")
    if len({a.contrast for a in ft.tomograms}) > 1:
        bad("finetune.tomograms: all must have the same contrast (one fine-tuning command)")
    if ft.tomograms and (ft.epochs < 1 or ft.steps < 1):
        bad(f"finetune.epochs and finetune.steps must be >= 1, got {ft.epochs} and {ft.steps}")


def _spec(spec: str, base: Path) -> str:
    """A structure spec: a PDB ID stays as it is; a path becomes absolute ($VARS expanded)."""
    from templearn.structures import is_pdb_id

    s = os.path.expanduser(os.path.expandvars(spec))
    if is_pdb_id(s) and not (base / s).exists():
        return s.lower()
    p = Path(s)
    return str(p if p.is_absolute() else (base / p).resolve())


def _file(spec: str, base: Path, cfg_path: Path, key: str) -> str:
    p = Path(os.path.expanduser(os.path.expandvars(spec)))
    p = p if p.is_absolute() else (base / p).resolve()
    if not p.is_file():
        raise TemplearnError(f"{key}: no such file {p}", cfg_path)
    return str(p)
