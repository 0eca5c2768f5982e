"""The allocation of photos to regions: a transportation LP, checked against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import linprog

from mosaic.assign.regional import (
    allocate,
    c_transform_prices,
    reduced_costs,
    solve_coarse,
    split_grid,
)
from mosaic.blocks import BlockRunner
from mosaic.errors import MosaicError
from tests.regional_helpers import LARGE_GRID, large_problem


@pytest.fixture(scope="module")
def large() -> dict:
    """The large problem, its dense matrix and exact optima (plain and weighted)."""
    return large_problem()


# ---------------------------------------------------------------------------------------
# allocate: the transportation LP


def capacities(tiles_per_region: np.ndarray, photos: int, spare_share: float = 0.25
               ) -> tuple[np.ndarray, np.ndarray]:
    """Region lower and upper photo counts as the allocate docstring states them."""
    tiles = int(tiles_per_region.sum())
    handed = min(photos - tiles, math.ceil(spare_share * tiles))
    slack = np.ceil(handed * tiles_per_region / tiles).astype(np.int64)
    return tiles_per_region.copy(), tiles_per_region + slack


def allocation_cost(reduced: np.ndarray, region_of: np.ndarray) -> float:
    """Total reduced cost of an allocation (left-out photos cost 0)."""
    used = region_of >= 0
    return float(reduced[np.flatnonzero(used), region_of[used]].sum())


def check_allocation(reduced: np.ndarray, tiles_per_region: np.ndarray,
                     region_of: np.ndarray) -> None:
    """Each photo in one region or -1; each region between its tile count and its cap."""
    photos, regions = reduced.shape
    assert region_of.shape == (photos,) and region_of.dtype == np.int64
    assert region_of.min() >= -1 and region_of.max() < regions
    lower, upper = capacities(tiles_per_region, photos)
    counts = np.bincount(region_of[region_of >= 0], minlength=regions)
    assert (counts >= lower).all() and (counts <= upper).all()
    if photos == tiles_per_region.sum():
        assert (region_of >= 0).all()


def lp_optimum(reduced: np.ndarray, tiles_per_region: np.ndarray) -> float:
    """The transportation LP (photos x (regions + left out)) solved by scipy's linprog."""
    photos, regions = reduced.shape
    lower, upper = capacities(tiles_per_region, photos)
    spare = photos - int(tiles_per_region.sum())
    columns = regions + 1
    cost = np.concatenate([reduced, np.zeros((photos, 1))], axis=1).ravel()
    a_eq = sparse.kron(sparse.eye(photos), np.ones((1, columns)), format="csr")
    region_rows = sparse.kron(np.ones((1, photos)), sparse.eye(columns), format="csr")
    a_ub = sparse.vstack([region_rows, -region_rows], format="csr")
    b_ub = np.concatenate([upper, [spare], -lower, [0]])
    result = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.ones(photos),
                     bounds=(0, 1), method="highs")
    assert result.status == 0
    return float(result.fun)


def brute_force_allocation(reduced: np.ndarray, tiles_per_region: np.ndarray) -> float:
    """The best 0/1 allocation by enumerating every labelling (tiny instances only)."""
    photos, regions = reduced.shape
    lower, upper = capacities(tiles_per_region, photos)
    padded = np.concatenate([reduced, np.zeros((photos, 1))], axis=1)
    labels = np.array(list(itertools.product(range(regions + 1), repeat=photos)))
    counts = (labels[:, :, None] == np.arange(regions)).sum(axis=1)
    feasible = ((counts >= lower) & (counts <= upper)).all(axis=1)
    totals = padded[np.arange(photos), labels[feasible]].sum(axis=1)
    return float(totals.min())


def tiny_allocation_problems() -> list[tuple[np.ndarray, np.ndarray, int]]:
    rng = np.random.default_rng(11)
    problems = []
    for index in range(24):
        regions = int(rng.integers(2, 4))
        tiles_per_region = rng.integers(1, 3, regions)
        photos = int(tiles_per_region.sum() + rng.integers(0, 3))
        if index % 3 == 0:  # ties
            reduced = rng.integers(0, 3, (photos, regions)).astype(np.float64)
        else:  # reduced costs can be negative and of any sign
            reduced = rng.normal(size=(photos, regions))
        problems.append((reduced, tiles_per_region, index % 2 + 1))
    return problems


@pytest.mark.parametrize(("reduced", "tiles_per_region", "keep"), tiny_allocation_problems())
def test_allocate_matches_brute_force_and_lp(reduced: np.ndarray, tiles_per_region: np.ndarray,
                                             keep: int) -> None:
    """On tiny instances the allocation costs the brute-force and the LP optimum."""
    region_of = allocate(reduced, tiles_per_region, keep=keep)
    check_allocation(reduced, tiles_per_region, region_of)
    best = brute_force_allocation(reduced, tiles_per_region)
    assert allocation_cost(reduced, region_of) == pytest.approx(best, abs=1e-9)
    assert lp_optimum(reduced, tiles_per_region) == pytest.approx(best, abs=1e-7)


def test_allocate_column_generation_needs_more_columns() -> None:
    """Every photo prefers region 0, which can take only 2: the LP must add columns."""
    reduced = np.array([[0.0, 5.0, 9.0], [0.0, 1.0, 9.0], [0.0, 9.0, 2.0],
                        [0.0, 3.0, 4.0], [0.0, 8.0, 8.5]])
    tiles_per_region = np.array([2, 1, 2])
    region_of = allocate(reduced, tiles_per_region, keep=1)
    check_allocation(reduced, tiles_per_region, region_of)
    # Photos 1 and 2 go where they are cheapest apart from region 0; 0 and 4 stay in 0.
    assert allocation_cost(reduced, region_of) == pytest.approx(
        brute_force_allocation(reduced, tiles_per_region)) == 1.0 + 2.0 + 4.0
    assert region_of.tolist() == [0, 1, 2, 2, 0]


def test_allocate_caps_spare_photos() -> None:
    """Spare photos handed to regions are capped (a quarter of the tiles); the rest are -1."""
    rng = np.random.default_rng(2)
    reduced = -rng.random((20, 2))  # every photo would rather be in some region
    tiles_per_region = np.array([4, 4])
    region_of = allocate(reduced, tiles_per_region)
    check_allocation(reduced, tiles_per_region, region_of)
    # 12 spare photos, 2 handed out (1 a region): 5 photos each, 10 left out.
    assert np.bincount(region_of[region_of >= 0]).tolist() == [5, 5]
    assert (region_of == -1).sum() == 10
    assert allocation_cost(reduced, region_of) == pytest.approx(
        lp_optimum(reduced, tiles_per_region), abs=1e-9)


def test_allocate_on_real_reduced_costs(large: dict) -> None:
    """Real reduced costs (1,708 photos, 6 regions): valid, and the LP optimum."""
    features = large["features"]
    weights = np.ones(features.n_tiles)
    runner = BlockRunner(threads=2)
    grid = split_grid(*LARGE_GRID, 6)
    prices = c_transform_prices(features, weights, solve_coarse(features, weights, runner),
                                runner, 256)
    _, reduced, _ = reduced_costs(features, weights, prices, grid, runner, 256)
    region_of = allocate(reduced, grid.sizes())
    check_allocation(reduced, grid.sizes(), region_of)
    # Equal up to the LP solvers' tolerances (measured 1.8e-9 relative).
    assert allocation_cost(reduced, region_of) == pytest.approx(
        lp_optimum(reduced, grid.sizes()), rel=1e-7)


def test_allocate_needs_enough_photos() -> None:
    """Fewer photos than tiles is refused with a clear message."""
    with pytest.raises(MosaicError, match="5 tiles need 5 distinct photos; only 4"):
        allocate(np.zeros((4, 2)), np.array([2, 3]))


