"""Every reader turns any malformed file into a one-line TemplearnError naming the file.

Property-based (hypothesis, fixed seed, bounded examples): valid files of each format templearn
reads are mutated (truncated, bytes flipped, lines dropped or repeated, columns dropped, values
replaced by wrong types, NaN, inf, huge numbers, huge sizes in MRC headers) and read back. A read
either fails with a TemplearnError (one line, naming the file) or returns sane data (finite
numbers); never another exception, never a hang (an alarm per read), and a header that claims a
huge volume is refused before anything is allocated (tracemalloc).
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import resource
import signal
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from templearn.errors import TemplearnError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # mrcfile warns about odd headers
FUZZ = settings(derandomize=True, max_examples=300, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
HANG_S = 20   # no read of these tiny files takes a second; a loop that never ends is caught here


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("a reader did not return")


MEMORY = 1 << 30   # bytes a read may add to the process (address space): a MemoryError beyond


def read_or_error(read, path: Path):
    """``read(path)``: its result, or None after a proper TemplearnError; anything else fails
    (a hang past HANG_S, an allocation past MEMORY included)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    limits = resource.getrlimit(resource.RLIMIT_AS)
    vm = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    cap = vm + MEMORY if limits[1] == resource.RLIM_INFINITY else min(vm + MEMORY, limits[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, limits[1]))
    signal.alarm(HANG_S)
    try:
        return read(path)
    except TemplearnError as exc:
        text = str(exc)
        assert "\n" not in text, text
        assert exc.path is not None and Path(exc.path) == path, text
        return None
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, limits)
        signal.signal(signal.SIGALRM, old)


def finite(*arrays) -> bool:
    return all(np.all(np.isfinite(np.asarray(a, dtype=float))) for a in arrays)


# --- mutations -------------------------------------------------------------------------------------

WEIRD = [None, True, False, 0, -1, 1, 2 ** 63, -2 ** 63, 1e308, -1e308, math.nan, math.inf, -math.inf,
         "", "x", "NaN", "1e999", [], {}, [1, 2], [[]], {"a": 1}, 0.5]
WEIRD_TEXT = ["nan", "NaN", "inf", "-inf", "1e999", "-1e999", "", "x", "abc", "-1", "0", "1e308",
              "99999999999999999999", "\x00", "é", "[]", "{}", "null", "true", ",", "\t", '"']


def mutate_bytes(data, raw: bytes) -> bytes:
    op = data.draw(st.sampled_from(["truncate", "flip", "flip_many", "drop_line", "dup_line", "insert", "empty"]))
    if op == "empty" or not raw:
        return b""
    if op == "truncate":
        return raw[: data.draw(st.integers(0, len(raw) - 1))]
    if op in ("flip", "flip_many"):
        b = bytearray(raw)
        for _ in range(1 if op == "flip" else data.draw(st.integers(2, 16))):
            b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
        return bytes(b)
    lines = raw.split(b"\n")
    i = data.draw(st.integers(0, len(lines) - 1))
    if op == "drop_line":
        del lines[i]
    elif op == "dup_line":
        lines.insert(i, lines[i])
    else:
        lines.insert(i, data.draw(st.sampled_from(WEIRD_TEXT)).encode())
    return b"\n".join(lines)


def _nodes(doc, out=None):
    """(container, key) of every value in a JSON-like tree."""
    out = [] if out is None else out
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for k, v in items:
        out.append((doc, k))
        _nodes(v, out)
    return out


def mutate_tree(data, doc):
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        nodes = _nodes(doc)
        if not nodes:
            return data.draw(st.sampled_from(WEIRD))
        parent, key = nodes[data.draw(st.integers(0, len(nodes) - 1))]
        if data.draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = copy.deepcopy(data.draw(st.sampled_from(WEIRD)))
    return doc


def mutate_table(data, raw: bytes, sep: str | None) -> bytes:
    """Drop a column or put a weird value in a cell of a whitespace- or ``sep``-separated table."""
    lines = raw.decode().split("\n")
    rows = [i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith(("#", "_", "data_", "loop_"))]
    if not rows:
        return raw
    split = (lambda ln: ln.split(sep)) if sep else (lambda ln: ln.split())
    join = sep if sep else " "
    width = max(len(split(lines[i])) for i in rows)
    col = data.draw(st.integers(0, width - 1))
    if data.draw(st.booleans()):   # drop a column from every row (header included for CSV)
        for i in rows:
            cells = split(lines[i])
            if col < len(cells):
                del cells[col]
            lines[i] = join.join(cells)
    else:
        i = rows[data.draw(st.integers(0, len(rows) - 1))]
        cells = split(lines[i])
        cells[min(col, len(cells) - 1)] = data.draw(st.sampled_from(WEIRD_TEXT))
        lines[i] = join.join(cells)
    return "\n".join(lines).encode()


def _json_bytes(doc) -> bytes:
    return json.dumps(doc).encode()   # NaN and Infinity as Python's json writes them


# --- MRC -------------------------------------------------------------------------------------------

from templearn.mrc import read_mrc, write_mrc  # noqa: E402

# (offset, struct format) of the header words a corrupt file gets wrong
MRC_FIELDS = [(0, "i"), (4, "i"), (8, "i"), (12, "i"), (28, "i"), (32, "i"), (36, "i"), (40, "f"), (44, "f"),
              (48, "f"), (64, "i"), (68, "i"), (72, "i"), (88, "i"), (92, "i"), (208, "4s"), (212, "4s")]
HUGE_INTS = [0, -1, 1, 2, 3, 4, 6, 12, 101, 401, 2 ** 16, 2 ** 20, 2 ** 31 - 1, -2 ** 31]
ODD_FLOATS = [0.0, -1.0, math.nan, math.inf, -math.inf, 1e38, 1e-38, 3.0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def mrc_bytes(folder) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    write_mrc(folder / "vol.mrc", rng.normal(size=(4, 5, 6)).astype(np.float32), 7.5)
    write_mrc(folder / "stack.mrc", rng.normal(size=(3, 5, 6)).astype(np.float32), 2.0, stack=True)
    return {k: (folder / f"{k}.mrc").read_bytes() for k in ("vol", "stack")}


def mutate_mrc_header(data, raw: bytes) -> bytes:
    b = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        off, fmt = data.draw(st.sampled_from(MRC_FIELDS))
        if fmt == "i":
            value = data.draw(st.sampled_from(HUGE_INTS))
        elif fmt == "f":
            value = data.draw(st.sampled_from(ODD_FLOATS))
        else:
            value = data.draw(st.sampled_from([b"MAP ", b"\0\0\0\0", b"DA\0\0", b"\x11\x11\0\0", b"xxxx"]))
        struct.pack_into("<" + fmt, b, off, value)
    return bytes(b)


def _check_mrc(path: Path):
    got = read_or_error(read_mrc, path)
    if got is not None:
        vol, voxel = got
        assert vol.ndim == 3 and vol.size > 0 and vol.dtype == np.float32
        assert math.isfinite(voxel) and voxel > 0 and finite(vol)
    got = read_or_error(lambda p: read_mrc(p, mmap=True), path)
    if got is not None:
        assert got[0].ndim == 3 and math.isfinite(got[1]) and got[1] > 0


@FUZZ
@given(data=st.data())
def test_fuzz_mrc(folder, mrc_bytes, data):
    raw = mrc_bytes[data.draw(st.sampled_from(["vol", "stack"]))]
    if data.draw(st.booleans()):
        raw = mutate_mrc_header(data, raw)
    else:
        raw = mutate_bytes(data, raw)
    if data.draw(st.integers(0, 9)) == 0:   # NaN/inf in the data block
        b = bytearray(raw)
        if len(b) > 1028:
            struct.pack_into("<f", b, 1024, data.draw(st.sampled_from([math.nan, math.inf, -math.inf])))
        raw = bytes(b)
    path = folder / "fuzz.mrc"
    path.write_bytes(raw)
    _check_mrc(path)


@pytest.mark.parametrize("dims", [(2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1), (4096, 4096, 4096), (1, 1, 2 ** 30)])
@pytest.mark.parametrize("gz", [False, True])
def test_mrc_header_claiming_a_huge_volume_is_refused_without_allocating_it(folder, mrc_bytes, dims, gz):
    b = bytearray(mrc_bytes["vol"])
    struct.pack_into("<3i", b, 0, *dims)
    struct.pack_into("<3i", b, 28, *dims)
    path = folder / ("huge.mrc.gz" if gz else "huge.mrc")
    path.write_bytes(gzip.compress(bytes(b)) if gz else bytes(b))
    tracemalloc.start()
    try:
        with pytest.raises(TemplearnError) as err:
            read_mrc(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value).startswith(str(path)) and peak < 16 * 2 ** 20, (str(err.value), peak)


# --- structures (PDB, mmCIF, gzipped) ----------------------------------------------------------

from templearn.structures import load_atoms  # noqa: E402

PDB = """\
HEADER    TEST
ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00 20.00           N
ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00 20.00           C
ATOM      3  C   ALA A   1      13.159   5.900  -5.142  1.00 20.00           C
ATOM      4  O   ALA A   1      13.740   5.606  -6.189  1.00 20.00           O
ATOM      5  CB  ALA A   1      11.220   7.329  -4.397  1.00 20.00           C
ATOM      6  N   GLY A   2      13.800   6.090  -3.990  1.00 20.00           N
ATOM      7  CA  GLY A   2      15.250   5.950  -3.850  1.00 20.00           C
ATOM      8  P    DA B   1      20.000  10.000   0.000  1.00 30.00           P
HETATM    9  O   HOH W   1       0.000   0.000   0.000  1.00 10.00           O
END
"""


@pytest.fixture(scope="module")
def structure_bytes(folder) -> dict[str, bytes]:
    import gemmi

    (folder / "s.pdb").write_text(PDB)
    st_ = gemmi.read_structure(str(folder / "s.pdb"))
    st_.setup_entities()
    cif = st_.make_mmcif_document().as_string().encode()
    return {".pdb": PDB.encode(), ".cif": cif, ".pdb.gz": gzip.compress(PDB.encode(), mtime=0)}


def _pdb_column(data, raw: bytes) -> bytes:
    """A fixed-column PDB field (coordinates, occupancy, element) replaced with junk."""
    lines = raw.decode().split("\n")
    i = data.draw(st.integers(0, 8))
    start, end = data.draw(st.sampled_from([(30, 38), (38, 46), (46, 54), (54, 60), (76, 78), (17, 20), (12, 16)]))
    text = data.draw(st.sampled_from(["     nan", "     inf", "    -inf", "   1e999", "xxxxxxxx", "        ", "  -0.000"]))
    ln = lines[i].ljust(80)
    lines[i] = ln[:start] + text[: end - start].rjust(end - start) + ln[end:]
    return "\n".join(lines).encode()


def _check_atoms(path: Path):
    atoms = read_or_error(load_atoms, path)
    if atoms is not None:
        assert len(atoms) > 0 and finite(atoms.xyz)


@FUZZ
@given(data=st.data())
def test_fuzz_structures(folder, structure_bytes, data):
    suffix = data.draw(st.sampled_from(sorted(structure_bytes)))
    raw = structure_bytes[suffix]
    if suffix == ".pdb" and data.draw(st.booleans()):
        raw = _pdb_column(data, raw)
    elif suffix == ".cif" and data.draw(st.booleans()):
        raw = mutate_table(data, raw, None)
    else:
        raw = mutate_bytes(data, raw)
    path = folder / f"fuzz{suffix}"
    path.write_bytes(raw)
    _check_atoms(path)


# --- picks (STAR, CSV, DeepFinder XML, copick JSON) ------------------------------------------

from templearn.picks import Picks, read_picks, write_picks  # noqa: E402

PICK_SUFFIXES = [".star", ".csv", ".xml", ".json"]


@pytest.fixture(scope="module")
def picks_bytes(folder) -> dict[str, bytes]:
    p = Picks(np.array([[1.0, 2.0, 3.0], [4.5, 5.5, 6.5], [7.0, 8.0, 9.0]]), 10.0, "tomo_a", [1, 2, 1],
              [0.9, 0.8, 0.7], euler=np.array([[10.0, 20.0, 30.0], [0, 0, 0], [90, 45, 180]]),
              class_names={1: "ribosome", 2: "nucleosome"})
    out = {}
    for s in PICK_SUFFIXES:
        if s == ".json":   # a copick file holds one object class
            p = p.select(p.label == 1)
        write_picks(folder / f"base{s}", p)
        out[s] = (folder / f"base{s}").read_bytes()
    return out


def _read_picks(path: Path):
    return read_picks(path, voxel_size=10.0)


def _check_picks(path: Path):
    p = read_or_error(_read_picks, path)
    if p is not None:
        n = len(p)
        assert p.xyz.shape == (n, 3) and len(p.score) == n and len(p.label) == n and len(p.tomogram) == n
        assert finite(p.xyz) and math.isfinite(p.voxel_size) and p.voxel_size > 0


@FUZZ
@given(data=st.data())
def test_fuzz_picks(folder, picks_bytes, data):
    suffix = data.draw(st.sampled_from(PICK_SUFFIXES))
    raw = picks_bytes[suffix]
    how = data.draw(st.sampled_from(["bytes", "structure"]))
    if how == "structure" and suffix == ".json":
        raw = _json_bytes(mutate_tree(data, json.loads(raw)))
    elif how == "structure" and suffix in (".star", ".csv"):
        raw = mutate_table(data, raw, "," if suffix == ".csv" else None)
    elif how == "structure":   # XML: an attribute value replaced
        text = raw.decode()
        attrs = [i for i in range(len(text)) if text.startswith('="', i)]
        i = attrs[data.draw(st.integers(0, len(attrs) - 1))] + 2
        j = text.index('"', i)
        raw = (text[:i] + data.draw(st.sampled_from(WEIRD_TEXT)).replace('"', "&quot;") + text[j:]).encode()
    else:
        raw = mutate_bytes(data, raw)
    path = folder / f"fuzz{suffix}"
    path.write_bytes(raw)
    _check_picks(path)


# --- the sample manifest, the acquisition record, .tlt -------------------------------------------

from templearn.manifest import Instance, Manifest, StructureEntry  # noqa: E402
from templearn.tilts import Acquisition, read_tlt  # noqa: E402


@pytest.fixture(scope="module")
def manifest_doc() -> dict:
    m = Manifest(name="s", voxel_size=16.0, box=[8, 16, 16], targets=["rib"], seed=3,
                 structures={"a": StructureEntry("a.pdb", "target", target="rib", template="a"),
                             "b": StructureEntry("b.pdb", "distractor")},
                 instances=[Instance(id=0, structure="a", position=[10.0, 20.0, 30.0], euler=[1.0, 2.0, 3.0]),
                            Instance(id=1, structure="b", position=[50.0, 60.0, 70.0], euler=[0.0, 0.0, 0.0])])
    return json.loads(json.dumps(m.to_json()))


def _check_manifest(path: Path):
    m = read_or_error(Manifest.read, path)
    if m is not None:
        assert math.isfinite(m.voxel_size) and m.voxel_size > 0 and all(b >= 1 for b in m.box)
        assert finite(m.positions(), m.eulers())
        for inst in m.instances:
            m.label_of(inst.structure)


@FUZZ
@given(data=st.data())
def test_fuzz_manifest(folder, manifest_doc, data):
    raw = _json_bytes(mutate_tree(data, manifest_doc)) if data.draw(st.booleans()) \
        else mutate_bytes(data, _json_bytes(manifest_doc))
    path = folder / "fuzz_sample.json"
    path.write_bytes(raw)
    _check_manifest(path)


@pytest.fixture(scope="module")
def acquisition_doc() -> dict:
    a = Acquisition(pixel_size=4.0, angles=[-3.0, 0.0, 3.0], order=[1, 0, 2], dose=[1.0, 1.0, 1.0],
                    dose_before=[1.0, 0.0, 2.0], defocus_um=-2.0, axis_x=100.0, axis_z=50.0, thickness=300.0)
    return json.loads(json.dumps(a.to_json()))


def _check_acquisition(path: Path):
    a = read_or_error(Acquisition.read, path)
    if a is not None:
        assert math.isfinite(a.pixel_size) and a.pixel_size > 0
        assert finite(a.angles, a.dose, a.dose_before) and len(a.angles) == len(a.order)


@FUZZ
@given(data=st.data())
def test_fuzz_acquisition(folder, acquisition_doc, data):
    raw = _json_bytes(mutate_tree(data, acquisition_doc)) if data.draw(st.booleans()) \
        else mutate_bytes(data, _json_bytes(acquisition_doc))
    path = folder / "fuzz_acquisition.json"
    path.write_bytes(raw)
    _check_acquisition(path)


TLT = b"".join(b"%.2f\n" % a for a in np.arange(-60, 61, 3.0))


@FUZZ
@given(data=st.data())
def test_fuzz_tlt(folder, data):
    raw = mutate_table(data, TLT, None) if data.draw(st.booleans()) else mutate_bytes(data, TLT)
    path = folder / "fuzz.tlt"
    path.write_bytes(raw)
    angles = read_or_error(read_tlt, path)
    if angles is not None:
        assert len(angles) > 0 and finite(angles) and np.all(np.abs(angles) <= 90)


# --- the run config (YAML) ---------------------------------------------------------------------------

from templearn.orchestrator.config import load_config  # noqa: E402

RUN_CONFIG = {
    "name": "tiny", "seed": 0,
    "targets": [{"name": "tmv", "templates": ["3o21"]}],
    "distractors": ["1ake", "3enl"],
    "nma": {"enabled": False, "n_variants": 2},
    "tetris": {"n_samples": 3, "box": [12, 32, 32], "voxel_size": 16.0, "ratio": 2},
    "simulation": {"engine": "fast", "pixel_size": 16.0, "conditions": [0, 5]},
    "reconstruction": {"voxel_size": 16.0, "radial": [0.5, 0.5]},
    "training": {"epochs": 1, "steps": 2},
    "split": {"val": 1, "test": 1},
    "picking": {"radius": 3.0},
    "evaluation": {"distance": 120},
}


def _check_config(path: Path):
    from templearn.orchestrator import graph

    read_or_error(lambda p: graph.build(load_config(p)), path)   # a config that loads makes a graph


@FUZZ
@given(data=st.data())
def test_fuzz_run_config(folder, data):
    if data.draw(st.booleans()):
        raw = yaml.safe_dump(mutate_tree(data, RUN_CONFIG), sort_keys=False).encode()
    else:
        raw = mutate_bytes(data, yaml.safe_dump(RUN_CONFIG, sort_keys=False).encode())
    path = folder / "fuzz_run.yaml"
    path.write_bytes(raw)
    _check_config(path)
