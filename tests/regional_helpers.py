"""Shared by the regional tests: the problem sizes, a recording block runner, checks.

The large and medium problems are built once per test session (:func:`large_problem`,
:func:`medium_problem`); each test module wraps them in its own fixtures.
"""

from __future__ import annotations

import functools

import numpy as np

from mosaic.assign.exact import assign_optimal
from mosaic.blocks import BlockRunner, prepare_features
from mosaic.cost import cost_matrix
from tests.large_problems import distinct_photos, photo_features, tile_features, tile_weights

#: The large problem: 1,512 Obama tiles, 1,708 real photos (two crops of each sample).
LARGE_GRID = (36, 42)
#: The medium problem: 480 tiles, 854 photos (one row each, or seven crop candidates).
MEDIUM_GRID = (20, 24)
#: Regional objective at most this far above the exact optimum. Measured on the large
#: problem: 0.08 % (4 regions), 0.27 % (6), 0.34 % (9), 0.21 % (6, weighted).
MAX_EXCESS = 0.005


class RecordingRunner(BlockRunner):
    """Local threads; remembers every task and result of the runs."""

    def __init__(self, threads: int = 2) -> None:
        super().__init__(threads=threads)
        self.calls: list[tuple[str, list, list]] = []

    def run(self, function, tasks, window=None):
        results: list = [None] * len(tasks)
        self.calls.append((function.__name__, list(tasks), results))
        for index, result in super().run(function, tasks, window):
            results[index] = result
            yield index, result


def weighted_objective(cost: np.ndarray, photo_of_tile: np.ndarray,
                       weights: np.ndarray | None = None) -> float:
    """``sum_t w_t cost[t, x(t)]`` in float64, straight from the dense matrix."""
    w = np.ones(cost.shape[0]) if weights is None else weights
    return float(np.dot(w, cost[np.arange(cost.shape[0]), photo_of_tile].astype(np.float64)))


def check_valid(photo_of_tile: np.ndarray, tiles: int, photos: int) -> None:
    """Every tile filled with a photo in range, no photo twice."""
    assert photo_of_tile.shape == (tiles,)
    assert photo_of_tile.dtype == np.int64
    assert photo_of_tile.min() >= 0 and photo_of_tile.max() < photos
    assert np.unique(photo_of_tile).size == tiles


@functools.cache
def large_problem() -> dict:
    """The large problem, its dense matrix and exact optima (plain and weighted)."""
    tiles, photos = tile_features(*LARGE_GRID), distinct_photos(2)
    cost, _ = cost_matrix(tiles, photos)
    weights = tile_weights(tiles.shape[0], seed=1)
    return {"features": prepare_features(tiles, photos), "cost": cost, "weights": weights,
            "optimum": {False: assign_optimal(cost).objective,
                        True: assign_optimal(cost, weights).objective}}


@functools.cache
def medium_problem() -> dict:
    """The medium problem (one feature row per photo) and its dense matrix."""
    tiles, photos = tile_features(*MEDIUM_GRID), photo_features()[:, 0]
    cost, _ = cost_matrix(tiles, photos)
    return {"features": prepare_features(tiles, photos), "cost": cost,
            "weights": tile_weights(tiles.shape[0], seed=2)}
