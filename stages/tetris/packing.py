"""Tetris packing: molecules placed one at a time, touching those already placed, never overlapping.

The paper's rule (Harastani et al. 2024): give the molecule a random orientation, binarize it
(its *core*), take the shell ``dilation(core, radius) - core``, correlate ``shell - penalty * core``
with the binarized sample and put the molecule at the maximum; stop when the maximum is <= 0.

What this module does differently, and why:

- **Local, exact scoring.** The reference correlates the whole 192x192x64 volume by FFT for every
  molecule (~0.2 s each). Here the score of a candidate centre ``p`` is computed exactly on the
  voxels it touches: ``overlap(p) = any(occupied[p + core])`` and ``contact(p) =
  sum(occupied[p + shell])``, gathered from a flat index array.
- **A global search, ranked by crowding.** The paper's maximum of contact lies where the sample
  is most crowded around the molecule. A *crowding* map (occupied voxels, walls included, within
  a ball of ``reach`` voxels of each voxel) and a *free-distance* map ``D`` (distance to the
  nearest occupied voxel or wall) are kept exact by local updates after every placement. The
  candidates are the voxels where the core's widest inscribed ball (the *anchor*) has room
  (``D >= its radius``) and the centre can touch (``D`` between the inner radius and the shell's
  reach), taken most crowded first over the WHOLE box: ``BLOCK``^3 blocks keep, per free-distance
  level, their most crowded voxel, and blocks are visited best first only while they can still
  beat the batch (or until ``POOL`` x ``candidates`` are in hand: the keys are loose bounds, and
  proving the exact top took ~400 blocks per molecule). The ``candidates`` (256) most crowded are tested (the other inscribed balls'
  free distance, then every core voxel) and the one with most contact wins, improved by hill
  climbing over its 26 neighbours. This packs as densely as the full-FFT search (denser in the
  benchmark) at a fraction of the work. A shape that fits none of the first ``ESCALATE`` batches
  (big, elongated ones: the crowded spots are crevices) tries random anchors in blocks with room,
  then the ordered search goes on to the last block, so "fits nowhere" is exact for that
  orientation; a molecule that fits nowhere is skipped, not fatal.
- **No overlap by construction.** Cores (footprints, :func:`footprint`) are the paper's (the
  blurred map at or above an absolute gray level: a halo around the molecule) or the molecule's
  own volume (its mass x 1.21 Å³/Da, the highest voxels of its blurred map); either holds at
  least the molecule's own volume, so small distractors have a body too. A placement is
  accepted only when no core voxel is occupied.
- **Walls count as neighbours.** Outside the box is occupied, so molecules pack against the box
  faces (the slab's surfaces) as they do against each other.
- **Partial packings spread** (``spread``). Grown from the most crowded spots, a sample stopped at
  30 % fills the corners and faces and leaves the centre empty. Spreading, each molecule goes to
  the most contact near a random point of the box (a window of its own reach), or starts a new
  cluster there when nothing in the window can be touched; walls do not count, so the slab's
  faces do not attract it.

Occupancy is a padded ``uint8`` grid: the box plus a margin of 1s (walls) wide enough that any
core or shell offset from an in-box centre stays inside the array, so gathers need no bounds checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from templearn.density import StructureMap, binarize, rotate_map

#: Positions scored exactly per molecule (default): the most crowded places where it may fit.
CANDIDATES = 256
#: ... with the paper's footprint: a halo touches its neighbours far from its anchor, where the
#: crowding ball (``REACH_CAP`` voxels) does not look, so more places are scored. 4096 saturates
#: as densely as the full-FFT search (the same placements on the ribosome list, seeds 0-1); 256
#: and 1024 stay 0.84x below it there.
PAPER_CANDIDATES = 4096
#: Voxels gathered at most per step of the overlap filter once few candidates are left.
GATHER = 1 << 18
#: Voxels up to which the free distance is kept exact, and the radius of the crowding ball.
REACH_CAP = 5.0
#: Candidates visited per batch at most, in batches: enough that the batch is the top by crowding
#: in practice (block keys only bound it from above) without scanning hundreds of blocks.
POOL = 8
#: Hill-climbing steps at most.
CLIMB = 8
#: Edge (voxels) of the blocks that index the search.
BLOCK = 4
#: Squared free distances at which blocks keep their most crowded voxel (a shape uses the
#: largest one not above its anchor's squared radius; free distances are square roots of integers).
LEVELS_SQ = (1, 2, 3, 4, 5, 6, 8, 9)
#: Inscribed balls tested per candidate (the anchor first) before the core voxels.
MEDIAL = 6
#: Batches of the ordered search that found nothing before trying random anchors, and those.
ESCALATE = 3
PROBES = 2048
PROBE_ROUNDS = 3


#: The paper's footprint: the map blurred by ``sigma`` voxels, at or above this level (e2pdb2mrc
#: units: its reference code's ``gray_level_threshold``, on maps from e2pdb2mrc at 16 Å, 32 Å).
GRAY_LEVEL = 100.0
#: Zero padding (in blur sigmas) around a map before it is blurred for an absolute-level
#: footprint: the halo reaches ~3 voxels past the atoms, beyond the map's own 3 w pad.
HALO_SIGMAS = 3.0


@dataclass
class Shape:
    """One molecule in one orientation, binarized at the packing voxel size."""

    block: np.ndarray        # rotated density map [z, y, x] (odd cube, centre = molecule centre)
    core: np.ndarray         # bool, same shape as block: the footprint
    core_zyx: np.ndarray     # (nc, 3) int offsets from the centre voxel, outermost first
    shell_zyx: np.ndarray    # (ns, 3)
    r_in: float              # voxels: every voxel closer than this to the centre is core
    r_out: float             # voxels: farthest shell voxel from the centre
    euler: np.ndarray        # degrees
    ball_zyx: np.ndarray     # (k, 3) centres of inscribed balls, widest (the anchor) first
    ball_r: np.ndarray       # (k,) their radii: the free distance a placement needs there

    @property
    def half(self) -> int:
        return (self.block.shape[0] - 1) // 2


def footprint(block: np.ndarray, smap: StructureMap, *, sigma: float = 2.0, threshold: float | None = None,
              level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(block, core)``: the voxels a molecule (its map ``block``, as placed) occupies.

    ``level``: the paper's footprint, the map blurred by ``sigma`` voxels at or above ``level``
    (absolute, e2pdb2mrc units), and at least the molecule's own volume (a small molecule's
    blurred peak may lie below the level: the reference lets those overlap); ``block`` is
    zero-padded first so the halo is not cut by the cube, and returned padded. Else the blurred
    map's molecular volume (``threshold=None``: mass x 1.21 Å³/Da, the highest voxels) or
    ``threshold`` x its maximum (never empty).
    """
    if level is not None:
        from scipy import ndimage

        pad = int(np.ceil(HALO_SIGMAS * sigma))
        block = np.pad(block, pad)
        blurred = ndimage.gaussian_filter(block, sigma, mode="constant") if sigma > 0 else block
        return block, (blurred >= level) | binarize(blurred, n_voxels=smap.n_voxels_molecule)
    core = binarize(block, n_voxels=None if threshold is not None else smap.n_voxels_molecule,
                    threshold=threshold, sigma=sigma)
    if not core.any():  # a threshold above every voxel: keep the peak so nothing is bodiless
        core.flat[int(np.argmax(block))] = True
    return block, core


def make_shape(smap: StructureMap, euler, *, dilation: int = 1, sigma: float = 2.0,
               threshold: float | None = None, level: float | None = None) -> Shape:
    """Rotate ``smap`` by ``euler`` and binarize it into a core (its :func:`footprint`) and an
    insertion shell: the core dilated by a ball of ``dilation`` voxels, minus the core."""
    block, core = footprint(rotate_map(smap.volume, euler), smap, sigma=sigma, threshold=threshold, level=level)
    c = (core.shape[0] - 1) // 2
    core_zyx = np.argwhere(core) - c
    r = max(int(dilation), 0)
    if r > 0:
        padded = np.pad(core, r)
        dilated = padded.copy()
        n = padded.shape[0]
        for dz, dy, dx in _ball_offsets(r):  # dilation by the ball: OR of shifted copies
            dilated[max(dz, 0):n + min(dz, 0), max(dy, 0):n + min(dy, 0), max(dx, 0):n + min(dx, 0)] |= \
                padded[max(-dz, 0):n + min(-dz, 0), max(-dy, 0):n + min(-dy, 0), max(-dx, 0):n + min(-dx, 0)]
        shell_zyx = np.argwhere(dilated & ~padded) - (c + r)
    else:
        shell_zyx = np.zeros((0, 3), int)
    d_core = np.sqrt((core_zyx**2).sum(1))
    core_zyx = core_zyx[np.argsort(-d_core, kind="stable")]
    # Inner radius: distance from the centre to the nearest voxel that is not core.
    dist = _distance_from_center(core.shape[0])
    outside = ~core
    r_in = float(dist[outside].min()) if outside.any() else float(c + 1)
    r_out = float(np.sqrt((shell_zyx**2).sum(1)).max()) if len(shell_zyx) else float(d_core.max())
    ball_zyx, ball_r = _inscribed_balls(core, c)
    return Shape(block, core, core_zyx, shell_zyx, r_in, r_out, np.asarray(euler, float), ball_zyx, ball_r)


def _inscribed_balls(core: np.ndarray, c: int, k: int = MEDIAL):
    """Up to ``k`` core voxels with the widest empty-of-background balls, spread over the core.

    ``r`` of a voxel is its distance to the nearest voxel outside the core: a placement needs a
    free distance >= r there (float32-safe margin taken off).
    """
    from scipy import ndimage

    nz = np.argwhere(core)
    lo, hi = nz.min(0) - 1, nz.max(0) + 2
    lo = np.maximum(lo, 0)
    sub = core[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    sub = np.pad(sub, 1)
    dist = ndimage.distance_transform_edt(sub)
    pts = np.argwhere(sub)
    r = dist[sub]
    # Widest first; among equals, nearest the centre (the first one anchors the search).
    d_c = ((pts - 1 + lo - c) ** 2).sum(1)
    order = np.lexsort((d_c, -r))
    chosen = [order[0]]
    rest = order[1:][r[order[1:]] > 1.0]  # balls of radius 1 say no more than the voxel test
    while len(rest) and len(chosen) < k:
        j = chosen[-1]
        rest = rest[((pts[rest] - pts[j]) ** 2).sum(1) >= r[j] ** 2]  # outside the last ball
        if len(rest):
            chosen.append(rest[0])
            rest = rest[1:]
    zyx = pts[chosen] - 1 + lo - c
    return zyx.astype(np.int64), (r[chosen] - 1e-3).astype(np.float32)


@lru_cache(maxsize=8)
def _ball_offsets(r: int) -> list[tuple[int, int, int]]:
    grid = np.indices((2 * r + 1,) * 3).reshape(3, -1).T - r
    return [tuple(int(v) for v in g) for g in grid if 0 < (g**2).sum() <= r * r]


@lru_cache(maxsize=64)
def _distance_from_center(n: int) -> np.ndarray:
    c = (n - 1) / 2
    return np.sqrt(((np.indices((n, n, n)) - c) ** 2).sum(0))


def core_radius(smap: StructureMap, *, sigma: float = 2.0, threshold: float | None = None,
                level: float | None = None) -> float:
    """Largest distance (voxels) of a footprint voxel from the centre, in the map's own orientation."""
    _, core = footprint(smap.volume, smap, sigma=sigma, threshold=threshold, level=level)
    return float(_distance_from_center(core.shape[0])[core].max())


def footprint_half(smap: StructureMap, *, sigma: float = 2.0, level: float | None = None) -> int:
    """Half the side of a shape's cube (voxels): the map's, plus the halo's padding."""
    return smap.half + (int(np.ceil(HALO_SIGMAS * sigma)) if level is not None else 0)


class _Tiers:
    """Blocks in descending key order, sorted lazily a tier at a time (most finds need few)."""

    def __init__(self, keys: np.ndarray):
        self.all = keys
        counts = np.bincount(keys.astype(np.int64) + 1)
        self.ge = np.cumsum(counts[::-1])[::-1]   # ge[v + 1]: blocks with key >= v
        self.hi = len(counts) - 1                 # keys >= hi are already in `order`
        self.order = np.zeros(0, np.int64)
        self.keys = np.zeros(0, keys.dtype)
        self.want = 32

    def extend(self) -> bool:
        """Append the next tier (about ``want`` more blocks); False when no live block is left."""
        done = self.ge[self.hi + 1] if self.hi + 1 < len(self.ge) else 0
        if self.hi <= 0 or self.ge[1] <= done:
            return False
        # Lowest key (>= 0) such that at least `want` more blocks have a key in [lo, hi).
        need = done + self.want
        lo = int(np.searchsorted(-self.ge[1:self.hi + 1], -need, side="right"))
        lo = min(max(lo - 1, 0), self.hi - 1)
        sel = np.flatnonzero((self.all >= lo) & (self.all < self.hi))
        sel = sel[np.argsort(-self.all[sel], kind="stable")]
        self.order = np.concatenate([self.order, sel])
        self.keys = np.concatenate([self.keys, self.all[sel]])
        self.hi = lo
        self.want *= 4
        return len(sel) > 0 or self.extend()


class Packer:
    """The sample being packed: occupancy, free distance, crowding and block keys; places shapes.

    ``box`` is ``[nz, ny, nx]`` voxels; ``margin`` the largest core/shell reach (voxels) of any
    molecule that will be placed; ``reach`` how far shells reach (caps the exact free distance
    and sets the crowding ball, at most ``REACH_CAP``); ``candidates`` the positions scored
    exactly per molecule and batch; ``spread`` places each molecule near a random point (see
    ``find``) instead of at the most crowded spot of the whole box.
    """

    def __init__(self, box, margin: int, rng: np.random.Generator, reach: float | None = None,
                 candidates: int = CANDIDATES, spread: bool = False):
        from scipy import ndimage, signal

        self.box = tuple(int(b) for b in box)
        # How far the free distance must be exact: the farthest any shell reaches (voxels).
        # Capped: the local update costs the cube of it. Shapes reaching farther skip the band's
        # upper bound (their inner radius alone still selects candidates).
        self.reach = min(float(margin if reach is None else min(reach, margin)), REACH_CAP)
        # Margin of walls: any core or shell offset from an in-box centre, plus the crowding ball.
        self.pad = p = int(margin) + 1 + int(np.floor(self.reach))
        self.rng = rng
        self.n_best = int(candidates)
        self.spread = bool(spread)
        # The box rounded up to whole blocks; the rounding and the margin are walls (occupied).
        self.bshape = tuple(-(-b // BLOCK) for b in self.box)
        full = tuple(n * BLOCK for n in self.bshape)
        self.grid = np.ones(tuple(f + 2 * p for f in full), dtype=np.uint8)
        self.grid[p:p + self.box[0], p:p + self.box[1], p:p + self.box[2]] = 0
        self.strides = np.array([self.grid.shape[1] * self.grid.shape[2], self.grid.shape[2], 1], dtype=np.int64)
        self.flat = self.grid.ravel()
        self.free = ndimage.distance_transform_edt(self.grid == 0).astype(np.float32)
        self.free_flat = self.free.ravel()
        # What a shell's contact counts: walls too when saturating (molecules pack against the
        # slab's faces); only molecules when spreading, since a lamella's faces cut through the
        # cytoplasm rather than attract it.
        self.touch_flat = np.zeros_like(self.flat) if self.spread else self.flat
        # Crowding: occupied voxels (walls included unless spreading) within a ball of `reach`
        # around each voxel. The paper's global maximum of contact lies where this is high;
        # ranking by it finds it without scoring every voxel.
        r = int(np.floor(self.reach))
        g = np.indices((2 * r + 1,) * 3).reshape(3, -1).T - r
        self.ball_zyx = g[(g**2).sum(1) <= self.reach**2]
        if self.spread:
            self.crowd = np.zeros(self.grid.shape, np.int16)
        else:
            ball = np.zeros((2 * r + 1,) * 3, np.float32)
            ball[tuple((self.ball_zyx + r).T)] = 1
            self.crowd = np.rint(signal.fftconvolve(self.grid.astype(np.float32), ball, mode="same")).astype(np.int16)
        self.crowd_flat = self.crowd.ravel()
        self.occupied = 0
        # Per block and level: the highest crowding of a voxel whose free distance is at least the
        # level (-1: none), so a search visits blocks best first and skips those with no room.
        self.levels = np.sqrt(np.array(LEVELS_SQ, np.float32)) - np.float32(1e-4)  # float32-safe
        self.keys = np.full((len(LEVELS_SQ),) + self.bshape, -1, np.int16)
        w = np.indices((BLOCK,) * 3).reshape(3, -1).T
        self.block_rel = w @ self.strides
        bz, by, bx = np.indices(self.bshape).reshape(3, -1)
        self.block_base = (np.stack([bz, by, bx], 1) * BLOCK + p) @ self.strides
        steps = (np.indices((3, 3, 3)).reshape(3, -1).T - 1) @ self.strides
        self.steps = steps[steps != 0]  # the 26 neighbours, for hill climbing
        self._update_keys(np.zeros(3, np.int64), np.array(self.bshape, np.int64))

    # --- indexing ---------------------------------------------------------------------------
    def _flat(self, zyx_box: np.ndarray) -> np.ndarray:
        return (np.asarray(zyx_box, np.int64) + self.pad) @ self.strides

    def _unflat(self, flat: np.ndarray) -> np.ndarray:
        z, r = np.divmod(flat, self.strides[0])
        y, x = np.divmod(r, self.strides[1])
        return np.stack([z, y, x], -1) - self.pad

    def fraction(self) -> float:
        return self.occupied / float(np.prod(self.box))

    # --- scoring ----------------------------------------------------------------------------
    def _fits(self, cands: np.ndarray, core_off: np.ndarray) -> np.ndarray:
        """The candidates (flat) whose core touches no occupied voxel; outer voxels tested first."""
        i, step = 0, 4  # a few outermost voxels weed out most candidates; then larger chunks
        while i < len(core_off) and len(cands):
            hit = self.flat[cands[:, None] + core_off[None, i:i + step]].any(1)
            cands = cands[~hit]
            # Few survivors: test the rest in one gather of at most ~GATHER voxels.
            i, step = i + step, max(2 * step, GATHER // max(len(cands), 1))
        return cands

    def _contact(self, cands: np.ndarray, shell_off: np.ndarray) -> np.ndarray:
        if not len(shell_off):
            return np.zeros(len(cands), np.int64)
        out = np.zeros(len(cands), np.int64)
        step = max(1, 2_000_000 // max(len(shell_off), 1))
        for i in range(0, len(cands), step):
            out[i:i + step] = self.touch_flat[cands[i:i + step, None] + shell_off[None, :]].sum(1, dtype=np.int64)
        return out

    def _upper(self, shape: Shape) -> float:
        """Largest free distance at which ``shape`` can touch something (inf: not known exactly)."""
        u = shape.r_out + 0.5
        return u if u < self.reach else np.inf

    def _level(self, r: float) -> int:
        """Index of the largest level not above ``r`` (at least the first: anchors are free voxels)."""
        return max(int(np.searchsorted(LEVELS_SQ, round(float(r) ** 2), side="right")) - 1, 0)

    def _update_keys(self, blo: np.ndarray, bhi: np.ndarray) -> None:
        """Recompute the blocks' keys for blocks ``[blo, bhi)``."""
        blo = np.maximum(blo, 0)
        bhi = np.minimum(bhi, self.bshape)
        if np.any(bhi <= blo):
            return
        n = bhi - blo
        a = blo * BLOCK + self.pad
        b = bhi * BLOCK + self.pad
        win = (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2]))

        def blocks(v):  # [n0*B, n1*B, n2*B] -> [n0, n1, n2, B^3]
            return v.reshape(n[0], BLOCK, n[1], BLOCK, n[2], BLOCK).transpose(0, 2, 4, 1, 3, 5).reshape(
                n[0], n[1], n[2], -1)

        d = blocks(self.free[win])
        c = blocks(self.crowd[win])
        for k, level in enumerate(self.levels):
            self.keys[k, blo[0]:bhi[0], blo[1]:bhi[1], blo[2]:bhi[2]] = np.where(d >= level, c, -1).max(-1)

    def find(self, shape: Shape) -> np.ndarray | None:
        """Best centre (voxel ``[z, y, x]``) for ``shape``, or None if it fits nowhere.

        Saturation (default): the paper's global maximum of contact, searched over the whole box
        (``_search``). Spread (``spread=True``, for partial packings): the most contact within a
        window around a random point of the box, or, if nothing there can be touched, a free
        place in the window (a new cluster); only a full window falls back to the whole box.
        Growing from the most crowded spots of the whole box fills corners and faces first, so a
        sample stopped at 30 % has an empty centre; spreading crowds every region alike.
        """
        core_off = shape.core_zyx @ self.strides
        shell_off = shape.shell_zyx @ self.strides
        best = None
        if self.spread:
            region = self._window(shape)
            best = self._search(shape, region, core_off, shell_off)
            if best is None:
                best = self._probe(shape, region, core_off, shell_off, touch=False)
        if best is None:
            best = self._search(shape, None, core_off, shell_off)
        if best is None:
            return None
        return self._unflat(np.array([self._climb(best, core_off, shell_off)[0]]))[0]

    def _window(self, shape: Shape) -> np.ndarray:
        """Blocks (flat ids) within the molecule's reach of a random point of the box."""
        p = self.rng.integers(0, self.box) // BLOCK
        h = int(np.ceil((shape.r_out + 1) / BLOCK))
        axes = [np.arange(max(c - h, 0), min(c + h + 1, n)) for c, n in zip(p, self.bshape)]
        return np.ravel_multi_index(np.meshgrid(*axes, indexing="ij"), self.bshape).ravel()

    def _search(self, shape: Shape, region, core_off, shell_off) -> tuple[int, int] | None:
        """(centre, contact) of most contact among the most crowded places of ``region`` (block
        ids; None: the whole box) where ``shape`` may fit and touch, or None.

        Candidates: centres whose anchor ball has room and whose free distance lies between the
        inner radius and the shell's reach, most crowded (at the anchor) first, ``candidates`` at
        a time, then twice as many, and so on. Blocks are visited best key first (4, 8, ... 64 at
        a time) and only while one could still hold a voxel more crowded than the batch's last,
        or until ``POOL`` batches' worth are in hand, so each batch is (nearly always) the top of
        the region by crowding. The first batch with a fitting, touching position gives
        the one with most contact (ties: random). After ``ESCALATE`` empty batches, random anchors
        are tried (``_probe``); then the ordered search goes on, to the last block if need be.
        """
        # The search runs over the anchor (the core's widest inscribed ball): it needs the most
        # room, so only voxels with at least that free distance are looked at.
        keys = self.keys[self._level(float(shape.ball_r[0]))].ravel()
        if region is not None:
            keys = keys[region]
        tiers = _Tiers(keys)
        if not tiers.extend():
            return None
        n = self.n_best
        pool = np.zeros(0, np.int64)      # visited candidates not yet scored
        pool_c = np.zeros(0, np.int16)    # their crowding
        nxt, chunk = 0, 4
        anchor_off, upper = int(shape.ball_zyx[0] @ self.strides), self._upper(shape)
        failed = 0
        while True:
            if failed == ESCALATE:
                live = np.flatnonzero(keys >= 0)
                found = self._probe(shape, live if region is None else region[live], core_off, shell_off)
                if found is not None:
                    return found
            # Visit blocks, best key first, until the pool's n most crowded beat every block left
            # (or the pool is large: keys bound their blocks' candidates loosely).
            while nxt < len(tiers.order) or tiers.extend():
                if len(pool) >= n:
                    if len(pool) >= POOL * n:
                        break
                    t = np.partition(pool_c, len(pool) - n)[len(pool) - n]
                    if t >= tiers.keys[nxt]:
                        break
                blocks = tiers.order[nxt:nxt + chunk]
                nxt, chunk = nxt + len(blocks), min(2 * chunk, 64)
                if region is not None:
                    blocks = region[blocks]
                v = (self.block_base[blocks, None] + self.block_rel[None, :]).ravel()
                cands, v = self._anchored(v, shape, anchor_off, upper)
                pool = np.concatenate([pool, cands])
                pool_c = np.concatenate([pool_c, self.crowd_flat[v]])
            if not len(pool):
                return None
            if len(pool) > n:
                top = np.argpartition(pool_c, len(pool) - n)
                batch, rest = pool[top[len(pool) - n:]], top[:len(pool) - n]
                pool, pool_c = pool[rest], pool_c[rest]
            else:
                batch, pool, pool_c = pool, pool[:0], pool_c[:0]
            n *= 2  # if nothing here fits, look further in larger steps
            failed += 1
            found = self._most_contact(self._fits(self._medial(batch, shape), core_off), shell_off)
            if found is not None:
                return found

    def _probe(self, shape, live, core_off, shell_off, *, touch: bool = True):
        """Random anchors in the blocks ``live``: the most contact among those that fit, for
        shapes that fit none of the most crowded spots; with ``touch=False``, the first free
        place (contact may be 0)."""
        nb = BLOCK**3
        if not len(live):
            return None
        anchor_off, upper = int(shape.ball_zyx[0] @ self.strides), self._upper(shape) if touch else np.inf
        for _ in range(PROBE_ROUNDS):
            draw = self.rng.integers(0, len(live) * nb, PROBES)
            b, w = np.divmod(draw, nb)
            cands, _ = self._anchored(self.block_base[live[b]] + self.block_rel[w], shape, anchor_off, upper)
            cands = self._fits(self._medial(cands, shape), core_off)
            found = self._most_contact(cands, shell_off) if touch else \
                ((int(cands[0]), 0) if len(cands) else None)
            if found is not None:
                return found
        return None

    def _anchored(self, v: np.ndarray, shape: Shape, anchor_off: int, upper: float) -> tuple[np.ndarray, np.ndarray]:
        """Anchor voxels ``v`` (flat) with room for the widest inscribed ball, and the centres
        (``v - anchor_off``) whose own free distance allows the molecule: at least its inner
        radius, at most ``upper`` (inf: need not touch): ``(centres, anchors)``."""
        v = v[self.free_flat[v] >= shape.ball_r[0]]
        cands = v - anchor_off
        d = self.free_flat[cands]
        ok = (d >= shape.r_in) & (d > 0) & (d <= upper)
        return cands[ok], v[ok]

    def _most_contact(self, cands: np.ndarray, shell_off) -> tuple[int, int] | None:
        """(candidate, contact) of most contact among fitting ``cands`` (ties: seeded draw); None
        when none touches anything."""
        if not len(cands):
            return None
        contact = self._contact(cands, shell_off)
        m = contact.max()
        if m <= 0:
            return None
        tied = np.flatnonzero(contact == m)
        j = int(tied[self.rng.integers(len(tied))]) if len(tied) > 1 else int(tied[0])
        return int(cands[j]), int(m)

    def _medial(self, cands: np.ndarray, shape: Shape) -> np.ndarray:
        """Candidates where each of the core's widest inscribed balls lies in free space."""
        off = shape.ball_zyx @ self.strides
        for o, r in zip(off, shape.ball_r):
            if not len(cands):
                break
            cands = cands[self.free_flat[cands + o] >= r]
        return cands

    def _climb(self, best, core_off, shell_off) -> tuple[int, int]:
        """Move to a neighbouring voxel while that adds contact (and still fits)."""
        pos, score = best
        for _ in range(CLIMB):
            cands = self._fits(pos + self.steps, core_off)
            if not len(cands):
                break
            contact = self._contact(cands, shell_off)
            i = int(np.argmax(contact))
            if contact[i] <= score:
                break
            pos, score = int(cands[i]), int(contact[i])
        return pos, score

    # --- placing ----------------------------------------------------------------------------
    def place(self, shape: Shape, center_zyx) -> None:
        """Mark ``shape``'s core occupied at ``center_zyx``; update free distance, crowding, keys nearby."""
        from scipy import ndimage

        c = np.asarray(center_zyx, np.int64)
        cp = c + self.pad
        flat = cp @ self.strides + shape.core_zyx @ self.strides
        if self.flat[flat].any():
            raise RuntimeError("placing onto occupied voxels")  # a bug, not a user error
        self.flat[flat] = 1
        self.touch_flat[flat] = 1
        self.occupied += len(flat)
        core_lo, core_hi = cp + shape.core_zyx.min(0), cp + shape.core_zyx.max(0) + 1
        # Free distance: only voxels within `reach` of the new core can get closer to it than
        # to anything else that matters for candidate selection.
        m = int(np.ceil(self.reach)) + 1
        lo = np.maximum(core_lo - m, 0)
        hi = np.minimum(core_hi + m, self.grid.shape)
        win = tuple(slice(a, b) for a, b in zip(lo, hi))
        local = np.ones(tuple(hi - lo), dtype=bool)
        idx = cp + shape.core_zyx - lo
        local[idx[:, 0], idx[:, 1], idx[:, 2]] = False
        d = ndimage.distance_transform_edt(local).astype(np.float32)
        np.minimum(self.free[win], d, out=self.free[win])
        # Crowding: each new core voxel counts once in every ball around it.
        r = int(np.floor(self.reach))
        clo, chi = core_lo - r, core_hi + r
        n = chi - clo
        cs = np.array([n[1] * n[2], n[2], 1])
        pts = ((cp + shape.core_zyx - clo) @ cs)[:, None] + (self.ball_zyx @ cs)[None, :]
        add = np.bincount(pts.ravel(), minlength=int(np.prod(n))).reshape(tuple(n)).astype(np.int16)
        self.crowd[clo[0]:chi[0], clo[1]:chi[1], clo[2]:chi[2]] += add
        # Keys of the blocks that either change touched.
        lo_box = np.minimum(lo, clo) - self.pad
        hi_box = np.maximum(hi, chi) - self.pad
        self._update_keys(lo_box // BLOCK, -(-hi_box // BLOCK))
