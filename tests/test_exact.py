"""The exact solver: optimal against brute force and scipy, a valid dual bound, no repeats;
its dual prices, and the scipy fallback when the C extension is not built."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from mosaic import errors
from mosaic.assign import exact
from mosaic.assign.exact import (
    OPTIMAL_GAP,
    assign_optimal,
    solve_dense,
    solve_dense_with_bound,
    solve_dense_with_prices,
)
from mosaic.assign.ties import canonical_placement
from mosaic.errors import MosaicError


def brute_force(cost: np.ndarray, weights: np.ndarray | None = None) -> float:
    tiles, photos = cost.shape
    w = np.ones(tiles) if weights is None else weights
    scaled = cost.astype(np.float64) * w[:, None]
    rows = np.arange(tiles)
    return min(float(scaled[rows, list(p)].sum())
               for p in itertools.permutations(range(photos), tiles))


def objective(cost: np.ndarray, photo_of_tile: np.ndarray,
              weights: np.ndarray | None = None) -> float:
    w = np.ones(cost.shape[0]) if weights is None else weights
    return float(np.dot(w, cost[np.arange(cost.shape[0]), photo_of_tile].astype(np.float64)))


def scipy_objective(cost: np.ndarray) -> float:
    rows, cols = linear_sum_assignment(cost.astype(np.float64))
    return float(cost[rows, cols].astype(np.float64).sum())


def check_solution(cost: np.ndarray, weights: np.ndarray | None, expected: float,
                   rtol: float = 1e-9, **options: object) -> None:
    photo_of_tile, bound = solve_dense_with_bound(cost, weights, **options)  # type: ignore[arg-type]
    assert photo_of_tile.dtype == np.int64
    assert photo_of_tile.shape == (cost.shape[0],)
    assert np.unique(photo_of_tile).size == cost.shape[0]
    assert photo_of_tile.min(initial=0) >= 0
    assert photo_of_tile.max(initial=0) < cost.shape[1]
    got = objective(cost, photo_of_tile, weights)
    tol = rtol * max(1.0, abs(expected))
    assert got == pytest.approx(expected, abs=tol)
    assert bound <= got + tol
    assert bound >= got - tol


def tiny_problems() -> list[tuple[np.ndarray, np.ndarray | None]]:
    rng = np.random.default_rng(7)
    problems: list[tuple[np.ndarray, np.ndarray | None]] = []
    for _ in range(150):
        photos = int(rng.integers(1, 7))
        tiles = int(rng.integers(1, photos + 1))
        kind = rng.integers(0, 4)
        if kind == 0:
            cost = rng.random((tiles, photos)).astype(np.float32)
        elif kind == 1:  # many ties
            cost = rng.integers(0, 3, (tiles, photos)).astype(np.float32) / 4
        elif kind == 2:  # duplicate rows and columns
            base = rng.random((2, 2))
            cost = base[rng.integers(0, 2, tiles)][:, rng.integers(0, 2, photos)]
        else:  # negative and float64
            cost = rng.normal(size=(tiles, photos))
        weights = rng.uniform(0.5, 3.0, tiles) if rng.random() < 0.3 else None
        problems.append((cost, weights))
    return problems


MODES = [{"threads": 1, "dummies": True}, {"threads": 2, "dummies": False},
         {"threads": 2, "dummies": True}, {"threads": 1, "dummies": False}]


@pytest.mark.parametrize(("cost", "weights"), tiny_problems())
def test_matches_brute_force(cost: np.ndarray, weights: np.ndarray | None) -> None:
    expected = brute_force(cost, weights)
    for options in MODES:
        check_solution(cost, weights, expected, **options)


@pytest.mark.parametrize(("tiles", "photos"), [(120, 120), (150, 170), (90, 300)])
@pytest.mark.parametrize("options", MODES)
def test_matches_scipy_on_random(tiles: int, photos: int, options: dict[str, object]) -> None:
    rng = np.random.default_rng(tiles + photos)
    cost = rng.random((tiles, photos)).astype(np.float32)
    check_solution(cost, None, scipy_objective(cost), **options)


def structured_costs(tiles: int, photos: int, seed: int) -> np.ndarray:
    """Mosaic-like: tiles and photos from few colours, so many rows and columns repeat."""
    rng = np.random.default_rng(seed)
    colours = rng.random((6, 3))
    tile_colour = colours[rng.integers(0, 6, tiles)]
    photo_colour = colours[rng.integers(0, 6, photos)]
    photo_colour += rng.normal(0, 0.02, photo_colour.shape) * (rng.random(photos) < 0.5)[:, None]
    diff = tile_colour[:, None, :] - photo_colour[None, :, :]
    return (diff**2).mean(axis=2).astype(np.float32)


@pytest.mark.parametrize(("tiles", "photos"), [(200, 200), (190, 200), (150, 400), (40, 500)])
@pytest.mark.parametrize("options", MODES)
def test_matches_scipy_on_structured(tiles: int, photos: int,
                                     options: dict[str, object]) -> None:
    cost = structured_costs(tiles, photos, seed=tiles * photos)
    check_solution(cost, None, scipy_objective(cost), **options)


@pytest.mark.parametrize("options", MODES)
def test_matches_scipy_with_exact_ties(options: dict[str, object]) -> None:
    rng = np.random.default_rng(2)
    few_values = (rng.integers(0, 3, (150, 160)) / 3).astype(np.float32)
    check_solution(few_values, None, scipy_objective(few_values), **options)
    repeated = np.repeat(rng.random((6, 160)).astype(np.float32), 25, axis=0)
    check_solution(repeated, None, scipy_objective(repeated), **options)


def test_weights_match_scipy_on_scaled_matrix() -> None:
    cost = structured_costs(100, 110, seed=3)
    weights = np.random.default_rng(3).uniform(0.5, 4.0, 100)
    check_solution(cost, weights, scipy_objective(cost * weights[:, None]))


def test_float64_and_non_contiguous_input() -> None:
    cost = structured_costs(80, 90, seed=5).astype(np.float64)
    expected = scipy_objective(cost)
    check_solution(cost, None, expected)
    fortran = np.asfortranarray(cost)
    check_solution(fortran, None, expected)
    wide = np.zeros((80, 180))
    wide[:, ::2] = cost
    wide[:, 1::2] = 1.0
    check_solution(wide[:, ::2], None, expected)


def test_constant_matrix_and_edge_shapes() -> None:
    check_solution(np.full((30, 40), 0.25, dtype=np.float32), None, 30 * 0.25)
    check_solution(np.array([[0.5]]), None, 0.5)
    photo_of_tile, bound = solve_dense_with_bound(np.zeros((0, 4)))
    assert photo_of_tile.shape == (0,)
    assert bound == 0.0


def test_solve_dense_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="rows"):
        solve_dense(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        solve_dense(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        solve_dense(np.zeros(3))


def test_assign_optimal_reports_proven_optimum() -> None:
    cost = structured_costs(60, 64, seed=11)
    weights = np.linspace(1.0, 2.0, 60)
    result = assign_optimal(cost, weights)
    assert result.status == "optimal"
    assert result.gap is not None
    assert 0.0 <= result.gap <= 1e-9
    assert "auction" in result.message
    expected = scipy_objective(cost * weights[:, None])
    assert result.objective == pytest.approx(expected, rel=1e-6)
    assert np.unique(result.photo_of_tile).size == 60


def test_assign_optimal_rejects_too_few_photos() -> None:
    with pytest.raises(MosaicError):
        assign_optimal(np.zeros((5, 4), dtype=np.float32))


# ---------------------------------------------------------------------------------------
# The dual prices, and the scipy fallback when the C extension is not built


def check_prices(cost: np.ndarray, weights: np.ndarray | None, photo_of_tile: np.ndarray,
                 prices: np.ndarray) -> None:
    """Complementary slackness: each row on a cheapest column, unused columns lowest."""
    tiles, photos = cost.shape
    w = np.ones(tiles) if weights is None else weights
    values = cost.astype(np.float64) * w[:, None] + prices[None, :]
    tol = 1e-9 * max(1.0, float(np.abs(values).max()))
    own = values[np.arange(tiles), photo_of_tile]
    assert (own <= values.min(axis=1) + tol).all()
    unused = np.setdiff1d(np.arange(photos), photo_of_tile)
    if unused.size:
        assert (prices[unused] <= prices.min() + tol).all()


def tie_broken(cost: np.ndarray, weights: np.ndarray | None,
               photo_of_tile: np.ndarray) -> np.ndarray:
    """``photo_of_tile`` with exact ties broken as the tie-breaking solvers do."""
    w = np.ones(cost.shape[0]) if weights is None else np.asarray(weights, np.float64)
    return canonical_placement(exact._as_kernel_matrix(cost), w, photo_of_tile)


def python_bound(cost: np.ndarray, weights: np.ndarray | None, prices: np.ndarray) -> float:
    tiles, photos = cost.shape
    w = np.ones(tiles) if weights is None else weights
    values = cost.astype(np.float64) * w[:, None] + prices[None, :]
    return float(values.min(axis=1).sum() + (photos - tiles) * prices.min() - prices.sum())


@pytest.mark.parametrize(("tiles", "photos", "weighted"),
                         [(60, 60, False), (50, 58, True), (40, 120, False), (70, 90, True)])
def test_solve_dense_with_prices_are_the_dual(tiles: int, photos: int, weighted: bool) -> None:
    cost = structured_costs(tiles, photos, seed=tiles + photos)
    weights = np.random.default_rng(1).uniform(0.5, 3.0, tiles) if weighted else None
    photo_of_tile, prices = solve_dense_with_prices(cost, weights, threads=1)
    same, bound = solve_dense_with_bound(cost, weights, threads=1)
    np.testing.assert_array_equal(tie_broken(cost, weights, photo_of_tile), same)
    np.testing.assert_array_equal(solve_dense(cost, weights, threads=1), same)
    check_prices(cost, weights, photo_of_tile, prices)
    assert python_bound(cost, weights, prices) == pytest.approx(bound, rel=1e-12)


def test_solve_dense_with_prices_edge_shapes() -> None:
    photo_of_tile, prices = solve_dense_with_prices(np.zeros((0, 3)))
    assert photo_of_tile.shape == (0,) and prices.tolist() == [0.0, 0.0, 0.0]
    photo_of_tile, prices = solve_dense_with_prices(np.array([[0.5]]))
    assert photo_of_tile.tolist() == [0] and prices.tolist() == [0.0]
    with pytest.raises(ValueError, match="rows"):
        solve_dense_with_prices(np.zeros((3, 2)))


@pytest.fixture
def no_c_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    """The C extension as if it were not built (and its warning not yet given)."""
    assert exact.c_solver_built(), "these tests compare the fallback with the C solver"
    monkeypatch.setattr(exact, "_lapcore", None)
    monkeypatch.setattr(errors, "_warned_once", set())


def fallback_problems() -> list[tuple[np.ndarray, np.ndarray | None]]:
    rng = np.random.default_rng(21)
    problems: list[tuple[np.ndarray, np.ndarray | None]] = []
    for tiles, photos in [(1, 2), (2, 2), (5, 9), (30, 30), (40, 44), (25, 80), (90, 100)]:
        cost = rng.random((tiles, photos)).astype(np.float32)
        problems.append((cost, None))
        problems.append((cost, rng.uniform(0.5, 3.0, tiles)))
    problems.append((structured_costs(120, 130, seed=4), None))  # many ties
    problems.append((structured_costs(60, 200, seed=5), rng.uniform(0.5, 3.0, 60)))
    problems.append((np.full((20, 25), 0.25), None))
    return problems


@pytest.mark.parametrize(("cost", "weights"), fallback_problems())
def test_fallback_matches_the_c_solver(no_c_solver: None, monkeypatch: pytest.MonkeyPatch,
                                       cost: np.ndarray, weights: np.ndarray | None) -> None:
    """Without the extension: the C solver's assignment (ties broken the same way),
    dual prices that meet the optimality conditions, a valid and tight bound."""
    photo_of_tile, bound = solve_dense_with_bound(cost, weights)
    same_x, prices = solve_dense_with_prices(cost, weights)
    np.testing.assert_array_equal(tie_broken(cost, weights, same_x), photo_of_tile)
    np.testing.assert_array_equal(solve_dense(cost, weights), photo_of_tile)
    check_prices(cost, weights, same_x, prices)
    monkeypatch.undo()  # the C solver again, for the reference
    expected, c_bound = solve_dense_with_bound(cost, weights, threads=1)
    got, want = objective(cost, photo_of_tile, weights), objective(cost, expected, weights)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert bound <= got + 1e-12 * max(1.0, got)
    assert bound == pytest.approx(c_bound, rel=1e-9, abs=1e-12)
    np.testing.assert_array_equal(photo_of_tile, expected)


def test_fallback_assign_optimal_reports_proven_optimum(
        no_c_solver: None, caplog: pytest.LogCaptureFixture) -> None:
    cost = structured_costs(60, 64, seed=11)
    weights = np.linspace(1.0, 2.0, 60)
    with caplog.at_level(logging.WARNING, logger="mosaic.assign"):
        result = assign_optimal(cost, weights)
        assign_optimal(cost)
        solve_dense_with_prices(cost)
    assert result.status == "optimal"
    assert result.gap is not None and 0.0 <= result.gap <= OPTIMAL_GAP
    assert "linear_sum_assignment" in result.message
    assert result.objective == pytest.approx(scipy_objective(cost * weights[:, None]), rel=1e-9)
    # One warning line for the whole process, saying how to build the extension.
    records = [r for r in caplog.records if r.name == "mosaic.assign"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    text = records[0].getMessage()
    assert "\n" not in text
    assert "not built" in text and "pip install -e ." in text and "make setup" in text


def test_fallback_edge_shapes_and_bad_input(no_c_solver: None) -> None:
    check_solution(np.array([[0.5]]), None, 0.5)
    check_solution(np.full((3, 3), 2.0), np.array([1.0, 2.0, 3.0]), 12.0)
    assert solve_dense_with_bound(np.zeros((0, 4)))[0].shape == (0,)
    with pytest.raises(ValueError, match="NaN"):
        solve_dense(np.array([[0.0, np.nan]]))


HIDDEN_EXTENSION = """
import json, logging, sys
import numpy as np
sys.modules["mosaic.assign._lapcore"] = None  # as if the .so were not there: ImportError
from mosaic.assign import exact
rng = np.random.default_rng(3)
out = []
for shape in [(30, 30), (40, 70)]:
    cost = rng.random(shape)
    weights = rng.uniform(0.5, 3.0, shape[0])
    result = exact.assign_optimal(cost, weights)
    out.append({"x": result.photo_of_tile.tolist(), "gap": result.gap,
                "status": result.status, "built": exact.c_solver_built()})
print(json.dumps(out))
"""


def test_fallback_in_a_process_without_the_extension() -> None:
    """A fresh interpreter that cannot import the .so: one warning line on stderr, and
    the C solver's assignments."""
    done = subprocess.run([sys.executable, "-c", HIDDEN_EXTENSION], capture_output=True,
                          text=True, timeout=120, check=True, cwd=Path(__file__).parents[1])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "mosaic.assign._lapcore is not built" in lines[0]
    assert "pip install -e ." in lines[0] and "make setup" in lines[0]
    runs = json.loads(done.stdout)
    rng = np.random.default_rng(3)
    for run, shape in zip(runs, [(30, 30), (40, 70)], strict=True):
        cost = rng.random(shape)
        weights = rng.uniform(0.5, 3.0, shape[0])
        expected = solve_dense_with_bound(cost, weights, threads=1)[0]
        assert run["x"] == expected.tolist()
        assert run["status"] == "optimal" and 0.0 <= run["gap"] <= OPTIMAL_GAP
        assert run["built"] is False
