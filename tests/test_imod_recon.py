"""imod-recon: binning by Fourier cropping and weighted back projection.

Point sources are projected with the shared geometry (templearn.tilts.project_u) and must come
back at their x, y, z; a phantom must agree with scikit-image's per-slice iradon (normalised
cross-correlation > 0.99 inside the reconstruction circle); bad inputs fail with one line.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from templearn.cli_util import run
from templearn.mrc import read_mrc, write_mrc
from templearn.tilts import Acquisition, dose_symmetric_order, project_u, write_tlt
from templearn.stages.imod_recon import (
    bin_stack, plan_binning, radial_weights, reconstruct, reconstruct_array, weighted_back_projection,
)
from templearn.stages.imod_recon.cli import app
from templearn.stages.imod_recon import imod
from templearn.stages.imod_recon.wbp import angular_weights

PIXEL = 4.0
NX, NY = 64, 48
NZ_SAMPLE = 32          # sample thickness in voxels of PIXEL
# Points [x, y, z] Å, off the axis in every direction, so a flipped sign or axis would show.
POINTS = np.array([[100.0, 60.0, 40.0], [168.0, 120.0, 96.0], [60.0, 148.0, 72.0], [200.0, 32.0, 56.0]])


def render_points(points, angles, axis_x, axis_z, *, nx=NX, ny=NY, pixel=PIXEL, sigma=1.2):
    """Tilt series [tilt, y, x] of Gaussian blobs at the projected positions (sigma in pixels)."""
    u = project_u(points, angles, axis_x, axis_z)          # (tilt, point) Å
    jx = np.arange(nx) * pixel
    iy = np.arange(ny) * pixel
    s2 = 2 * (sigma * pixel) ** 2
    stack = np.zeros((len(angles), ny, nx), np.float32)
    for t in range(len(angles)):
        for k, (_, y, _) in enumerate(points):
            stack[t] += np.exp(-((jx[None] - u[t, k]) ** 2) / s2 - ((iy[:, None] - y) ** 2) / s2)
    return stack + 1.0  # a background, as real images have


def peak_positions(tomo, points, voxel, radius=3):
    """Sub-voxel centroid of the maximum near each expected position, as [x, y, z] Å."""
    found = []
    for x, y, z in points:
        c = np.round(np.array([z, y, x]) / voxel).astype(int)
        lo = np.maximum(c - radius, 0)
        sub = tomo[lo[0]:c[0] + radius + 1, lo[1]:c[1] + radius + 1, lo[2]:c[2] + radius + 1]
        k = np.array(np.unravel_index(np.argmax(sub), sub.shape)) + lo
        sl = tuple(slice(max(v - 1, 0), v + 2) for v in k)
        w = np.clip(tomo[sl] - np.median(tomo), 0, None)
        grids = np.meshgrid(*[np.arange(s.start, s.start + n) for s, n in zip(sl, w.shape)], indexing="ij")
        zyx = np.array([(g * w).sum() / w.sum() for g in grids])
        found.append(zyx[::-1] * voxel)
    return np.array(found)


def write_series(folder, angles, *, axis_x=None, axis_z=None, stack=None, thickness=NZ_SAMPLE * PIXEL,
                 tlt_angles=None, with_acquisition=True):
    axis_x = (NX - 1) / 2 * PIXEL if axis_x is None else axis_x
    axis_z = (NZ_SAMPLE - 1) / 2 * PIXEL if axis_z is None else axis_z
    if stack is None:
        stack = render_points(POINTS, angles, axis_x, axis_z)
    folder.mkdir(parents=True, exist_ok=True)
    ts = folder / "ts.mrc"
    write_mrc(ts, stack, PIXEL, stack=True)
    write_tlt(folder / "ts.tlt", angles if tlt_angles is None else tlt_angles)
    if with_acquisition:
        n = len(angles)
        Acquisition(pixel_size=PIXEL, angles=list(map(float, angles)), order=dose_symmetric_order(angles).tolist(),
                    dose=[1.0] * n, dose_before=[0.0] * n, axis_x=axis_x, axis_z=axis_z,
                    thickness=thickness).write(folder / "acquisition.json")
    return ts


ANGLES = np.arange(-60.0, 61.0, 3.0)


def test_points_reconstruct_at_their_positions_end_to_end(tmp_path):
    """CLI on files; the tilt axis is off-centre (from the acquisition record) in x and z."""
    ts = write_series(tmp_path / "in", ANGLES, axis_x=120.0, axis_z=50.0)
    _cli_ok(["reconstruct", str(ts), "--out", str(tmp_path / "out")])
    tomo, voxel = read_mrc(tmp_path / "out" / "tomogram.mrc")
    assert voxel == pytest.approx(PIXEL)
    assert tomo.shape == (NZ_SAMPLE, NY, NX)
    found = peak_positions(tomo, POINTS, voxel)
    np.testing.assert_allclose(found, POINTS, atol=0.35 * PIXEL)
    # The strongest voxel of the whole tomogram is one of the points (no mirrored ghost wins).
    k = np.array(np.unravel_index(np.argmax(tomo), tomo.shape))[::-1] * voxel
    assert np.min(np.linalg.norm(POINTS - k, axis=1)) <= 1.5 * PIXEL
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["params"]["axis_x"] == 120.0 and prov["params"]["axis_z"] == 50.0
    assert (tmp_path / "out" / "tomogram.png").stat().st_size > 1000


def test_points_after_binning_by_two_and_non_integer(tmp_path):
    ts = write_series(tmp_path / "in", ANGLES)
    for target in (8.0, 6.0):
        out = tmp_path / f"out{target:g}"
        reconstruct(ts, out, voxel_size=target)
        tomo, voxel = read_mrc(out / "tomogram.mrc")
        assert voxel == pytest.approx(target, rel=1e-5)
        assert tomo.shape[0] == round(NZ_SAMPLE * PIXEL / target)
        found = peak_positions(tomo, POINTS, voxel, radius=2)
        np.testing.assert_allclose(found, POINTS, atol=0.35 * voxel)


def test_points_with_missing_tilts_any_order(tmp_path):
    """--exclude drops images; a .tlt with gaps and shuffled image order also works."""
    ts = write_series(tmp_path / "a", ANGLES)
    res = reconstruct(ts, tmp_path / "out_a", exclude="1,20-22,41")
    prov = json.loads(res.provenance.read_text())
    assert len(prov["params"]["angles_used"]) == len(ANGLES) - 5
    tomo, voxel = read_mrc(res.tomogram)
    np.testing.assert_allclose(peak_positions(tomo, POINTS, voxel), POINTS, atol=0.35 * PIXEL)

    rng = np.random.default_rng(3)
    gappy = np.delete(ANGLES, [5, 6, 7, 30])
    order = rng.permutation(len(gappy))
    stack = render_points(POINTS, gappy, (NX - 1) / 2 * PIXEL, (NZ_SAMPLE - 1) / 2 * PIXEL)[order]
    ts = write_series(tmp_path / "b", gappy[order], stack=stack)
    tomo, voxel = read_mrc(reconstruct(ts, tmp_path / "out_b").tomogram)
    np.testing.assert_allclose(peak_positions(tomo, POINTS, voxel), POINTS, atol=0.35 * PIXEL)


def test_agrees_with_per_slice_iradon():
    """Same sinogram, same tilt range: NCC > 0.99 with skimage's ramp-filtered iradon inside the
    reconstruction circle (radius n/2 - 2). skimage's row axis runs along our -z (equivalently
    its angles are ours negated); values differ only by the angular step (ours: the real 2°,
    iradon: 180°/n_views)."""
    skimage = pytest.importorskip("skimage")
    from skimage.data import shepp_logan_phantom
    from skimage.transform import iradon, radon, resize

    n = 65
    phantom = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)
    theta = np.arange(-60.0, 61.0, 2.0)
    sino = radon(phantom, theta=theta, circle=True)                      # [u, view]
    ref = iradon(sino, theta=theta, circle=True, filter_name="ramp")[::-1]
    stack = np.stack([sino.T, 0.5 * sino.T], axis=1).astype(np.float32)   # two y rows
    tomo = weighted_back_projection(stack, theta, 1.0, n)
    yy, xx = np.mgrid[:n, :n]
    inside = (yy - n // 2) ** 2 + (xx - n // 2) ** 2 < (n // 2 - 2) ** 2

    def ncc(a, b):
        a, b = a[inside] - a[inside].mean(), b[inside] - b[inside].mean()
        return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))

    assert ncc(tomo[:, 0], ref) > 0.99
    assert ncc(tomo[:, 1], ref) > 0.99
    scale = np.deg2rad(2.0) / (np.pi / len(theta))
    assert tomo[:, 0][inside].std() / ref[inside].std() == pytest.approx(scale, rel=0.02)


def test_fourier_binning_keeps_the_grid_and_removes_aliasing():
    pixel, n = 2.0, 96
    x = np.arange(n) * pixel
    period = 40.0                                           # Å, below the binned Nyquist (2 * 6 Å)
    line = np.cos(2 * np.pi * x / period) + 0.5
    for target in (4.0, 3.0, 5.3):
        plan = plan_binning(pixel, target)
        out, voxel = bin_stack(np.tile(line, (1, 8, 1)), pixel, target)
        assert voxel == pytest.approx(target, rel=1e-5)
        xb = np.arange(out.shape[-1]) * voxel
        assert out.shape[-1] == plan.output_length(n) and xb[-1] <= x[-1] + 1e-9
        inner = (xb > 20) & (xb < x[-1] - 20)               # away from the padded ends
        np.testing.assert_allclose(out[0, 1, inner], np.cos(2 * np.pi * xb[inner] / period) + 0.5, atol=0.02)
    # A frequency above the new Nyquist is removed, not folded back.
    fast = np.cos(2 * np.pi * x / 5.0)                    # 5 Å period; binned Nyquist period = 8 Å
    out, _ = bin_stack(np.tile(fast, (1, 4, 1)), pixel, 4.0)
    assert np.abs(out[0, 1, 5:-5]).max() < 0.05


def test_radial_filter_matches_imod_formula():
    n, n_pad = 100, 200
    w = radial_weights(n_pad, n, 0.35, 0.05) * n_pad      # back to IMOD's units (frequency index)
    irad = round(int(0.35 * n) * n_pad / n)                 # 70
    assert w[0] == pytest.approx(0.2)
    np.testing.assert_allclose(w[1:irad], np.arange(1, irad))
    sigma = 0.05 * n * n_pad / n
    k = np.arange(irad, n_pad // 2 + 1)
    np.testing.assert_allclose(w[irad:], (irad - 1) * np.exp(-(((k + 1 - irad) / sigma) ** 2) / 2), rtol=1e-12)
    # Fake SIRT keeps the ramp at the lowest frequencies and flattens it to a plateau of about
    # (iterations + 0.3) * 0.00195 * (n_pad + 2) at the highest (SIRT's damping of fine detail).
    s = radial_weights(n_pad, n, 0.5, 0.5, sirt_iterations=10) * n_pad
    assert s[1] == pytest.approx(1, rel=0.01)
    assert s[90] == pytest.approx(10.3 * 0.00195 * (n_pad + 2), rel=0.03)
    assert np.all(np.diff(s[1:100]) >= 0)
    # Views beside a gap stand for more angle (quadrature weights, radians).
    np.testing.assert_allclose(angular_weights([0, 2, 4, 10]), np.deg2rad([2, 2, 4, 6]))
    np.testing.assert_allclose(angular_weights([4, 0, 2]), np.deg2rad([2, 2, 2]))


def test_array_api_same_input_same_output():
    stack = render_points(POINTS, ANGLES, (NX - 1) / 2 * PIXEL, (NZ_SAMPLE - 1) / 2 * PIXEL)
    a, va = reconstruct_array(stack, ANGLES, PIXEL, voxel_size=8.0, thickness=NZ_SAMPLE * PIXEL)
    b, vb = reconstruct_array(stack, ANGLES, PIXEL, voxel_size=8.0, thickness=NZ_SAMPLE * PIXEL)
    assert va == vb == 8.0 and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def _cli_ok(args):
    with pytest.raises(SystemExit) as exc:
        run(app, args)
    assert exc.value.code == 0


def _cli_fails(args, capsys, *needles):
    with pytest.raises(SystemExit) as exc:
        run(app, args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    for needle in needles:
        assert needle in err, err
    return err


def test_errors_are_one_line_and_keep_earlier_outputs(tmp_path, capsys):
    ts = write_series(tmp_path / "in", ANGLES)
    out = tmp_path / "out"
    _cli_ok(["reconstruct", str(ts), "--out", str(out), "--voxel-size", "8"])
    before = (out / "tomogram.mrc").read_bytes()

    # more angles than images
    write_tlt(tmp_path / "in" / "bad.tlt", np.append(ANGLES, 63.0))
    _cli_fails(["reconstruct", str(ts), "--out", str(out), "--tlt", str(tmp_path / "in" / "bad.tlt")],
               capsys, "bad.tlt", "42 tilt angles", "41 images")
    # cannot bin up
    _cli_fails(["reconstruct", str(ts), "--out", str(out), "--voxel-size", "2"], capsys,
               "ts.mrc", "smaller than the pixel size", "--voxel-size >= 4")
    # missing files
    _cli_fails(["reconstruct", str(tmp_path / "none.mrc"), "--out", str(out)], capsys, "none.mrc", "no such")
    shutil.copy(ts, tmp_path / "lonely.mrc")
    _cli_fails(["reconstruct", str(tmp_path / "lonely.mrc"), "--out", str(out)], capsys, "lonely.tlt", "--tlt")
    # constant series
    flat = write_series(tmp_path / "flat", ANGLES, stack=np.full((len(ANGLES), NY, NX), 3.0, np.float32))
    _cli_fails(["reconstruct", str(flat), "--out", str(out)], capsys, "constant")
    # exclusions out of range
    _cli_fails(["reconstruct", str(ts), "--out", str(out), "--exclude", "0,5"], capsys, "out of range")
    assert (out / "tomogram.mrc").read_bytes() == before


def test_imod_engine_commands_and_missing_imod(tmp_path, capsys, monkeypatch):
    opts = dict(imod.tilt_options(tmp_path / "b.mrc", tmp_path / "t.rec", tmp_path / "t.tlt", nx=64, nz=32,
                                  voxel=8.0, axis_x=(64 - 1) / 2 * 8.0 + 16.0, axis_z=(32 - 1) / 2 * 8.0 - 24.0,
                                  radial=(0.5, 0.5), sirt_iterations=10, exclude=[1, 2, 3, 7]))
    assert opts["RADIAL"] == "0.5 0.5" and opts["FalloffIsTrueSigma"] == "1" and opts["XAXISTILT"] == "0.0"
    assert opts["THICKNESS"] == "32" and opts["FakeSIRTiterations"] == "10" and opts["EXCLUDELIST"] == "1-3,7"
    assert opts["OFFSET"] == "0.0 2.0000" and opts["SHIFT"] == "2.0000 3.0000" and "PERPENDICULAR" in opts
    com = imod.format_com("tilt", list(opts.items()))
    assert com.splitlines()[1] == "$tilt -StandardInput" and "RADIAL 0.5 0.5" in com
    rec = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)      # [y, thickness, x]
    ours = imod.imod_orientation_to_ours(rec)
    assert ours.shape == (3, 2, 4) and ours[0, 1, 2] == rec[1, 2, 2]
    if shutil.which("tilt") and shutil.which("newstack"):
        pytest.skip("IMOD is installed: the missing-IMOD error cannot be shown here")
    ts = write_series(tmp_path / "in", ANGLES)
    _cli_fails(["reconstruct", str(ts), "--out", str(tmp_path / "o"), "--engine", "imod"], capsys,
               "newstack", "PATH", "--engine templearn")


def test_bin_tomogram_keeps_positions_turns_imod_axes_and_refuses_upsampling(tmp_path, capsys):
    """A blob in a 4 Å tomogram stays at its position in Å after binning to 8 Å, whether the file is
    [z, y, x] or IMOD tilt's unrotated [y, z, x] (detected from the thin middle axis); the mean is kept."""
    voxel, shape = 4.0, (24, 64, 48)                       # [z, y, x]: a thin slab
    where = np.array([40.0, 100.0, 60.0])                   # Å, [z, y, x]
    grids = np.meshgrid(*[np.arange(n) * voxel for n in shape], indexing="ij")
    blob = np.exp(-sum((g - w) ** 2 for g, w in zip(grids, where)) / (2 * 12.0 ** 2)).astype(np.float32) + 1.0
    write_mrc(tmp_path / "zyx.mrc", blob, voxel)
    write_mrc(tmp_path / "yzx.mrc", np.swapaxes(blob[::-1], 0, 1), voxel)   # as IMOD's tilt writes it
    for name in ("zyx", "yzx"):
        _cli_ok(["bin-tomogram", str(tmp_path / f"{name}.mrc"), "--voxel-size", "8", "--out", str(tmp_path / "b")])
        out, vs = read_mrc(tmp_path / "b" / f"{name}.mrc")
        assert vs == pytest.approx(8.0) and out.shape == (12, 32, 24), name
        g = np.meshgrid(*[np.arange(n) * vs for n in out.shape], indexing="ij")
        w = np.clip(out - 1.0, 0, None)
        centre = np.array([(gi * w).sum() / w.sum() for gi in g])
        np.testing.assert_allclose(centre, where, atol=1.0, err_msg=name)
        assert out.mean() == pytest.approx(blob.mean(), rel=0.02)
        prov = json.loads((tmp_path / "b" / "provenance.json").read_text())
        assert prov["params"]["orientation_used"] == name
    before = (tmp_path / "b" / "zyx.mrc").read_bytes()
    _cli_fails(["bin-tomogram", str(tmp_path / "zyx.mrc"), "--voxel-size", "2", "--out", str(tmp_path / "b")],
               capsys, "zyx.mrc", "smaller than the pixel size")
    _cli_fails(["bin-tomogram", str(tmp_path / "zyx.mrc"), "--voxel-size", "8", "--out", str(tmp_path / "b"),
                "--orientation", "xyz"], capsys, "--orientation")
    assert (tmp_path / "b" / "zyx.mrc").read_bytes() == before
