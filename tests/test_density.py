"""templearn.density: e2pdb2mrc-style maps that keep mass, rotations that follow the Euler contract,
and instances rendered from a manifest where the manifest says they are."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from templearn import density as D
from templearn.euler import euler_to_matrix
from templearn.manifest import Instance, Manifest, StructureEntry
from templearn.structures import load_atoms, resolve


@pytest.fixture(scope="module")
def ake():
    return load_atoms("1ake")


@pytest.mark.parametrize("voxel,res", [(16.0, 32.0), (10.0, 20.0), (5.0, 8.0)])
def test_mass_is_kept(ake, voxel, res):
    vol, origin = D.atoms_to_map(ake, voxel, res)
    integral = D.map_integral(D.electrons(ake.element), res)
    assert vol.dtype == np.float32 and vol.shape[0] % 2 == 1 and len(set(vol.shape)) == 1
    assert vol.sum() * voxel**3 == pytest.approx(integral, rel=1e-3)


def test_matches_e2pdb2mrc_summation(ake):
    """At a voxel fine enough to resolve the Gaussian, the map is e2pdb2mrc's point-sampled sum."""
    voxel, res = 2.0, 8.0
    vol, origin = D.atoms_to_map(ake, voxel, res)
    w = res / np.pi  # e2pdb2mrc: exp(-(r / w)^2), w = res / pi
    z = D.electrons(ake.element)
    grid = [origin[k] + np.arange(vol.shape[0]) * voxel for k in range(3)]
    direct = np.zeros(vol.shape)
    for (x, y, zz), e in zip(ake.xyz, z):
        gx, gy, gz = (np.exp(-(((grid[k] - c) / w) ** 2)) for k, c in enumerate((x, y, zz)))
        direct += e * gz[:, None, None] * gy[None, :, None] * gx[None, None, :]
    # Averaging over a 2 Å voxel blurs a w = 2.5 Å Gaussian slightly: a few % apart, same shape.
    assert np.linalg.norm(direct - vol) / np.linalg.norm(direct) < 0.05
    assert np.corrcoef(direct.ravel(), vol.ravel())[0, 1] > 0.999
    assert vol.max() == pytest.approx(direct.max(), rel=0.05)


def test_centred_on_center(ake):
    z = D.electrons(ake.element)
    centroid = (ake.xyz * z[:, None]).sum(0) / z.sum()
    vol, origin = D.atoms_to_map(ake, 8.0, 16.0, center=centroid)
    m = (vol.shape[0] - 1) / 2
    idx = np.indices(vol.shape).reshape(3, -1)
    c_zyx = (idx * vol.ravel()).sum(1) / vol.sum()
    np.testing.assert_allclose(c_zyx, [m, m, m], atol=0.02)
    np.testing.assert_allclose(origin + m * 8.0, centroid, atol=1e-9)


def test_rotation_follows_euler_contract(ake):
    c = ake.center_of_mass()
    vol, _ = D.atoms_to_map(ake, 6.0, 12.0, center=c)
    euler = [30.0, 70.0, -110.0]
    a = euler_to_matrix(euler)
    moved = copy.copy(ake)
    shift = np.array([0.3, -0.4, 0.2])  # voxels, [x, y, z]
    moved.xyz = (ake.xyz - c) @ a.T + c + shift * 6.0
    expected, _ = D.atoms_to_map(moved, 6.0, 12.0, center=c)
    got = D.rotate_map(vol, euler, shift)
    inverse = D.rotate_map(vol, [110.0, 70.0, -30.0], shift)  # the inverse pose
    r_good = np.corrcoef(got.ravel(), expected.ravel())[0, 1]
    r_bad = np.corrcoef(inverse.ravel(), expected.ravel())[0, 1]
    assert r_good > 0.98 and r_good > r_bad + 0.05
    assert got.sum() == pytest.approx(vol.sum(), rel=0.01)


def _manifest(path, voxel, box):
    entry = StructureEntry(path=str(path), cls="target", target="ake", template="1ake")
    insts = [
        Instance(1, "1ake", [10 * voxel, 12 * voxel, 6 * voxel], [0.0, 0.0, 0.0]),
        Instance(2, "1ake", [24.4 * voxel, 20.2 * voxel, 9.7 * voxel], [40.0, 100.0, -20.0]),
    ]
    return Manifest("t", voxel, box, {"1ake": entry}, insts, targets=["ake"], params={"resolution": 2 * voxel})


def test_render_instances_places_molecules_from_manifest(ake, tmp_path):
    path = resolve("1ake")
    m = _manifest(path, 16.0, [16, 32, 36])
    voxel = 8.0  # another voxel size than the manifest's
    shape = (32, 64, 72)
    dens = D.render_instances(m, voxel, shape, resolution=16.0, cache_dir=tmp_path)
    assert list(tmp_path.glob("*.npz")), "disk cache written"
    c = ake.center_of_mass()
    expected = np.zeros(shape, np.float32)
    for inst in m.instances:
        moved = copy.copy(ake)
        moved.xyz = (ake.xyz - c) @ euler_to_matrix(inst.euler).T + np.asarray(inst.position)
        vol, origin = D.atoms_to_map(moved, voxel, 16.0, center=np.round(np.asarray(inst.position) / voxel) * voxel)
        D.paste(expected, vol, np.round(origin / voxel).astype(int)[::-1])
    assert np.corrcoef(dens.ravel(), expected.ravel())[0, 1] > 0.98
    assert dens.sum() * voxel**3 == pytest.approx(2 * D.map_integral(D.electrons(ake.element), 16.0), rel=0.01)

    D.clear_cache()  # second run reads the disk cache
    again = D.render_instances(m, voxel, shape, resolution=16.0, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, dens)

    inst = D.render_instances(m, voxel, shape, what="instances", resolution=16.0)
    labels = D.render_instances(m, voxel, shape, what="labels", resolution=16.0)
    mask = D.render_instances(m, voxel, shape, what="mask", resolution=16.0)
    assert set(np.unique(inst)) == {0, 1, 2} and set(np.unique(labels)) == {0, 1}
    np.testing.assert_array_equal(mask > 0, inst > 0)
    # Each shape holds the molecular volume (mass x 1.21 Å3/Da) and sits on its instance.
    n_expected = round(ake.mass_kda() * 1000 * D.VOLUME_PER_DALTON / voxel**3)
    assert (inst == 1).sum() == n_expected
    zyx = np.argwhere(inst == 2).mean(0)
    np.testing.assert_allclose(zyx[::-1] * voxel, m.instances[1].position, atol=voxel)
    none = D.render_instances(m, voxel, shape, what="labels", classes=["distractor"], resolution=16.0)
    assert not none.any()
