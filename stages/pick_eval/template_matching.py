"""Template matching: the baseline Template Learning is compared with.

Fast local correlation (FLCF, Roseman 2003) of a template over a grid of rotations
(:mod:`.rotations`), missing-wedge aware, on CPU (pytom-match-pick needs CUDA):

- the template is rotated, multiplied in Fourier space by the wedge the tomogram samples
  (tilt axis y, beam z: the tomogram holds the frequencies with ``|kz| <= |kx| tan(tilt_range)``,
  see :mod:`templearn.tilts`), then normalised to zero mean and unit variance under a spherical
  mask, so every orientation is scored only on what the tomogram can show;
- the tomogram's local mean and standard deviation under the same mask (rotation invariant,
  since the mask is a sphere) are computed once;
- ``NCC(x) = sum_d T(d) f(x + d) / (N sigma_f(x))`` for each rotation by one FFT product; the
  best score and its rotation are kept per voxel;
- peaks are taken greedily, highest first, with an exclusion sphere around each one.

Arrays are ``[z, y, x]``; positions ``[x, y, z]`` voxels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from templearn.contrast import check_contrast
from templearn.errors import TemplearnError
from templearn.progress import duration, say

from .rotations import n_rotations, rotate_volume


def wedge_weight(shape, tilt_range: float) -> np.ndarray:
    """1 where the tomogram samples Fourier space, 0 in the missing wedge; on the ``rfftn`` grid
    of an array of ``shape`` [z, y, x]. ``tilt_range`` >= 90 means no wedge."""
    kz = np.fft.fftfreq(shape[0])[:, None, None]
    kx = np.fft.rfftfreq(shape[2])[None, None, :]
    w = np.ones((shape[0], shape[1], shape[2] // 2 + 1), np.float32)
    if tilt_range < 90:
        missing = np.abs(kz) > np.abs(kx) * np.tan(np.radians(tilt_range)) + 1e-9
        w = np.where(np.broadcast_to(missing, w.shape), 0.0, 1.0).astype(np.float32)
    return w


def lowpass(volume: np.ndarray, voxel_size: float, resolution: float) -> np.ndarray:
    """Gaussian low-pass to ``resolution`` Å: Fourier sigma ``1/resolution``, so that frequency
    keeps exp(-1/2) of its amplitude."""
    kz = np.fft.fftfreq(volume.shape[0], voxel_size)[:, None, None]
    ky = np.fft.fftfreq(volume.shape[1], voxel_size)[None, :, None]
    kx = np.fft.rfftfreq(volume.shape[2], voxel_size)[None, None, :]
    k2 = kz ** 2 + ky ** 2 + kx ** 2
    g = np.exp(-0.5 * k2 * resolution ** 2)
    return np.fft.irfftn(np.fft.rfftn(volume) * g, s=volume.shape).astype(np.float32)


def sphere(shape, radius: float) -> np.ndarray:
    c = (np.asarray(shape) - 1) / 2.0
    zz, yy, xx = np.indices(shape)
    return ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= radius ** 2).astype(np.float32)


def prepare_template(template: np.ndarray, threshold: float = 0.1) -> tuple[np.ndarray, float]:
    """Crop ``template`` [z, y, x] (particle bright) to an odd cubic box around its centre of mass
    that holds the particle under any rotation; return ``(box, mask radius in voxels)``. The
    radius reaches the farthest voxel above ``threshold`` times the maximum, plus one voxel."""
    t = np.asarray(template, np.float32)
    if not np.any(t > 0) or float(t.std()) == 0.0:
        raise TemplearnError("the template has no positive density (is it inverted, or empty?)")
    w = np.clip(t, 0, None)
    com = np.array([np.sum(np.indices(t.shape)[i] * w) / w.sum() for i in range(3)])
    pts = np.argwhere(t > threshold * t.max())
    radius = float(np.sqrt(((pts - com) ** 2).sum(1)).max()) + 1.0
    half = int(np.ceil(radius)) + 1
    size = 2 * half + 1
    from scipy.ndimage import shift as nd_shift

    # Centre of mass onto the centre voxel of the new box.
    big = np.zeros((max(size, *t.shape),) * 3, np.float32)
    off = [(big.shape[i] - t.shape[i]) // 2 for i in range(3)]
    big[off[0]:off[0] + t.shape[0], off[1]:off[1] + t.shape[1], off[2]:off[2] + t.shape[2]] = t
    c_big = (np.asarray(big.shape) - 1) / 2.0
    big = nd_shift(big, c_big - (com + off), order=1, mode="constant")
    s = (big.shape[0] - size) // 2
    return big[s:s + size, s:s + size, s:s + size].copy(), radius


def equivalent_radius(template: np.ndarray, level: float = 0.5) -> float:
    """Radius (voxels) of the sphere with the volume of the template above ``level`` times its
    maximum: the particle's size without the blur of the map, used as the peak exclusion radius
    (for 6ZU5 at 16 Å: 5.7 voxels, against 5.5 from its mass)."""
    n = int(np.sum(template > level * template.max()))
    return float((3.0 * n / (4.0 * np.pi)) ** (1.0 / 3.0))


@dataclass
class MatchResult:
    """``scores`` [z, y, x] best NCC per voxel; ``best`` [z, y, x] index of its rotation in ``eulers``."""

    scores: np.ndarray
    best: np.ndarray
    eulers: np.ndarray
    radius: float
    # Mean and standard deviation of the NCC over every voxel and rotation searched: the null
    # distribution the false-alarm cut is taken from (pytom-match-pick, Rickgauer et al. 2017).
    search_mean: float = 0.0
    search_std: float = 0.0
    n_trials: int = 0


class Search:
    """One tomogram prepared for template matching: its spectrum and local normalisation under
    the template's spherical mask (computed once, rotation invariant); :meth:`score` does one
    rotation. Built once per tomogram: :func:`choose_angular_step` times it, then
    :func:`match_template` runs it."""

    def __init__(self, tomogram: np.ndarray, template: np.ndarray, *, tilt_range: float = 60.0,
                 radius: float | None = None, workers: int = -1):
        f = np.asarray(tomogram, np.float32)
        if float(f.std()) == 0.0:
            raise TemplearnError("the tomogram is constant (empty): nothing to match")
        self.shape, self.template = f.shape, template
        half = template.shape[0] // 2
        self.radius = float(radius if radius is not None else half)
        self.mask = sphere(template.shape, min(self.radius, half))
        self.n_mask = float(self.mask.sum())
        self.inside = self.mask > 0
        self.plan = plan = _Correlator(f, template.shape[0], workers)
        s1 = plan.correlate(self.mask, plan.F) / self.n_mask
        s2 = plan.correlate(self.mask, plan.F2) / self.n_mask
        plan.F2 = None  # only the local variance needs the squared volume's spectrum
        sigma = np.sqrt(np.clip(s2 - s1 ** 2, 0, None))
        del s1, s2
        # Flat regions (pad, empty corners) would divide by ~0: floor at a small fraction.
        sigma = np.maximum(sigma, 1e-2 * float(np.median(sigma)) + 1e-12).astype(np.float32)
        self.inv = (1.0 / (self.n_mask * sigma)).astype(np.float32)
        self.wedge = wedge_weight(template.shape, tilt_range)

    def score(self, euler) -> np.ndarray | None:
        """NCC [z, y, x] of the template turned to ``euler`` (None if nothing of it is left
        after the wedge); a view into the correlator's buffer, valid until the next call."""
        m = self.mask
        t = rotate_volume(self.template, euler)
        t = np.fft.irfftn(np.fft.rfftn(t) * self.wedge, s=t.shape).astype(np.float32) * m
        t[self.inside] -= t[self.inside].mean()
        t *= m
        norm = float(np.sqrt((t ** 2).sum()))
        if norm == 0.0:
            return None
        t *= np.sqrt(self.n_mask) / norm
        c = self.plan.correlate(t, self.plan.F)
        return np.multiply(c, self.inv, out=c)

    def model_seconds_per_rotation(self) -> float:
        """One rotation's time on the reference machine, from the padded grid's size alone, so the
        default step depends on the tomogram and the particle, not on how busy this machine is."""
        return float(np.prod(self.plan.full)) * REFERENCE_SECONDS_PER_VOXEL

    def seconds_per_rotation(self, repeats: int = 2) -> float:
        """Wall time of one rotation here, the best of ``repeats`` (a first call plans the FFTs)."""
        import time

        best = float("inf")
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            self.score((37.0 * i, 53.0, 71.0))
            if i:
                best = min(best, time.perf_counter() - t0)
        return best


# One rotation per voxel of the padded grid on the reference machine (2 cores, float32), from
# `python benchmarks/bench_pick_eval.py --only 256x256x96 512x512x200 --skip segmentation clustering`:
# 0.192 s on 128x288x288 (1.8e-8) and 1.667 s on 240x576x576 (2.1e-8); the slower rate is taken.
REFERENCE_SECONDS_PER_VOXEL = 2.1e-8


def crowther_step(radius: float, voxel_size: float, resolution: float) -> float:
    """The angular step (degrees) a particle needs: ``atan(resolution / diameter)`` (the Crowther
    criterion as pytom-match-pick uses it), with the template's mask ``radius`` (voxels) as its
    half-diameter and ``resolution`` (Å) its low-pass."""
    return float(np.degrees(np.arctan(resolution / (2.0 * radius * voxel_size))))


# Steps tried, finest first, when the particle's own step does not fit the time budget; beyond
# 30° the rotations are too sparse to find anything but spheres.
COARSER_STEPS = (5.0, 6.0, 7.5, 9.0, 10.0, 12.0, 15.0, 18.0, 20.0, 24.0, 30.0)


@dataclass
class StepChoice:
    step: float
    n_rotations: int
    needed: float                 # the particle's own step (Crowther)
    seconds_per_rotation: float   # on the reference machine
    seconds: float                # the estimate for the whole search, same machine
    budget: float                 # seconds
    reason: str

    def line(self) -> str:
        return (f"template matching: {self.n_rotations} rotations at {self.step:g}° ({self.reason}), "
                f"~{duration(self.seconds)} on a 2-core CPU ({self.seconds_per_rotation:.2f} s per rotation)")


def choose_angular_step(search: Search, voxel_size: float, resolution: float, budget_s: float,
                        step: float | None = None) -> StepChoice:
    """``step`` when given; else the particle's Crowther step, or the finest of
    :data:`COARSER_STEPS` whose estimated time (rotations x
    :meth:`Search.model_seconds_per_rotation`) fits ``budget_s``, at most 30°. Deterministic: a
    rerun picks the same step."""
    needed = crowther_step(search.radius, voxel_size, resolution)
    per = search.model_seconds_per_rotation()
    if step is not None:
        reason = "as asked"
    else:
        tries = [needed] + [s for s in COARSER_STEPS if s > needed]
        step = next((s for s in tries if n_rotations(s) * per <= budget_s), tries[-1])
        if step == needed:
            reason = f"the particle's Crowther step, within the {budget_s / 60:g} min budget"
        elif n_rotations(step) * per <= budget_s:
            reason = (f"coarser than the particle's {needed:.1f}° ({n_rotations(needed)} rotations, "
                      f"~{duration(n_rotations(needed) * per)}) to fit the {budget_s / 60:g} min budget")
        else:
            reason = (f"the coarsest step; over the {budget_s / 60:g} min budget: bin the tomogram "
                      "(imod-recon bin-tomogram) or mask it")
    n = n_rotations(step)
    return StepChoice(float(step), n, needed, per, n * per, budget_s, reason)


def match_template(tomogram: np.ndarray, template: np.ndarray, eulers: np.ndarray, *,
                   tilt_range: float = 60.0, radius: float | None = None, workers: int = -1,
                   progress=None, search: Search | None = None) -> MatchResult:
    """NCC of ``template`` (odd cubic box, particle bright, centred) over ``tomogram`` for each
    rotation in ``eulers`` ``(n, 3)``; see the module docstring. ``search``: the tomogram already
    prepared (:class:`Search`), else prepared here.

    Per rotation the work is one forward and one inverse real FFT of the padded volume (its
    floor: ``benchmarks/bench_pick_eval.py`` measures both): the template's forward FFT is
    pruned (its zero planes are never transformed) and every full-size step is in place, in
    float32."""
    if search is None:
        search = Search(tomogram, template, tilt_range=tilt_range, radius=radius, workers=workers)
    shape = search.shape
    scores = np.full(shape, -np.inf, np.float32)
    best = np.zeros(shape, np.int32)
    better = np.zeros(shape, bool)
    items = range(len(eulers)) if progress is None else progress(range(len(eulers)))
    total, total2, n_sampled = 0.0, 0.0, 0
    for i in items:
        c = search.score(eulers[i])
        if c is None:
            continue
        np.greater(c, scores, out=better)
        np.copyto(scores, c, where=better)
        np.copyto(best, i, where=better)
        # The null's moments from every 8th voxel (2 per axis): millions of samples, an eighth of a pass.
        sub = c[::2, ::2, ::2]
        total += float(sub.sum(dtype=np.float64))
        total2 += float(np.square(sub).sum(dtype=np.float64))
        n_sampled += sub.size
    mean = total / max(n_sampled, 1)
    std = float(np.sqrt(max(total2 / max(n_sampled, 1) - mean ** 2, 0.0)))
    n_trials = int(np.prod(shape)) * len(eulers) if n_sampled else 0
    return MatchResult(scores, best, np.asarray(eulers), search.radius, mean, std, n_trials)


def false_alarm_cut(res: MatchResult, false_alarms: float = 1.0) -> float:
    """The NCC above which ``false_alarms`` peaks are expected from noise alone over the whole
    search: with N = voxels x rotations Gaussian trials of the search's mean and standard
    deviation, ``mean + std * sqrt(2) * erfcinv(2 * false_alarms / N)`` (pytom-match-pick's
    extraction threshold, after Rickgauer et al. 2017). Conservative: rotations are correlated,
    so there are fewer independent trials than N."""
    from scipy.special import erfcinv

    if not false_alarms > 0:
        raise TemplearnError(f"--false-alarms must be positive, got {false_alarms}")
    if res.n_trials == 0 or res.search_std == 0.0:
        return float("inf")
    p = min(1.0, 2.0 * false_alarms / res.n_trials)
    return float(res.search_mean + res.search_std * np.sqrt(2.0) * erfcinv(p))


class _Correlator:
    """``sum_d small(c + d) * vol(x + d)`` for a small cubic box over the normalised, zero-padded
    tomogram, by FFT. The tomogram sits ``half`` voxels into the padded grid, so the box needs no
    wrap-around placement and the result for voxel ``x`` is at ``x``."""

    def __init__(self, f: np.ndarray, b: int, workers: int):
        from scipy import fft as sfft

        self.fft, self.workers, self.b, self.n = sfft, workers, b, f.shape
        half = b // 2
        # Pad by half a template on each side so correlations do not wrap around; the pad is
        # the mean (0 after subtraction), as is usual for FLCF.
        self.full = [sfft.next_fast_len(s + 2 * half, real=True) for s in f.shape]
        f0 = np.zeros(self.full, np.float32)
        f0[half:half + f.shape[0], half:half + f.shape[1], half:half + f.shape[2]] = (f - f.mean()) / f.std()
        self.F = sfft.rfftn(f0, workers=workers)
        np.square(f0, out=f0)
        self.F2 = sfft.rfftn(f0, workers=workers)

    def spectrum(self, small: np.ndarray) -> np.ndarray:
        """rfftn of ``small`` zero-padded to the full grid, transforming only the axes' non-zero
        lines (x: b^2 lines, y: b planes' columns, z: all), so about a third of a full FFT."""
        sf, w, (lz, ly, lx) = self.fft, self.workers, self.full
        k = sf.rfft(small, n=lx, axis=2, workers=w)
        k = sf.fft(k, n=ly, axis=1, workers=w, overwrite_x=True)
        return sf.fft(k, n=lz, axis=0, workers=w, overwrite_x=True)

    def correlate(self, small: np.ndarray, spectrum: np.ndarray) -> np.ndarray:
        """The correlation on the tomogram's voxels ``[z, y, x]`` float32 (a view into the
        padded result)."""
        k = self.spectrum(np.asarray(small, np.float32))
        np.conjugate(k, out=k)
        k *= spectrum
        out = self.fft.irfftn(k, s=self.full, workers=self.workers, overwrite_x=True)
        return out[:self.n[0], :self.n[1], :self.n[2]]


def extract_peaks(scores: np.ndarray, n_peaks: int, min_distance: float, mask: np.ndarray | None = None,
                  min_score: float = -np.inf) -> np.ndarray:
    """Greedy peaks of ``scores`` [z, y, x]: the highest voxel, then the highest outside a sphere
    of ``min_distance`` voxels around every peak taken, ...; at most ``n_peaks``, scores above
    ``min_score``, inside ``mask`` when given. Returns ``(n, 3)`` voxel indices ``[z, y, x]``."""
    s = np.array(scores, np.float32, copy=True)
    if mask is not None:
        s[np.asarray(mask) == 0] = -np.inf
    r = int(np.ceil(min_distance))
    zz, yy, xx = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1]
    ball = zz ** 2 + yy ** 2 + xx ** 2 <= min_distance ** 2
    out = []
    while len(out) < n_peaks:
        idx = int(np.argmax(s))
        v = s.flat[idx]
        if not np.isfinite(v) or v <= min_score:
            break
        p = np.unravel_index(idx, s.shape)
        out.append(p)
        lo = [max(0, p[i] - r) for i in range(3)]
        hi = [min(s.shape[i], p[i] + r + 1) for i in range(3)]
        b = ball[lo[0] - p[0] + r: hi[0] - p[0] + r, lo[1] - p[1] + r: hi[1] - p[1] + r, lo[2] - p[2] + r: hi[2] - p[2] + r]
        s[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][b] = -np.inf
    return np.array(out, int).reshape(-1, 3)


MAX_DEFAULT_PEAKS = 2000


def load_template(spec: str, voxel_size: float, resolution: float | None) -> np.ndarray:
    """The template as a density map [z, y, x] (particle bright) at ``voxel_size`` Å.

    ``spec`` is an MRC map (resampled to the tomogram's voxel size when it differs) or a
    structure (path or PDB ID, :mod:`templearn.structures`) rendered by
    :func:`templearn.density.atoms_to_map`. ``resolution`` (Å) low-passes the template; it
    defaults to twice the voxel size (Nyquist) for structures and to none for maps.
    """
    from pathlib import Path

    from templearn.mrc import read_mrc
    from templearn.structures import MAP_SUFFIXES

    p = Path(spec)
    if p.suffix.lower() in MAP_SUFFIXES:
        t, tvs = read_mrc(p)
        if abs(tvs - voxel_size) > 1e-3 * voxel_size:
            from scipy.ndimage import zoom

            t = zoom(t, tvs / voxel_size, order=1).astype(np.float32)
        if float(t.std()) == 0.0:
            raise TemplearnError("the template map is constant (empty)", p)
        if resolution:
            t = lowpass(t, voxel_size, resolution)
        return t
    from templearn.density import atoms_to_map
    from templearn.structures import load_atoms

    volume, _origin = atoms_to_map(load_atoms(spec), voxel_size, resolution or 2.0 * voxel_size)
    return np.asarray(volume, np.float32)


def run_match(
    tomogram,
    template: str,
    out_dir,
    *,
    angular_step: float | None = None,
    tilt_range: float = 60.0,
    time_budget: float = 30.0,
    time_estimate: bool = False,
    n_peaks: int | None = None,
    min_distance: float | None = None,
    resolution: float | None = None,
    mask=None,
    contrast: str = "dark",
    class_name: str | None = None,
    false_alarms: float = 1.0,
    min_score: float | None = None,
    star_format: str = "relion5",
    copick=None,
) -> dict:
    """Template matching of ``template`` over ``tomogram``; picks scored by NCC.

    ``contrast``: ``dark`` when particles are darker than the solvent (raw cryo-ET
    reconstructions), ``bright`` when they are brighter (inverted or simulated without contrast
    inversion): the template is negated for ``dark``. ``n_peaks`` defaults to the number of
    non-overlapping spheres of ``min_distance`` the volume could hold (at most 2000);
    ``min_distance`` (voxels) to the template's :func:`equivalent_radius`.

    Peaks are accepted above ``min_score`` when given, else above :func:`false_alarm_cut` for
    ``false_alarms`` expected noise peaks. Writes the accepted peaks (:func:`.outputs.write_all`;
    STAR as ``star_format``), ``candidates.csv`` (every peak, ``accepted`` 1/0), ``scores.mrc``
    (best NCC per voxel), ``picks.png``, ``scores.png`` (peak scores with the cut) and
    ``provenance.json`` into ``out_dir``. ``copick`` (a :class:`templearn.copick_io.CopickTarget`,
    with ``tomogram`` None): the tomogram comes from a copick project and the picks go into it too.
    """
    from pathlib import Path

    from templearn import copick_io, provenance
    from templearn.mrc import write_mrc
    from templearn.picks import Picks, write_picks
    from templearn.progress import track
    from templearn.star import check_format as check_star_format

    from . import inputs, outputs, plots
    from .pick import CANDIDATES
    from .rotations import angle_grid
    from .segment import check_tomogram, read_mask

    out_dir = Path(out_dir)
    check_star_format(star_format)
    check_contrast(contrast)
    if angular_step is not None and not 0 < angular_step <= 180:
        raise TemplearnError(f"--angular-step must be in (0, 180] degrees, got {angular_step}")
    if not 0 < tilt_range <= 90:
        raise TemplearnError(f"--tilt-range must be in (0, 90] degrees, got {tilt_range}")
    volume, voxel, tomo_name, tomogram = inputs.read_tomogram(tomogram, copick)
    name = class_name or Path(str(template)).name.split(".")[0]
    if copick is not None:
        copick_io.object_names(copick, {1: name})
    check_tomogram(volume, tomogram)
    mask_arr = read_mask(mask, volume.shape) if mask is not None else None
    if not time_budget > 0:
        raise TemplearnError(f"--time-budget must be positive (minutes), got {time_budget}")
    try:
        tpl, radius = prepare_template(load_template(template, voxel, resolution))
    except TemplearnError as exc:
        raise TemplearnError(exc.message, exc.path or template) from None
    if max(tpl.shape) > min(volume.shape) * 2:
        raise TemplearnError(f"the template ({tpl.shape[0]} voxels across at {voxel:g} Å) is larger than the "
                             f"tomogram {volume.shape}: wrong voxel size?", template)
    if contrast == "dark":
        volume = -volume
    search = Search(volume, tpl, tilt_range=tilt_range, radius=radius)
    choice = choose_angular_step(search, voxel, resolution or 2.0 * voxel, time_budget * 60.0, angular_step)
    if time_estimate:
        here = search.seconds_per_rotation()
        print(f"{choice.line()}; here {here:.2f} s per rotation: ~{duration(here * choice.n_rotations)}", flush=True)
        return {"estimate": dataclasses.asdict(choice), "seconds_per_rotation_here": here}
    say(choice.line())
    angular_step = choice.step
    eulers = angle_grid(angular_step)
    res = match_template(volume, tpl, eulers, search=search,
                         progress=lambda it: track(it, "template matching: rotations"))
    if min_distance is None:
        min_distance = equivalent_radius(tpl)
    if n_peaks is None:
        n_peaks = int(min(MAX_DEFAULT_PEAKS, max(1, volume.size / (4.0 / 3.0 * np.pi * min_distance ** 3))))
    peaks = extract_peaks(res.scores, n_peaks, min_distance, mask_arr)
    cut = float(min_score) if min_score is not None else false_alarm_cut(res, false_alarms)
    peak_scores = res.scores[tuple(peaks.T)] if len(peaks) else np.zeros(0)
    picks = Picks(peaks[:, ::-1].astype(float), voxel, np.full(len(peaks), tomo_name), np.ones(len(peaks), int),
                  peak_scores, eulers[res.best[tuple(peaks.T)]] if len(peaks) else np.zeros((0, 3)), {1: name},
                  accepted=peak_scores >= cut)
    kept = picks.written()

    out_dir.mkdir(parents=True, exist_ok=True)
    scores = np.where(np.isfinite(res.scores), res.scores, 0.0).astype(np.float32)
    written = [write_mrc(out_dir / "scores.mrc", scores, voxel, label="templearn pick-eval match: best NCC")]
    written.append(write_picks(out_dir / CANDIDATES, picks))
    written += outputs.write_all(out_dir, kept, shape=volume.shape, star_format=star_format)
    if copick is not None:
        written += outputs.write_copick(copick, kept)
    rule = f"--min-score {min_score:g}" if min_score is not None else f"{false_alarms:g} expected false alarm(s)"
    written.append(plots.picks_on_slices(
        out_dir / "picks.png", -volume if contrast == "dark" else volume, kept.xyz, kept.label, radius,
        title=f"{tomo_name}: template matching, {len(kept)} of {len(picks)} peaks (NCC >= {cut:.3f}; rejected dashed)",
        rejected=picks.select(~picks.accepted).xyz))
    written.append(plots.score_histogram(out_dir / "scores.png", {name: peak_scores}, {name: cut}, "peak NCC",
                                         f"{tomo_name}: peaks and the cut ({rule})"))
    summary = {"angular_step": angular_step, "step_choice": choice.reason, "n_rotations": len(eulers),
               "n_peaks": len(picks), "n_accepted": len(kept), "cut": cut,
               "cut_rule": rule, "search_mean": res.search_mean, "search_std": res.search_std,
               "n_trials": res.n_trials, "template_radius_voxels": radius, "template_box": int(tpl.shape[0])}
    provenance.record(out_dir, "pick-eval match",
                      {"template": str(template), "angular_step": angular_step, "tilt_range": tilt_range,
                       "time_budget": time_budget,
                       "n_peaks": n_peaks, "min_distance": min_distance, "resolution": resolution,
                       "mask": mask, "contrast": contrast, "class_name": name, "false_alarms": false_alarms,
                       "min_score": min_score, "star_format": star_format,
                       "copick": copick.as_dict() if copick else None},
                      inputs=[tomogram] + ([Path(template)] if Path(str(template)).is_file() else [])
                      + ([Path(mask)] if mask else []) + ([copick.config] if copick else []), outputs=written, extra={"summary": summary})
    return summary
