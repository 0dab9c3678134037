"""The transfer benchmark's test set: packed another way than tetris, a slab in vacuum, truth in the
tomogram's frame (orchestrator/transfer.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from templearn.density import VOLUME_PER_DALTON
from templearn.orchestrator import transfer as T

ROOT = Path(__file__).resolve().parents[1]


def _bodies():
    return ([T._Body(f"t{i}", f"t{i}", "target", 50.0, 2.0e5) for i in range(2)]
            + [T._Body(f"d{i}", f"d{i}", "distractor", r, m) for i, (r, m) in
               enumerate([(150.0, 2.5e6), (60.0, 4.0e5), (25.0, 3.0e4)])])


def test_random_placement_never_overlaps_and_keeps_the_target_count():
    size = np.array([1024.0, 1024.0, 400.0])
    placed = T.place_random(_bodies(), 20, size, 0.08, np.random.default_rng(3))
    radius = {b.key: b.radius for b in _bodies()}
    keys = [k for k, _ in placed]
    c = np.array([p for _, p in placed])
    r = np.array([radius[k] for k in keys])
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    assert np.all(d >= (r[:, None] + r[None]) - 1e-9)          # bounding spheres never meet
    assert sum(k.startswith("t") for k in keys) == 20         # every target placed
    assert np.all(c[:, 2] >= r - 1e-9) and np.all(c[:, 2] <= size[2] - r + 1e-9)   # inside the slab in z
    mass = {b.key: b.mass_da for b in _bodies()}
    fraction = sum(mass[k] for k in keys) * VOLUME_PER_DALTON / size.prod()
    assert 0.03 < fraction <= 0.08 + 2.5e6 * VOLUME_PER_DALTON / size.prod()
    assert {k for k in keys if k.startswith("d")} == {"d0", "d1", "d2"}   # every species present


def test_random_placement_is_reproducible():
    size = np.array([800.0, 800.0, 300.0])
    a = T.place_random(_bodies(), 5, size, 0.05, np.random.default_rng(1))
    b = T.place_random(_bodies(), 5, size, 0.05, np.random.default_rng(1))
    assert [k for k, _ in a] == [k for k, _ in b]
    assert np.array_equal(np.array([p for _, p in a]), np.array([p for _, p in b]))


def test_too_many_targets_is_a_clear_error():
    with pytest.raises(Exception, match="targets fit"):
        T.place_random(_bodies(), 500, np.array([300.0, 300.0, 120.0]), 0.05, np.random.default_rng(0))


def test_test_sample_slab_and_truth_frame(nucleosome_paths):
    from templearn.manifest import Manifest

    test = T.TestSet(templates=[str(p) for p in nucleosome_paths[:2]], distractors=["1ake", "3enl"],
                     box=[40, 64, 64], slab=240.0, n_targets=4, protein_fraction=0.05)
    slab, truth = T.make_sample(test, T.Acquisition("pp", True, -0.75, seed=5))
    s, t = Manifest.from_json(slab), Manifest.from_json(truth)
    assert s.box == [30, 64, 64] and t.box == [40, 64, 64]
    assert len(s.instances_of("target")) == 4
    below = (40 - 30) / 2 * 8.0
    assert np.allclose(t.positions() - s.positions(), [0.0, 0.0, below])
    assert truth["params"]["protein_fraction"] > 0.01
    assert not set(s.structures) & _training_distractors()


def _training_distractors() -> set[str]:
    ids = (ROOT / "examples" / "paper_distractors.csv").read_text().split("\n")[1:]
    return {line.split(",")[0].lower() for line in ids if line}


def test_default_distractors_are_not_in_the_training_list():
    assert not {d.lower() for d in T.DEFAULT_DISTRACTORS} & _training_distractors()


def test_benchmark_config_loads():
    tr = T.load_transfer(ROOT / "benchmarks" / "transfer.yaml")
    assert len(tr.test.acquisitions) == 2
    assert {a.phase_plate for a in tr.test.acquisitions} == {True, False}
    assert tr.test.slab < tr.test.box[0] * tr.test.voxel_size
    small = T.load_transfer(ROOT / "benchmarks" / "transfer.yaml", small=True).test
    # A quarter of the area, the same slab and the same targets per area.
    assert small.box == [tr.test.box[0], tr.test.box[1] // 2, tr.test.box[2] // 2]
    per_area = [t.n_targets / (t.box[1] * t.box[2]) for t in (tr.test, small)]
    assert abs(per_area[1] / per_area[0] - 1) < 0.05
    assert T.testset_key(small, small.acquisitions[0]) != T.testset_key(tr.test, tr.test.acquisitions[0])
