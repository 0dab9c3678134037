"""The nma stage: the sparse ANM against ProDy, variants, reproducibility, errors, map inputs."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from templearn.errors import TemplearnError
from templearn.stages.nma import anm as anm_mod
from templearn.stages.nma import extend
from templearn.stages.nma.variants import load_template, make_variants
from templearn.atoms import atoms_of, read_structure
from templearn.structures import load_atoms, resolve, structure_id

N_MODES = 20


@pytest.fixture(scope="module")
def ake_nodes() -> np.ndarray:
    """CA atoms of adenylate kinase 1AKE (214 nodes), shipped with ProDy."""
    a = load_atoms("1ake")
    return a.xyz[a.nodes()]


@pytest.fixture(scope="module")
def prody_anm(ake_nodes):
    prody = pytest.importorskip("prody")
    prody.confProDy(verbosity="none")
    m = prody.ANM("1ake")
    m.buildHessian(ake_nodes, cutoff=15.0, gamma=1.0)
    m.calcModes(N_MODES)
    return m


def test_hessian_equals_prody(ake_nodes, prody_anm):
    h = anm_mod.hessian(ake_nodes, cutoff=15.0, gamma=1.0)
    ref = prody_anm.getHessian()
    assert h.shape == ref.shape == (3 * len(ake_nodes),) * 2
    np.testing.assert_allclose(h.toarray(), ref, atol=1e-10)


@pytest.mark.parametrize("solver", ["sparse", "dense"])
def test_modes_match_prody(ake_nodes, prody_anm, solver):
    modes = anm_mod.anm_modes(ake_nodes, N_MODES, cutoff=15.0, solver=solver)
    np.testing.assert_allclose(modes.eigvals, prody_anm.getEigvals(), rtol=1e-8)
    assert modes.n_zero == 6 and modes.n_components == 1 and not modes.warnings
    # Same eigenvectors up to sign: |overlap| = 1 mode by mode (1AKE's spectrum has no degeneracy).
    overlap = np.abs(modes.vectors.reshape(N_MODES, -1) @ prody_anm.getEigvecs())
    np.testing.assert_allclose(np.diag(overlap), 1.0, atol=1e-6)


def test_disconnected_pieces_are_reported_and_skipped(ake_nodes):
    """Two copies 100 Å apart: 12 zero modes skipped, each copy's modes appear twice."""
    single = anm_mod.anm_modes(ake_nodes, 10, solver="sparse")
    pair = np.vstack([ake_nodes, ake_nodes + [200.0, 0, 0]])
    both = anm_mod.anm_modes(pair, 20, solver="sparse")
    assert both.n_components == 2 and both.n_zero == 12
    assert any("2 disconnected pieces" in w for w in both.warnings)
    np.testing.assert_allclose(both.eigvals, np.repeat(single.eigvals, 2), rtol=1e-7)


def test_too_few_nodes_for_modes(ake_nodes):
    with pytest.raises(ValueError, match="too few"):
        anm_mod.anm_modes(ake_nodes[:8], 20)


def test_extension_follows_residue_nodes(nucleosome_paths):
    t = load_template(nucleosome_paths[1])                    # 7kbe: 10 chains of protein and DNA
    st = read_structure(nucleosome_paths[1])
    residue = extend.residue_index(st)
    atoms = atoms_of(st)
    # One node per residue that has a CA or P; each atom of such a residue moves with it.
    assert len(np.unique(residue[t.nodes])) == len(t.nodes)
    assert set(atoms.name[t.nodes]) <= {"CA", "P"}
    same = residue[t.nodes[t.atom_node]] == residue
    assert same.mean() > 0.98                                 # the rest: 5'-terminal nucleotides without P
    assert np.linalg.norm(t.xyz - t.xyz[t.nodes[t.atom_node]], axis=1).max() < 25


@pytest.fixture(scope="module")
def nucleosome_run(tmp_path_factory, nucleosome_paths):
    out = tmp_path_factory.mktemp("nma")
    res = make_variants([nucleosome_paths[1]], out, n_variants=6, amplitude=100.0, seed=3, fmt="pdb")
    return out, res, nucleosome_paths[1]


def test_variants_outputs_and_rmsd(nucleosome_run):
    out, res, src = nucleosome_run
    import pandas as pd

    table = pd.read_csv(out / "variants.csv")
    assert list(table.columns) == ["template", "variant", "file", "rmsd"]
    sid = structure_id(src)   # 7kbe from ../shared
    assert table["file"].tolist() == [f"{sid}_v{i:03d}.pdb" for i in range(6)]
    ref = atoms_of(read_structure(src))
    npz = np.load(out / f"modes_{sid}.npz")
    ext = extend.extend_modes(npz["modes"], npz["atom_node"])
    for _, row in table.iterrows():
        var = atoms_of(read_structure(out / row["file"]))
        assert len(var) == len(ref) and (var.name == ref.name).all() and (var.residue == ref.residue).all()
        disp = var.xyz - ref.xyz
        rmsd = np.sqrt((disp ** 2).sum(1).mean())
        assert rmsd == pytest.approx(row["rmsd"], abs=2e-3)        # PDB keeps 3 decimals
        # The variant is exactly the recorded combination of the recorded modes.
        expect = np.tensordot(npz["amplitudes"][row["variant"]], ext, axes=1)
        np.testing.assert_allclose(disp, expect, atol=2e-3)
    # The paper: amplitude 100 gives nucleosome variants of about 1-2 Å RMSD (we get ~2.3, see README).
    assert 1.0 < table["rmsd"].mean() < 3.5
    assert npz["eigenvalues"].shape == (N_MODES,) and np.all(npz["eigenvalues"] > anm_mod.ZERO)
    assert np.all(np.abs(npz["amplitudes"]) <= 100.0)
    gram = npz["modes"].reshape(N_MODES, -1) @ npz["modes"].reshape(N_MODES, -1).T
    np.testing.assert_allclose(gram, np.eye(N_MODES), atol=1e-8)
    assert (out / "rmsd_histogram.png").stat().st_size > 1000
    import json

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["stage"] == "nma" and prov["seed"] == 3
    assert prov["templates"][sid]["n_nodes"] == len(npz["node_indices"])


def test_same_seed_same_files_other_seed_differs(tmp_path):
    runs = {}
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        make_variants(["1ake"], tmp_path / name, n_variants=2, seed=seed, fmt="cif")
        runs[name] = [(tmp_path / name / f).read_bytes() for f in ("1ake_v000.cif", "1ake_v001.cif", "variants.csv")]
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0] and runs["a"][2] != runs["c"][2]


def _write_pdb(path: Path, st) -> Path:
    st.write_pdb(str(path))
    return path


def test_bad_inputs_give_one_line_errors_and_keep_outputs(tmp_path, capsys):
    from templearn.cli_util import run
    from templearn.stages.nma.cli import app

    out = tmp_path / "out"
    run_ok = ["variants", "1ake", "--out", str(out), "--n-variants", "2", "--n-modes", "5"]
    with pytest.raises(SystemExit) as ok:
        run(app, run_ok)
    assert ok.value.code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    st = read_structure(resolve("1ake"))
    no_ca = st.clone()
    for chain in no_ca[0]:
        for res in chain:
            for i in range(len(res) - 1, -1, -1):
                if res[i].name == "CA":
                    del res[i]
    few = st.clone()
    for chain in few[0]:
        for i in range(len(chain) - 1, 7, -1):
            del chain[i]
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("data_x\nloop_\n_atom_site.id\n_this is not mmcif ((\n")
    gz_bad = tmp_path / "bad.pdb.gz"
    gz_bad.write_bytes(gzip.compress(b"")[:5])
    cases = [
        ("no CA or P atoms", _write_pdb(tmp_path / "noca.pdb", no_ca)),
        ("too few for 20 modes", _write_pdb(tmp_path / "few.pdb", few)),
        ("not a readable|no model", garbage),
        ("not a readable|no atoms", gz_bad),
        ("no such structure", tmp_path / "missing.pdb"),
    ]
    for expect, path in cases:
        with pytest.raises(SystemExit) as exc:
            run(app, ["variants", str(path), "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2, err
        assert err.count("\n") == 0 and err.startswith("error: ") and str(path.name) in err
        assert re.search(expect, err), err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_map_input_becomes_pseudo_atom_variants(tmp_path):
    """An MRC map of an ellipsoid: one pseudo-atom per voxel above threshold, displaced variants."""
    from templearn.mrc import write_mrc

    z, y, x = np.mgrid[:20, :20, :20] - 9.5
    inside = (x / 8) ** 2 + (y / 5) ** 2 + (z / 4) ** 2 <= 1
    vol = inside.astype(np.float32)
    path = write_mrc(tmp_path / "blob.mrc", vol, 6.0)
    res = make_variants([path], tmp_path / "out", n_variants=3, amplitude=50.0, cutoff=10.0, seed=1)
    var = atoms_of(read_structure(res.templates[0].files[0]))
    assert len(var) == int(inside.sum())
    assert (var.element == "P").sum() == round(0.1 * inside.sum())
    assert 0 < res.templates[0].rmsd.min() and res.templates[0].rmsd.max() < 5
    with pytest.raises(TemplearnError, match="cutoff 7 Å is too short"):
        make_variants([path], tmp_path / "out2", n_variants=1, cutoff=7.0)
