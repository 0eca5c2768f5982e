"""Steps 1 and 2: coarse photo prices, reduced costs per region, the proven lower bound.

Every pass over all tiles x photos streams over blocks on Dask; the tasks are module
level functions so that a cluster can unpickle them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mosaic.assign.exact import solve_dense_with_prices
from mosaic.assign.regional.grid import RegionGrid
from mosaic.assign.regional.minima import photo_minima, tile_best
from mosaic.blocks import BlockRunner, chunks
from mosaic.scoring import Scoring, base_features, scoring_cost

#: Tiles x photos share of each coarse subproblem is 1 / COARSE_SHARE in each direction.
COARSE_SHARE = 4
#: Bytes a coarse subproblem holds per tile-photo pair while it is solved (its float32
#: costs and uint8 crops).
COARSE_PAIR_BYTES = 5
#: Share of the memory budget the coarse subproblems in flight may hold together. At
#: 100,000 photos, subproblems of a quarter of the tiles and photos held 3.1 GB each, and
#: two in flight took the build to 11.9 GB where its budget was 8 GB.
COARSE_MEMORY_SHARE = 0.25
#: Coarse subproblems solved (disjoint samples); their price estimates are averaged. Two
#: instead of four halve the coarse solves and the c-transform pass for +0.014% and
#: +0.021% objective at 10,000 photos (grace_hopper, obama; bound 0.15-0.19% lower).
COARSE_SAMPLES = 2
#: Photos kept per tile for the global sparse solve. 16 instead of 32 halved its time with
#: SciPy's solver (9.0 s -> 4.9 s at 10,000 photos; OR-Tools' now takes 0.5 s) for +0.031%
#: objective on both grace_hopper and obama.
CANDIDATES = 16
#: Photos per task of the passes that scan photos (the c-transform, the reduced costs).
SCAN_BLOCK_PHOTOS = 2048


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
    photo_of_tile, prices = solve_dense_with_prices(cost, weights, threads=threads)
    if prices.size:
        prices -= prices.min()
    return photo_of_tile, prices


def bounded_share(tiles: int, photos: int, max_memory: int, workers: int,
                 least: int = COARSE_SHARE, samples: int = COARSE_SAMPLES) -> int:
    """The coarse subproblems' share: ``least``, or more where their matrices need it.

    The samples in flight (``min(samples, workers)``, each ``tiles / share`` x ``photos /
    share`` pairs of :data:`COARSE_PAIR_BYTES`) hold at most :data:`COARSE_MEMORY_SHARE` of
    ``max_memory``. With the default 8 GB budget on two workers this keeps ``least`` up
    to about 56,000 tiles and photos (50,000: share 4) and gives 8 at 100,000.
    """
    in_flight = max(1, min(samples, workers))
    pairs = max(1.0, COARSE_MEMORY_SHARE * max_memory / (in_flight * COARSE_PAIR_BYTES))
    return max(least, math.ceil(math.sqrt(tiles * photos / pairs)))


def _coarse_duals(scoring: Scoring, weights: np.ndarray, tiles: np.ndarray,
                  photos: np.ndarray) -> np.ndarray:
    """Tile duals ``w_t c[t, x(t)] + p[x(t)]`` of the exact solve of one coarse subproblem."""
    cost, _ = scoring_cost(scoring, tiles, photos)
    w = weights[tiles]
    local, prices = solve_with_prices(cost, w, threads=1)
    return w * cost[np.arange(tiles.size), local].astype(np.float64) + prices[local]


def _c_transform(scoring: Scoring, weights: np.ndarray, tiles: np.ndarray,
                 duals: np.ndarray, photos: slice) -> np.ndarray:
    """``max_t (duals_t - w_t c_ti)`` over the given tiles, for each photo ``i`` of ``photos``."""
    shift = float(duals.max())
    # c - (duals - shift) in float32: values near the maxima stay small, so exact enough.
    offset = (duals - shift).astype(np.float32)
    return shift - photo_minima(scoring, weights, tiles, offset, photos).astype(np.float64)


def _tile_block(scoring: Scoring, weights: np.ndarray, tiles: np.ndarray,
                prices: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a block of tiles: ``u_t = min_i (w_t c_ti + p_i)`` and each tile's candidates."""
    duals, best, best_cost = tile_best(scoring, weights, tiles, prices, keep)
    return duals.astype(np.float64), best, best_cost


def _region_minima(scoring: Scoring, weights: np.ndarray, tiles: np.ndarray,
                   duals: np.ndarray, photos: slice, start: np.ndarray, gaps: np.ndarray,
                   prices: np.ndarray) -> np.ndarray:
    """``a_ir = min_{t in tiles} (w_t c_ti - u_t)`` for the photos of ``photos``.

    A photo that is not one of tile ``t``'s candidates has ``w_t c_ti + p_i`` at least the
    tile's last candidate value, so ``w_t c_ti - u_t >= gap_t - p_i``: those are the
    floors; the candidates' own values are in ``start``.
    """
    return photo_minima(scoring, weights, tiles, duals.astype(np.float32), photos, start,
                        floors=(gaps, prices)).astype(np.float64)


@dataclass
class Candidates:
    """Each tile's most promising photos, from the reduced-cost pass.

    Attributes
    ----------
    photos : ndarray of int32, shape (T, K)
        The ``K`` photos of least ``w_t c_ti + p_i`` (the coarse prices), in no order.
    cost : ndarray of float32, shape (T, K)
        Their weighted costs ``w_t c_ti``.
    """

    photos: np.ndarray
    cost: np.ndarray


@dataclass
class CoarseSamples:
    """Exactly solved coarse subproblems: their tiles and those tiles' duals."""

    tiles: list[np.ndarray]
    duals: list[np.ndarray]


def solve_coarse(scoring: Scoring, weights: np.ndarray, runner: BlockRunner,
                 share: int = COARSE_SHARE, samples: int = COARSE_SAMPLES, seed: int = 0
                 ) -> CoarseSamples:
    """Solve disjoint random subproblems exactly (in parallel) for their tile duals.

    Parameters
    ----------
    scoring : Scoring
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
    features = base_features(scoring)
    tile_order = rng.permutation(features.n_tiles)
    photo_order = rng.permutation(features.n_photos)
    picks = [(np.sort(tile_order[k::share]), np.sort(photo_order[k::share]))
             for k in range(samples)]
    shared = runner.share(scoring)
    shared_weights = runner.share(weights)
    duals: list[np.ndarray] = [np.empty(0)] * samples
    for index, result in runner.run(_coarse_duals, [(shared, shared_weights, t, p)
                                                    for t, p in picks]):
        duals[index] = result
    return CoarseSamples([t for t, _ in picks], duals)


def c_transform_prices(scoring: Scoring, weights: np.ndarray, coarse: CoarseSamples,
                       runner: BlockRunner, block_photos: int = SCAN_BLOCK_PHOTOS
                       ) -> np.ndarray:
    """Photo prices: each sample's duals c-transformed against every photo, averaged.

    ``p_i = mean_k max(0, max_{t in sample k} (u_t - w_t c_ti))``; one streaming pass over
    the sampled tiles x all photos, a task per sample and block of photos (capped scans,
    :mod:`mosaic.assign.regional.minima`).

    Returns
    -------
    ndarray of float64, shape (P,)
        Non-negative prices.
    """
    shared = runner.share(scoring)
    shared_weights = runner.share(weights)
    n_photos = base_features(scoring).n_photos
    tasks, owner = [], []
    for k, (sample_tiles, duals) in enumerate(zip(coarse.tiles, coarse.duals, strict=True)):
        for first, last in chunks(n_photos, block_photos):
            tasks.append((shared, shared_weights, sample_tiles, duals, slice(first, last)))
            owner.append(k)
    estimates = np.full((len(coarse.tiles), n_photos), -np.inf)
    for index, result in runner.run(_c_transform, tasks, window=2 * runner.workers):
        estimates[owner[index], tasks[index][4]] = result
    return np.maximum(estimates, 0.0).mean(axis=0)


def reduced_costs(scoring: Scoring, weights: np.ndarray, prices: np.ndarray,
                  grid: RegionGrid, runner: BlockRunner, block_tiles: int,
                  keep: int = CANDIDATES, block_photos: int = SCAN_BLOCK_PHOTOS
                  ) -> tuple[np.ndarray, np.ndarray, Candidates]:
    """Two capped streaming passes: tile duals ``u`` and candidates, then reduced costs ``a``.

    Parameters
    ----------
    scoring : Scoring
    weights : ndarray, shape (T,)
    prices : ndarray, shape (P,)
        Photo prices (non-negative).
    grid : RegionGrid
    runner : BlockRunner
    block_tiles : int
        Tiles per task of the first pass.
    keep : int
        Candidate photos per tile (all photos when there are fewer).
    block_photos : int
        Photos per task of the second pass.

    Returns
    -------
    duals : ndarray of float64, shape (T,)
        ``u_t = min_i (w_t c_ti + p_i)``.
    reduced : ndarray of float64, shape (P, R)
        ``a_ir = min_{t in r} (w_t c_ti - u_t)``.
    candidates : Candidates
        Each tile's ``keep`` photos of least ``w_t c_ti + p_i``.
    """
    shared = runner.share(scoring)
    shared_weights = runner.share(weights)
    features = base_features(scoring)
    keep = max(1, min(keep, features.n_photos))
    # The scans add prices to float32 costs: converted once, not in every task.
    prices32 = np.asarray(prices, dtype=np.float32)
    shared_prices = runner.share(prices32)
    tasks = [(shared, shared_weights, np.arange(first, last), shared_prices, keep)
             for first, last in chunks(features.n_tiles, block_tiles)]
    duals = np.empty(features.n_tiles)
    candidates = Candidates(np.empty((features.n_tiles, keep), dtype=np.int32),
                            np.empty((features.n_tiles, keep), dtype=np.float32))
    for index, (block_duals, best, best_cost) in runner.run(
            _tile_block, tasks, window=2 * runner.workers):
        block = tasks[index][2]
        duals[block] = block_duals
        candidates.photos[block], candidates.cost[block] = best, best_cost
    reduced = _candidate_minima(candidates, duals, grid, features.n_photos)
    # Each tile's last candidate value less its dual: the region scan's floors.
    gaps = ((candidates.cost + prices32[candidates.photos]).max(axis=1)
            - duals.astype(np.float32))
    tasks, region_of_task = [], []
    for region in range(grid.count):
        members = grid.tiles_of(region)
        for first, last in chunks(features.n_photos, block_photos):
            tasks.append((shared, shared_weights, members, duals[members], slice(first, last),
                          reduced[first:last, region].astype(np.float32), gaps[members],
                          prices32[first:last]))
            region_of_task.append(region)
    for index, result in runner.run(_region_minima, tasks, window=2 * runner.workers):
        reduced[tasks[index][4], region_of_task[index]] = result
    return duals, reduced, candidates


def _candidate_minima(candidates: Candidates, duals: np.ndarray, grid: RegionGrid,
                      n_photos: int) -> np.ndarray:
    """Upper bounds of ``a_ir`` from the candidates' exact costs (inf where none is known).

    The second pass starts from them, so a photo's scan of a region is capped at once.
    """
    tiles, keep = candidates.photos.shape
    reduced = np.full((n_photos, grid.count), np.inf)
    values = candidates.cost.astype(np.float32) - duals.astype(np.float32)[:, None]
    regions = np.broadcast_to(grid.labels[:tiles, None], (tiles, keep))
    np.minimum.at(reduced, (candidates.photos.ravel(), regions.ravel()), values.ravel())
    return reduced


def dual_bound(duals: np.ndarray, reduced: np.ndarray) -> float:
    """The proven lower bound ``sum_t u_t - sum_i max(0, -min_r a_ir)`` of step 2."""
    photo_prices = np.maximum(0.0, -reduced.min(axis=1))
    return float(duals.sum() - photo_prices.sum())

