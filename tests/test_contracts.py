"""The shared contracts (templearn/*.py): MRC, manifest, Euler angles, picks, config, structures,
pseudo-atoms. Each test checks a real outcome: values back, the right error naming the file."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import json
import shutil
import threading

import numpy as np
import pytest

from templearn.errors import TemplearnError

# --- MRC ---------------------------------------------------------------------------------------


def test_mrc_round_trip_volume_and_stack(tmp_path):
    from templearn.mrc import read_mrc, read_voxel_size, write_mrc

    rng = np.random.default_rng(0)
    vol = rng.standard_normal((5, 7, 9)).astype(np.float32)
    write_mrc(tmp_path / "v.mrc", vol, 8.25)
    back, vs = read_mrc(tmp_path / "v.mrc")
    assert back.shape == (5, 7, 9) and back.dtype == np.float32
    np.testing.assert_array_equal(back, vol)
    assert vs == pytest.approx(8.25) and read_voxel_size(tmp_path / "v.mrc") == pytest.approx(8.25)

    stack = rng.standard_normal((3, 6, 4)).astype(np.float32)
    write_mrc(tmp_path / "s.mrcs", stack, 2.0, stack=True)
    import mrcfile

    with mrcfile.open(tmp_path / "s.mrcs") as m:
        assert m.is_image_stack()
    np.testing.assert_array_equal(read_mrc(tmp_path / "s.mrcs")[0], stack)
    # A single image reads as a stack of one.
    write_mrc(tmp_path / "i.mrc", stack[0], 2.0)
    assert read_mrc(tmp_path / "i.mrc")[0].shape == (1, 6, 4)


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_mrc_truncated_and_missing_files_name_the_file(tmp_path):
    from templearn.mrc import read_mrc, write_mrc

    write_mrc(tmp_path / "v.mrc", np.ones((8, 8, 8), np.float32), 4.0)
    data = (tmp_path / "v.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(data[: len(data) - 100])
    with pytest.raises(TemplearnError, match="not a readable MRC") as exc:
        read_mrc(tmp_path / "cut.mrc")
    assert exc.value.path == str(tmp_path / "cut.mrc") and "\n" not in str(exc.value)
    with pytest.raises(TemplearnError, match="no such file"):
        read_mrc(tmp_path / "nope.mrc")
    write_mrc(tmp_path / "nan.mrc", np.full((2, 2, 2), np.nan, np.float32), 4.0)
    with pytest.raises(TemplearnError, match="NaN"):
        read_mrc(tmp_path / "nan.mrc")


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    from templearn.atomic import atomic_path

    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


# --- manifest ----------------------------------------------------------------------------------


def _manifest():
    from templearn.manifest import Instance, Manifest, StructureEntry

    return Manifest(
        name="s0", voxel_size=16.0, box=[8, 12, 10], targets=["nucleosome"], seed=1,
        structures={
            "7kbe": StructureEntry("templates/7kbe.pdb.gz", "target", target="nucleosome", template="7kbe"),
            "1bxn": StructureEntry("distractors/1bxn.pdb.gz", "distractor"),
        },
        instances=[Instance(1, "7kbe", [16.0, 32.0, 48.0], [10.0, 20.0, 30.0]),
                   Instance(2, "1bxn", [64.0, 32.0, 16.0], [0.0, 90.0, 0.0])],
    )


def test_manifest_round_trip_and_views(tmp_path):
    from templearn.manifest import Manifest

    m = _manifest()
    m.write(tmp_path / "m.json")
    back = Manifest.read(tmp_path / "m.json")
    assert back.to_json() == m.to_json()
    assert back.label_of("7kbe") == 1 and back.label_of("1bxn") == 0
    np.testing.assert_array_equal(back.positions("target"), [[16.0, 32.0, 48.0]])
    np.testing.assert_array_equal(back.box_angstrom, [160.0, 192.0, 128.0])   # [x, y, z] from [nz, ny, nx]
    # Structure files are found beside the manifest, or by name in a search folder (Nextflow).
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "1bxn.pdb.gz").write_bytes(b"x")
    assert back.structure_path("1bxn", search=[tmp_path / "elsewhere"]).parent.name == "elsewhere"
    with pytest.raises(TemplearnError, match="7kbe"):
        back.structure_path("7kbe")


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["instances"][1].update(structure="zzzz"), "unknown structure 'zzzz'"),
    (lambda d: d["instances"][1].update(id=1), "instance id 1 is used twice"),
    (lambda d: d["structures"]["1bxn"].update({"class": "decoy"}), "class must be 'target' or 'distractor'"),
    (lambda d: d["structures"]["7kbe"].update(target="ribosome"), "target 'ribosome' is not in targets"),
    (lambda d: d.update(version=99), "version 99 is not supported"),
    (lambda d: d.update(voxel_sise=3), "unknown key 'voxel_sise'"),
    (lambda d: d.pop("box"), "missing key 'box'"),
    (lambda d: d.update(box=[0, 4, 4]), "box must be three positive"),
    (lambda d: d["instances"][0].update(position=[1, 2]), "position and euler need three numbers"),
])
def test_manifest_validation_errors_name_file_and_problem(tmp_path, edit, message):
    from templearn.manifest import Manifest

    doc = _manifest().to_json()
    edit(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(TemplearnError) as exc:
        Manifest.read(path)
    assert message in str(exc.value) and exc.value.path == str(path)
    path.write_text("{not json")
    with pytest.raises(TemplearnError, match="not valid JSON"):
        Manifest.read(path)


# --- Euler angles ------------------------------------------------------------------------------


def relion_euler_angles2matrix(rot: float, tilt: float, psi: float) -> np.ndarray:
    """RELION's ``Euler_angles2matrix`` (src/euler.cpp), written out independently of scipy."""
    a, b, g = np.deg2rad([rot, tilt, psi])
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array([
        [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
        [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
        [sc, ss, cb],
    ])


def test_euler_matches_relion_formula():
    from templearn.euler import euler_to_matrix, matrix_to_euler

    rng = np.random.default_rng(1)
    angles = np.column_stack([rng.uniform(-180, 180, 50), rng.uniform(0, 180, 50), rng.uniform(-180, 180, 50)])
    mats = euler_to_matrix(angles)
    for ang, m in zip(angles, mats):
        np.testing.assert_allclose(m, relion_euler_angles2matrix(*ang), atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(mats)), mats, atol=1e-10)
    # The documented example: rot = 90 maps the template's +x onto -y.
    np.testing.assert_allclose(euler_to_matrix([90, 0, 0]) @ [1, 0, 0], [0, -1, 0], atol=1e-12)
    # tilt = 90 maps +z onto -x: the third column of A is (-cos(psi) sin(tilt), sin(psi) sin(tilt), cos(tilt)).
    np.testing.assert_allclose(euler_to_matrix([0, 90, 0]) @ [0, 0, 1], [-1, 0, 0], atol=1e-12)


def test_euler_pose_of_a_rotated_structure():
    """Rotate real atoms into a pose; recover the pose from the atoms alone (Kabsch) -> same angles."""
    from templearn.euler import euler_to_matrix, euler_to_rotvec, matrix_to_euler, rotate_points
    from templearn.structures import load_atoms
    from scipy.spatial.transform import Rotation

    atoms = load_atoms("1ake")
    x = atoms.xyz - atoms.xyz.mean(0)
    pose = np.array([33.0, 71.0, -120.0])
    y = rotate_points(x, pose) + [100.0, -20.0, 5.0]
    # Distances are kept (a rotation), and the pose is A @ x + p.
    np.testing.assert_allclose(np.linalg.norm(y[1:] - y[0], axis=1), np.linalg.norm(x[1:] - x[0], axis=1), atol=1e-9)
    yc = y - y.mean(0)
    u, _, vt = np.linalg.svd(yc.T @ x)                   # Kabsch: the A minimizing |A x - yc|
    a = u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt
    np.testing.assert_allclose(a, euler_to_matrix(pose), atol=1e-9)
    np.testing.assert_allclose(matrix_to_euler(a), pose, atol=1e-7)
    # Parakeet's placement (rotation vector applied to the atoms) gives the same atoms.
    np.testing.assert_allclose(Rotation.from_rotvec(euler_to_rotvec(pose)).apply(x), yc, atol=1e-9)


def test_random_euler_is_uniform_over_rotations():
    from templearn.euler import euler_to_matrix, random_euler

    z = euler_to_matrix(random_euler(np.random.default_rng(2), 4000)) @ [0, 0, 1]
    # Uniform directions: each component has mean 0 and variance 1/3.
    np.testing.assert_allclose(z.mean(0), 0, atol=0.05)
    np.testing.assert_allclose((z ** 2).mean(0), 1 / 3, atol=0.03)


# --- picks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".star", ".csv", ".xml", ".json"])
def test_picks_round_trip(tmp_path, suffix):
    from templearn.euler import euler_to_matrix
    from templearn.picks import Picks, read_picks, write_picks

    rng = np.random.default_rng(3)
    n = 7
    picks = Picks(rng.uniform(0, 100, (n, 3)), 8.0, "tomo_01", 2, rng.uniform(1, 50, n),
                  np.column_stack([rng.uniform(-180, 180, n), rng.uniform(0, 180, n), rng.uniform(-180, 180, n)]),
                  {2: "nucleosome"})
    write_picks(tmp_path / f"p{suffix}", picks)
    back = read_picks(tmp_path / f"p{suffix}", voxel_size=8.0 if suffix == ".xml" else None, tomogram="tomo_01")
    assert len(back) == n and back.voxel_size == pytest.approx(8.0)
    np.testing.assert_allclose(back.xyz, picks.xyz, atol=1e-3)
    assert (back.tomogram == "tomo_01").all()
    if suffix != ".json":                                 # copick holds one object: its label is 1
        assert (back.label == 2).all()
    np.testing.assert_allclose(back.score, picks.score, rtol=1e-5)
    # Orientations: compare rotations (different angle triples can name the same one).
    np.testing.assert_allclose(euler_to_matrix(back.euler), euler_to_matrix(picks.euler), atol=1e-4)


def test_picks_errors(tmp_path):
    from templearn.picks import Picks, read_picks, write_picks

    p = Picks(np.zeros((2, 3)), 4.0, ["a", "b"], 1, 1.0)
    with pytest.raises(TemplearnError, match="unknown picks format"):
        write_picks(tmp_path / "p.dat", p)
    with pytest.raises(TemplearnError, match="one tomogram"):
        write_picks(tmp_path / "p.json", p)
    write_picks(tmp_path / "p.xml", p)
    with pytest.raises(TemplearnError, match="does not record the voxel size"):
        read_picks(tmp_path / "p.xml")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(TemplearnError, match="missing column") as exc:
        read_picks(tmp_path / "bad.csv", voxel_size=4.0)
    assert exc.value.path == str(tmp_path / "bad.csv")


# --- config ------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Packing:
    dilation_radius: float = 2.0
    n_molecules: int = 100


@dataclasses.dataclass
class _Run:
    name: str
    packing: _Packing = dataclasses.field(default_factory=_Packing)
    targets: list[str] = dataclasses.field(default_factory=list)


def test_config_typo_names_the_key(tmp_path):
    from templearn.config import load

    good = tmp_path / "good.yaml"
    good.write_text("name: r1\npacking:\n  dilation_radius: 3\ntargets: [nucleosome]\n")
    run = load(good, _Run)
    assert run.packing.dilation_radius == 3.0 and run.packing.n_molecules == 100 and run.targets == ["nucleosome"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: r1\npacking:\n  dilaton_radius: 3\n")
    with pytest.raises(TemplearnError) as exc:
        load(bad, _Run)
    assert "unknown key 'packing.dilaton_radius' (did you mean 'dilation_radius'?)" in str(exc.value)
    assert exc.value.path == str(bad)
    bad.write_text("name: r1\npacking:\n  n_molecules: many\n")
    with pytest.raises(TemplearnError, match="packing.n_molecules must be an integer"):
        load(bad, _Run)
    bad.write_text("packing: {}\n")
    with pytest.raises(TemplearnError, match="missing key 'name'"):
        load(bad, _Run)


# --- structures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ake_structure():
    from templearn.atoms import read_structure
    from templearn.structures import resolve

    return read_structure(resolve("1ake"))


def test_structures_from_paths_in_every_format(tmp_path, ake_structure):
    from templearn.atoms import atoms_of
    from templearn.structures import load_atoms, resolve, structure_id

    ref = atoms_of(ake_structure)
    ake_structure.write_pdb(str(tmp_path / "1AKE.pdb"))
    ake_structure.make_mmcif_document().write_file(str(tmp_path / "x.cif"))
    (tmp_path / "y.pdb.gz").write_bytes(gzip.compress((tmp_path / "1AKE.pdb").read_bytes()))
    (tmp_path / "z.cif.gz").write_bytes(gzip.compress((tmp_path / "x.cif").read_bytes()))
    for name in ["1AKE.pdb", "x.cif", "y.pdb.gz", "z.cif.gz"]:
        assert resolve(tmp_path / name) == tmp_path / name
        a = load_atoms(tmp_path / name)
        np.testing.assert_allclose(a.xyz, ref.xyz, atol=1e-3)
        assert (a.name == ref.name).all() and len(a.nodes()) == len(ref.nodes()) == 214
    assert structure_id(tmp_path / "1AKE.pdb") == "1ake" and structure_id(tmp_path / "z.cif.gz") == "z"
    with pytest.raises(TemplearnError, match="not a PDB ID"):
        resolve(tmp_path / "missing.pdb")


def test_structure_from_mirror(tmp_path, monkeypatch, nucleosome_paths):
    from templearn.structures import load_atoms, resolve, structure_id

    src = nucleosome_paths[1]   # 7kbe.pdb.gz from ../shared
    sid = structure_id(src)
    n_atoms = {"7kbe": 12408}.get(sid, len(load_atoms(src)))
    mirror = tmp_path / "mirror" / "deep"
    mirror.mkdir(parents=True)
    shutil.copy(src, mirror / f"{sid.upper()}.pdb.gz")
    monkeypatch.setenv("TEMPLEARN_STRUCTURE_MIRROR", f"{tmp_path / 'empty'}:{tmp_path / 'mirror'}")
    monkeypatch.setenv("TEMPLEARN_PDB_URL", "http://127.0.0.1:9/{id}.cif.gz")
    assert resolve(sid) == mirror / f"{sid.upper()}.pdb.gz"
    assert len(load_atoms(sid.upper())) == n_atoms
    with pytest.raises(TemplearnError, match="cannot download"):
        resolve("9zzz")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


def test_structure_download_from_a_real_http_server(tmp_path, monkeypatch, ake_structure):
    """A PDB ID absent from the mirror is fetched over HTTP (a real server on 127.0.0.1) and cached."""
    from functools import partial

    from templearn.atoms import atoms_of
    from templearn.structures import load_atoms, resolve

    served = tmp_path / "served"
    served.mkdir()
    ake_structure.make_mmcif_document().write_file(str(tmp_path / "x.cif"))
    (served / "1xyz.cif.gz").write_bytes(gzip.compress((tmp_path / "x.cif").read_bytes()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        monkeypatch.setenv("TEMPLEARN_STRUCTURE_MIRROR", str(tmp_path / "no_mirror"))
        monkeypatch.setenv("TEMPLEARN_PDB_URL", f"http://127.0.0.1:{port}/{{id}}.cif.gz")
        monkeypatch.setenv("TEMPLEARN_CACHE", str(tmp_path / "cache"))
        path = resolve("1XYZ")
        assert path == tmp_path / "cache" / "pdb" / "1xyz.cif.gz"
        np.testing.assert_allclose(load_atoms("1xyz").xyz, atoms_of(ake_structure).xyz, atol=1e-3)
        with pytest.raises(TemplearnError, match="HTTP 404") as exc:
            resolve("2abc")
        assert exc.value.path == "2abc"
        assert not (tmp_path / "cache" / "pdb" / "2abc.cif.gz").exists()
    finally:
        server.shutdown()
        server.server_close()
    # Cached: resolves with the server gone.
    assert resolve("1xyz") == path


# --- pseudo-atoms ------------------------------------------------------------------------------


def test_pseudoatoms_of_a_sphere(tmp_path):
    from templearn.mrc import write_mrc
    from templearn.pseudoatoms import map_to_pseudoatoms, write_pseudoatoms
    from templearn.structures import load_atoms

    z, y, x = np.mgrid[:32, :32, :32] - 15.5
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    vol = np.exp(-((r / 9) ** 8)).astype(np.float32)         # a soft-edged ball of radius ~9 voxels
    write_mrc(tmp_path / "ball.mrc", vol, 5.0)
    atoms = map_to_pseudoatoms(tmp_path / "ball.mrc", threshold=0.5, phosphorus_fraction=0.25, seed=4)
    n_inside = int((vol > 0.5).sum())
    assert len(atoms) == n_inside
    radius = 9 * np.log(2) ** (1 / 8)                                      # where the ball falls to 0.5
    assert abs(n_inside - 4 / 3 * np.pi * radius ** 3) / n_inside < 0.03
    assert (atoms.element == "P").sum() == round(0.25 * n_inside)
    np.testing.assert_allclose(atoms.xyz.mean(0), 0, atol=1e-9)               # centred on the map centre
    assert np.linalg.norm(atoms.xyz, axis=1).max() <= radius * 5.0 + 1e-9
    default = map_to_pseudoatoms(tmp_path / "ball.mrc")                     # Otsu's threshold
    assert (vol > 0.95).sum() <= len(default) <= (vol > 0.05).sum()
    # Seeded: the same seed picks the same phosphorus atoms.
    again = map_to_pseudoatoms(tmp_path / "ball.mrc", threshold=0.5, phosphorus_fraction=0.25, seed=4)
    assert (again.element == atoms.element).all()
    write_pseudoatoms(tmp_path / "ball.cif", atoms)
    back = load_atoms(tmp_path / "ball.cif")
    assert len(back) == n_inside and (back.element == "P").sum() == (atoms.element == "P").sum()
    # A map given as a structure becomes pseudo-atoms too.
    assert len(load_atoms(tmp_path / "ball.mrc")) == len(default)
    with pytest.raises(TemplearnError, match="no voxel above"):
        map_to_pseudoatoms(tmp_path / "ball.mrc", threshold=2.0)


def test_no_import_cycles():
    """No module of templearn, the stages or the orchestrator imports itself back through others,
    deferred (function-level) imports included: one place for each contract, layered."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = {}
    for d in ("templearn", "stages", "orchestrator"):
        for f in (root / d).rglob("*.py"):
            parts = list(f.relative_to(root).with_suffix("").parts)
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph = {}
    for mod, f in files.items():
        package = mod.split(".") if f.name == "__init__.py" else mod.split(".")[:-1]
        edges = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            edges |= {n.replace("templearn.stages.", "stages.").strip(".") for n in names} & files.keys()
        graph[mod] = edges - {mod}

    def reaches(start, goal, seen):
        return any(n == goal or (n not in seen and not seen.add(n) and reaches(n, goal, seen)) for n in graph[start])

    cycles = sorted(m for m in graph if reaches(m, m, set()))
    assert not cycles, f"modules in import cycles: {cycles}"
