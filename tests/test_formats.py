"""Picks in the formats of the field's tools: RELION 5 / RELION 4 / Warp STAR, Dynamo tables, IMOD
point files, malformed inputs (one line, exit 2), copick projects and the napari viewer."""

from __future__ import annotations

import numpy as np
import pytest

from templearn.errors import TemplearnError
from templearn.euler import euler_to_matrix
from templearn.picks import Picks, read_picks, write_picks

VS = 8.0
SHAPE = (40, 64, 96)   # [z, y, x]


def _picks(n=6, tomogram="TS_01", seed=4, label=1):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0, 1, (n, 3)) * np.array(SHAPE[::-1]) - 0.5
    euler = np.column_stack([rng.uniform(-180, 180, n), rng.uniform(0, 180, n), rng.uniform(-180, 180, n)])
    return Picks(xyz, VS, tomogram, label, rng.uniform(0, 1, n), euler, {1: "ribosome", 2: "nucleosome"})


def _same_rotations(a, b):
    np.testing.assert_allclose(euler_to_matrix(a), euler_to_matrix(b), atol=1e-5)


# --- RELION STAR ---------------------------------------------------------------------------------

def test_relion5_round_trip_in_angstrom(tmp_path):
    import starfile

    p = _picks()
    write_picks(tmp_path / "picks.star", p, shape=SHAPE)
    data = starfile.read(tmp_path / "picks.star", always_dict=True)
    parts = data["particles"]
    # RELION 5's columns: centred Å, no voxel coordinates, and the tomograms table beside.
    assert {"rlnTomoName", "rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
            "rlnCenteredCoordinateZAngst", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"} <= set(parts)
    assert "rlnCoordinateX" not in parts and "rlnDetectorPixelSize" not in parts
    assert data["optics"]["rlnTomoTiltSeriesPixelSize"].iloc[0] == pytest.approx(VS)
    tomos = starfile.read(tmp_path / "tomograms.star", always_dict=True)["global"]
    row = tomos.iloc[0]
    assert row["rlnTomoName"] == "TS_01"
    assert (row["rlnTomoSizeX"], row["rlnTomoSizeY"], row["rlnTomoSizeZ"]) == SHAPE[::-1]
    assert row["rlnTomoTiltSeriesPixelSize"] == pytest.approx(VS) and row["rlnTomoTomogramBinning"] == 1
    # RELION's decentering: pixel = centred / pixel size + size / 2.
    np.testing.assert_allclose(parts["rlnCenteredCoordinateXAngst"] / VS + SHAPE[2] / 2, p.xyz[:, 0], atol=1e-4)
    back = read_picks(tmp_path / "picks.star")
    assert back.voxel_size == pytest.approx(VS)
    np.testing.assert_allclose(back.xyz_angstrom(), p.xyz_angstrom(), atol=0.01)
    assert (back.tomogram == "TS_01").all() and (back.label == 1).all()
    np.testing.assert_allclose(back.score, p.score, atol=1e-6)
    _same_rotations(back.euler, p.euler)


def test_relion5_written_by_relion(tmp_path):
    """A RELION 5 particles file (general + optics + particles blocks, binned tomograms): the Å
    from the tomogram origin are centred + size * tilt-series pixel / 2; the voxel is the
    tomogram's (pixel x binning)."""
    (tmp_path / "tomograms.star").write_text(
        "data_global\n\nloop_\n_rlnTomoName #1\n_rlnVoltage #2\n_rlnTomoTiltSeriesPixelSize #3\n"
        "_rlnTomoTomogramBinning #4\n_rlnTomoSizeX #5\n_rlnTomoSizeY #6\n_rlnTomoSizeZ #7\n"
        "_rlnTomoReconstructedTomogram #8\n"
        "TS_01 300.0 1.35 4.0 4000 4096 1000 Reconstruct/job010/tomograms/rec_TS_01.mrc\n"
        "TS_02 300.0 1.35 4.0 4000 4096 1200 Reconstruct/job010/tomograms/rec_TS_02.mrc\n")
    (tmp_path / "particles.star").write_text(
        "# version 50001\n\ndata_general\n\n_rlnTomoSubTomosAre2DStacks 1\n\n"
        "data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnOpticsGroupName #2\n_rlnTomoTiltSeriesPixelSize #3\n"
        "_rlnImagePixelSize #4\n_rlnImageSize #5\n1 optics1 1.35 5.4 64\n\n"
        "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCenteredCoordinateXAngst #2\n"
        "_rlnCenteredCoordinateYAngst #3\n_rlnCenteredCoordinateZAngst #4\n_rlnAngleRot #5\n_rlnAngleTilt #6\n"
        "_rlnAnglePsi #7\n_rlnOpticsGroup #8\n"
        "TS_01 1754.83 -879.58 138.07 27.1 92.6 6.7 1\n"
        "TS_02 -100.00 0.00 -200.50 0.0 0.0 0.0 1\n")
    back = read_picks(tmp_path / "particles.star")
    assert back.voxel_size == pytest.approx(5.4)
    expect = np.array([[1754.83 + 2700.0, -879.58 + 2764.8, 138.07 + 675.0],
                       [-100.0 + 2700.0, 0.0 + 2764.8, -200.5 + 810.0]])
    np.testing.assert_allclose(back.xyz_angstrom(), expect, atol=0.01)
    assert back.tomogram.tolist() == ["TS_01", "TS_02"]


def test_relion5_reads_alone_or_needs_its_tomograms(tmp_path):
    import starfile

    p = _picks()
    write_picks(tmp_path / "picks.star", p, shape=SHAPE)
    (tmp_path / "tomograms.star").unlink()
    # Our particles record their tomogram's size: the file reads alone (as a workflow stages it).
    np.testing.assert_allclose(read_picks(tmp_path / "picks.star").xyz_angstrom(), p.xyz_angstrom(), atol=0.01)
    blocks = starfile.read(tmp_path / "picks.star", always_dict=True)
    blocks["particles"] = blocks["particles"].drop(columns=["rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ"])
    starfile.write(blocks, tmp_path / "picks.star", overwrite=True)
    with pytest.raises(TemplearnError, match="tomograms.star") as exc:
        read_picks(tmp_path / "picks.star")
    assert exc.value.path == str(tmp_path / "picks.star")
    with pytest.raises(TemplearnError, match="shape"):
        write_picks(tmp_path / "p5.star", p, star_format="relion5")


def test_tomograms_table_is_merged(tmp_path):
    a, b = _picks(tomogram="TS_01"), _picks(tomogram="TS_02", seed=5)
    write_picks(tmp_path / "a.star", a, shape=SHAPE)
    write_picks(tmp_path / "b.star", b, shape=(20, 64, 96))
    for path, p in ((tmp_path / "a.star", a), (tmp_path / "b.star", b)):
        np.testing.assert_allclose(read_picks(path).xyz_angstrom(), p.xyz_angstrom(), atol=0.01)


def test_relion4_round_trip(tmp_path):
    import starfile

    p = _picks()
    write_picks(tmp_path / "picks.star", p, shape=SHAPE, star_format="relion4")
    parts = starfile.read(tmp_path / "picks.star", always_dict=True)["particles"]
    np.testing.assert_allclose(parts[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]], p.xyz, atol=1e-5)
    assert not (tmp_path / "tomograms.star").exists()
    back = read_picks(tmp_path / "picks.star")
    assert back.voxel_size == pytest.approx(VS)
    np.testing.assert_allclose(back.xyz, p.xyz, atol=1e-5)
    _same_rotations(back.euler, p.euler)
    with pytest.raises(TemplearnError, match="unknown STAR format"):
        write_picks(tmp_path / "x.star", p, star_format="relion3")


def _voxel_star(path, columns: dict, optics: dict | None = None):
    import pandas as pd
    import starfile

    blocks = {}
    if optics is not None:
        blocks["optics"] = pd.DataFrame(optics)
    blocks["particles"] = pd.DataFrame({"rlnTomoName": ["t"], "rlnCoordinateX": [100.0], "rlnCoordinateY": [50.0],
                                        "rlnCoordinateZ": [10.0], **columns})
    starfile.write(blocks, path, overwrite=True)
    return path


@pytest.mark.parametrize("columns, optics, expect", [
    ({"rlnOpticsGroup": [2]}, {"rlnOpticsGroup": [1, 2], "rlnTomoTiltSeriesPixelSize": [1.0, 2.5],
                               "rlnImagePixelSize": [9.0, 9.0]}, 2.5),             # tilt-series pixel, by group
    ({}, {"rlnOpticsGroup": [1], "rlnImagePixelSize": [4.2]}, 4.2),                 # RELION 4 optics
    ({"rlnMicrographPixelSize": [3.1]}, None, 3.1),
    ({"rlnMagnification": [10000.0], "rlnDetectorPixelSize": [1.96]}, None, 1.96),  # Warp: µm x 1e4 / mag
    ({"rlnMagnification": [50000.0], "rlnDetectorPixelSize": [5.0]}, None, 1.0),
])
def test_voxel_coordinates_pixel_size(tmp_path, columns, optics, expect):
    back = read_picks(_voxel_star(tmp_path / "p.star", columns, optics), voxel_size=99.0)
    assert back.voxel_size == pytest.approx(expect)
    np.testing.assert_allclose(back.xyz_angstrom(), [[100.0 * expect, 50.0 * expect, 10.0 * expect]])


def test_detector_pixel_size_is_never_angstrom(tmp_path):
    path = _voxel_star(tmp_path / "p.star", {"rlnDetectorPixelSize": [5.0]})
    with pytest.raises(TemplearnError, match="pixel size") as exc:
        read_picks(path)
    assert "\n" not in str(exc.value)
    assert read_picks(path, voxel_size=13.0).voxel_size == pytest.approx(13.0)


# --- Dynamo and IMOD -----------------------------------------------------------------------------

def test_dynamo_table(tmp_path):
    import dynamotable
    from scipy.spatial.transform import Rotation

    p = _picks()
    p.label[:2] = 2
    write_picks(tmp_path / "picks.tbl", p)
    df = dynamotable.read(str(tmp_path / "picks.tbl"), str(tmp_path / "picks.doc"))
    assert df["tag"].tolist() == list(range(1, len(p) + 1))
    np.testing.assert_allclose(df[["x", "y", "z"]], p.xyz, atol=1e-6)
    assert df["class"].tolist() == p.label.tolist() and (df["tomo"] == 1).all()
    assert (df["tomo_file"] == "TS_01").all() and (df["apix"] == VS).all()
    np.testing.assert_allclose(df["cc"], p.score, atol=1e-9)
    # Dynamo's extrinsic zxz (tdrot, tilt, narot) names the same rotation as RELION's ZYZ.
    dyn = Rotation.from_euler("zxz", df[["tdrot", "tilt", "narot"]].to_numpy(), degrees=True).as_matrix()
    rel = Rotation.from_euler("ZYZ", p.euler, degrees=True).as_matrix()
    np.testing.assert_allclose(dyn, rel, atol=1e-9)
    # the textbook pair: RELION (rot, tilt, psi) = (narot - 90, tilt, tdrot + 90)
    np.testing.assert_allclose(np.asarray(df[["tilt"]]).ravel(), p.euler[:, 1], atol=1e-6)
    back = read_picks(tmp_path / "picks.tbl")
    assert back.voxel_size == VS and (back.tomogram == "TS_01").all()
    np.testing.assert_allclose(back.xyz, p.xyz, atol=1e-6)
    _same_rotations(back.euler, p.euler)


def test_imod_point_file(tmp_path):
    p = _picks()
    p.label[:2] = 2
    write_picks(tmp_path / "picks_imod.txt", p)
    rows = [line.split() for line in (tmp_path / "picks_imod.txt").read_text().splitlines()]
    # point2model's input: object contour x y z, numbered from 1; IMOD's pixel centres at +0.5 in x, y.
    assert all(len(r) == 5 for r in rows) and len(rows) == len(p)
    obj = np.array([int(r[0]) for r in rows])
    cont = np.array([int(r[1]) for r in rows])
    xyz = np.array([[float(v) for v in r[2:]] for r in rows])
    assert sorted(obj.tolist()) == sorted(p.label.tolist())
    for lab in (1, 2):
        assert cont[obj == lab].tolist() == list(range(1, int(np.sum(p.label == lab)) + 1))
        np.testing.assert_allclose(xyz[obj == lab], p.xyz[p.label == lab] + [0.5, 0.5, 0.0], atol=1e-3)
    back = read_picks(tmp_path / "picks_imod.txt", voxel_size=VS)
    np.testing.assert_allclose(np.sort(back.xyz, axis=0), np.sort(p.xyz, axis=0), atol=1e-3)
    with pytest.raises(TemplearnError, match="voxel size"):
        read_picks(tmp_path / "picks_imod.txt")


def test_empty_picks_in_every_format(tmp_path):
    from templearn.stages.pick_eval.outputs import write_all

    empty = Picks.empty(VS)
    empty.class_names = {1: "ribosome"}
    write_all(tmp_path, empty, shape=SHAPE)
    for f in ("picks.star", "picks.csv", "picks.xml", "picks.tbl", "picks_imod.txt", "picks_ribosome.json"):
        assert len(read_picks(tmp_path / f, voxel_size=VS)) == 0, f
    assert read_picks(tmp_path / "picks.star").voxel_size == VS      # the optics table records it
    with pytest.raises(TemplearnError, match="voxel size"):
        read_picks(tmp_path / "picks.tbl")


def test_write_all_holds_accepted_picks(tmp_path):
    import dynamotable

    from templearn.stages.pick_eval.outputs import write_all

    p = _picks(n=8)
    p.accepted = np.array([True, False] * 4)
    paths = write_all(tmp_path, p, shape=SHAPE)
    names = {q.name for q in paths}
    assert {"picks.star", "tomograms.star", "picks.csv", "picks.xml", "picks.tbl", "picks.doc",
            "picks_imod.txt", "picks_ribosome.json"} <= names
    keep = p.xyz_angstrom()[p.accepted]
    for f, kw in (("picks.star", {}), ("picks.csv", {}), ("picks.xml", {"voxel_size": VS}), ("picks.tbl", {}),
                  ("picks_imod.txt", {"voxel_size": VS}), ("picks_ribosome.json", {})):
        back = read_picks(tmp_path / f, **kw)
        np.testing.assert_allclose(back.xyz_angstrom(), keep, atol=0.01, err_msg=f)
    assert len(dynamotable.read(str(tmp_path / "picks.tbl"))) == 4
    write_all(tmp_path / "r4", p, star_format="relion4")
    np.testing.assert_allclose(read_picks(tmp_path / "r4" / "picks.star").xyz_angstrom(), keep, atol=0.01)


# --- malformed inputs ----------------------------------------------------------------------------

MALFORMED = [
    ("empty.star", ""),
    ("blank.star", "\n\n   \n"),
    ("garbled.star", "data_particles\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n1.0\n2.0 3.0 4.0 5.0\n"),
    ("nocoords.star", "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnAngleRot #2\nTS 1.0\n"),
    ("binary.star", b"\x00\xff\xfe garbage \x89PNG\r\n"),
    ("words.star", "this is not a star file at all\n"),
    ("empty.xml", ""),
    ("bad.xml", "<objlist><object x='1' y='2'"),
    ("nums.xml", "<objlist><object x='a' y='2' z='3'/></objlist>"),
    ("empty.json", ""),
    ("bad.json", "{\"points\": [ {\"location\": "),
    ("list.json", "[1, 2, 3]"),
    ("nolocation.json", "{\"voxel_spacing\": 10, \"points\": [{\"score\": 1}]}"),
    ("empty.csv", ""),
    ("binary.csv", b"\x00\x01\x02\xff\xfe\n\x00"),
    ("text.csv", "x,y,z\na,b,c\n"),
    ("binary.tbl", b"\x00\xff\xfe\x01"),
    ("short.tbl", "1 1 0 0 0\n"),
    ("text.tbl", "1 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 1 0 a b c\n"),
    ("bad.txt", "1 2\n"),
    ("words.txt", "one two three\n"),
]


@pytest.mark.parametrize("name, content", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_picks_one_line(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(TemplearnError) as exc:
        read_picks(path, voxel_size=10.0)
    assert exc.value.path == str(path)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 400


@pytest.mark.parametrize("name, content", [MALFORMED[0], MALFORMED[2], MALFORMED[8], MALFORMED[13], MALFORMED[17]],
                         ids=["empty.star", "garbled.star", "nums.xml", "empty.csv", "short.tbl"])
def test_malformed_picks_cli_exit_2(tmp_path, capsys, name, content):
    from templearn.cli_util import run
    from templearn.stages.pick_eval.cli import app

    good = tmp_path / "truth.csv"
    write_picks(good, _picks())
    bad = tmp_path / name
    bad.write_text(content)
    for args in (["--picks", str(bad), "--truth", str(good)], ["--picks", str(good), "--truth", str(bad)]):
        with pytest.raises(SystemExit) as exc:
            run(app, ["evaluate", *args, "--out", str(tmp_path / "ev"), "--distance", "20"])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and str(bad) in err and "\n" not in err and "Traceback" not in err


# --- copick --------------------------------------------------------------------------------------

def _cli(app_args) -> int:
    from templearn.cli_util import run
    from templearn.stages.pick_eval.cli import app

    try:
        run(app, [str(a) for a in app_args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _blobs(shape=(32, 40, 48), n=4, sigma=2.0, seed=2):
    """Gaussian blobs (bright) at well-separated voxel positions [x, y, z], with a little noise."""
    rng = np.random.default_rng(seed)
    pos = []
    while len(pos) < n:
        p = rng.integers([8, 8, 8], [shape[2] - 8, shape[1] - 8, shape[0] - 8])
        if not pos or np.min(np.linalg.norm(np.array(pos) - p, axis=1)) > 12:
            pos.append(p)
    zz, yy, xx = np.indices(shape)
    vol = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2) / (2 * sigma ** 2)) for x, y, z in pos)
    return (vol + rng.normal(0, 0.02, shape)).astype(np.float32), np.array(pos, float)


def _copick_project(tmp_path, volume, voxel_size, objects=("ribosome",)):
    """A local copick project made with copick's own API: one run, one OME-Zarr tomogram."""
    import json

    copick = pytest.importorskip("copick")
    config = tmp_path / "copick.json"
    config.write_text(json.dumps({
        "config_type": "filesystem", "name": "test", "overlay_root": f"local://{tmp_path / 'overlay'}",
        "overlay_fs_args": {"auto_mkdir": True},
        "pickable_objects": [{"name": o, "is_particle": True, "label": i + 1, "radius": 60.0}
                             for i, o in enumerate(objects)] + [{"name": "membrane", "is_particle": False, "label": 9}],
    }))
    root = copick.from_file(str(config))
    run = root.new_run("TS_01")
    run.new_voxel_spacing(voxel_size).new_tomogram("wbp").from_numpy(volume)
    return config


def test_copick_tomogram_in_picks_out(tmp_path):
    """match reads the tomogram of a copick project and writes its picks into it, listed by copick
    at the right locations in Å."""
    import copick

    from templearn.mrc import write_mrc

    vol, pos = _blobs()
    config = _copick_project(tmp_path, vol, VS)
    zz, yy, xx = np.indices((13, 13, 13))
    tpl = write_mrc(tmp_path / "blob.mrc", np.exp(-((xx - 6) ** 2 + (yy - 6) ** 2 + (zz - 6) ** 2) / 8.0), VS)
    out = tmp_path / "tm"
    assert _cli(["match", "--copick-config", config, "--run", "TS_01", "--template", tpl, "--out", out,
                 "--angular-step", 90, "--n-peaks", len(pos), "--contrast", "bright", "--class-name", "ribosome"]) == 0
    found = copick.from_file(str(config)).get_run("TS_01").get_picks(object_name="ribosome", user_id="templearn",
                                                                      session_id="0")
    assert len(found) == 1
    xyz, transforms = found[0].numpy()
    assert len(xyz) >= len(pos) - 1
    d = np.linalg.norm(xyz[:, None, :] - (pos * VS)[None], axis=2)
    assert np.all(d.min(axis=1) <= 1.0 * VS)           # each pick on a blob, within a voxel
    np.testing.assert_allclose(xyz, read_picks(out / "picks.star").xyz_angstrom(), atol=0.01)
    assert transforms.shape == (len(xyz), 4, 4)
    # A second run replaces that picks set rather than failing on it.
    assert _cli(["match", "--copick-config", config, "--run", "TS_01", "--template", tpl, "--out", out,
                 "--angular-step", 90, "--n-peaks", 2, "--contrast", "bright", "--class-name", "ribosome"]) == 0
    again = copick.from_file(str(config)).get_run("TS_01").get_picks(object_name="ribosome")
    assert len(again) == 1 and len(again[0].numpy()[0]) == 2


def test_copick_errors(tmp_path, capsys):
    from templearn.mrc import write_mrc

    vol, _ = _blobs()
    config = _copick_project(tmp_path, vol, VS)
    zz, yy, xx = np.indices((9, 9, 9))
    tpl = write_mrc(tmp_path / "blob.mrc", np.exp(-((xx - 4) ** 2 + (yy - 4) ** 2 + (zz - 4) ** 2) / 8.0), VS)
    base = ["match", "--template", tpl, "--out", tmp_path / "o", "--angular-step", 90]
    for args, words in (
        (["--copick-config", config, "--run", "TS_99"], ["TS_99", "TS_01"]),
        (["--copick-config", config, "--run", "TS_01", "--voxel-spacing", 3.0], ["3 Å"]),
        (["--copick-config", config, "--run", "TS_01", "--tomo-type", "denoised"], ["denoised", "wbp"]),
        (["--copick-config", config, "--run", "TS_01", "--class-name", "virus"], ["virus", "ribosome"]),
        (["--copick-config", config, "--run", "TS_01", tmp_path / "t.mrc"], ["not both"]),
        (["--copick-config", config], ["--run"]),
        (["--copick-config", tmp_path / "none.json", "--run", "TS_01"], ["none.json"]),
        ([], ["copick"]),
    ):
        assert _cli(base + args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and all(w in err for w in words), (args, err)


def test_copick_truth_for_evaluate(tmp_path):
    """evaluate takes a copick run's picks (a curator's) as the truth."""
    import json

    import copick
    from copick.models import CopickLocation, CopickPoint

    vol, pos = _blobs()
    config = _copick_project(tmp_path, vol, VS)
    run = copick.from_file(str(config)).get_run("TS_01")
    truth = run.new_picks("ribosome", "1", "curator")
    truth.points = [CopickPoint(location=CopickLocation(x=x, y=y, z=z)) for x, y, z in pos * VS]
    truth.store()
    picks = tmp_path / "picks.csv"
    xyz = np.concatenate([pos[:3] + 0.5, [[2.0, 2.0, 2.0]]])      # 3 right, 1 false, the 4th missed
    write_picks(picks, Picks(xyz, VS, "TS_01", 1, [4.0, 3.0, 2.0, 1.0], class_names={1: "ribosome"}))
    out = tmp_path / "ev"
    assert _cli(["evaluate", "--picks", picks, "--truth", "TS_01", "--copick-config", config,
                 "--target", "ribosome", "--distance", 2 * VS, "--out", out]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == "ribosome" and report["tomograms"][0]["n_truth"] == len(pos)
    assert max(report["overall"]["tp"]) == 3 and report["overall"]["fn"][0] == len(pos) - 3
    from templearn.copick_io import CopickPicksSource

    back = CopickPicksSource(config, "curator").read("TS_01", "ribosome")
    np.testing.assert_allclose(back.xyz_angstrom(), pos * VS, atol=1e-6)


@pytest.mark.deepfinder
def test_copick_pick(tmp_path):
    """pick segments a copick project's tomogram and stores its picks there (a network with random
    weights: the picks are whatever it finds; the copick set must be the picks files' set)."""
    import json

    import copick

    from templearn.stages.deepfinder_train import dfcompat

    dfcompat.seed_everything(0)
    dfcompat.save_weights(dfcompat.build_network(2, 16), tmp_path / "model.h5")
    (tmp_path / dfcompat.CARD_NAME).write_text(json.dumps({
        "format": dfcompat.CARD_FORMAT, "version": dfcompat.CARD_VERSION, "n_classes": 2, "patch": 16,
        "voxel_size": VS, "classes": {"0": "background", "1": "ribosome"}}))
    vol, _ = _blobs(shape=(24, 32, 32), n=2)
    config = _copick_project(tmp_path, vol, VS)
    out = tmp_path / "pick"
    assert _cli(["pick", "--copick-config", config, "--run", "TS_01", "--weights", tmp_path / "model.h5",
                 "--out", out, "--radius", 3, "--min-size", 1, "--crop", 2, "--overlap", 6,
                 "--copick-user", "me", "--copick-session", "7"]) == 0
    found = copick.from_file(str(config)).get_run("TS_01").get_picks(object_name="ribosome", user_id="me", session_id="7")
    assert len(found) == 1
    csv = read_picks(out / "picks.csv")
    np.testing.assert_allclose(found[0].numpy()[0], csv.xyz_angstrom(), atol=0.01)
    assert len(csv) > 0 and (csv.tomogram == "TS_01").all()


# --- napari --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def x_display(tmp_path_factory):
    """The environment of a virtual X display (Xvfb) for napari's OpenGL canvas, started for these
    tests and stopped after; skips when Xvfb or Qt's xcb plugin cannot run here (.ci/run installs
    them). Qt runs in child processes only: one that loses its X server exits, which must not be
    pytest's."""
    import os
    import shutil
    import subprocess
    import sys
    import time
    from pathlib import Path

    pytest.importorskip("napari")
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("needs Xvfb (Debian package xvfb) to draw napari's canvas")
    proc = None
    for n in range(90, 140):
        if Path(f"/tmp/.X{n}-lock").exists() or Path(f"/tmp/.X11-unix/X{n}").exists():
            continue
        proc = subprocess.Popen([xvfb, f":{n}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            if Path(f"/tmp/.X11-unix/X{n}").exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            break
        proc = None
    if proc is None:
        pytest.skip("could not start Xvfb")
    runtime = tmp_path_factory.mktemp("xdg")
    runtime.chmod(0o700)
    env = {"DISPLAY": f":{n}", "QT_QPA_PLATFORM": "xcb", "XDG_RUNTIME_DIR": str(runtime)}
    # Qt aborts the process when its platform plugin cannot load: try it in a child first.
    probe = subprocess.run([sys.executable, "-c", "from qtpy.QtWidgets import QApplication; QApplication([])"],
                           env={**os.environ, **env}, capture_output=True, timeout=60)
    if probe.returncode != 0:
        proc.terminate()
        proc.wait()
        pytest.skip("Qt's xcb platform plugin cannot start (missing libxcb-* libraries?)")
    yield {**os.environ, **env}
    proc.terminate()
    proc.wait(timeout=10)


VIEW_SCRIPT = """
import sys, numpy as np
from templearn.view import open_viewer
d = sys.argv[1]
viewer = open_viewer(d + "/tomo.mrc", [d + "/picks.star"], truth=d + "/picks.star", segmentation=d + "/seg.mrc",
                     radius=float(sys.argv[2]))
np.save(d + "/layers.npy", np.array([layer.name for layer in viewer.layers]))
for z in sys.argv[3:]:
    viewer.dims.set_point(0, float(z))
    np.save(d + "/slice_" + z + ".npy", viewer.export_figure())   # napari's own rendering of the data extent
viewer.close()
"""


def test_view_draws_picks_where_they_are(tmp_path, x_display):
    import subprocess
    import sys

    from templearn.mrc import write_mrc
    from templearn.view import class_colour

    rng = np.random.default_rng(0)
    shape = (20, 48, 64)
    write_mrc(tmp_path / "tomo.mrc", rng.normal(0, 0.1, shape).astype(np.float32), VS)
    xyz = np.array([[40.0, 12.0, 10.0], [10.0, 30.0, 10.0]])
    p = Picks(xyz, VS, "tomo", [1, 2], [1.0, 2.0], class_names={1: "ribosome", 2: "nucleosome"})
    write_picks(tmp_path / "picks.star", p, shape=shape)
    seg = np.zeros(shape, np.int8)
    seg[9:12, 28:33, 8:13] = 1
    write_mrc(tmp_path / "seg.mrc", seg, VS)
    radius = 3 * VS
    z_in, z_out = f"{10 * VS:g}", "0"
    child = subprocess.run([sys.executable, "-c", VIEW_SCRIPT, str(tmp_path), str(radius), z_in, z_out],
                           env=x_display, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    assert np.load(tmp_path / "layers.npy").tolist() == ["tomo", "seg", "truth", "picks.star"]
    img = np.load(tmp_path / f"slice_{z_in}.npy")
    px = img.shape[1] / (shape[2] * VS)     # image pixels per Å
    for (x, y, _), lab in zip(xyz, p.label):
        colour = (np.array(class_colour(lab)[:3]) * 255).astype(int)
        hit = np.all(np.abs(img[..., :3].astype(int) - colour) < 40, axis=-1)
        ys, xs = np.nonzero(hit)
        assert hit.sum() > 0.5 * np.pi * (radius * px) ** 2          # a disc of the radius
        # the data extent starts half a voxel before the first voxel centre
        np.testing.assert_allclose([xs.mean(), ys.mean()], (np.array([x, y]) * VS + VS / 2) * px - 0.5, atol=VS * px)
    # On a slice far from both picks nothing of their colours is drawn.
    img = np.load(tmp_path / f"slice_{z_out}.npy")
    red = (np.array(class_colour(1)[:3]) * 255).astype(int)
    assert not np.any(np.all(np.abs(img[..., :3].astype(int) - red) < 40, axis=-1))


def test_view_errors(tmp_path, capsys):
    from templearn.cli import app
    from templearn.cli_util import run
    from templearn.mrc import write_mrc

    tomo = write_mrc(tmp_path / "tomo.mrc", np.zeros((8, 8, 8), np.float32), VS)
    write_mrc(tmp_path / "seg.mrc", np.zeros((8, 8, 16), np.int8), VS)
    (tmp_path / "bad.star").write_text("")
    for args, word in ((["view", tmp_path / "none.mrc"], "none.mrc"),
                       (["view", tomo, "--picks", tmp_path / "bad.star"], "bad.star"),
                       (["view", tomo, "--segmentation", tmp_path / "seg.mrc"], "another tomogram")):
        with pytest.raises(SystemExit) as exc:
            run(app, [str(a) for a in args])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and word in err and "\n" not in err
