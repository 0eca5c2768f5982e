"""Regional assignment: grid split, prices and bound, stitching, repair, the C-less path.

The allocation LP is tested in tests/test_regional_allocation.py, the method choice in
tests/test_method_choice.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mosaic import errors
from mosaic.assign import exact
from mosaic.assign.exact import OPTIMAL_GAP, assign_optimal, relative_gap
from mosaic.assign.regional import (
    MIN_GAIN,
    REPAIR_GAP,
    RegionGrid,
    assign_regional,
    c_transform_prices,
    check_assignment,
    default_regions,
    dual_bound,
    reduced_costs,
    repair,
    solve_coarse,
    solve_regions,
    solve_with_prices,
    split_grid,
)
from mosaic.blocks import BlockRunner, prepare_features
from mosaic.cost import cost_matrix
from mosaic.cost_refine import RefineFeatures
from mosaic.errors import MosaicError
from mosaic.scoring import for_scoring
from tests.large_problems import photo_features, tile_features
from tests.regional_helpers import (
    LARGE_GRID,
    MAX_EXCESS,
    MEDIUM_GRID,
    RecordingRunner,
    check_valid,
    large_problem,
    medium_problem,
    weighted_objective,
)

# ---------------------------------------------------------------------------------------
# Fixtures: real features and their dense references (computed once per module)


@pytest.fixture(scope="module")
def large() -> dict:
    """The large problem, its dense matrix and exact optima (plain and weighted)."""
    return large_problem()


@pytest.fixture(scope="module")
def medium() -> dict:
    """The medium problem (one feature row per photo) and its dense matrix."""
    return medium_problem()


# ---------------------------------------------------------------------------------------
# split_grid


def adjacent_region_pairs(grid: RegionGrid) -> set[tuple[int, int]]:
    """Pairs of regions that share a tile edge, found from the labels alone."""
    labels = grid.labels.reshape(grid.rows, grid.cols)
    pairs = set()
    for first, second in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        differ = first != second
        for a, b in zip(first[differ].tolist(), second[differ].tolist(), strict=True):
            pairs.add((min(a, b), max(a, b)))
    return pairs


@pytest.mark.parametrize(("rows", "cols", "regions", "expected_count"), [
    (36, 42, 4, 4), (36, 42, 6, 6), (36, 42, 9, 9), (36, 42, 12, 12), (13, 17, 6, 6),
    (5, 7, 7, 7), (10, 1, 4, 4), (1, 10, 3, 3), (3, 3, 7, 3), (4, 4, 100, 16), (7, 9, 1, 1),
])
def test_split_grid_rectangles(rows: int, cols: int, regions: int, expected_count: int) -> None:
    """Each tile in exactly one region; regions are near-equal, row-major rectangles."""
    grid = split_grid(rows, cols, regions)
    assert grid.count == expected_count == grid.region_rows * grid.region_cols
    assert grid.labels.shape == (rows * cols,)
    assert grid.labels.min() == 0 and grid.labels.max() == grid.count - 1
    sizes = grid.sizes()
    assert sizes.sum() == rows * cols and (sizes > 0).all()
    assert [grid.tiles_of(r).size for r in range(grid.count)] == sizes.tolist()
    labels = grid.labels.reshape(rows, cols)
    heights, widths = set(), set()
    for region in range(grid.count):
        where_rows, where_cols = np.nonzero(labels == region)
        top, bottom = where_rows.min(), where_rows.max() + 1
        left, right = where_cols.min(), where_cols.max() + 1
        # The bounding box is full of this region: a rectangle.
        assert (labels[top:bottom, left:right] == region).all()
        assert (bottom - top) * (right - left) == sizes[region]
        heights.add(int(bottom - top))
        widths.add(int(right - left))
        # Numbered row by row: band index down times regions across plus band across.
        band_down = sorted({int(r) for r in labels[:, 0]}).index(labels[top, 0])
        assert region == band_down * grid.region_cols + np.unique(labels[top, :left]).size
    assert max(heights) - min(heights) <= 1
    assert max(widths) - min(widths) <= 1


@pytest.mark.parametrize(("rows", "cols", "regions"), [
    (36, 42, 4), (36, 42, 6), (36, 42, 9), (36, 42, 20), (10, 1, 4), (1, 10, 3), (7, 9, 1),
    (20, 20, 25),
])
def test_pair_classes_disjoint_and_complete(rows: int, cols: int, regions: int) -> None:
    """Pairs within a class share no region; together they are all neighbouring pairs once."""
    grid = split_grid(rows, cols, regions)
    classes = grid.pair_classes()
    assert len(classes) <= 4 and all(classes)
    for group in classes:
        members = [region for pair in group for region in pair]
        assert len(members) == len(set(members))
    listed = [tuple(sorted(pair)) for group in classes for pair in group]
    assert len(listed) == len(set(listed))
    assert set(listed) == adjacent_region_pairs(grid)
    assert sorted(grid.pairs()) == sorted(listed)


def test_split_grid_rejects_empty() -> None:
    """An empty grid is an error."""
    with pytest.raises(ValueError, match="empty grid"):
        split_grid(0, 5, 2)


def test_default_regions_follow_memory() -> None:
    """About 3,200 tiles a region with ample memory; more regions when memory is short."""
    assert default_regions(1000, 2000, 10**12) == 1
    assert default_regions(32_000, 40_000, 10**12) == 10
    few = default_regions(20_000, 25_000, 8 * 10**9)
    many = default_regions(20_000, 25_000, 10**8)
    assert many > few
    # A pair of regions (float32, 1.25 photos a tile) for each of 2 workers fits half.
    pair_tiles = 2 * 20_000 / many
    assert 2 * 4 * pair_tiles * pair_tiles * 1.25 <= 10**8 / 2
    assert default_regions(100, 200, 1) == 100  # never more regions than tiles


# ---------------------------------------------------------------------------------------
# reduced costs and the proven lower bound


def test_reduced_costs_and_bound_match_dense(medium: dict) -> None:
    """Tile duals, region reduced costs and the bound agree with the dense matrix."""
    features, cost, weights = medium["features"], medium["cost"], medium["weights"]
    runner = BlockRunner(threads=2)
    grid = split_grid(*MEDIUM_GRID, 6)
    coarse = solve_coarse(features, weights, runner, seed=3)
    prices = c_transform_prices(features, weights, coarse, runner, 40)
    assert prices.shape == (features.n_photos,) and (prices >= 0).all() and prices.any()
    duals, reduced, candidates = reduced_costs(features, weights, prices, grid, runner, 40,
                                               keep=12)
    weighted = weights[:, None] * cost.astype(np.float64)
    np.testing.assert_allclose(duals, (weighted + prices[None, :]).min(axis=1), atol=1e-5)
    # Candidates: each tile's 12 photos of least w c + p (ties within rounding aside).
    priced = weighted + prices[None, :]
    rows = np.arange(features.n_tiles)[:, None]
    twelfth = np.sort(priced, axis=1)[:, 11]
    assert candidates.photos.shape == (features.n_tiles, 12)
    assert (priced[rows, candidates.photos] <= twelfth[:, None] + 1e-5).all()
    assert all(np.unique(row).size == 12 for row in candidates.photos)
    np.testing.assert_allclose(candidates.cost, weighted[rows, candidates.photos], atol=1e-5)
    expected = np.stack([(weighted[grid.tiles_of(r)] - duals[grid.tiles_of(r), None]).min(axis=0)
                         for r in range(grid.count)], axis=1)
    np.testing.assert_allclose(reduced, expected, atol=1e-5)
    bound = dual_bound(duals, reduced)
    # A feasible dual: u_t - q_i <= w_t c_ti with q_i = max(0, -min_r a_ir) >= 0 ...
    q = np.maximum(0.0, -reduced.min(axis=1))
    assert (duals[:, None] - q[None, :] <= weighted + 1e-5).all()
    assert bound == pytest.approx(duals.sum() - q.sum())
    # ... so below the exact optimum, at least as tight as the raw price estimate, and close.
    optimum = assign_optimal(cost, weights).objective
    assert bound <= optimum + 1e-4
    assert bound >= duals.sum() - prices.sum() - 1e-6
    assert bound >= 0.97 * optimum  # measured 0.991


# ---------------------------------------------------------------------------------------
# assign_regional end to end


@pytest.mark.parametrize(("regions", "weighted"), [(4, False), (9, False), (6, True)])
def test_assign_regional_real_features(large: dict, regions: int, weighted: bool) -> None:
    """Valid, correctly scored, above its proven bound and within 0.5 % of the optimum."""
    features, cost = large["features"], large["cost"]
    weights = large["weights"] if weighted else None
    lines: list[str] = []
    result = assign_regional(features, LARGE_GRID, weights=weights, regions=regions,
                             runner=BlockRunner(threads=2), log=lines.append)
    assignment, report = result.assignment, result.report
    x = assignment.photo_of_tile
    check_valid(x, features.n_tiles, features.n_photos)
    check_assignment(x, features.n_photos)
    # Objective and tile costs recomputed from the dense reference.
    recomputed = weighted_objective(cost, x, weights)
    assert assignment.objective == pytest.approx(recomputed, rel=1e-6)
    np.testing.assert_allclose(assignment.tile_cost, cost[np.arange(x.size), x], atol=1e-5)
    assert not result.best_crop.any() and result.best_crop.shape == (features.n_tiles,)
    # The proven bound holds, is below the true optimum, and the gap is reported.
    optimum = large["optimum"][weighted]
    assert assignment.objective >= report.lower_bound - 1e-9
    assert report.lower_bound <= optimum * (1 + 1e-6)
    assert report.lower_bound >= 0.98 * optimum  # measured 0.995
    assert assignment.gap == report.gap == pytest.approx(
        relative_gap(assignment.objective, report.lower_bound))
    assert assignment.status == ("optimal" if report.gap <= OPTIMAL_GAP else "feasible")
    # Close to the exact optimum on the dense matrix.
    excess = (assignment.objective - optimum) / optimum
    assert -1e-6 <= excess <= MAX_EXCESS
    # Report: the forced regions, repair never worse than the stitched start.
    assert assignment.method == "regional"
    assert report.regions == regions == report.region_grid[0] * report.region_grid[1]
    assert report.objective == assignment.objective
    assert report.start_objective >= report.sparse_objective >= report.objective - 1e-9
    assert report.sparse_edges >= features.n_tiles
    assert report.converged and report.improved_pairs <= report.pair_solves
    if report.stop_reason == "the gap goal is met":  # the repair ran only while needed
        assert report.gap <= REPAIR_GAP
    else:
        assert report.sparse_objective - report.lower_bound > REPAIR_GAP * (
            report.sparse_objective) * 0.999 and report.pair_solves > 0
    assert any("allocation LP" in line for line in lines)


@pytest.fixture
def no_c_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact solver's C extension as if it were not built (scipy fallback)."""
    assert exact.c_solver_built(), "these tests compare the fallback with the C solver"
    monkeypatch.setattr(exact, "_lapcore", None)
    monkeypatch.setattr(errors, "_warned_once", set())


def test_solve_with_prices_without_c_solver(medium: dict, no_c_solver: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback's prices are dual prices too, shifted to a lowest price of 0."""
    cost, weights = medium["cost"][:150, :260], medium["weights"][:150]
    x, prices = solve_with_prices(cost, weights)
    values = weights[:, None] * cost.astype(np.float64) + prices[None, :]
    assert prices.min() == 0.0
    np.testing.assert_allclose(values[np.arange(150), x], values.min(axis=1), rtol=0,
                               atol=1e-12)
    assert (prices[np.setdiff1d(np.arange(260), x)] <= 1e-12).all()
    monkeypatch.undo()
    assert weighted_objective(cost, x, weights) == pytest.approx(
        assign_optimal(cost, weights).objective, rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_assign_regional_without_c_solver(medium: dict, no_c_solver: None,
                                          weighted: bool) -> None:
    """Every exact solve falls back to scipy: a valid result above its proven bound."""
    features, cost = medium["features"], medium["cost"]
    weights = medium["weights"] if weighted else None
    result = assign_regional(features, MEDIUM_GRID, weights=weights, regions=4,
                             runner=BlockRunner(threads=2))
    assignment, report = result.assignment, result.report
    check_valid(assignment.photo_of_tile, features.n_tiles, features.n_photos)
    optimum = assign_optimal(cost, weights).objective  # the fallback too: same optimum
    assert assignment.objective >= report.lower_bound - 1e-9
    assert report.lower_bound <= optimum * (1 + 1e-6)
    assert report.lower_bound >= 0.97 * optimum
    assert optimum * (1 - 1e-6) <= assignment.objective <= optimum * (1 + MAX_EXCESS)
    assert report.converged


def test_assign_regional_rejects_bad_input(medium: dict) -> None:
    """Grid mismatch, too few photos and bad weights are refused."""
    features = medium["features"]
    with pytest.raises(ValueError, match="does not match"):
        assign_regional(features, (20, 25))
    few = prepare_features(tile_features(*MEDIUM_GRID), photo_features()[:400, 0])
    with pytest.raises(MosaicError, match="only 400 given"):
        assign_regional(few, MEDIUM_GRID, regions=2)
    with pytest.raises(ValueError, match="finite and positive"):
        assign_regional(features, MEDIUM_GRID, weights=np.zeros(features.n_tiles), regions=2)


def test_solve_regions_stitches_valid_assignment(medium: dict) -> None:
    """Each region solved with its photos only: every tile filled, no photo twice."""
    features, cost = medium["features"], medium["cost"]
    grid = split_grid(*MEDIUM_GRID, 6)
    rng = np.random.default_rng(4)
    region_of = random_allocation(grid, features.n_photos, rng)
    weights = np.ones(features.n_tiles)
    x = solve_regions(features, weights, grid, region_of, BlockRunner(threads=2))
    check_valid(x, features.n_tiles, features.n_photos)
    for region in range(grid.count):
        tiles = grid.tiles_of(region)
        assert (region_of[x[tiles]] == region).all()
        # Each region's part is optimal for its own photos.
        own = np.flatnonzero(region_of == region)
        best = assign_optimal(cost[np.ix_(tiles, own)]).objective
        # (solve_regions scores in blocks: float32 rounding of 1.5e-7 an entry at most)
        assert weighted_objective(cost[tiles], x[tiles]) == pytest.approx(
            best, abs=4e-7 * tiles.size)


# ---------------------------------------------------------------------------------------
# repair


def random_allocation(grid: RegionGrid, photos: int, rng: np.random.Generator) -> np.ndarray:
    """A random valid allocation: each region its tile count plus a few spare; rest -1."""
    region_of = np.full(photos, -1, dtype=np.int64)
    order = rng.permutation(photos)
    start = 0
    for region, size in enumerate(grid.sizes()):
        take = int(size) + int(rng.integers(0, 8))
        region_of[order[start:start + take]] = region
        start += take
    assert start <= photos
    return region_of


def random_start(grid: RegionGrid, region_of: np.ndarray, rng: np.random.Generator
                 ) -> np.ndarray:
    """A random stitched assignment: each region's tiles get random photos of the region."""
    x = np.full(grid.labels.size, -1, dtype=np.int64)
    for region in range(grid.count):
        tiles = grid.tiles_of(region)
        x[tiles] = rng.permutation(np.flatnonzero(region_of == region))[:tiles.size]
    return x


def check_regions_hold(grid: RegionGrid, region_of: np.ndarray, x: np.ndarray) -> None:
    """Every tile's photo is allocated to the tile's region."""
    for region in range(grid.count):
        assert (region_of[x[grid.tiles_of(region)]] == region).all()


@pytest.mark.parametrize("weighted", [False, True])
def test_repair_never_worse_from_bad_start(medium: dict, weighted: bool) -> None:
    """From a random stitched start every accepted pair re-solve lowers the objective."""
    features, cost = medium["features"], medium["cost"]
    weights = medium["weights"] if weighted else np.ones(features.n_tiles)
    grid = split_grid(*MEDIUM_GRID, 6)
    rng = np.random.default_rng(7 + weighted)
    region_of = random_allocation(grid, features.n_photos, rng)
    x = random_start(grid, region_of, rng)
    allocated = region_of >= 0
    before = weighted_objective(cost, x, weights)
    after_sweeps: list[float] = []
    runner = RecordingRunner(threads=2)
    stats = repair(features, weights, grid, region_of, x, runner,
                   on_sweep=lambda _stats, _better: after_sweeps.append(
                       weighted_objective(cost, x, weights)))
    after = weighted_objective(cost, x, weights)
    check_valid(x, features.n_tiles, features.n_photos)
    check_regions_hold(grid, region_of, x)
    assert ((region_of >= 0) == allocated).all()  # photos never leave the pairs' pool
    # Never worse, sweep by sweep, and much better than a random start.
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise([before, *after_sweeps]))
    assert after < 0.8 * before
    assert stats.sweeps == len(after_sweeps) and stats.converged
    # Every pair solve: its reported costs are the dense ones; the accepted ones improve.
    solves = [(tasks[i], results[i]) for name, tasks, results in runner.calls
              for i in range(len(tasks)) if name == "_solve_group"]
    assert len(solves) == stats.pair_solves
    accepted_gains = []
    for (_, _, tiles, _, current), (new, new_cost, old_cost) in solves:
        assert old_cost == pytest.approx(
            float(np.dot(weights[tiles], cost[tiles, current].astype(np.float64))), rel=1e-6)
        assert new_cost == pytest.approx(
            float(np.dot(weights[tiles], cost[tiles, new].astype(np.float64))), rel=1e-6)
        assert new_cost <= old_cost * (1 + 1e-6)  # the pair's optimum is never worse
        if new_cost < old_cost - MIN_GAIN * abs(old_cost):
            accepted_gains.append(old_cost - new_cost)
    assert len(accepted_gains) == stats.improved_pairs > 0
    assert all(gain > 0 for gain in accepted_gains)
    assert stats.gain == pytest.approx(sum(accepted_gains))
    assert before - after == pytest.approx(stats.gain, rel=1e-5)


def test_repair_stops_on_sweep_limit_and_is_idle_when_converged(medium: dict) -> None:
    """max_sweeps=1 stops early; a converged state is left unchanged."""
    features, cost = medium["features"], medium["cost"]
    weights = np.ones(features.n_tiles)
    grid = split_grid(*MEDIUM_GRID, 4)
    rng = np.random.default_rng(3)
    region_of = random_allocation(grid, features.n_photos, rng)
    x = random_start(grid, region_of, rng)
    before = weighted_objective(cost, x)
    runner = BlockRunner(threads=2)
    first = repair(features, weights, grid, region_of, x, runner, max_sweeps=1)
    assert first.sweeps == 1 and not first.converged and first.improved_pairs > 0
    assert weighted_objective(cost, x) < before
    repair(features, weights, grid, region_of, x, runner)
    settled_x, settled_regions = x.copy(), region_of.copy()
    again = repair(features, weights, grid, region_of, x, runner)
    assert again.converged and again.sweeps == 1 and again.improved_pairs == 0
    assert again.pair_solves == len(grid.pairs()) and again.gain == 0.0
    np.testing.assert_array_equal(x, settled_x)
    np.testing.assert_array_equal(region_of, settled_regions)


def test_check_assignment() -> None:
    """A valid assignment passes; a repeat, a hole or an out-of-range index raises."""
    check_assignment(np.array([2, 0, 3]), 4)
    for bad, message in (([1, 1, 0], "more than once"), ([0, -1, 2], "no photo"),
                         ([0, 1, 4], "out of range")):
        with pytest.raises(RuntimeError, match=message):
            check_assignment(np.array(bad), 4)




def test_assign_regional_coarse_to_fine_gives_the_same_result() -> None:
    """Scored coarse-to-fine (seven crops per photo): the same passes, as good a solve.

    The costs differ by float32 rounding only, so the prices, duals and bound agree to
    1e-6; the allocation LP is degenerate, so the path after it may differ, and the
    result is checked against the exact optimum instead.
    """
    features = prepare_features(tile_features(*MEDIUM_GRID), photo_features())
    rotated = for_scoring(features, always=True)
    assert isinstance(rotated, RefineFeatures) and features.n_crops == 7
    runner, weights = BlockRunner(threads=2), np.ones(features.n_tiles)
    grid = split_grid(*MEDIUM_GRID, 4)
    passes = []
    for scoring in (features, rotated):
        coarse = solve_coarse(scoring, weights, runner)
        prices = c_transform_prices(scoring, weights, coarse, runner, block_photos=64)
        duals, reduced, candidates = reduced_costs(scoring, weights, prices, grid, runner, 64)
        passes.append((prices, duals, reduced, np.sort(candidates.photos, axis=1)))
    for plain, refined in zip(*passes, strict=True):
        if plain.dtype == np.int32:  # candidate sets: only near-ties at the K-th may differ
            assert (plain == refined).mean() > 0.95
        else:
            np.testing.assert_allclose(refined, plain, rtol=1e-5, atol=1e-6)
    result = assign_regional(rotated, MEDIUM_GRID, regions=4, runner=runner)
    x = result.assignment.photo_of_tile
    check_valid(x, features.n_tiles, features.n_photos)
    cost, crop = cost_matrix(tile_features(*MEDIUM_GRID), photo_features())
    assert result.assignment.objective == pytest.approx(weighted_objective(cost, x), rel=1e-6)
    rows = np.arange(x.size)
    np.testing.assert_array_equal(result.best_crop, crop[rows, x])
    optimum = assign_optimal(cost).objective
    assert result.report.lower_bound <= optimum * (1 + 1e-6)
    assert optimum * (1 - 1e-6) <= result.assignment.objective <= optimum * (1 + MAX_EXCESS)
