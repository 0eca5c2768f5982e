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
from mosaic.blocks import PHOTO_CHUNK, BlockRunner, Features, block_cost, chunks, even_chunks

#: Tiles x photos share of each coarse subproblem is 1 / COARSE_SHARE in each direction.
COARSE_SHARE = 4
#: Coarse subproblems solved (disjoint samples); their price estimates are averaged.
COARSE_SAMPLES = 4


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

