import itertools

import numpy as np
import pytest

from mosaic.assign import lp
from mosaic.assign.auto import BY_SIZE, choose_method
from mosaic.assign.exact import assign_optimal
from mosaic.assign.greedy import assign_greedy
from mosaic.assign.lp import assign_lp_highs, assign_lp_pulp
from mosaic.assign.methods import (
    DENSE_METHODS,
    METHOD_NAMES,
    REGISTRY,
    SIZED_METHODS,
    get_method,
    solve_dense,
)
from mosaic.assign.regional import assign_regional
from mosaic.errors import MosaicError


def _brute_force(cost, weights=None):
    tiles, photos = cost.shape
    w = np.ones(tiles) if weights is None else weights
    return min(sum(w[t] * cost[t, p] for t, p in enumerate(perm))
               for perm in itertools.permutations(range(photos), tiles))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("shape", [(3, 3), (3, 5), (4, 6), (5, 5)])
@pytest.mark.parametrize("solver", [assign_optimal, assign_lp_highs, assign_lp_pulp])
def test_exact_methods_match_brute_force(seed, shape, solver):
    rng = np.random.default_rng(seed)
    cost = rng.random(shape).astype(np.float32)
    if seed % 2:
        cost = np.round(cost * 4) / 4  # many ties
    weights = rng.uniform(1, 10, shape[0]) if seed % 3 == 0 else None
    result = solver(cost, weights)
    assert result.objective == pytest.approx(_brute_force(cost.astype(np.float64), weights),
                                             abs=1e-6)
    assert len(set(result.photo_of_tile.tolist())) == shape[0]
    assert result.status == "optimal"


def _cbc_available() -> bool:
    try:
        lp.cbc_backend()
    except MosaicError:
        return False
    return True


@pytest.mark.skipif(not _cbc_available(), reason="no CBC here (PuLP 4 does not bundle it)")
def test_pulp_with_cbc_agrees():
    cost = np.random.default_rng(3).random((6, 8))
    assert assign_lp_pulp(cost, solver="cbc").objective == pytest.approx(
        assign_optimal(cost).objective)


def test_greedy_is_best_match_first():
    cost = np.array([[0.1, 0.2], [0.15, 0.9]])
    result = assign_greedy(cost)
    # Best pair (0, 0) first, then tile 1 gets what is left: total 1.0, while 0.35 is optimal.
    assert result.photo_of_tile.tolist() == [0, 1]
    assert result.objective == pytest.approx(1.0)
    assert assign_optimal(cost).objective == pytest.approx(0.35)
    assert result.status == "feasible"


def test_greedy_never_uses_a_photo_twice_and_is_never_better_than_optimal():
    rng = np.random.default_rng(4)
    cost = np.round(rng.random((60, 80)), 1).astype(np.float32)
    weights = rng.uniform(1, 5, 60)
    greedy = assign_greedy(cost, weights)
    optimal = assign_optimal(cost, weights)
    assert np.unique(greedy.photo_of_tile).size == 60
    assert greedy.objective >= optimal.objective - 1e-6
    # Weighted greedy ranks pairs by weight * cost.
    heavy = np.array([[0.5, 0.4], [0.45, 0.9]])
    assert assign_greedy(heavy, np.array([1.0, 10.0])).photo_of_tile.tolist() == [1, 0]


def test_too_few_photos_is_a_clear_error():
    with pytest.raises(MosaicError, match="3 tiles need 3 distinct photos; only 2 given"):
        assign_optimal(np.zeros((3, 2)))


def test_lp_refuses_huge_problems():
    with pytest.raises(MosaicError, match="use method optimal"):
        assign_lp_highs(np.zeros((2001, 2001), np.float32))


def test_result_round_trips_through_json():
    from mosaic.assign.result import Assignment

    result = assign_optimal(np.random.default_rng(5).random((4, 6)))
    again = Assignment.from_dict(result.to_dict())
    np.testing.assert_array_equal(again.photo_of_tile, result.photo_of_tile)
    assert again.objective == result.objective and again.method == "optimal"


def _full_sort_greedy(cost):
    tiles, photos = cost.shape
    photo_of_tile = np.full(tiles, -1)
    free = np.ones(photos, dtype=bool)
    for flat in np.argsort(cost, axis=None, kind="stable").tolist():
        t, p = divmod(flat, photos)
        if photo_of_tile[t] < 0 and free[p]:
            photo_of_tile[t], free[p] = p, False
    return photo_of_tile


@pytest.mark.parametrize("seed", range(12))
def test_banded_greedy_equals_a_full_sort(seed):
    rng = np.random.default_rng(seed)
    tiles = int(rng.integers(1, 300))
    cost = rng.random((tiles, tiles + int(rng.integers(0, 50)))).astype(np.float32)
    if seed % 2:
        cost = np.round(cost * 6) / 6  # ties broken by (tile, photo) index
    np.testing.assert_array_equal(assign_greedy(cost).photo_of_tile, _full_sort_greedy(cost))


# The method registry


def test_registry_names_and_groups():
    assert METHOD_NAMES == ("auto", "optimal", "regional", "greedy", "lp", "lp-pulp")
    assert DENSE_METHODS == ("optimal", "greedy", "lp", "lp-pulp")
    assert SIZED_METHODS == ("auto", "optimal", "regional") == BY_SIZE


def test_the_options_offer_the_registry_methods():
    from typing import get_args

    from mosaic.options import Method

    assert get_args(Method) == METHOD_NAMES
    assert all(REGISTRY[name].dense for name in DENSE_METHODS)
    assert REGISTRY["regional"].needs == "features" and REGISTRY["auto"].needs == "size"
    assert not REGISTRY["greedy"].proven_bound
    assert all(m.proven_bound for name, m in REGISTRY.items() if name != "greedy")
    assert all(m.weights for m in REGISTRY.values())
    assert REGISTRY["lp"].max_pairs == REGISTRY["lp-pulp"].max_pairs == lp.MAX_LP_VARIABLES
    assert REGISTRY["optimal"].max_pairs is None


def test_registry_solvers_are_the_methods():
    assert REGISTRY["optimal"].solver is assign_optimal
    assert REGISTRY["greedy"].solver is assign_greedy
    assert REGISTRY["lp"].solver is assign_lp_highs
    assert REGISTRY["lp-pulp"].solver is assign_lp_pulp
    assert REGISTRY["regional"].solver is assign_regional
    assert REGISTRY["auto"].solver is choose_method
    assert REGISTRY["auto"].solver(100, 200, max_memory=10**9).method == "optimal"


@pytest.mark.parametrize("name", ["optimal", "greedy", "lp", "lp-pulp"])
def test_solve_dense_runs_the_named_method(name):
    rng = np.random.default_rng(9)
    cost = rng.random((7, 9)).astype(np.float32)
    weights = rng.uniform(1, 3, 7)
    got = solve_dense(name, cost, weights)
    want = REGISTRY[name].solver(cost, weights)
    np.testing.assert_array_equal(got.photo_of_tile, want.photo_of_tile)
    assert got.objective == want.objective and got.status == want.status
    assert got.method == ("lp" if name.startswith("lp") else name)


@pytest.mark.parametrize("name", ["regional", "auto", "nope"])
def test_solve_dense_refuses_other_methods(name):
    with pytest.raises(MosaicError, match="choose one of optimal, greedy, lp, lp-pulp"):
        solve_dense(name, np.zeros((2, 2)))
    if name == "nope":
        with pytest.raises(MosaicError, match="choose one of auto, optimal, regional, greedy"):
            get_method(name)
    else:
        assert get_method(name).name == name
