"""Steps 4 and 5: every region solved exactly and stitched, then neighbouring pairs re-solved."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mosaic.assign.exact import solve_dense
from mosaic.assign.regional.grid import RegionGrid
from mosaic.blocks import BlockRunner
from mosaic.scoring import Scoring, base_features, scoring_cost

#: A pair's re-solve counts as an improvement above this relative gain.
MIN_GAIN = 1e-7
#: Sweeps over all neighbouring pairs at most.
MAX_SWEEPS = 12


def _solve_group(scoring: Scoring, weights: np.ndarray, tiles: np.ndarray,
                 photos: np.ndarray, current: np.ndarray | None
                 ) -> tuple[np.ndarray, float, float]:
    """Exact assignment of ``tiles`` to ``photos`` (sorted); the new and current objective."""
    cost, _ = scoring_cost(scoring, tiles, photos)
    w = weights[tiles]
    local = solve_dense(cost, w, threads=1)
    rows = np.arange(tiles.size)
    new = float(np.dot(w, cost[rows, local].astype(np.float64)))
    old = math.inf
    if current is not None:
        where = np.searchsorted(photos, current)
        old = float(np.dot(w, cost[rows, where].astype(np.float64)))
    return photos[local], new, old


def solve_regions(scoring: Scoring, weights: np.ndarray, grid: RegionGrid,
                  region_of: np.ndarray, runner: BlockRunner) -> np.ndarray:
    """Solve every region exactly with its allocated photos (in parallel); stitch.

    Returns
    -------
    ndarray of int64, shape (T,)
        Photo of each tile.
    """
    shared = runner.share(scoring)
    shared_weights = runner.share(weights)
    tasks = [(shared, shared_weights, grid.tiles_of(r), np.flatnonzero(region_of == r), None)
             for r in range(grid.count)]
    photo_of_tile = np.full(base_features(scoring).n_tiles, -1, dtype=np.int64)
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


def repair(scoring: Scoring, weights: np.ndarray, grid: RegionGrid, region_of: np.ndarray,
           photo_of_tile: np.ndarray, runner: BlockRunner, max_sweeps: int = MAX_SWEEPS,
           time_limit: float | None = None, min_gain: float = MIN_GAIN,
           stop_gain: float = 0.0, enough_gain: float = math.inf,
           on_sweep: Callable[[RepairStats, int], None] | None = None) -> RepairStats:
    """Re-solve neighbouring pairs of regions together until no pair improves.

    ``region_of`` and ``photo_of_tile`` are updated in place. A pair's solution replaces
    the current one only when it is cheaper by more than ``min_gain`` (relative), so the
    objective never rises; photos stay within the pair, so none is used twice.

    Parameters
    ----------
    scoring : Scoring
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
    enough_gain : float
        Stop (as converged) once the objective has fallen by this much in all (the caller's
        gap goal is met); at or below 0 no sweep runs.
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
    shared = runner.share(scoring)
    shared_weights = runner.share(weights)
    started = time.perf_counter()
    stats.stop_reason = f"sweep limit ({max_sweeps})"
    while stats.sweeps < max_sweeps:
        if stats.gain >= enough_gain:
            stats.converged, stats.stop_reason = True, "the gap goal is met"
            break
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
