"""One crowded sample: structures -> maps -> Tetris packing -> manifest and volumes on disk.

The placement order keeps the target:distractor ratio exact: the next slot is a target while
``targets * ratio <= distractors`` so far, else a distractor. Each class draws from its own queue
of rounds (targets: every template and variant once; distractors: each with its copies per
round), shuffled per round with the seed. A molecule that fits nowhere is skipped and the next
one of the same class takes the slot; a structure skipped ``max_failures`` times (in different
orientations) is retired. The run stops when a class due next has no structure left (saturated),
at ``max_molecules``, at ``max_fraction`` of the box covered by footprints, or once the protein
fraction (the molecules' mass x 1.21 Å³/Da over the box volume) reaches ``protein_fraction``.

The footprint (what a molecule occupies) is by default the paper's: its map blurred by 2 voxels,
at or above the reference code's gray level 100, a halo that keeps molecules apart and
saturates a box at ~6-7 % protein as the paper's algorithm does. Denser targets are packed with
the molecules' own volumes (``footprint="auto"``).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from templearn.density import VOLUME_PER_DALTON, StructureMap, paste, structure_map
from templearn.errors import TemplearnError
from templearn.euler import random_euler
from templearn.manifest import Instance, Manifest, StructureEntry
from templearn.progress import track

from .distractors import Source, distractor_sources, target_sources, variant_sources
from .packing import CANDIDATES, GRAY_LEVEL, PAPER_CANDIDATES, Packer, core_radius, footprint_half, make_shape

OUTPUTS = ("sample.json", "occupancy.mrc", "instances.mrc", "classes.mrc", "density.mrc", "slices.png")


@dataclass
class PackResult:
    manifest: Manifest
    occupancy: np.ndarray      # int8 [z, y, x], 1 inside a core
    instances: np.ndarray      # int32, instance id
    classes: np.ndarray        # int8: 0 empty, 1..K target label, -1 distractor
    density: np.ndarray        # float32
    stats: dict = field(default_factory=dict)


class _Queue:
    """Structures of one class, drawn round after round, each round shuffled."""

    def __init__(self, sources: list[Source], rng: np.random.Generator):
        self.round = [s.key for s in sources for _ in range(s.copies)]
        self.rng = rng
        self.pending: list[str] = []
        self.retired: set[str] = set()
        self.keys = {s.key for s in sources}

    def alive(self) -> bool:
        return bool(self.round) and bool(self.keys - self.retired)

    def next(self) -> str | None:
        while self.alive():
            if not self.pending:
                self.pending = [self.round[i] for i in self.rng.permutation(len(self.round))][::-1]
            key = self.pending.pop()
            if key not in self.retired:
                return key
        return None


#: Footprints (``--footprint``): ``paper`` (the reference's: blurred map above ``gray_level``),
#: ``volume`` (the molecule's own volume: the densest packing), ``auto`` (``paper``, or ``volume``
#: for a protein-fraction target the paper's footprint cannot reach).
FOOTPRINTS = ("auto", "paper", "volume")
#: Above this protein fraction no packing of molecules' own volumes is possible (random close
#: packing of their footprints saturates at 0.64-0.70 of the box).
MAX_PROTEIN_FRACTION = 0.6


def protein_volume(smap: StructureMap) -> float:
    """A molecule's protein volume in Å³: its mass x 1.21 Å³/Da."""
    return smap.mass_kda * 1000.0 * VOLUME_PER_DALTON


def draw_protein_fraction(seed: int, lo: float, hi: float) -> float:
    """The sample's protein-fraction target, uniform in ``[lo, hi]``, from its own stream of ``seed``
    (so the packing's draws stay those of the seed)."""
    return float(np.random.default_rng([int(seed), 0x7E7]).uniform(lo, hi))


def pack(
    *,
    sources: list[Source],
    box=(64, 192, 192),
    voxel_size: float = 16.0,
    resolution: float = 32.0,
    ratio: float = 5.0,
    dilation: int = 1,
    sigma: float = 2.0,
    footprint: str = "auto",
    gray_level: float = GRAY_LEVEL,
    threshold: float | None = None,
    protein_fraction: float | None = None,
    protein_fraction_range=None,
    max_molecules: int | None = None,
    max_fraction: float | None = None,
    max_failures: int = 3,
    candidates: int | None = None,
    spread: bool | None = None,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    name: str = "sample",
) -> PackResult:
    """Pack ``sources`` into a box of ``box`` = ``[nz, ny, nx]`` voxels of ``voxel_size`` Å.

    ``footprint`` (see ``FOOTPRINTS``) is what a molecule occupies; ``protein_fraction`` stops the
    packing once the molecules' volume (mass x 1.21 Å³/Da) reaches that fraction of the box, or
    ``protein_fraction_range = (lo, hi)`` draws that target with the seed. ``spread`` (default:
    with a target or ``max_fraction``) grows the sample from random points rather than from its
    most crowded spots, so a partial packing is crowded alike everywhere.
    """
    box = [int(b) for b in box]
    _check(box, voxel_size, resolution, ratio, dilation, sigma, threshold, max_molecules, max_fraction, candidates)
    footprint = _check_footprint(footprint, threshold, gray_level)
    protein_fraction = _target(protein_fraction, protein_fraction_range, seed)
    targets = [s for s in sources if s.cls == "target"]
    if not targets:
        raise TemplearnError("no target structure given (--target)")
    t0 = time.monotonic()
    maps: dict[str, StructureMap] = {}
    for s in track(sources, "density maps"):
        maps[s.key] = structure_map(s.path, voxel_size, resolution, cache_dir=cache)
    t_maps = time.monotonic() - t0

    too_big = [s for s in sources if 2 * _radius_voxels(maps[s.key]) + 1 > max(box)]
    if len(too_big) == len(sources) or all(s in too_big for s in targets):
        big = min(targets, key=lambda s: _radius_voxels(maps[s.key]))
        raise TemplearnError(
            f"box {box} voxels of {voxel_size:g} Å is too small: target {big.key!r} spans "
            f"{2 * _radius_voxels(maps[big.key]) + 1} voxels", big.path)
    if spread is None:
        spread = max_fraction is not None or protein_fraction is not None
    # auto: the paper's footprint; a target beyond its saturation (or a box too thin for its
    # halo) is packed again with the molecules' own volumes, which reach cytoplasm-like crowding.
    # max_fraction alone keeps its meaning from before footprints had halos: the box fraction
    # covered by the molecules' own volumes.
    if footprint != "auto":
        tries = [footprint]
    elif max_fraction is not None and protein_fraction is None:
        tries = ["volume"]
    elif protein_fraction is not None and protein_fraction > _paper_reach(sources, maps, ratio, sigma, gray_level):
        tries = ["volume"]   # clearly beyond the halo: spare the paper try (~60 % of the time)
    else:
        tries = ["paper", "volume"]
    tried = []
    for kind in tries:
        result = _pack_once(sources, maps, box, kind, voxel_size=voxel_size, resolution=resolution, ratio=ratio,
                            dilation=dilation, sigma=sigma, gray_level=gray_level, threshold=threshold,
                            protein_fraction=protein_fraction, max_molecules=max_molecules,
                            max_fraction=max_fraction, max_failures=max_failures, candidates=candidates,
                            spread=spread, seed=seed, name=name)
        short = protein_fraction is not None and result.stats["protein_fraction"] < protein_fraction \
            and result.stats["stop"].startswith("saturated")   # not stopped by max_molecules/max_fraction
        if result.stats["targets"] and not short:
            break
        tried.append({"footprint": kind, "protein_fraction": result.stats["protein_fraction"],
                      "stop": result.stats["stop"]})
    if not result.stats["targets"]:
        raise TemplearnError(f"box {box} voxels of {voxel_size:g} Å is too small: no target fits in it")
    if short:
        raise TemplearnError(
            f"protein fraction {protein_fraction:.3g} cannot be reached in box {box}: the {kind} footprint "
            f"saturates at {result.stats['protein_fraction']:.3g}"
            + ("" if kind == "volume" else " (--footprint volume packs densest)"))
    result.manifest.params.update(protein_fraction_range=list(protein_fraction_range) if protein_fraction_range else None)
    result.stats["time_maps_s"] = round(t_maps, 3)
    if tried:
        result.stats["tried"] = tried   # footprints that fell short, before the one used
    return result


#: Box fraction that footprints cover at most when saturated (measured: ~0.5 with the paper's,
#: 0.64-0.70 with the molecules' own volumes): bounds what the paper footprint can hold.
FOOTPRINT_COVER = 0.7


def _paper_reach(sources, maps, ratio, sigma, gray_level) -> float:
    """An upper estimate of the protein fraction the paper footprint can hold: the molecules'
    own volume per footprint volume, weighted as they are drawn, times ``FOOTPRINT_COVER``."""
    from .packing import footprint as binarized

    share = {"target": 1.0 / (1.0 + ratio), "distractor": ratio / (1.0 + ratio)}
    copies = Counter()
    for s in sources:
        copies[s.cls] += s.copies
    own = fp = 0.0
    for s in sources:
        w = share[s.cls] * s.copies / copies[s.cls]
        smap = maps[s.key]
        own += w * protein_volume(smap)
        fp += w * binarized(smap.volume, smap, sigma=sigma, level=gray_level)[1].sum() * smap.voxel_size**3
    return FOOTPRINT_COVER * own / fp


def _pack_once(sources, maps, box, kind, *, voxel_size, resolution, ratio, dilation, sigma, gray_level, threshold,
               protein_fraction, max_molecules, max_fraction, max_failures, candidates, spread, seed,
               name) -> PackResult:
    """One packing with footprint ``kind`` (``paper`` or ``volume``)."""
    targets = [s for s in sources if s.cls == "target"]
    distractors = [s for s in sources if s.cls == "distractor"]
    level = gray_level if kind == "paper" else None
    thr = threshold if kind == "volume" else None
    if candidates is None:
        candidates = PAPER_CANDIDATES if kind == "paper" else CANDIDATES
    rng = np.random.default_rng(seed)
    margin = max(footprint_half(maps[s.key], sigma=sigma, level=level) for s in sources) + max(dilation, 0) + 1
    # Free distances matter up to the farthest a shell reaches (rotation changes a core's
    # radius by about a voxel, hence the +1.5).
    reach = max(core_radius(maps[s.key], sigma=sigma, threshold=thr, level=level) for s in sources) + dilation + 1.5
    packer = Packer(box, margin, rng, reach=reach, candidates=candidates, spread=spread)
    target_names = list(dict.fromkeys(s.target for s in targets))
    by_key = {s.key: s for s in sources}
    queues = {"target": _Queue(targets, rng), "distractor": _Queue(distractors, rng)}
    use_distractors = bool(distractors) and ratio > 0 and queues["distractor"].alive()
    box_volume = float(np.prod(box)) * voxel_size**3
    protein = 0.0

    instances_grid = np.zeros(box, np.int32)
    classes_grid = np.zeros(box, np.int8)
    density = np.zeros(box, np.float32)
    placed: list[Instance] = []
    counts = Counter()
    fails = Counter()
    skipped = 0
    stop = "saturated"
    t1 = time.monotonic()
    n_t = n_d = 0
    for _ in track(itertools.count(), "packing"):
        if max_molecules is not None and len(placed) >= max_molecules:
            stop = "max_molecules"
            break
        if max_fraction is not None and packer.fraction() >= max_fraction:
            stop = "max_fraction"
            break
        if protein_fraction is not None and protein / box_volume >= protein_fraction:
            stop = "protein_fraction"
            break
        cls = "target" if (not use_distractors or n_t * ratio <= n_d) else "distractor"
        key = queues[cls].next()
        if key is None:
            stop = f"saturated ({cls}s no longer fit)"
            break
        smap = maps[key]
        euler = random_euler(rng)
        shape = make_shape(smap, euler, dilation=dilation, sigma=sigma, threshold=thr, level=level)
        pos = packer.find(shape)
        if pos is None:
            skipped += 1
            fails[key] += 1
            if fails[key] >= max_failures:
                queues[cls].retired.add(key)
            continue
        packer.place(shape, pos)
        inst_id = len(placed) + 1
        corner = pos - shape.half
        paste(density, shape.block, corner, "add")
        paste(instances_grid, shape.core, corner, "set", inst_id)
        src = by_key[key]
        label = target_names.index(src.target) + 1 if src.cls == "target" else -1
        paste(classes_grid, shape.core, corner, "set", label)
        placed.append(Instance(inst_id, key, [float(v) for v in pos[::-1] * voxel_size],
                               [float(a) for a in euler]))
        protein += protein_volume(smap)
        counts[key] += 1
        if cls == "target":
            n_t += 1
        else:
            n_d += 1
    t_pack = time.monotonic() - t1

    structures = {}
    for s in sources:
        sm = maps[s.key]
        structures[s.key] = StructureEntry(
            path=os.path.abspath(s.path), cls=s.cls, target=s.target, template=s.template, variant=s.variant,
            center=[float(c) for c in sm.center], sha256=sm.sha256, n_atoms=sm.n_atoms,
            mass_kda=round(sm.mass_kda, 3),
        )
    fraction = protein / box_volume
    params = dict(voxel_size=voxel_size, resolution=resolution, ratio=ratio, dilation=dilation, sigma=sigma,
                  footprint=kind, gray_level=level, threshold=thr, protein_fraction=protein_fraction,
                  max_molecules=max_molecules, max_fraction=max_fraction, max_failures=max_failures,
                  candidates=candidates, spread=spread)
    manifest = Manifest(name=name, voxel_size=float(voxel_size), box=box, structures=structures,
                        instances=placed, targets=target_names, seed=seed, params=params,
                        protein_fraction=round(fraction, 6))
    occupancy = (instances_grid > 0).astype(np.int8)
    stats = {
        "protein_fraction": fraction,
        "protein_fraction_target": protein_fraction,
        "footprint": kind,
        "packing_fraction": float(occupancy.mean()),
        "molecules": len(placed),
        "targets": n_t,
        "distractors": n_d,
        "ratio_placed": (n_d / n_t) if n_t else None,
        "per_structure": dict(sorted(counts.items())),
        "skipped": skipped,
        "retired": sorted(queues["target"].retired | queues["distractor"].retired),
        "stop": stop,
        "time_packing_s": round(t_pack, 3),
        "molecules_per_minute": round(60 * len(placed) / t_pack, 1) if t_pack > 0 else None,
    }
    return PackResult(manifest, occupancy, instances_grid, classes_grid, density, stats)


def _check_footprint(footprint: str, threshold, gray_level) -> str:
    if footprint not in FOOTPRINTS:
        raise TemplearnError(f"--footprint must be one of {', '.join(FOOTPRINTS)}, got {footprint!r}")
    if threshold is not None:
        if footprint == "paper":
            raise TemplearnError("--threshold sets the volume footprint's cut; the paper footprint's is --gray-level")
        return "volume"
    if not gray_level > 0:
        raise TemplearnError(f"--gray-level must be positive (e2pdb2mrc units; the paper's is {GRAY_LEVEL:g}), got {gray_level}")
    return footprint


def _target(protein_fraction, protein_fraction_range, seed) -> float | None:
    """The protein-fraction target: given, drawn from the range with the seed, or None."""
    def ok(f, what):
        if not 0 < f <= MAX_PROTEIN_FRACTION:
            raise TemplearnError(f"{what} must lie in (0, {MAX_PROTEIN_FRACTION:g}] (molecules' own volumes pack "
                                 f"to at most ~0.65 of a box), got {f}")

    if protein_fraction_range is not None:
        if protein_fraction is not None:
            raise TemplearnError("give --protein-fraction or --protein-fraction-range, not both")
        lo, hi = (float(v) for v in protein_fraction_range)
        ok(lo, "--protein-fraction-range")
        ok(hi, "--protein-fraction-range")
        if lo > hi:
            raise TemplearnError(f"--protein-fraction-range needs LO <= HI, got {lo} {hi}")
        return draw_protein_fraction(seed, lo, hi)
    if protein_fraction is not None:
        ok(float(protein_fraction), "--protein-fraction")
        return float(protein_fraction)
    return None


def pack_sample(
    targets,
    *,
    out: str | os.PathLike,
    target_name: str = "nucleosome",
    variants=(),
    distractors=(),
    distractor_list=None,
    skip_missing: bool = False,
    name: str = "sample",
    **options,
) -> PackResult:
    """Resolve inputs, pack, and write the outputs into ``out`` (see the stage README)."""
    taken: set[str] = set()
    tsrc = target_sources(targets, target_name, taken)
    vsrc = variant_sources(variants, tsrc, target_name, taken)
    dsrc, missing = distractor_sources(distractors, distractor_list, taken, skip_missing=skip_missing)
    # Variants interleave with their templates in the target rounds.
    sources = _interleave(tsrc, vsrc) + dsrc
    result = pack(sources=sources, name=name, **options)
    result.stats["missing_distractors"] = missing
    write_outputs(result, out, inputs=[s.path for s in sources], options=dict(
        targets=[str(t) for t in targets], target_name=target_name, variants=[str(v) for v in variants],
        distractors=[str(d) for d in distractors], distractor_list=distractor_list, skip_missing=skip_missing,
        name=name, **options))
    return result


def _interleave(templates: list[Source], variants: list[Source]) -> list[Source]:
    out = []
    for t in templates:
        out.append(t)
        out.extend(v for v in variants if v.template == t.key)
    known = {t.key for t in templates}
    out.extend(v for v in variants if v.template not in known)
    return out


def write_outputs(result: PackResult, out, *, inputs=(), options=None) -> None:
    from templearn import provenance
    from templearn.mrc import write_mrc

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m = result.manifest
    vs = m.voxel_size
    m.write(out / "sample.json")
    write_mrc(out / "occupancy.mrc", result.occupancy, vs, dtype=np.int8, label="templearn tetris occupancy")
    # MRC has no int32 mode: ids go to uint16 when they fit, else float32 (exact up to 2**24).
    ids_dtype = np.uint16 if len(m.instances) <= np.iinfo(np.uint16).max else np.float32
    write_mrc(out / "instances.mrc", result.instances, vs, dtype=ids_dtype, label="templearn tetris instance ids")
    write_mrc(out / "classes.mrc", result.classes, vs, dtype=np.int8,
              label="templearn tetris classes: 0 empty, 1..K targets, -1 distractors")
    write_mrc(out / "density.mrc", result.density, vs, label="templearn tetris density (e2pdb2mrc units)")
    from .plots import plot_slices

    plot_slices(out / "slices.png", result.density, result.classes, m.targets, vs)
    provenance.record(out, "tetris", options or {}, seed=m.seed, inputs=inputs,
                      outputs=[out / f for f in OUTPUTS], extra={"result": result.stats})


def _radius_voxels(smap: StructureMap) -> int:
    """Radius of the molecule's body in voxels (its molecular volume as a sphere, at least 0)."""
    n = smap.n_voxels_molecule
    return int(np.floor((3 * n / (4 * np.pi)) ** (1 / 3)))


def _check(box, voxel_size, resolution, ratio, dilation, sigma, threshold, max_molecules, max_fraction, candidates):
    if len(box) != 3 or min(box) < 1:
        raise TemplearnError(f"--box needs three positive voxel counts NZ NY NX, got {box}")
    if not voxel_size > 0:
        raise TemplearnError(f"--voxel-size must be positive, got {voxel_size}")
    if not resolution > 0:
        raise TemplearnError(f"--resolution must be positive, got {resolution}")
    if not ratio >= 0:
        raise TemplearnError(f"--ratio must be >= 0, got {ratio}")
    if dilation < 1:
        raise TemplearnError(f"--dilation must be >= 1 voxel (molecules are placed touching within it), got {dilation}")
    if sigma < 0:
        raise TemplearnError(f"--sigma must be >= 0 voxels, got {sigma}")
    if threshold is not None and not 0 < threshold <= 1:
        raise TemplearnError(f"--threshold is a fraction of the map maximum in (0, 1], got {threshold}")
    if max_molecules is not None and max_molecules < 1:
        raise TemplearnError(f"--max-molecules must be >= 1, got {max_molecules}")
    if candidates is not None and candidates < 1:
        raise TemplearnError(f"--candidates must be >= 1, got {candidates}")
    if max_fraction is not None and not 0 < max_fraction <= 1:
        raise TemplearnError(f"--max-fraction must lie in (0, 1], got {max_fraction}")
