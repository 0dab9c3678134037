"""tetris: crowded samples with no overlaps, exact ratios, manifests that reproduce the volumes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from templearn import density as D
from templearn.errors import TemplearnError
from templearn.euler import euler_to_matrix
from templearn.manifest import Manifest
from templearn.mrc import read_mrc
from templearn.atoms import read_structure, write_structure
from templearn.structures import load_atoms, resolve

from templearn.stages.tetris.sample import pack_sample

BOX = (20, 40, 40)
PAPER_BOX = (16, 48, 48)
CLI = str(Path(sys.executable).parent / "templearn-tetris")
SIGMA = 2.0


@pytest.fixture(scope="module")
def small(shared_structures, distractor_ids) -> list[str]:
    """Three small distractors (1s3x, 3qm1, 4uic are the reference's overlapping ones) and a larger
    one (1ul1); without ../shared, the three smallest and the largest that the fallback holds."""
    if {"1s3x", "3qm1", "4uic", "1ul1"} <= set(distractor_ids):
        return ["1s3x", "3qm1", "4uic", "1ul1"]
    by_size = sorted(distractor_ids, key=lambda i: (shared_structures / "distractors" / f"{i}.pdb.gz").stat().st_size)
    return by_size[:3] + by_size[-1:]


@pytest.fixture(scope="module")
def distractor_list(tmp_path_factory, small):
    p = tmp_path_factory.mktemp("lists") / "distractors.csv"
    p.write_text("pdb_id,copies_per_round\n{},3\n{},2\n{},2\n{},1\n".format(*small))
    return p


@pytest.fixture(scope="module")
def packed(tmp_path_factory, nucleosome_paths, distractor_list):
    out = tmp_path_factory.mktemp("sample")
    # The molecules' own volumes as footprints (the densest packing): render_instances redraws them.
    result = pack_sample([str(nucleosome_paths[1]), "ake=1ake"], out=out, distractor_list=distractor_list,
                         box=BOX, ratio=2, sigma=SIGMA, seed=3, cache=out / "cache", footprint="volume")
    return out, result


@pytest.fixture(scope="module")
def packed_paper(tmp_path_factory, nucleosome_paths, distractor_list):
    """At the defaults: the paper's footprint, to saturation."""
    out = tmp_path_factory.mktemp("sample_paper")
    result = pack_sample([str(p) for p in nucleosome_paths[:2]], out=out, distractor_list=distractor_list,
                         box=PAPER_BOX, ratio=2, seed=1, cache=out / "cache")
    return out, result


def _protein_fraction(m: Manifest) -> float:
    """Independent of the packer: the instances' mass x 1.21 Å³/Da over the box volume."""
    volume = sum(m.structures[i.structure].mass_kda * 1000 * 1.21 for i in m.instances)
    return volume / (np.prod(m.box) * m.voxel_size**3)


def _paper_footprint(block: np.ndarray, n_voxels: int, sigma: float = SIGMA, level: float = 100.0):
    """The reference's footprint of a placed map: blurred by sigma voxels, at or above level
    (zero-padded by 3 sigma so the halo is whole), and at least the molecule's own volume (its
    ``n_voxels`` highest blurred voxels): ``(pad, footprint)``."""
    from scipy import ndimage

    pad = int(np.ceil(3 * sigma))
    blurred = ndimage.gaussian_filter(np.pad(block, pad), sigma, mode="constant")
    own = np.zeros(blurred.size, bool)
    own[np.argsort(-blurred, axis=None, kind="stable")[:n_voxels]] = True
    return pad, (blurred >= level) | own.reshape(blurred.shape)


def test_outputs_and_packing_fraction(packed):
    out, result = packed
    for name in ("sample.json", "occupancy.mrc", "instances.mrc", "classes.mrc", "density.mrc", "slices.png",
                 "provenance.json"):
        assert (out / name).is_file(), name
    prov = json.loads((out / "provenance.json").read_text())["result"]
    occ, vs = read_mrc(out / "occupancy.mrc")
    assert vs == 16.0 and occ.shape == BOX
    assert prov["packing_fraction"] == pytest.approx(float(occ.mean()))
    assert prov["stop"].startswith("saturated")
    assert prov["packing_fraction"] > 0.25  # crowded: a quarter of the box or more is molecule
    classes, _ = read_mrc(out / "classes.mrc")
    assert set(np.unique(classes)) == {-1, 0, 1, 2}


def test_no_two_molecules_overlap(packed, small):
    out, result = packed
    m = Manifest.read(out / "sample.json")
    total = np.zeros(BOX, np.int32)
    for inst in m.instances:
        smap = D.structure_map(m.structure_path(inst.structure), m.voxel_size, 32.0)
        block, corner = D.place(smap, inst.position, inst.euler)
        core = D.binarize(block, n_voxels=smap.n_voxels_molecule, sigma=SIGMA)
        assert core.any()  # small distractors have a body too
        D.paste(total, core.astype(np.int32), corner, "add")
        # cores lie wholly inside the box
        assert np.all(corner + np.argwhere(core).min(0) >= 0) and np.all(corner + np.argwhere(core).max(0) < BOX)
    assert total.max() == 1, "a voxel is inside two molecules"
    np.testing.assert_array_equal(total, result.occupancy)
    assert set(small[:3]) & {i.structure for i in m.instances} == set(small[:3])


def test_manifest_alone_reproduces_volumes(packed):
    out, _ = packed
    m = Manifest.read(out / "sample.json")
    dens, _ = read_mrc(out / "density.mrc")
    again = D.render_instances(m, m.voxel_size, m.box)
    np.testing.assert_allclose(again, dens, rtol=1e-4, atol=1e-3 * dens.max())
    ids, _ = read_mrc(out / "instances.mrc")
    rendered = D.render_instances(m, m.voxel_size, m.box, what="instances", mask_sigma=SIGMA)
    np.testing.assert_array_equal(rendered, ids.astype(np.int32))
    labels = D.render_instances(m, m.voxel_size, m.box, what="labels", mask_sigma=SIGMA)
    classes, _ = read_mrc(out / "classes.mrc")
    np.testing.assert_array_equal(labels, np.where(classes > 0, classes, 0))


def test_manifest_poses_match_atoms(packed):
    """Independent of the renderer: every instance's atoms, moved by the manifest's pose and mapped
    directly, add up to the sample's density (a wrong pose convention scores far lower)."""
    out, _ = packed
    m = Manifest.read(out / "sample.json")
    dens, _ = read_mrc(out / "density.mrc")
    atoms = {k: load_atoms(m.structure_path(k)) for k in m.structures}
    scores = []
    for transpose in (False, True):
        expected = np.zeros(m.box, np.float32)
        for inst in m.instances:
            a, entry = atoms[inst.structure], m.structures[inst.structure]
            rot = euler_to_matrix(inst.euler)
            moved = copy.copy(a)
            moved.xyz = (a.xyz - entry.center) @ (rot if transpose else rot.T) + np.asarray(inst.position)
            vol, origin = D.atoms_to_map(moved, m.voxel_size, 32.0, center=inst.position, oversample=2)
            D.paste(expected, vol, np.round(origin / m.voxel_size).astype(int)[::-1])
        scores.append(np.corrcoef(expected.ravel(), dens.ravel())[0, 1])
    assert scores[0] > 0.95 and scores[0] > scores[1] + 0.2, scores


def test_ratio_is_exact(packed, small):
    out, result = packed
    m = Manifest.read(out / "sample.json")
    n_t, n_d = len(m.instances_of("target")), len(m.instances_of("distractor"))
    assert n_t > 5 and 2 * (n_t - 1) <= n_d <= 2 * n_t
    # distractor copies per round: 1s3x 3 : 3qm1 2 : 4uic 2 : 1ul1 1, exact over full rounds
    st = result.stats["per_structure"]
    assert st[small[0]] >= st[small[1]] >= st[small[3]]


def test_same_seed_same_manifest(tmp_path, nucleosome_paths, small):
    runs = []
    for k, seed in enumerate((5, 5, 6)):
        pack_sample([str(nucleosome_paths[0])], out=tmp_path / str(k), distractors=small[:2],
                    box=(16, 32, 32), ratio=1, seed=seed, max_molecules=25)
        doc = json.loads((tmp_path / str(k) / "sample.json").read_text())
        runs.append(doc["instances"])
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert len(runs[0]) == 25


def test_max_fraction_stops_early(tmp_path, nucleosome_paths, small):
    r = pack_sample([str(nucleosome_paths[0])], out=tmp_path, distractors=small[:1], box=(16, 32, 32),
                    ratio=1, max_fraction=0.1)
    assert r.manifest.params["footprint"] == "volume"  # --max-fraction alone: the molecules' own volumes
    assert r.stats["stop"] == "max_fraction"
    assert 0.1 <= r.stats["packing_fraction"] < 0.15


def test_partial_packing_is_crowded_alike_everywhere(tmp_path, nucleosome_paths, small):
    """--max-fraction spreads molecules through the box; growing from the most crowded spots
    (what saturation does) would fill the faces first and leave the centre empty."""
    central = {}
    for spread in (True, False):
        r = pack_sample([str(nucleosome_paths[0])], out=tmp_path / str(spread), distractors=small[:3],
                        box=(16, 48, 48), ratio=2, max_fraction=0.25, spread=None if spread else False)
        assert r.manifest.params["spread"] is spread
        occ = r.occupancy
        central[spread] = occ[:, 12:36, 12:36].mean() / occ.mean()  # the central quarter of the slab
    assert 0.7 < central[True] < 1.5, central
    assert central[False] < 0.2, central


def test_candidates_default_by_footprint(packed, packed_paper):
    import inspect

    from templearn.stages.tetris.cli import pack
    from templearn.stages.tetris.packing import CANDIDATES, PAPER_CANDIDATES

    assert inspect.signature(pack).parameters["candidates"].default.default is None
    assert packed[1].manifest.params["candidates"] == CANDIDATES
    assert packed_paper[1].manifest.params["candidates"] == PAPER_CANDIDATES


def test_variants_join_their_template(tmp_path):
    src = resolve("1ake")
    st = read_structure(src)
    atoms = load_atoms(src)
    rng = np.random.default_rng(0)
    for i in range(2):
        write_structure(tmp_path / f"1ake_v{i}.pdb", st, atoms.xyz + rng.normal(0, 0.5, atoms.xyz.shape))
    (tmp_path / "variants.csv").write_text("template,variant,file,rmsd\n1ake,0,1ake_v0.pdb,0.87\n1ake,1,1ake_v1.pdb,0.86\n")
    r = pack_sample(["kinase=1ake"], out=tmp_path / "out", variants=[tmp_path / "variants.csv"], box=(12, 24, 24),
                    max_molecules=9)
    m = r.manifest
    assert m.targets == ["kinase"]
    v = m.structures["1ake_v1"]
    assert (v.cls, v.target, v.template, v.variant) == ("target", "kinase", "1ake", 1)
    assert {i.structure for i in m.instances} == {"1ake", "1ake_v0", "1ake_v1"}


def test_bad_structure_is_a_clear_error(tmp_path, nucleosome_paths):
    out = tmp_path / "out"
    pack_sample([str(nucleosome_paths[0])], out=out, box=(12, 24, 24), max_molecules=3)
    before = (out / "sample.json").read_bytes()
    bad = tmp_path / "broken.pdb"
    bad.write_text("this is not a PDB file\n")
    proc = subprocess.run([CLI, "pack", "--target", str(bad),
                           "--out", str(out), "--box", "12", "24", "24"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}")
    assert (out / "sample.json").read_bytes() == before  # earlier outputs intact


def test_impossible_box_is_a_clear_error(tmp_path, nucleosome_paths):
    with pytest.raises(TemplearnError, match="too small"):
        pack_sample([str(nucleosome_paths[-1])], out=tmp_path, box=(3, 40, 40))
    with pytest.raises(TemplearnError, match="--box"):
        pack_sample([str(nucleosome_paths[0])], out=tmp_path, box=(0, 40, 40))
    assert not (tmp_path / "sample.json").exists()


def test_density_command_keeps_mass(tmp_path):
    out = tmp_path / "ake.mrc"
    proc = subprocess.run([CLI, "density", "1ake", "--out", str(out),
                           "--voxel-size", "10", "--resolution", "20"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    vol, vs = read_mrc(out)
    meta = json.loads(out.with_suffix(".json").read_text())
    atoms = load_atoms("1ake")
    assert vs == 10.0
    assert vol.sum() * vs**3 == pytest.approx(D.map_integral(D.electrons(atoms.element), 20.0), rel=1e-3)
    np.testing.assert_allclose(meta["center"], atoms.center_of_mass())


def _blob_map(n_voxels: int, size: int = 11, scale=(1.0, 1.0, 1.0)):
    """A synthetic StructureMap: an (anisotropic) Gaussian blob whose molecular volume is ``n_voxels``."""
    g = np.indices((size,) * 3) - size // 2
    vol = np.exp(-sum((g[i] / scale[i]) ** 2 for i in range(3)) / 4.0).astype(np.float32)
    mass_kda = n_voxels * 16.0**3 / D.VOLUME_PER_DALTON / 1000
    return D.StructureMap(vol, np.zeros(3), np.zeros(3), 16.0, 32.0, mass_kda, 1, "synthetic")


def test_inscribed_balls_lie_inside_the_core(nucleosome_paths):
    """The search demands free space around each inscribed ball: each must be wholly core."""
    from templearn.euler import random_euler
    from templearn.stages.tetris.packing import make_shape

    smap = D.structure_map(nucleosome_paths[0], 16.0, 32.0)
    for smap_, eulers in ((smap, random_euler(np.random.default_rng(0), 4)), (_blob_map(40, scale=(2.5, 1, 1)), [(0, 0, 0)])):
        for euler in eulers:
            s = make_shape(smap_, euler, sigma=SIGMA)
            offsets = np.argwhere(np.ones(s.core.shape, bool)) - smap_.half
            assert s.ball_r[0] == s.ball_r.max() and s.ball_r[0] + 1e-2 >= s.r_in  # the anchor is the widest
            for q, r in zip(s.ball_zyx, s.ball_r):
                inside = ((offsets - q) ** 2).sum(1) < r**2
                assert inside.sum() >= 1 and s.core.ravel()[inside].all()


@pytest.mark.parametrize("spread", [False, True])
def test_saturation_leaves_no_touching_place(spread):
    """When the search says "fits nowhere", no position in the whole box fits and touches (checked
    by brute force). Spreading, a window's miss falls back to the whole box, where touching means
    touching a molecule (walls do not count)."""
    from templearn.stages.tetris.packing import Packer, make_shape

    smap = _blob_map(19, scale=(1.6, 1.0, 1.0))
    box = np.array((9, 10, 13))
    packer = Packer(tuple(box), smap.half + 2, np.random.default_rng(0), spread=spread)
    for euler in ((0, 0, 0), (90, 90, 0), (0, 90, 90)):  # three orientations, one after the other
        shape = make_shape(smap, euler, sigma=SIGMA)
        while (pos := packer.find(shape)) is not None:
            packer.place(shape, pos)
        every = packer._flat(np.indices(box).reshape(3, -1).T)
        fits = packer._fits(every, shape.core_zyx @ packer.strides)
        assert not (packer._contact(fits, shape.shell_zyx @ packer.strides) > 0).any()
    assert packer.fraction() > 0.3


# --- crowding: the paper's footprint, protein fractions and their targets ----------------------


def test_default_footprint_is_the_papers_and_never_overlaps(packed_paper):
    """Each placed molecule's thresholded footprint (its map blurred by 2 voxels, >= 100), redrawn
    from the manifest alone, lies in the box and shares no voxel with another's."""
    out, result = packed_paper
    m = Manifest.read(out / "sample.json")
    assert m.params["footprint"] == "paper" and m.params["gray_level"] == 100.0
    assert result.stats["stop"].startswith("saturated")
    total = np.zeros(PAPER_BOX, np.int32)
    for inst in m.instances:
        smap = D.structure_map(m.structure_path(inst.structure), m.voxel_size, 32.0)
        block, corner = D.place(smap, inst.position, inst.euler)
        pad, fp = _paper_footprint(block, smap.n_voxels_molecule)
        assert fp.sum() >= smap.n_voxels_molecule
        lo, hi = corner - pad + np.argwhere(fp).min(0), corner - pad + np.argwhere(fp).max(0)
        assert np.all(lo >= 0) and np.all(hi < PAPER_BOX)
        D.paste(total, fp.astype(np.int32), corner - pad, "add")
    assert total.max() == 1, "two molecules' footprints overlap"
    np.testing.assert_array_equal(total, result.occupancy)
    dens, _ = read_mrc(out / "density.mrc")
    np.testing.assert_allclose(D.render_instances(m, m.voxel_size, m.box), dens, rtol=1e-4, atol=1e-3 * dens.max())
    # the halo keeps molecules apart: far less protein than footprint
    assert result.stats["protein_fraction"] < 0.3 * result.stats["packing_fraction"]


def test_protein_fraction_is_reported(packed_paper, packed):
    for out, result in (packed_paper, packed):
        m = Manifest.read(out / "sample.json")
        prov = json.loads((out / "provenance.json").read_text())["result"]
        assert m.protein_fraction == pytest.approx(_protein_fraction(m), rel=1e-4)
        assert prov["protein_fraction"] == pytest.approx(m.protein_fraction, rel=1e-4)
    # the paper's footprint is sparse, the molecules' own volumes pack densely
    assert packed_paper[1].stats["protein_fraction"] < 0.12 < packed[1].stats["protein_fraction"]


def test_old_manifests_without_protein_fraction_still_read(packed, tmp_path):
    doc = json.loads((packed[0] / "sample.json").read_text())
    del doc["protein_fraction"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    assert Manifest.read(tmp_path / "old.json").protein_fraction is None


def test_default_saturates_near_the_papers_fraction(shared_structures):
    """On a small box the defaults saturate within 20 % of the paper's algorithm (its footprint,
    its FFT search on the blurred, thresholded sample: benchmarks/bench_tetris.py's baseline)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_tetris", Path(__file__).parents[1] / "benchmarks" / "bench_tetris.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    sources, ratio, box = bench.lists(None)[0]["nucleosome"]
    maps = {s.key: D.structure_map(s.path, 16.0, 32.0) for s in sources}
    paper = bench.baseline(sources, maps, box, ratio=ratio, seed=0)["fraction"]
    ours = bench.ours(sources, box, ratio=ratio, seed=0)
    assert ours["footprint"] == "paper" and ours["stop"].startswith("saturated")
    assert 0.04 < paper < 0.1
    assert abs(ours["fraction"] / paper - 1) <= 0.2, (ours["fraction"], paper)


@pytest.mark.parametrize("target, footprint", [(0.03, "paper"), (0.2, "volume")])
def test_protein_fraction_target_is_met(tmp_path, nucleosome_paths, distractor_list, target, footprint):
    """Packing stops once the target is reached; a target beyond the paper footprint's saturation
    is packed with the molecules' own volumes."""
    r = pack_sample([str(p) for p in nucleosome_paths[:2]], out=tmp_path, distractor_list=distractor_list,
                    box=PAPER_BOX, ratio=2, seed=2, protein_fraction=target)
    m = Manifest.read(tmp_path / "sample.json")
    assert r.stats["stop"] == "protein_fraction" and m.params["footprint"] == footprint
    assert m.params["protein_fraction"] == target and m.params["spread"] is True
    biggest = max(s.mass_kda for s in m.structures.values()) * 1000 * 1.21 / (np.prod(m.box) * m.voxel_size**3)
    assert target <= _protein_fraction(m) < target + biggest
    assert "tried" not in r.stats  # 0.2 lies clearly beyond the halo's reach: no paper try


def test_paper_reach_bounds_the_saturated_fraction(packed_paper, nucleosome_paths, distractor_list):
    """auto skips the paper footprint for targets above this estimate: it must lie above what the
    paper footprint holds when saturated (the fixture's sample), and well below 0.2."""
    from templearn.stages.tetris.distractors import distractor_sources, target_sources
    from templearn.stages.tetris.sample import _paper_reach

    taken: set = set()
    sources = target_sources([str(p) for p in nucleosome_paths[:2]], "nucleosome", taken)
    sources += distractor_sources([], distractor_list, taken)[0]
    maps = {s.key: D.structure_map(s.path, 16.0, 32.0) for s in sources}
    reach = _paper_reach(sources, maps, 2.0, SIGMA, 100.0)
    assert packed_paper[1].stats["protein_fraction"] < reach < 0.2


def test_protein_fraction_range_is_drawn_per_seed(tmp_path, nucleosome_paths):
    drawn = []
    for seed in (0, 1, 2, 0):
        r = pack_sample([str(nucleosome_paths[0])], out=tmp_path / str(len(drawn)), distractors=["1s3x", "4uic"],
                        box=(12, 32, 32), ratio=1, seed=seed, protein_fraction_range=(0.02, 0.2))
        m = Manifest.read(tmp_path / str(len(drawn)) / "sample.json")
        target = m.params["protein_fraction"]
        assert 0.02 <= target <= 0.2 and m.params["protein_fraction_range"] == [0.02, 0.2]
        assert target <= m.protein_fraction == pytest.approx(r.stats["protein_fraction"], rel=1e-4)
        drawn.append(target)
    assert drawn[0] == drawn[3] and len(set(drawn[:3])) == 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(protein_fraction=0.9), "--protein-fraction must lie in"),
    (dict(protein_fraction=0.0), "--protein-fraction must lie in"),
    (dict(protein_fraction_range=(0.3, 0.1)), "LO <= HI"),
    (dict(protein_fraction=0.1, protein_fraction_range=(0.05, 0.2)), "not both"),
    (dict(footprint="halo"), "--footprint must be one of"),
    (dict(footprint="paper", threshold=0.5), "--gray-level"),
])
def test_impossible_crowding_is_a_clear_error(tmp_path, nucleosome_paths, kwargs, match):
    with pytest.raises(TemplearnError, match=match):
        pack_sample([str(nucleosome_paths[0])], out=tmp_path, box=(12, 32, 32), **kwargs)
    assert not (tmp_path / "sample.json").exists()


def test_unreachable_protein_fraction_is_a_clear_error(tmp_path):
    """A box a few nucleosomes wide cannot be 0.6 nucleosome, whatever the footprint."""
    proc = subprocess.run([CLI, "pack", "--target", "2pyo", "--out", str(tmp_path), "--box", "6", "12", "12",
                           "--ratio", "0", "--protein-fraction", "0.6"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be reached" in lines[0] and "saturates at" in lines[0], lines
    assert not (tmp_path / "sample.json").exists()


def test_run_config_draws_each_samples_crowding(tmp_path):
    """tetris.protein_fraction [lo, hi]: each sample of a run gets its own target, drawn from the
    range with its seed (run seed + i), met and recorded in its sample.json."""
    import yaml

    from templearn.orchestrator import graph
    from templearn.orchestrator.config import PROTEIN_FRACTION, Tetris, load_config

    assert Tetris().protein_fraction == list(PROTEIN_FRACTION) == [0.05, 0.30]
    doc = {"name": "crowd", "seed": 4, "targets": [{"name": "nucleosome", "templates": ["2pyo"]}],
           "distractors": ["1s3x", "4uic"], "nma": {"enabled": False},
           "tetris": {"n_samples": 3, "box": [12, 32, 32], "ratio": 1, "protein_fraction": [0.03, 0.25]},
           "simulation": {"conditions": [0]}, "split": {"val": 1, "test": 1}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(doc))
    steps = [s for s in graph.build(load_config(tmp_path / "run.yaml")) if s.kind == "tetris"]
    targets = []
    for s in steps:
        i = s.argv.index("--protein-fraction-range")
        assert s.argv[i + 1:i + 3] == ["0.03", "0.25"]
        proc = subprocess.run([str(Path(CLI).parent / s.argv[0]), *s.argv[1:]], cwd=tmp_path, capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
        m = Manifest.read(tmp_path / s.outputs[0])
        targets.append(m.params["protein_fraction"])
        assert 0.03 <= targets[-1] <= 0.25 and targets[-1] <= m.protein_fraction < targets[-1] + 0.02
    assert len(set(targets)) == 3
    doc["tetris"]["protein_fraction"] = [0.3, 0.1]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(TemplearnError, match="tetris.protein_fraction"):
        load_config(tmp_path / "bad.yaml")
