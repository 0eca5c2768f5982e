"""Regional assignment: problems too large for one dense tiles x photos matrix.

The grid is split into rectangular regions; photos are allocated to regions; each region
is solved exactly; the pieces are stitched; then pairs of neighbouring regions are
re-solved together until no pair improves. No step holds more than a few region-sized
blocks, and every step that touches all tiles x photos streams over blocks on Dask.

1. **Coarse prices.** ``samples`` disjoint random subproblems (1/``share`` of the tiles
   against 1/``share`` of the photos, so supply and demand keep their proportions) are
   solved exactly. Each one's tile duals, c-transformed against every photo
   (``p_i = max(0, max_t (u_t - c_ti))``), are estimates of the global photo prices;
   their mean is a better one (the dual is concave, and the noise averages out).
2. **Reduced costs** (one streaming pass over all tiles x photos): ``u_t = min_i (c_ti +
   p_i)`` and ``a_ir = min_{t in r} (c_ti - u_t)``, the reduced cost of photo ``i`` in
   region ``r``. The same pass proves a **global lower bound**: with ``q_i = max(0,
   -min_r a_ir)`` (the c-transform of ``u``), ``min_i (c_ti + q_i) = u_t`` for every
   tile, so ``sum_t u_t - sum_i q_i`` is the value of a feasible dual of the assignment
   LP, below every assignment's cost.
3. **Allocation**: a transportation LP solved with HiGHS puts each photo in one region
   (capacity: the region's tiles, plus a share of the spare photos) at least total
   reduced cost ``a_ir``.
4. **Regions** are solved exactly (:func:`mosaic.assign.exact.solve_dense_with_bound`),
   in parallel on Dask, and stitched (each photo is in one region, so none is used twice).
5. **Repair**: pairs of neighbouring regions (their tiles and their photos) are solved
   together; a pair's new assignment is kept only when it is cheaper, so the objective
   never rises. Pairs are coloured into four classes of disjoint pairs, each class solved
   in parallel; a pair is solved again only when one of its regions changed. It stops
   when no pair improves, or a whole sweep gains less than ``REPAIR_STOP`` of the
   objective (0.001 %: at 50,000 photos sweeps 5 to 12 together gained 0.004 % and took
   four minutes), or after ``max_sweeps`` sweeps or ``time_limit`` seconds.

Weighted problems minimise ``sum_t w_t c[t, x(t)]``; everything above uses ``w_t c_ti``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import highspy
import numpy as np

from mosaic.assign import exact
from mosaic.assign.exact import solve_dense_with_bound
from mosaic.assign.lp import new_highs
from mosaic.assign.result import Assignment, check_weights
from mosaic.blocks import (
    PHOTO_CHUNK,
    BlockRunner,
    Features,
    block_cost,
    chunks,
    even_chunks,
    pair_cost,
)
from mosaic.errors import MosaicError
from mosaic.machine import peak_memory_bytes

#: Target tiles per region when the count is not given.
REGION_TILES = 3200
#: Tiles x photos share of each coarse subproblem is 1 / COARSE_SHARE in each direction.
COARSE_SHARE = 4
#: Coarse subproblems solved (disjoint samples); their price estimates are averaged.
COARSE_SAMPLES = 4
#: At most this share of the tiles in spare photos is handed to the regions.
SPARE_SHARE = 0.25
#: A pair's re-solve counts as an improvement above this relative gain.
MIN_GAIN = 1e-7
#: Sweeps over all neighbouring pairs at most.
MAX_SWEEPS = 12
#: The repair stops when a sweep gains less than this share of the objective.
REPAIR_STOP = 1e-5
#: The stages of :func:`assign_regional`, in order (each reports its seconds).
STAGES = ("coarse solves", "c-transform pass", "reduced-cost pass", "allocation LP",
          "region solves", "repair")
#: Regions per photo in the first restricted allocation LP (column generation adds more).
ALLOCATION_KEEP = 2


@dataclass(frozen=True)
class RegionGrid:
    """The tile grid cut into ``region_rows x region_cols`` rectangles.

    Attributes
    ----------
    rows, cols : int
        The tile grid (tiles are numbered row by row).
    region_rows, region_cols : int
        Regions down and across.
    labels : ndarray of int64, shape (rows * cols,)
        Region of each tile, numbered row by row.
    """

    rows: int
    cols: int
    region_rows: int
    region_cols: int
    labels: np.ndarray

    @property
    def count(self) -> int:
        """Number of regions."""
        return self.region_rows * self.region_cols

    def tiles_of(self, region: int) -> np.ndarray:
        """Tile indices of ``region``, ascending."""
        return np.flatnonzero(self.labels == region)

    def sizes(self) -> np.ndarray:
        """Tiles per region."""
        return np.bincount(self.labels, minlength=self.count)

    def pair_classes(self) -> list[list[tuple[int, int]]]:
        """Neighbouring pairs in four classes; pairs within a class share no region."""
        classes: list[list[tuple[int, int]]] = [[], [], [], []]
        for a in range(self.region_rows):
            for b in range(self.region_cols):
                here = a * self.region_cols + b
                if b + 1 < self.region_cols:
                    classes[b % 2].append((here, here + 1))
                if a + 1 < self.region_rows:
                    classes[2 + a % 2].append((here, here + self.region_cols))
        return [c for c in classes if c]

    def pairs(self) -> list[tuple[int, int]]:
        """All pairs of regions sharing an edge."""
        return [pair for group in self.pair_classes() for pair in group]


def region_shape(rows: int, cols: int, regions: int) -> tuple[int, int]:
    """Regions down and across: ``regions`` factored so the pieces are closest to square."""
    regions = max(1, min(regions, rows * cols))
    best: tuple[float, int, int] | None = None
    for down in range(1, regions + 1):
        if regions % down:
            continue
        across = regions // down
        if down > rows or across > cols:
            continue
        badness = abs(math.log((rows / down) / (cols / across)))
        if best is None or badness < best[0]:
            best = (badness, down, across)
    if best is None:  # e.g. a prime count larger than both sides: fall back to strips
        return (min(regions, rows), 1) if rows >= cols else (1, min(regions, cols))
    return best[1], best[2]


def split_grid(rows: int, cols: int, regions: int) -> RegionGrid:
    """Cut a ``rows x cols`` tile grid into about ``regions`` near-square rectangles.

    Parameters
    ----------
    rows, cols : int
        The tile grid.
    regions : int
        Wanted number of regions (factored as down x across; see :func:`region_shape`).

    Returns
    -------
    RegionGrid
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"empty grid {rows} x {cols}")
    down, across = region_shape(rows, cols, regions)
    row_edges = np.linspace(0, rows, down + 1).round().astype(np.int64)
    col_edges = np.linspace(0, cols, across + 1).round().astype(np.int64)
    row_band = np.searchsorted(row_edges, np.arange(rows), side="right") - 1
    col_band = np.searchsorted(col_edges, np.arange(cols), side="right") - 1
    labels = (row_band[:, None] * across + col_band[None, :]).ravel().astype(np.int64)
    return RegionGrid(rows, cols, down, across, labels)


def default_regions(tiles: int, photos: int, max_memory: int, workers: int = 2) -> int:
    """How many regions: about :data:`REGION_TILES` tiles each, more if memory is short.

    A pair of regions (both regions' tiles and photos) is the largest matrix the repair
    scores; ``workers`` of them in flight must fit in half of ``max_memory``.
    """
    regions = max(1, round(tiles / REGION_TILES))
    while regions < tiles:
        if pair_bytes(tiles, photos, regions) * workers <= max_memory / 2:
            break
        regions *= 2
    return int(min(regions, tiles))


def pair_bytes(tiles: int, photos: int, regions: int) -> float:
    """Bytes of the largest matrix the repair scores: a pair of regions' tiles x photos."""
    pair_tiles = 2 * tiles / max(1, regions)
    return 4 * pair_tiles * pair_tiles * min(photos / max(1, tiles), 1 + SPARE_SHARE)


@dataclass
class RegionalReport:
    """How a regional solve went, for ``metrics.json``.

    Attributes
    ----------
    regions : int
        Number of regions.
    region_grid : tuple of int
        Regions down and across.
    objective : float
        Final (weighted) objective.
    lower_bound : float
        Proven lower bound on the optimum (the dual of step 2).
    gap : float
        ``(objective - lower_bound) / objective``.
    start_objective : float
        Objective of the stitched regions before repair.
    sweeps : int
        Repair sweeps run.
    pair_solves : int
        Pair subproblems solved in the repair.
    improved_pairs : int
        Pair solves that lowered the objective.
    converged : bool
        The repair stopped because no pair improved, or a sweep gained less than
        ``REPAIR_STOP`` of the objective (not on a sweep or time limit).
    stop_reason : str
        Why the repair stopped.
    coarse : dict
        Coarse price settings (share, samples) and the lower bound of the raw estimate.
    seconds : dict
        Wall time of each stage.
    peak_memory_bytes : int
        Peak resident memory of this process at the end.
    """

    regions: int
    region_grid: tuple[int, int]
    objective: float = math.nan
    lower_bound: float = -math.inf
    gap: float = math.nan
    start_objective: float = math.nan
    sweeps: int = 0
    pair_solves: int = 0
    improved_pairs: int = 0
    converged: bool = False
    stop_reason: str = ""
    coarse: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["region_grid"] = list(self.region_grid)
        return data


@dataclass
class RegionalResult:
    """A regional solve: the assignment, each tile's winning crop, and the report."""

    assignment: Assignment
    best_crop: np.ndarray
    report: RegionalReport


def solve_with_prices(cost: np.ndarray, weights: np.ndarray, threads: int = 1
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Exact assignment of a dense block and its final column prices.

    Parameters
    ----------
    cost : ndarray, shape (n, m), n <= m
    weights : ndarray, shape (n,)
    threads : int
        Solver threads (1 gives repeatable output).

    Returns
    -------
    photo_of_tile : ndarray of int64, shape (n,)
    prices : ndarray of float64, shape (m,)
        Dual prices, shifted so the lowest is 0: ``w_t c[t, x(t)] + p[x(t)]`` is the
        smallest ``w_t c[t, j] + p[j]`` of each row ``t``.
    """
    matrix = exact._as_kernel_matrix(cost)
    rows, cols = matrix.shape
    if rows == 0:
        return np.empty(0, dtype=np.int64), np.zeros(cols)
    if exact._lapcore is None:
        return solve_dense_with_bound(matrix, weights, threads=threads)[0], np.zeros(cols)
    scale = np.ascontiguousarray(weights, dtype=np.float64)
    low, high = float(matrix.min()), float(matrix.max())
    ends = [w * c for w in (float(scale.min()), float(scale.max())) for c in (low, high)]
    photo_of_tile = np.empty(rows, dtype=np.int64)
    prices = np.empty(cols)
    if cols == 1:
        return np.zeros(1, dtype=np.int64), np.zeros(1)
    stats = np.zeros(exact._lapcore.N_STATS, dtype=np.int64)
    exact._lapcore.solve(matrix, scale, exact._eps_schedule(min(ends), max(ends)),
                         exact.LIST_LENGTH, threads, cols - rows <= exact.DUMMY_SHARE * rows,
                         photo_of_tile, prices, stats)
    return photo_of_tile, prices - prices.min()


# ---------------------------------------------------------------------------------------
# Dask tasks (module level, so a cluster can unpickle them)


def _coarse_duals(features: Features, weights: np.ndarray, tiles: np.ndarray,
                  photos: np.ndarray) -> np.ndarray:
    """Tile duals ``w_t c[t, x(t)] + p[x(t)]`` of the exact solve of one coarse subproblem."""
    cost, _ = block_cost(features, tiles, photos)
    w = weights[tiles]
    local, prices = solve_with_prices(cost, w, threads=1)
    return w * cost[np.arange(tiles.size), local].astype(np.float64) + prices[local]


def _c_transform(features: Features, weights: np.ndarray, tiles: np.ndarray,
                 duals: np.ndarray) -> np.ndarray:
    """``max_t (duals_t - w_t c_ti)`` over the given tiles, for every photo ``i``."""
    out = np.empty(features.n_photos)
    w = weights[tiles]
    shift = float(duals.max())
    # c - (duals - shift) in float32: values near the maxima stay small, so exact enough.
    offset = (duals - shift).astype(np.float32)[:, None]
    for first, last in chunks(features.n_photos, PHOTO_CHUNK):
        cost, _ = block_cost(features, tiles, slice(first, last), w)
        cost -= offset
        out[first:last] = shift - cost.min(axis=0)
    return out


def _reduce_block(features: Features, weights: np.ndarray, tiles: np.ndarray,
                  prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a block of tiles: ``u_t = min_i (w_t c_ti + p_i)`` and ``min_t (w_t c_ti - u_t)``.

    Values are float32 (about 1e-7 relative), sums float64.
    """
    w = weights[tiles]
    values = np.empty((tiles.size, features.n_photos), dtype=np.float32)
    prices32 = prices.astype(np.float32)
    duals = np.full(tiles.size, np.inf, dtype=np.float32)
    for first, last in chunks(features.n_photos, PHOTO_CHUNK):
        cost, _ = block_cost(features, tiles, slice(first, last), w)
        values[:, first:last] = cost
        cost += prices32[first:last]
        np.minimum(duals, cost.min(axis=1), out=duals)
    reduced = np.empty(features.n_photos)
    column = duals[:, None]
    for first, last in chunks(features.n_photos, PHOTO_CHUNK):
        part = values[:, first:last]
        part -= column
        reduced[first:last] = part.min(axis=0)
    return duals.astype(np.float64), reduced


def _solve_group(features: Features, weights: np.ndarray, tiles: np.ndarray,
                 photos: np.ndarray, current: np.ndarray | None
                 ) -> tuple[np.ndarray, float, float]:
    """Exact assignment of ``tiles`` to ``photos`` (sorted); the new and current objective."""
    cost, _ = block_cost(features, tiles, photos)
    w = weights[tiles]
    local = solve_dense_with_bound(cost, w, threads=1)[0]
    rows = np.arange(tiles.size)
    new = float(np.dot(w, cost[rows, local].astype(np.float64)))
    old = math.inf
    if current is not None:
        where = np.searchsorted(photos, current)
        old = float(np.dot(w, cost[rows, where].astype(np.float64)))
    return photos[local], new, old


# ---------------------------------------------------------------------------------------
# Steps


@dataclass
class CoarseSamples:
    """Exactly solved coarse subproblems: their tiles and those tiles' duals."""

    tiles: list[np.ndarray]
    duals: list[np.ndarray]


def solve_coarse(features: Features, weights: np.ndarray, runner: BlockRunner,
                 share: int = COARSE_SHARE, samples: int = COARSE_SAMPLES, seed: int = 0
                 ) -> CoarseSamples:
    """Solve disjoint random subproblems exactly (in parallel) for their tile duals.

    Parameters
    ----------
    features : Features
    weights : ndarray, shape (T,)
    runner : BlockRunner
    share : int
        Each subproblem has every ``share``-th tile and photo of a random order, so
        photos per tile stay as in the whole problem.
    samples : int
        Disjoint subproblems (at most ``share``).
    seed : int
        Random order.

    Returns
    -------
    CoarseSamples
    """
    share = max(1, share)
    samples = max(1, min(samples, share))
    rng = np.random.default_rng(seed)
    tile_order = rng.permutation(features.n_tiles)
    photo_order = rng.permutation(features.n_photos)
    picks = [(np.sort(tile_order[k::share]), np.sort(photo_order[k::share]))
             for k in range(samples)]
    shared = runner.share(features)
    shared_weights = runner.share(weights)
    duals: list[np.ndarray] = [np.empty(0)] * samples
    for index, result in runner.run(_coarse_duals, [(shared, shared_weights, t, p)
                                                    for t, p in picks]):
        duals[index] = result
    return CoarseSamples([t for t, _ in picks], duals)


def c_transform_prices(features: Features, weights: np.ndarray, coarse: CoarseSamples,
                       runner: BlockRunner, block_tiles: int) -> np.ndarray:
    """Photo prices: each sample's duals c-transformed against every photo, averaged.

    ``p_i = mean_k max(0, max_{t in sample k} (u_t - w_t c_ti))``; one streaming pass over
    the sampled tiles x all photos.

    Returns
    -------
    ndarray of float64, shape (P,)
        Non-negative prices.
    """
    shared = runner.share(features)
    shared_weights = runner.share(weights)
    tasks, owner = [], []
    for k, (sample_tiles, duals) in enumerate(zip(coarse.tiles, coarse.duals, strict=True)):
        for first, last in chunks(sample_tiles.size, block_tiles):
            tasks.append((shared, shared_weights, sample_tiles[first:last], duals[first:last]))
            owner.append(k)
    estimates = np.full((len(coarse.tiles), features.n_photos), -np.inf)
    for index, result in runner.run(_c_transform, tasks, window=2 * runner.workers):
        np.maximum(estimates[owner[index]], result, out=estimates[owner[index]])
    return np.maximum(estimates, 0.0).mean(axis=0)


def reduced_costs(features: Features, weights: np.ndarray, prices: np.ndarray,
                  grid: RegionGrid, runner: BlockRunner, block_tiles: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One streaming pass: tile duals ``u`` and region reduced costs ``a`` (photos x regions).

    Parameters
    ----------
    features : Features
    weights : ndarray, shape (T,)
    prices : ndarray, shape (P,)
        Photo prices (non-negative).
    grid : RegionGrid
    runner : BlockRunner
    block_tiles : int
        Tiles per block (each block holds tiles x photos float32 values).

    Returns
    -------
    duals : ndarray of float64, shape (T,)
        ``u_t = min_i (w_t c_ti + p_i)``.
    reduced : ndarray of float64, shape (P, R)
        ``a_ir = min_{t in r} (w_t c_ti - u_t)``.
    """
    shared = runner.share(features)
    shared_weights = runner.share(weights)
    shared_prices = runner.share(np.asarray(prices, dtype=np.float64))
    tasks, region_of_task = [], []
    for region in range(grid.count):
        members = grid.tiles_of(region)
        for first, last in even_chunks(members.size, math.ceil(members.size / block_tiles)):
            tasks.append((shared, shared_weights, members[first:last], shared_prices))
            region_of_task.append(region)
    duals = np.empty(features.n_tiles)
    reduced = np.full((features.n_photos, grid.count), np.inf)
    for index, (block_duals, block_reduced) in runner.run(_reduce_block, tasks,
                                                          window=2 * runner.workers):
        duals[tasks[index][2]] = block_duals
        column = region_of_task[index]
        np.minimum(reduced[:, column], block_reduced, out=reduced[:, column])
    return duals, reduced


def dual_bound(duals: np.ndarray, reduced: np.ndarray) -> float:
    """The proven lower bound ``sum_t u_t - sum_i max(0, -min_r a_ir)`` of step 2."""
    photo_prices = np.maximum(0.0, -reduced.min(axis=1))
    return float(duals.sum() - photo_prices.sum())


def allocate(reduced: np.ndarray, tiles_per_region: np.ndarray,
             spare_share: float = SPARE_SHARE, keep: int = ALLOCATION_KEEP) -> np.ndarray:
    """Allocate photos to regions: the transportation LP, solved with HiGHS.

    Minimise ``sum a_ir y_ir`` subject to: each photo in exactly one region (or left out,
    when there are spare photos), region ``r`` receiving between its tile count and that
    plus its share of the spare photos (at most ``spare_share`` of the tiles in all).
    Transportation polytopes are integral, so the simplex vertex is a 0/1 allocation.

    The LP is solved by column generation: each photo starts with its ``keep`` cheapest
    regions (and high-cost artificial columns keep every region row feasible); columns
    with a negative reduced cost ``a_ir - pi_i - mu_r`` under the row duals are added
    until none is left, which proves the restricted optimum optimal for the full LP.

    Parameters
    ----------
    reduced : ndarray, shape (P, R)
        Reduced cost of each photo in each region.
    tiles_per_region : ndarray of int, shape (R,)
    spare_share : float
        Most spare photos given to the regions, as a share of the tiles.
    keep : int
        Regions per photo in the first restricted LP.

    Returns
    -------
    ndarray of int64, shape (P,)
        Region of each photo, or -1 for photos left out.
    """
    photos, regions = reduced.shape
    tiles = int(tiles_per_region.sum())
    if photos < tiles:
        raise MosaicError(f"{tiles} tiles need {tiles} distinct photos; only {photos} given")
    spare = photos - tiles
    handed = min(spare, math.ceil(spare_share * tiles))
    slack = np.ceil(handed * tiles_per_region / max(1, tiles)).astype(np.int64)
    lower, upper = tiles_per_region.astype(np.float64), (tiles_per_region + slack).astype(float)
    if spare:  # one more "region": left out, free, for at most `spare` photos
        reduced = np.concatenate([reduced, np.zeros((photos, 1))], axis=1)
        lower, upper = np.append(lower, 0.0), np.append(upper, float(spare))
    model = _AllocationModel(reduced, lower, upper)
    order = np.argsort(reduced, axis=1, kind="stable")[:, :max(1, min(keep, reduced.shape[1]))]
    model.add(np.repeat(np.arange(photos), order.shape[1]), order.ravel())
    for _ in range(reduced.shape[1] + 1):
        photo_dual, region_dual = model.solve()
        missing = reduced - photo_dual[:, None] - region_dual[None, :]
        missing[model.present] = 0.0
        tolerance = 1e-12 * max(1.0, float(np.abs(reduced).max()))
        photo_idx, region_idx = np.nonzero(missing < -tolerance)
        if photo_idx.size == 0:
            break
        model.add(photo_idx, region_idx)
    else:
        raise RuntimeError("allocation LP: column generation did not converge")
    region_of = model.region_of()
    region_of[region_of == regions] = -1
    return region_of


class _AllocationModel:
    """The restricted transportation LP of :func:`allocate`, grown column by column.

    Rows: one per photo (``= 1``), one per region (``lower..upper``). Columns: (photo,
    region) pairs at their reduced cost, and a +1 and a -1 artificial column per region
    row at a prohibitive cost, so every restricted model is feasible.
    """

    def __init__(self, reduced: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        self.reduced = reduced
        self.photos, self.regions = reduced.shape
        self.present = np.zeros(reduced.shape, dtype=bool)
        self.columns: list[tuple[np.ndarray, np.ndarray]] = []
        self.solver = new_highs()
        self.solver.setOptionValue("solver", "simplex")
        no_int = np.array([], dtype=np.int32)
        no_val = np.array([], dtype=np.float64)
        self.solver.addRows(self.photos, np.ones(self.photos), np.ones(self.photos), 0,
                            no_int, no_int, no_val)
        self.solver.addRows(self.regions, lower, upper, 0, no_int, no_int, no_val)
        span = float(np.abs(reduced).max(initial=0.0))
        big = 1.0 + 1000.0 * span
        region_rows = (self.photos + np.arange(self.regions)).astype(np.int32)
        for sign in (1.0, -1.0):
            self.solver.addCols(self.regions, np.full(self.regions, big),
                                np.zeros(self.regions), np.full(self.regions, highspy.kHighsInf),
                                self.regions, np.arange(self.regions, dtype=np.int32),
                                region_rows, np.full(self.regions, sign))
        self.first_real = 2 * self.regions

    def add(self, photo_idx: np.ndarray, region_idx: np.ndarray) -> None:
        """Add the columns (photo, region) to the model."""
        count = photo_idx.size
        index = np.empty(2 * count, dtype=np.int32)
        index[0::2] = photo_idx
        index[1::2] = self.photos + region_idx
        self.solver.addCols(count, self.reduced[photo_idx, region_idx].astype(np.float64),
                            np.zeros(count), np.ones(count), 2 * count,
                            np.arange(0, 2 * count, 2, dtype=np.int32), index,
                            np.ones(2 * count))
        self.columns.append((photo_idx.astype(np.int64), region_idx.astype(np.int64)))
        self.present[photo_idx, region_idx] = True

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """Solve the restricted LP; return the duals of the photo and region rows."""
        self.solver.run()
        status = self.solver.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError("allocation LP: HiGHS stopped with status "
                               f"{self.solver.modelStatusToString(status)}")
        dual = np.asarray(self.solver.getSolution().row_dual)
        return dual[:self.photos], dual[self.photos:]

    def region_of(self) -> np.ndarray:
        """Region (column of ``reduced``) of each photo in the last solution."""
        values = np.asarray(self.solver.getSolution().col_value)
        if np.any(values[:self.first_real] > 1e-9):
            raise RuntimeError("allocation LP: not enough photos for every region")
        region_of = np.full(self.photos, -1, dtype=np.int64)
        best = np.zeros(self.photos)
        position = self.first_real
        for photo_idx, region_idx in self.columns:
            share = values[position:position + photo_idx.size]
            position += photo_idx.size
            take = share > best[photo_idx]
            region_of[photo_idx[take]] = region_idx[take]
            best[photo_idx[take]] = share[take]
        if not np.allclose(best, 1.0, atol=1e-6):
            raise RuntimeError("allocation LP: the solution is not integral")
        return region_of


def solve_regions(features: Features, weights: np.ndarray, grid: RegionGrid,
                  region_of: np.ndarray, runner: BlockRunner) -> np.ndarray:
    """Solve every region exactly with its allocated photos (in parallel); stitch.

    Returns
    -------
    ndarray of int64, shape (T,)
        Photo of each tile.
    """
    shared = runner.share(features)
    shared_weights = runner.share(weights)
    tasks = [(shared, shared_weights, grid.tiles_of(r), np.flatnonzero(region_of == r), None)
             for r in range(grid.count)]
    photo_of_tile = np.full(features.n_tiles, -1, dtype=np.int64)
    for index, (photos, _, _) in runner.run(_solve_group, tasks):
        photo_of_tile[tasks[index][2]] = photos
    return photo_of_tile


@dataclass
class RepairStats:
    """What the repair did."""

    sweeps: int = 0
    pair_solves: int = 0
    improved_pairs: int = 0
    converged: bool = False
    gain: float = 0.0
    stop_reason: str = ""


def repair(features: Features, weights: np.ndarray, grid: RegionGrid, region_of: np.ndarray,
           photo_of_tile: np.ndarray, runner: BlockRunner, max_sweeps: int = MAX_SWEEPS,
           time_limit: float | None = None, min_gain: float = MIN_GAIN,
           stop_gain: float = 0.0,
           on_sweep: Callable[[RepairStats, int], None] | None = None) -> RepairStats:
    """Re-solve neighbouring pairs of regions together until no pair improves.

    ``region_of`` and ``photo_of_tile`` are updated in place. A pair's solution replaces
    the current one only when it is cheaper by more than ``min_gain`` (relative), so the
    objective never rises; photos stay within the pair, so none is used twice.

    Parameters
    ----------
    features : Features
    weights : ndarray, shape (T,)
    grid : RegionGrid
    region_of : ndarray of int64, shape (P,)
        Region of each photo (-1: left out).
    photo_of_tile : ndarray of int64, shape (T,)
    runner : BlockRunner
    max_sweeps : int
        Stop after this many sweeps over the pairs.
    time_limit : float, optional
        Stop starting new sweeps after this many seconds.
    min_gain : float
        Relative improvement a pair must bring.
    stop_gain : float
        Stop (as converged) after a sweep that lowered the objective by less than this.
    on_sweep : callable, optional
        Called with the stats so far and the pairs improved in the sweep, after each.

    Returns
    -------
    RepairStats
    """
    stats = RepairStats()
    version = np.zeros(grid.count, dtype=np.int64)
    clean: dict[tuple[int, int], tuple[int, int]] = {}
    members = [grid.tiles_of(r) for r in range(grid.count)]
    shared = runner.share(features)
    shared_weights = runner.share(weights)
    started = time.perf_counter()
    stats.stop_reason = f"sweep limit ({max_sweeps})"
    while stats.sweeps < max_sweeps:
        if time_limit is not None and time.perf_counter() - started > time_limit:
            stats.stop_reason = f"time limit ({time_limit:g} s)"
            break
        solved = improved = 0
        gain_before = stats.gain
        for group in grid.pair_classes():
            todo = [pair for pair in group if clean.get(pair) != tuple(version[list(pair)])]
            tasks = []
            for a, b in todo:
                tiles = np.concatenate([members[a], members[b]])
                photos = np.flatnonzero((region_of == a) | (region_of == b))
                tasks.append((shared, shared_weights, tiles, photos, photo_of_tile[tiles]))
            for index, (new, new_cost, old_cost) in runner.run(_solve_group, tasks):
                a, b = todo[index]
                solved += 1
                if new_cost < old_cost - min_gain * abs(old_cost):
                    improved += 1
                    stats.gain += old_cost - new_cost
                    tiles = tasks[index][2]
                    photo_of_tile[tiles] = new
                    region_of[photo_of_tile[members[a]]] = a
                    region_of[photo_of_tile[members[b]]] = b
                    version[a] += 1
                    version[b] += 1
                clean[(a, b)] = (int(version[a]), int(version[b]))
        stats.sweeps += 1
        stats.pair_solves += solved
        stats.improved_pairs += improved
        if on_sweep is not None:
            on_sweep(stats, improved)
        if improved == 0:
            stats.converged, stats.stop_reason = True, "no pair improved"
            break
        if stats.gain - gain_before < stop_gain:
            stats.converged = True
            stats.stop_reason = f"a sweep gained less than {stop_gain:.3g}"
            break
    return stats


def _weighted_objective(weights: np.ndarray, tile_cost: np.ndarray) -> float:
    return float(np.dot(weights, tile_cost.astype(np.float64)))


def assign_regional(features: Features, grid_shape: tuple[int, int],
                    weights: np.ndarray | None = None, regions: int | None = None,
                    max_memory: int = 8 * 10**9, runner: BlockRunner | None = None,
                    coarse_share: int = COARSE_SHARE, coarse_samples: int = COARSE_SAMPLES,
                    max_sweeps: int = MAX_SWEEPS, time_limit: float | None = None,
                    seed: int = 0, log: Callable[[str], None] | None = None,
                    progress: Callable[[int], None] | None = None) -> RegionalResult:
    """Assign photos to a large grid without the dense matrix (see the module docstring).

    Parameters
    ----------
    features : Features
        From :func:`mosaic.blocks.prepare_features`; T = rows * cols tiles, row by row.
    grid_shape : (int, int)
        Tile grid (rows, cols).
    weights : ndarray, shape (T,), optional
        Tile importance (1 when not given).
    regions : int, optional
        Number of regions (default :func:`default_regions`).
    max_memory : int
        Bytes the blocks in flight may use together.
    runner : BlockRunner, optional
        Local Dask threads (default) or a cluster client.
    coarse_share, coarse_samples : int
        Coarse price estimate settings (see :func:`coarse_prices`).
    max_sweeps : int
        Repair sweeps at most.
    time_limit : float, optional
        Repair time limit in seconds.
    seed : int
        Random order of the coarse samples (the result is repeatable for a seed).
    log : callable, optional
        Receives one line per stage and per repair sweep.
    progress : callable, optional
        Called with 1 after each of the :data:`STAGES`.

    Returns
    -------
    RegionalResult
        The assignment (method "regional", status "feasible" unless the bound proves it
        optimal), each tile's winning crop, and the report with the proven gap.
    """
    started = time.perf_counter()
    runner = runner or BlockRunner()
    say = log or (lambda _line: None)
    rows, cols = grid_shape
    tiles, photos = features.n_tiles, features.n_photos
    if rows * cols != tiles:
        raise ValueError(f"grid {rows} x {cols} does not match {tiles} tiles")
    if photos < tiles:
        raise MosaicError(f"{tiles} tiles need {tiles} distinct photos; only {photos} given")
    w = check_weights(weights, tiles)
    count = regions or default_regions(tiles, photos, max_memory, runner.workers)
    grid = split_grid(rows, cols, count)
    report = RegionalReport(regions=grid.count, region_grid=(grid.region_rows,
                                                             grid.region_cols))
    per_task = max(1, max_memory // (2 * runner.workers))
    block_tiles = max(16, min(4096, per_task // (photos * 4 + PHOTO_CHUNK * 32)))

    def stage(name: str, begun: float) -> None:
        report.seconds[name] = time.perf_counter() - begun
        say(f"regional: {name} {report.seconds[name]:.1f} s")
        if progress is not None:
            progress(1)

    begun = time.perf_counter()
    coarse = solve_coarse(features, w, runner, coarse_share, coarse_samples, seed)
    report.coarse = {"share": float(coarse_share), "samples": float(len(coarse.tiles))}
    stage("coarse solves", begun)

    begun = time.perf_counter()
    prices = c_transform_prices(features, w, coarse, runner, block_tiles)
    del coarse
    stage("c-transform pass", begun)

    begun = time.perf_counter()
    duals, reduced = reduced_costs(features, w, prices, grid, runner, block_tiles)
    report.lower_bound = dual_bound(duals, reduced)
    report.coarse["raw_bound"] = float(duals.sum() - prices.sum())
    stage("reduced-cost pass", begun)

    begun = time.perf_counter()
    region_of = allocate(reduced, grid.sizes())
    del reduced
    stage("allocation LP", begun)

    begun = time.perf_counter()
    photo_of_tile = solve_regions(features, w, grid, region_of, runner)
    tile_cost, _ = pair_cost(features, np.arange(tiles), photo_of_tile)
    report.start_objective = _weighted_objective(w, tile_cost)
    stage("region solves", begun)

    begun = time.perf_counter()
    stats = repair(features, w, grid, region_of, photo_of_tile, runner, max_sweeps, time_limit,
                   stop_gain=REPAIR_STOP * abs(report.start_objective),
                   on_sweep=lambda done, better: say(
                       f"regional: sweep {done.sweeps}: {better} pairs improved, objective "
                       f"{report.start_objective - done.gain:.6g} "
                       f"({time.perf_counter() - begun:.0f} s)"))
    report.sweeps, report.pair_solves = stats.sweeps, stats.pair_solves
    report.improved_pairs, report.converged = stats.improved_pairs, stats.converged
    report.stop_reason = stats.stop_reason
    stage("repair", begun)

    check_assignment(photo_of_tile, photos)
    tile_cost, best_crop = pair_cost(features, np.arange(tiles), photo_of_tile)
    report.objective = _weighted_objective(w, tile_cost)
    report.gap = exact.relative_gap(report.objective, report.lower_bound)
    report.peak_memory_bytes = peak_memory_bytes()
    seconds = time.perf_counter() - started
    optimal = report.gap <= exact.OPTIMAL_GAP
    assignment = Assignment(
        photo_of_tile=photo_of_tile, objective=report.objective, tile_cost=tile_cost,
        method="regional", seconds=seconds, status="optimal" if optimal else "feasible",
        gap=report.gap,
        message=(f"{grid.count} regions ({grid.region_rows} x {grid.region_cols}), "
                 f"{stats.sweeps} repair sweeps, gap {report.gap:.3%} to the proven "
                 "lower bound"))
    return RegionalResult(assignment, best_crop, report)


def check_assignment(photo_of_tile: np.ndarray, photos: int) -> None:
    """Every tile has a photo in range and no photo is used twice.

    Raises
    ------
    RuntimeError
        A tile without photo, an index out of range, or a photo used twice.
    """
    if photo_of_tile.size and (photo_of_tile.min() < 0 or photo_of_tile.max() >= photos):
        raise RuntimeError("regional: a tile has no photo or an index is out of range")
    if np.unique(photo_of_tile).size != photo_of_tile.size:
        raise RuntimeError("regional: a photo is used more than once")
