"""Regional assignment: problems too large for one dense tiles x photos matrix.

The grid is split into rectangular regions; photos are allocated to regions; each region
is solved exactly; the pieces are stitched; then pairs of neighbouring regions are
re-solved together until no pair improves. No step holds more than a few region-sized
blocks, and every step that touches all tiles x photos streams over blocks on Dask.

1. **Coarse prices.** ``samples`` disjoint random subproblems (1/``share`` of the tiles
   against 1/``share`` of the photos, so supply and demand keep their proportions) are
   solved exactly (``share`` grows where two such subproblems would hold more than a
   quarter of the memory budget: :func:`~mosaic.assign.regional.prices.bounded_share`).
   Each one's tile duals, c-transformed against every photo
   (``p_i = max(0, max_t (u_t - c_ti))``), are estimates of the global photo prices;
   their mean is a better one (the dual is concave, and the noise averages out).
2. **Reduced costs** (two streaming passes over all tiles x photos): ``u_t = min_i (c_ti +
   p_i)`` with each tile's :data:`CANDIDATES` photos of least ``w_t c_ti + p_i``, then
   ``a_ir = min_{t in r} (c_ti - u_t)``, the reduced cost of photo ``i`` in region ``r``.
   These passes and the c-transform's only look for minima, so they are capped scans
   (:mod:`~mosaic.assign.regional.minima`): a pair that cannot beat the running minimum
   gets a bound instead of its exact cost. They prove a **global lower bound**: with
   ``q_i = max(0, -min_r a_ir)`` (the c-transform of ``u``), ``min_i (c_ti + q_i) = u_t``
   for every tile, so ``sum_t u_t - sum_i q_i`` is the value of a feasible dual of the
   assignment LP, below every assignment's cost.
3. **Allocation**: a transportation LP solved with HiGHS puts each photo in one region
   (capacity: the region's tiles, plus a share of the spare photos) at least total
   reduced cost ``a_ir``.
4. **Regions** are solved exactly (:func:`mosaic.assign.exact.solve_dense`),
   in parallel on Dask, and stitched (each photo is in one region, so none is used twice).
5. **Global sparse solve**: all tiles at once, exactly, over the candidate edges and the
   stitched ones, as a min-cost flow (OR-Tools;
   :func:`~mosaic.assign.regional.sparse.sparse_solve`): photos move across
   regions, and photos the allocation left out come back. At 10,000 photos it closes the
   gap to the bound from 0.64 % to 0.24 % (7 s with SciPy's solver then, 0.5 s now),
   where the pair repair below needed five sweeps and 139 s to reach 0.24 % from the
   stitched start.
6. **Repair**, only while the gap to the bound is above :data:`REPAIR_GAP`: pairs of
   neighbouring regions (their tiles and their photos) are solved together; a pair's new
   assignment is kept only when it is cheaper, so the objective never rises. Pairs are
   coloured into four classes of disjoint pairs, each class solved in parallel; a pair is
   solved again only when one of its regions changed. It stops when the gap is below
   :data:`REPAIR_GAP`, no pair improves, a whole sweep gains less than ``REPAIR_STOP`` of
   the objective, or after ``max_sweeps`` sweeps or ``time_limit`` seconds.

Weighted problems minimise ``sum_t w_t c[t, x(t)]``; everything above uses ``w_t c_ti``.

The steps live in :mod:`~mosaic.assign.regional.grid` (the regions),
:mod:`~mosaic.assign.regional.prices` (1 and 2), :mod:`~mosaic.assign.regional.allocation`
(3), :mod:`~mosaic.assign.regional.repair` (4 and 6) and
:mod:`~mosaic.assign.regional.sparse` (5); :func:`assign_regional` runs them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from mosaic.assign import exact
from mosaic.assign.regional.allocation import ALLOCATION_KEEP, SPARE_SHARE, allocate
from mosaic.assign.regional.grid import (
    REGION_TILES,
    RegionGrid,
    default_regions,
    pair_bytes,
    region_shape,
    split_grid,
)
from mosaic.assign.regional.minima import LAST_STEP
from mosaic.assign.regional.prices import (
    CANDIDATES,
    COARSE_SAMPLES,
    COARSE_SHARE,
    Candidates,
    CoarseSamples,
    bounded_share,
    c_transform_prices,
    dual_bound,
    reduced_costs,
    solve_coarse,
    solve_with_prices,
)
from mosaic.assign.regional.repair import (
    MAX_SWEEPS,
    MIN_GAIN,
    RepairStats,
    check_assignment,
    repair,
    solve_regions,
)
from mosaic.assign.regional.sparse import sparse_solve
from mosaic.assign.result import Assignment, check_weights
from mosaic.blocks import BLOCK_BYTES, BlockRunner
from mosaic.errors import MosaicError
from mosaic.machine import peak_memory_bytes
from mosaic.scoring import Scoring, base_features, scoring_pair_cost

#: The repair stops when a sweep gains less than this share of the objective.
REPAIR_STOP = 1e-5
#: The repair runs only while the proven gap is above this (half the 1 % goal at scale).
REPAIR_GAP = 0.005
#: The stages of :func:`assign_regional`, in order (each reports its seconds).
STAGES = ("coarse solves", "c-transform pass", "reduced-cost pass", "allocation LP",
          "region solves", "global sparse solve", "repair")

__all__ = [
    "ALLOCATION_KEEP", "CANDIDATES", "COARSE_SAMPLES", "COARSE_SHARE", "MAX_SWEEPS",
    "MIN_GAIN", "REGION_TILES", "REPAIR_GAP", "REPAIR_STOP", "SPARE_SHARE", "STAGES",
    "Candidates", "CoarseSamples", "RegionGrid",
    "RegionalReport", "RegionalResult", "RepairStats", "allocate", "assign_regional",
    "bounded_share", "c_transform_prices", "check_assignment", "default_regions",
    "dual_bound", "pair_bytes", "reduced_costs", "region_shape", "repair", "solve_coarse",
    "solve_regions", "solve_with_prices", "sparse_solve", "split_grid",
]


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
        Objective of the stitched regions.
    sparse_objective : float
        Objective after the global sparse solve (before the repair).
    sparse_edges : int
        Edges of the global sparse problem.
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
    sparse_objective: float = math.nan
    sparse_edges: int = 0
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


def _weighted_objective(weights: np.ndarray, tile_cost: np.ndarray) -> float:
    return float(np.dot(weights, tile_cost.astype(np.float64)))


def _solve_sparse(scoring: Scoring, weights: np.ndarray, candidates: Candidates,
                  photo_of_tile: np.ndarray, tile_cost: np.ndarray, objective: float,
                  duals: np.ndarray) -> tuple[np.ndarray, float, int]:
    """:func:`sparse_solve`, kept only if its exact objective is lower (float32 candidates)."""
    features = base_features(scoring)
    better, edges = sparse_solve(candidates, photo_of_tile, tile_cost, features.n_photos,
                                 duals)
    new_cost, _ = scoring_pair_cost(scoring, np.arange(features.n_tiles), better)
    new = _weighted_objective(weights, new_cost)
    if new < objective:
        return better, new, edges
    return photo_of_tile, objective, edges


def assign_regional(scoring: Scoring, grid_shape: tuple[int, int],
                    weights: np.ndarray | None = None, regions: int | None = None,
                    max_memory: int = 8 * 10**9, runner: BlockRunner | None = None,
                    coarse_share: int = COARSE_SHARE, coarse_samples: int = COARSE_SAMPLES,
                    max_sweeps: int = MAX_SWEEPS, time_limit: float | None = None,
                    seed: int = 0, log: Callable[[str], None] | None = None,
                    progress: Callable[[int], None] | None = None,
                    tile_of: np.ndarray | None = None) -> RegionalResult:
    """Assign photos to a large grid without the dense matrix (see the module docstring).

    Parameters
    ----------
    scoring : Scoring
        Features from :func:`mosaic.blocks.prepare_features` (T = rows * cols tiles, row
        by row), or the same rotated for coarse-to-fine scoring
        (:func:`mosaic.scoring.for_scoring`: the same costs, about twice as fast).
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
        Coarse price estimate settings (see :func:`solve_coarse`); the share grows where
        the subproblems would not fit the budget (:func:`bounded_share`).
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
    tile_of : ndarray of int, optional
        With some tiles split into quarters (``--detail faces``), the features are of
        cells and this gives each cell's tile: a cell belongs to its tile's region.

    Returns
    -------
    RegionalResult
        The assignment (method "regional", status "feasible" unless the bound proves it
        optimal), each tile's winning crop, and the report with the proven gap.
    """
    started = time.perf_counter()
    features = base_features(scoring)
    runner = runner or BlockRunner()
    say = log or (lambda _line: None)
    rows, cols = grid_shape
    tiles, photos = features.n_tiles, features.n_photos
    if (rows * cols if tile_of is None else len(tile_of)) != tiles:
        raise ValueError(f"grid {rows} x {cols} does not match {tiles} tiles")
    if photos < tiles:
        raise MosaicError(f"{tiles} tiles need {tiles} distinct photos; only {photos} given")
    w = check_weights(weights, tiles)
    count = regions or default_regions(tiles, photos, max_memory, runner.workers)
    grid = split_grid(rows, cols, count)
    if tile_of is not None:  # regions of cells: each quarter in its tile's region
        grid = replace(grid, labels=grid.labels[np.asarray(tile_of, dtype=np.int64)])
    report = RegionalReport(regions=grid.count, region_grid=(grid.region_rows,
                                                             grid.region_cols))
    per_task = max(1, min(BLOCK_BYTES, max_memory // (2 * runner.workers)))
    # A tile scan holds about 32 bytes per tile and photo of a step.
    block_tiles = max(16, min(4096, per_task // (LAST_STEP * 32)))

    def stage(name: str, begun: float) -> None:
        report.seconds[name] = time.perf_counter() - begun
        say(f"regional: {name} {report.seconds[name]:.1f} s (peak memory so far "
            f"{peak_memory_bytes() / 1e6:,.0f} MB)")
        if progress is not None:
            progress(1)

    begun = time.perf_counter()
    share = bounded_share(tiles, photos, max_memory, runner.workers, coarse_share,
                          coarse_samples)
    coarse = solve_coarse(scoring, w, runner, share, coarse_samples, seed)
    report.coarse = {"share": float(share), "samples": float(len(coarse.tiles))}
    stage("coarse solves", begun)

    begun = time.perf_counter()
    prices = c_transform_prices(scoring, w, coarse, runner)
    del coarse
    stage("c-transform pass", begun)

    begun = time.perf_counter()
    duals, reduced, candidates = reduced_costs(scoring, w, prices, grid, runner, block_tiles)
    report.lower_bound = dual_bound(duals, reduced)
    report.coarse["raw_bound"] = float(duals.sum() - prices.sum())
    stage("reduced-cost pass", begun)

    begun = time.perf_counter()
    region_of = allocate(reduced, grid.sizes())
    del reduced
    stage("allocation LP", begun)

    begun = time.perf_counter()
    photo_of_tile = solve_regions(scoring, w, grid, region_of, runner)
    tile_cost, _ = scoring_pair_cost(scoring, np.arange(tiles), photo_of_tile)
    report.start_objective = _weighted_objective(w, tile_cost)
    stage("region solves", begun)

    begun = time.perf_counter()
    photo_of_tile, report.sparse_objective, report.sparse_edges = _solve_sparse(
        scoring, w, candidates, photo_of_tile, w * tile_cost, report.start_objective, duals)
    del candidates
    region_of[:] = -1  # each photo now belongs to its tile's region; the rest are left out
    region_of[photo_of_tile] = grid.labels
    say(f"regional: global sparse solve over {report.sparse_edges:,} edges: objective "
        f"{report.start_objective:.6g} -> {report.sparse_objective:.6g}")
    stage("global sparse solve", begun)

    begun = time.perf_counter()
    enough = report.sparse_objective - report.lower_bound / (1 - REPAIR_GAP)
    stats = repair(scoring, w, grid, region_of, photo_of_tile, runner, max_sweeps, time_limit,
                   stop_gain=REPAIR_STOP * abs(report.sparse_objective), enough_gain=enough,
                   on_sweep=lambda done, better: say(
                       f"regional: sweep {done.sweeps}: {better} pairs improved, objective "
                       f"{report.sparse_objective - done.gain:.6g} "
                       f"({time.perf_counter() - begun:.0f} s)"))
    report.sweeps, report.pair_solves = stats.sweeps, stats.pair_solves
    report.improved_pairs, report.converged = stats.improved_pairs, stats.converged
    report.stop_reason = stats.stop_reason
    stage("repair", begun)

    check_assignment(photo_of_tile, photos)
    tile_cost, best_crop = scoring_pair_cost(scoring, np.arange(tiles), photo_of_tile)
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

