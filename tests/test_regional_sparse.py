"""The global sparse solve of the regional method (step 5)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from mosaic.assign.regional import Candidates, assign_regional, sparse_solve
from mosaic.assign.regional.sparse import (
    COST_STEPS,
    cost_steps,
    integer_costs,
    min_cost_matching,
)
from mosaic.blocks import BlockRunner
from tests.regional_helpers import MEDIUM_GRID, check_valid, medium_problem


def _problem(tiles: int, photos: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((tiles, photos)).astype(np.float32)


def _candidates(cost: np.ndarray, keep: int) -> Candidates:
    order = np.argsort(cost, axis=1)[:, :keep].astype(np.int32)
    return Candidates(order, np.take_along_axis(cost, order, axis=1))


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize(("tiles", "photos"), [(30, 30), (25, 40)])
def test_sparse_solve_with_every_edge_is_the_exact_optimum(tiles: int, photos: int,
                                                           shifted: bool) -> None:
    """With all edges it is the exact assignment; tile duals shift nothing but the speed."""
    cost = _problem(tiles, photos, seed=tiles)
    start = np.random.default_rng(1).permutation(photos)[:tiles]
    duals = cost.min(axis=1) + 0.3 if shifted else None  # any shift per tile is exact
    result, edges = sparse_solve(_candidates(cost, photos), start, cost[np.arange(tiles), start],
                                 photos, duals)
    rows, cols = linear_sum_assignment(cost)
    check_valid(result, tiles, photos)
    assert edges == tiles * photos
    assert cost[np.arange(tiles), result].sum() == pytest.approx(cost[rows, cols].sum())


def test_sparse_solve_never_worse_and_brings_back_left_out_photos() -> None:
    """Few candidates, a start on the worst photos: better, and left-out photos used."""
    tiles, photos = 40, 80
    cost = _problem(tiles, photos, seed=5)
    cost[:, :tiles] += 1.0  # the start's photos are all worse than the left-out ones
    start = np.arange(tiles)
    before = cost[np.arange(tiles), start].sum()
    result, _ = sparse_solve(_candidates(cost, 3), start, cost[np.arange(tiles), start], photos)
    check_valid(result, tiles, photos)
    after = cost[np.arange(tiles), result].sum()
    assert after < before - 20  # nearly every tile moved to a left-out photo (each gains 1+)
    assert (result >= tiles).mean() > 0.8


def test_sparse_solve_keeps_the_start_when_candidates_cannot_match() -> None:
    """Every tile's only candidate is photo 0: the stitched edges keep it a full matching."""
    tiles = 6
    cost = _problem(tiles, tiles, seed=2)
    start = np.arange(tiles)[::-1].copy()
    candidates = Candidates(np.zeros((tiles, 1), dtype=np.int32), cost[:, :1].copy())
    result, _ = sparse_solve(candidates, start, cost[np.arange(tiles), start], tiles)
    check_valid(result, tiles, tiles)
    assert cost[np.arange(tiles), result].sum() <= cost[np.arange(tiles), start].sum() + 1e-6


def test_assign_regional_reports_the_sparse_stage() -> None:
    """The stage runs, is logged, and is never worse than the stitched regions."""
    problem = medium_problem()
    lines: list[str] = []
    result = assign_regional(problem["features"], MEDIUM_GRID, regions=6,
                             runner=BlockRunner(threads=2), log=lines.append)
    report = result.report
    assert "global sparse solve" in report.seconds
    assert any("global sparse solve over" in line for line in lines)
    assert report.start_objective >= report.sparse_objective >= report.objective - 1e-9


@pytest.mark.parametrize("size", [10, 100_000, 200_000, 2_000_000])
def test_cost_steps_keep_the_flow_costs_in_64_bits(size: int) -> None:
    steps = cost_steps(size, size)
    assert 1 <= steps <= COST_STEPS
    assert steps * (2 * size + 2) * size <= 2**62
    if size <= 100_000:
        assert steps == COST_STEPS  # the benchmarked builds keep the full precision


def test_integer_costs_round_by_half_a_step_at_most() -> None:
    weights = np.random.default_rng(3).normal(0.0, 0.3, 1000)
    steps = 1000
    rounded = integer_costs(weights, steps)
    step = (weights.max() - weights.min()) / steps
    assert rounded.min() == 0 and rounded.max() == steps
    np.testing.assert_array_less(np.abs(rounded * step + weights.min() - weights), step / 2 + 1e-12)
    assert (integer_costs(np.full(5, 0.7)) == 0).all()  # one value: no range to divide


def test_min_cost_matching_is_the_exact_optimum_over_all_edges() -> None:
    cost = _problem(20, 35, seed=9).astype(np.float64)
    rows, cols = np.divmod(np.arange(cost.size), cost.shape[1])
    result = min_cost_matching(rows, cols, cost.ravel(), 20, 35)
    check_valid(result, 20, 35)
    expected_rows, expected_cols = linear_sum_assignment(cost)
    assert cost[np.arange(20), result].sum() == pytest.approx(
        cost[expected_rows, expected_cols].sum(), abs=1e-6)
