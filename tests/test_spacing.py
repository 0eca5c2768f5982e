"""``min_repeat_distance``: copies of a photo kept apart, exactly on small grids."""

from __future__ import annotations

import numpy as np
import pytest

from mosaic.assign import spacing
from mosaic.assign.methods import solve_dense
from mosaic.assign.spacing import Grid, closest_copies, solve_spaced_milp, space_copies
from mosaic.errors import MosaicError
from mosaic.layout import check_repeat_spacing


def total(cost: np.ndarray, weights: np.ndarray, placement: np.ndarray) -> float:
    return float((cost[np.arange(len(placement)), placement] * weights).sum())


def problem(rows: int, cols: int, photos: int, seed: int
            ) -> tuple[np.ndarray, np.ndarray, Grid]:
    """Costs where neighbouring tiles are alike (as in a mosaic), so copies cluster."""
    rng = np.random.default_rng(seed)
    tile_colour = rng.random((rows // 2 + 1, cols // 2 + 1, 3)).repeat(2, 0).repeat(2, 1)
    tile_colour = tile_colour[:rows, :cols].reshape(-1, 3)
    photo_colour = rng.random((photos, 3))
    cost = ((tile_colour[:, None] - photo_colour[None]) ** 2).mean(axis=2)
    return cost.astype(np.float32), rng.uniform(1.0, 3.0, rows * cols), Grid(rows, cols)


def test_closest_copies_is_the_chebyshev_distance():
    grid = Grid(3, 4)
    assert closest_copies(np.arange(12), grid) is None
    placement = np.arange(12)
    placement[11] = 0  # tile (2, 3) and tile (0, 0)
    assert closest_copies(placement, grid) == 3
    placement[5] = 0  # tile (1, 1)
    assert closest_copies(placement, grid) == 1


@pytest.mark.parametrize(("rows", "cols", "photos", "uses", "distance"),
                         [(5, 6, 10, 4, 2), (6, 6, 12, 3, 3), (8, 8, 20, 4, 3)])
def test_exact_and_repaired_keep_copies_apart_above_the_capacity_bound(
        monkeypatch, rows, cols, photos, uses, distance):
    cost, weights, grid = problem(rows, cols, photos, seed=rows * cols)
    capacity = solve_dense("optimal", cost, weights, uses)
    assert closest_copies(capacity.photo_of_tile, grid) < distance  # the rule binds
    exact = solve_spaced_milp(cost, weights, grid, uses, distance)
    assert exact is not None and closest_copies(exact, grid) >= distance
    assert np.bincount(exact).max() <= uses
    best = total(cost, weights, exact)
    assert best >= capacity.objective - 1e-9
    result = space_copies(cost, weights, grid, capacity, uses, distance, capacity.objective)
    assert result.status == "optimal" and result.objective == pytest.approx(best, rel=1e-6)
    monkeypatch.setattr(spacing, "MILP_VARIABLES", 0)  # as on a large grid
    repaired = space_copies(cost, weights, grid, capacity, uses, distance, capacity.objective)
    assert repaired.status == "feasible"
    assert closest_copies(repaired.photo_of_tile, grid) >= distance
    assert np.bincount(repaired.photo_of_tile).max() <= uses
    assert repaired.objective >= best - 1e-6  # never better than the optimum ...
    # ... and its reported gap is to a bound at or below the optimum
    assert repaired.objective * (1 - repaired.gap) <= best + 1e-6
    assert repaired.objective * (1 - repaired.gap) >= capacity.objective - 1e-6


def test_a_large_grid_is_repaired_within_a_small_gap():
    # No spare photo (120 photos x 5 uses for 600 tiles): the hardest case.
    cost, weights, grid = problem(20, 30, 120, seed=1)
    capacity = solve_dense("optimal", cost, weights, 5)
    result = space_copies(cost, weights, grid, capacity, 5, 4, capacity.objective)
    assert closest_copies(result.photo_of_tile, grid) >= 4
    assert np.bincount(result.photo_of_tile).max() <= 5
    assert result.gap is not None and result.gap < 0.10


def test_impossible_distances_are_refused_saying_why():
    with pytest.raises(MosaicError, match="needs 36 different photos in every 6x6 block"):
        check_repeat_spacing(40, 50, 30, 100, 6)
    with pytest.raises(MosaicError, match="needs 18 different photos in every 3x6"):
        check_repeat_spacing(3, 50, 14, 100, 6)  # a block is clipped to the grid
    check_repeat_spacing(40, 50, 400, 5, 6)
    check_repeat_spacing(40, 50, 30, 1, 60)  # no repeats: no rule


@pytest.mark.parametrize(("rows", "cols", "photos", "uses", "distance"),
                         [(8, 8, 20, 4, 3), (12, 15, 40, 5, 4), (10, 10, 60, 2, 5)])
def test_swaps_keep_copies_apart_and_only_lower_the_total(rows, cols, photos, uses,
                                                          distance):
    from mosaic.assign.spacing_swaps import improve_by_swaps

    cost, weights, grid = problem(rows, cols, photos, seed=photos)
    capacity = solve_dense("optimal", cost, weights, uses)
    start, _ = spacing._repair(cost, weights, capacity.photo_of_tile, grid, uses, distance)
    before = total(cost, weights, start)
    positions = grid.position(np.arange(rows * cols))
    swapped, value = improve_by_swaps(cost, weights, positions, uses, distance, start)
    assert closest_copies(swapped, grid) >= distance
    assert np.bincount(swapped, minlength=photos).max() <= uses
    assert value == pytest.approx(total(cost, weights, swapped), rel=1e-9)
    assert capacity.objective - 1e-9 <= value < before  # repairs leave room: swaps find it
    # No single swap or spare-photo move is left that lowers the total and keeps the rule.
    again, same = improve_by_swaps(cost, weights, positions, uses, distance, swapped)
    assert np.array_equal(again, swapped) and same == pytest.approx(value)
