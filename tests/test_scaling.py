"""Picking that scales (issue 14): grid MeanShift against DeepFinder's, bounded memory on a noisy
map, slabbed segmentation against one piece and against DeepFinder's Segment, template matching
against the direct implementation."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from templearn import cluster as C
from templearn.cluster import cluster_labelmap
from templearn.matching import match, prf


def _particles(shape, n, radius, seed=0):
    """Label map with ``n`` partly segmented balls (radius 0.7..1 x ``radius``, not overlapping);
    returns ``(labelmap, centres [z, y, x])``."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.int8)
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    pts: list[np.ndarray] = []
    for _ in range(50 * n):
        if len(pts) == n:
            break
        p = rng.uniform(radius, np.array(shape) - radius)
        if pts and np.min(np.linalg.norm(np.array(pts) - p, axis=1)) < 1.8 * radius:
            continue
        pts.append(p)
        rr = radius * rng.uniform(0.7, 1.0)
        lab[(zz - p[0]) ** 2 + (yy - p[1]) ** 2 + (xx - p[2]) ** 2 <= rr * rr] = 1
    return lab, np.array(pts)


def test_fields_by_slabbed_fft_are_the_direct_sums():
    rng = np.random.default_rng(1)
    lab = (rng.random((20, 23, 27)) < 0.3).astype(np.int8)
    for g, memory in ((1, 1 << 12), (2, 1 << 30), (3, 1 << 30)):  # 1 << 12: one plane per slab
        grid, _ = C._count_grid(lab, 1, g, 5.0)
        assert grid.sum() == lab.sum()
        fields = C._fields(grid, g, 5.0, memory)
        R, kernels = C._kernels(g, 5.0)
        padded = np.pad(grid, R)
        for i in [(0, 0, 0), (3, 4, 5), tuple(np.array(grid.shape) - 1)]:
            win = padded[i[0]:i[0] + 2 * R + 1, i[1]:i[1] + 2 * R + 1, i[2]:i[2] + 2 * R + 1]
            np.testing.assert_allclose(fields[(slice(None),) + i], [(win * k).sum() for k in kernels], atol=1e-3)


@pytest.mark.deepfinder
def test_grid_clustering_agrees_with_deepfinder():
    from templearn.stages.deepfinder_train import dfcompat

    lab, centres = _particles((48, 96, 96), 40, 7.0)
    rng = np.random.default_rng(2)
    lab[rng.random(lab.shape) < 0.002] = 1  # specks of noise, as a real segmentation has
    cut = 0.1 * 4 / 3 * np.pi * 8 ** 3        # pick's fallback size cut for radius 8
    grid = cluster_labelmap(lab, 8.0)
    ref = dfcompat.cluster(lab, 8)            # deepfinder.inference.Cluster itself
    ref_xyz = np.array([[o["x"], o["y"], o["z"]] for o in ref])
    ref_size = np.array([o["cluster_size"] for o in ref])
    a, b = grid.xyz[grid.size >= cut], ref_xyz[ref_size >= cut]
    m = match(a, b, 4.0)
    assert prf(m.tp, m.fp, m.fn)[2] >= 0.98
    # The particles themselves, at their centres, with DeepFinder's sizes.
    assert match(a[:, ::-1], centres, 1.5).tp == len(centres) == len(a)
    from scipy.spatial import cKDTree

    d, j = cKDTree(ref_xyz).query(a)
    np.testing.assert_allclose(grid.size[grid.size >= cut], ref_size[j], rtol=0.02)
    # method="deepfinder" is that same clustering.
    same = cluster_labelmap(lab, 8.0, method="deepfinder")
    assert sorted(same.size.tolist()) == sorted(ref_size.tolist())


def test_noisy_map_clusters_in_bounded_memory(monkeypatch):
    """30 % of the voxels labelled (a model that fails): the fields stay within the budget, the
    voxels are visited in slabs, and every labelled voxel lands in a cluster."""
    rng = np.random.default_rng(0)
    lab = (rng.random((40, 160, 160)) < 0.3).astype(np.int8)
    memory = 1 << 20
    assert C.choose_cell(lab.shape, memory) == 3
    monkeypatch.setattr(C, "_SLAB_POINTS", 1 << 16)
    tracemalloc.start()
    cl = cluster_labelmap(lab, 10.0, memory=memory)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Well under the voxel coordinates alone (24 bytes per labelled voxel, 55 MB here).
    assert peak < 3 * memory + 64 * (1 << 16), peak
    assert cl.size.sum() == lab.sum()
    # Uniform noise has no particles: modes are a bandwidth apart, so few clusters, all large.
    assert len(cl) <= lab.size / (4 / 3 * np.pi * 5 ** 3)
    assert cl.size.min() > 0.3 * 4 / 3 * np.pi * 5 ** 3 * 0.3


def test_unknown_clustering_is_refused_before_any_work(tmp_path, capsys):
    from templearn.cli_util import run
    from templearn.stages.pick_eval.cli import app

    with pytest.raises(SystemExit) as exc:
        run(app, ["pick", str(tmp_path / "t.mrc"), "--weights", str(tmp_path / "m.h5"), "--out",
                  str(tmp_path / "o"), "--clustering", "kmeans"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--clustering must be one of grid, deepfinder" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


# --- segmentation -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def net():
    from templearn.stages.deepfinder_train import dfcompat

    dfcompat.seed_everything(0)
    return dfcompat.build_network(3, 24)


@pytest.mark.deepfinder
def test_segmentation_in_slabs_is_segmentation_in_one_piece(net):
    from templearn.stages.deepfinder_train import dfcompat

    vol = np.random.default_rng(0).normal(size=(37, 45, 52)).astype(np.float32)
    one = dfcompat.segment(net, vol, 24, 4, 9)  # window = the whole volume, one flush
    slabs = list(dfcompat.iter_segment(net, vol, 24, 4, 9, memory=1, batch=3))
    assert len(slabs) == 3 and slabs[0][0] == 0 and slabs[-1][1] == 37
    assert all(a[1] == b[0] for a, b in zip(slabs, slabs[1:]))
    np.testing.assert_array_equal(np.concatenate([s for _, _, s in slabs], axis=1), one)
    labels = dfcompat.segment(net, vol, 24, 4, 9, labels=True, memory=1, batch=5)
    assert labels.dtype == np.int8
    np.testing.assert_array_equal(labels, np.argmax(one, axis=0))
    np.testing.assert_allclose(one.sum(0), 1.0, atol=1e-5)


@pytest.mark.deepfinder
def test_segmentation_is_deepfinders_segment(net):
    from templearn.stages.deepfinder_train import dfcompat

    vol = np.random.default_rng(1).normal(size=(30, 40, 33)).astype(np.float32) * 3 + 7
    ours = dfcompat.segment(net, vol, 24, 4, 9, batch=4)
    ref = dfcompat.segment_deepfinder(net, vol, 24, 4, 9)  # deepfinder.inference.Segment.launch
    # DeepFinder sums and divides in float16 (3 significant digits).
    assert np.abs(ours - ref).max() < 2e-3


# --- template matching ----------------------------------------------------------------------------

def _match_template_before(tomogram, template, eulers, tilt_range, radius):
    """match_template as it was before issue 14 (full-size template FFT, rolled kernel, masked
    assignments): the reference the faster one must equal."""
    from scipy import fft as sfft

    from templearn.stages.pick_eval.rotations import rotate_volume
    from templearn.stages.pick_eval.template_matching import sphere, wedge_weight

    f = np.asarray(tomogram, np.float32)
    b = template.shape[0]
    half = b // 2
    mask = sphere(template.shape, min(radius, half))
    n_mask = float(mask.sum())
    full = [sfft.next_fast_len(s + 2 * half, real=True) for s in f.shape]
    f0 = np.zeros(full, np.float32)
    f0[:f.shape[0], :f.shape[1], :f.shape[2]] = (f - f.mean()) / f.std()
    F = sfft.rfftn(f0)
    F2 = sfft.rfftn(f0 ** 2)

    def corr(small, spectrum):
        k = np.zeros(full, np.float32)
        k[:b, :b, :b] = small
        k = np.roll(k, (-half, -half, -half), axis=(0, 1, 2))
        return sfft.irfftn(spectrum * np.conj(sfft.rfftn(k)), s=full)

    s1 = corr(mask, F) / n_mask
    s2 = corr(mask, F2) / n_mask
    sigma = np.sqrt(np.clip(s2 - s1 ** 2, 0, None))[:f.shape[0], :f.shape[1], :f.shape[2]]
    sigma = np.maximum(sigma, 1e-2 * float(np.median(sigma)) + 1e-12).astype(np.float32)
    wedge = wedge_weight(template.shape, tilt_range)
    scores = np.full(f.shape, -np.inf, np.float32)
    best = np.zeros(f.shape, np.int32)
    for i in range(len(eulers)):
        t = rotate_volume(template, eulers[i])
        t = np.fft.irfftn(np.fft.rfftn(t) * wedge, s=t.shape).astype(np.float32) * mask
        t[mask > 0] -= t[mask > 0].mean()
        t *= mask
        t *= np.sqrt(n_mask) / float(np.sqrt((t ** 2).sum()))
        c = corr(t, F)[:f.shape[0], :f.shape[1], :f.shape[2]] / (n_mask * sigma)
        better = c > scores
        scores[better] = c[better]
        best[better] = i
    return scores, best


def test_template_matching_equals_the_previous_implementation():
    from templearn.stages.pick_eval.rotations import angle_grid
    from templearn.stages.pick_eval.template_matching import match_template

    rng = np.random.default_rng(3)
    t = np.zeros((13, 13, 13), np.float32)
    t[4:9, 5:8, 3:10] = 1.0
    t[6, 6:10, 6] = 2.0  # asymmetric, so rotations differ
    vol = rng.normal(size=(30, 41, 36)).astype(np.float32)
    vol[10:23, 12:25, 9:22] += 2 * t
    eulers = angle_grid(60.0)[::7]
    res = match_template(vol, t, eulers, tilt_range=50.0, radius=5.5)
    scores, best = _match_template_before(vol, t, eulers, 50.0, 5.5)
    np.testing.assert_allclose(res.scores, scores, atol=1e-5)
    assert np.mean(res.best == best) > 0.999  # ties within round-off may pick another rotation
    assert np.unravel_index(np.argmax(res.scores), vol.shape) == (16, 18, 15)
