"""Exact ties broken one way: any thread count, and the scipy fallback, give one placement."""

from __future__ import annotations

import numpy as np
import pytest

from mosaic.assign import exact, lsa
from mosaic.assign.ties import canonical_placement


def total(cost: np.ndarray, weights: np.ndarray, photo_of_tile: np.ndarray) -> float:
    rows = np.arange(cost.shape[0])
    return float((cost[rows, photo_of_tile].astype(np.float64) * weights).sum())


def is_one_to_one(photo_of_tile: np.ndarray) -> bool:
    return len(set(photo_of_tile.tolist())) == len(photo_of_tile)


@pytest.mark.parametrize(("levels", "shape"), [(20, (400, 400)), (50, (500, 520))])
def test_threads_and_scipy_place_quantized_costs_one_way(levels: int,
                                                        shape: tuple[int, int]) -> None:
    # Few cost levels: many optimal assignments. The two-thread auction returned a
    # different one on each of 10 runs before ties were broken (measured).
    cost = (np.random.default_rng(levels).integers(0, levels, shape) / levels
            ).astype(np.float32)
    weights = np.ones(shape[0])
    runs = {exact.solve_dense(cost, threads=2).tobytes() for _ in range(4)}
    assert len(runs) == 1
    assert exact.solve_dense(cost, threads=1).tobytes() in runs
    scipy_placement = lsa.solve(cost.astype(np.float64), weights, False)[0]
    assert canonical_placement(cost, weights, scipy_placement).tobytes() in runs


def test_identical_tiles_and_photos_get_photos_in_index_order() -> None:
    rng = np.random.default_rng(1)
    cost = rng.random((6, 7)).astype(np.float32)
    cost[3] = cost[1]  # tiles 1 and 3 identical
    cost[:, 5] = cost[:, 2]  # photos 2 and 5 identical
    weights = np.ones(6)
    placement = exact.solve_dense(cost, weights)
    swapped = placement.copy()
    swapped[[1, 3]] = placement[[3, 1]]
    swapped = np.where(swapped == 2, -5, np.where(swapped == 5, 2, swapped))
    swapped[swapped == -5] = 5
    assert total(cost, weights, swapped) == total(cost, weights, placement)
    assert np.array_equal(canonical_placement(cost, weights, swapped), placement)
    assert np.array_equal(canonical_placement(cost, weights, placement), placement)


def test_identical_tiles_of_different_weights_are_not_traded() -> None:
    cost = np.array([[0.1, 0.5, 0.9], [0.1, 0.5, 0.9]], dtype=np.float32)
    weights = np.array([1.0, 3.0])
    # The heavier tile holds the cheap photo; trading would raise the total.
    placement = np.array([1, 0])
    assert np.array_equal(canonical_placement(cost, weights, placement), placement)


def test_a_tile_with_photos_of_equal_cost_takes_the_same_one_from_any_tied_placement() -> None:
    cost = np.array([[0.2, 0.2, 0.2, 0.7],
                     [0.6, 0.1, 0.1, 0.8],
                     [0.5, 0.9, 0.3, 0.3]], dtype=np.float32)
    weights = np.ones(3)
    tied = [np.array(p) for p in ([0, 1, 2], [0, 2, 3], [1, 2, 3], [2, 1, 3], [0, 1, 3])]
    totals = {total(cost, weights, p) for p in tied}
    results = {canonical_placement(cost, weights, p).tobytes() for p in tied}
    assert len(results) == 1
    result = np.frombuffer(results.pop(), dtype=np.int64)
    assert is_one_to_one(result)
    # Every tile keeps its cost (0.2, 0.1, 0.3 whichever placement came in).
    assert totals == {total(cost, weights, result)}
    assert np.array_equal(cost[np.arange(3), result], cost[np.arange(3), tied[0]])


def test_a_placement_without_ties_is_returned_unchanged() -> None:
    cost = np.random.default_rng(2).random((50, 60))
    weights = np.random.default_rng(3).uniform(0.5, 2.0, 50)
    placement = exact.solve_dense(cost, weights)
    assert np.array_equal(canonical_placement(cost, weights, placement), placement)


def test_identical_tiles_photos_and_equal_costs_mixed_give_one_placement() -> None:
    # Mosaic-like: tiles and photos of six colours (half the photos exact, so many rows,
    # columns and single costs repeat) and weights of three levels.
    rng = np.random.default_rng(5)
    colours = rng.random((6, 3))
    tiles = colours[rng.integers(0, 6, 300)]
    photos = colours[rng.integers(0, 6, 310)]
    photos += rng.normal(0, 0.02, photos.shape) * (rng.random(310) < 0.5)[:, None]
    cost = ((tiles[:, None] - photos[None]) ** 2).mean(axis=2).astype(np.float32)
    weights = rng.choice([1.0, 1.25, 2.0], 300)
    runs = {exact.solve_dense(cost, weights, threads=2).tobytes() for _ in range(3)}
    runs.add(exact.solve_dense(cost, weights, threads=1).tobytes())
    scipy_placement = lsa.solve(cost.astype(np.float64), weights, False)[0]
    runs.add(canonical_placement(cost, weights, scipy_placement).tobytes())
    assert len(runs) == 1
    placement = np.frombuffer(runs.pop(), dtype=np.int64)
    assert is_one_to_one(placement)
    assert total(cost, weights, placement) == pytest.approx(
        total(cost, weights, scipy_placement), rel=1e-12)
