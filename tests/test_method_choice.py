"""Choosing the method by size and memory, and the benchmarks' dense-or-regional path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.large import assign_large
from mosaic.assign.auto import DENSE_SHARE, choose_method
from mosaic.assign.exact import assign_optimal
from mosaic.assign.regional import default_regions
from mosaic.blocks import BlockRunner, dense_bytes, prepare_features
from mosaic.cost import cost_matrix, mse_matrix
from mosaic.errors import MosaicError
from tests.large_problems import photo_features, tile_features, tile_weights
from tests.regional_helpers import MAX_EXCESS, MEDIUM_GRID, check_valid, weighted_objective

# ---------------------------------------------------------------------------------------
# choose_method and assign_large


def test_choose_method_auto_small_problem_is_optimal() -> None:
    """A small problem with a large budget runs dense exact."""
    choice = choose_method(1000, 2000, max_memory=8 * 10**9)
    assert choice.method == "optimal" and choice.regions is None
    assert choice.dense_bytes == dense_bytes(1000, 2000) and choice.max_memory == 8 * 10**9
    assert "dense exact" in choice.reason


def test_choose_method_auto_tiny_memory_is_regional() -> None:
    """A budget below the dense matrix switches to regional, with a region count."""
    choice = choose_method(1000, 2000, max_memory=10**6)
    assert choice.method == "regional"
    assert choice.regions == default_regions(1000, 2000, 10**6, 2) > 1
    assert "over max_memory" in choice.reason


def test_choose_method_threshold() -> None:
    """Dense exact exactly while matrix, solver and features fit the dense share."""
    needed = dense_bytes(3000, 5000, 7) + 12345
    fits = math.ceil(needed / DENSE_SHARE)
    assert choose_method(3000, 5000, 7, fits, feature_bytes=12345).method == "optimal"
    assert choose_method(3000, 5000, 7, fits - 2, feature_bytes=12345).method == "regional"
    # The crop matrix counts: without candidates the same budget is ample.
    assert choose_method(3000, 5000, 1, int(0.85 * fits), feature_bytes=12345).method == \
        "optimal"


def test_choose_method_explicit_requests() -> None:
    """Explicit methods are honoured; an impossible or unknown one raises."""
    choice = choose_method(100, 200, max_memory=10**9, requested="regional", regions=3)
    assert (choice.method, choice.regions) == ("regional", 3)
    assert "as asked" in choice.reason
    assert choose_method(100, 200, max_memory=10**9, requested="optimal").method == "optimal"
    with pytest.raises(MosaicError, match="method optimal needs about"):
        choose_method(10_000, 20_000, max_memory=10**6, requested="optimal")
    with pytest.raises(MosaicError, match="choose from auto, optimal, regional"):
        choose_method(100, 200, requested="greedy")


@pytest.fixture(scope="module")
def medium_with_crops() -> dict:
    """480 tiles against 854 photos with 7 crop candidates each, and the dense reference."""
    tiles, photos = tile_features(*MEDIUM_GRID), photo_features()
    cost, best_crop = cost_matrix(tiles, photos)
    cube = mse_matrix(tiles, photos.reshape(-1, photos.shape[-1])).reshape(
        tiles.shape[0], photos.shape[0], photos.shape[1])
    return {"features": prepare_features(tiles, photos), "cost": cost, "best_crop": best_crop,
            "cube": np.sort(cube, axis=2), "weights": tile_weights(tiles.shape[0], seed=5)}


def check_large_result(data: dict, result, weights: np.ndarray | None) -> None:
    """Valid assignment, objective and winning crops consistent with the dense reference."""
    features, cost = data["features"], data["cost"]
    x = result.assignment.photo_of_tile
    check_valid(x, features.n_tiles, features.n_photos)
    rows = np.arange(x.size)
    assert result.assignment.objective == pytest.approx(
        weighted_objective(cost, x, weights), rel=1e-6)
    assert result.lower_bound <= result.assignment.objective + 1e-9
    ordered = data["cube"][rows, x]
    clear = ordered[:, 1] - ordered[:, 0] > 1e-5
    assert clear.mean() > 0.9
    assert result.best_crop.shape == (x.size,)
    np.testing.assert_array_equal(result.best_crop[clear], data["best_crop"][rows, x][clear])


@pytest.mark.parametrize("weighted", [False, True])
def test_assign_large_dense_path(medium_with_crops: dict, tmp_path, weighted: bool) -> None:
    """Auto with ample memory: dense exact, the objective of assign_optimal."""
    data = medium_with_crops
    weights = data["weights"] if weighted else None
    result = assign_large(data["features"], MEDIUM_GRID, weights, max_memory=4 * 10**9,
                          runner=BlockRunner(threads=2), workdir=tmp_path)
    assert result.choice.method == "optimal" == result.assignment.method
    assert result.regional is None
    check_large_result(data, result, weights)
    reference = assign_optimal(data["cost"], weights)
    assert result.assignment.objective == pytest.approx(reference.objective, rel=1e-6)
    assert result.lower_bound == pytest.approx(reference.objective, rel=1e-6)
    assert list(tmp_path.iterdir()) == []  # the memory-mapped matrix is deleted
    metrics = result.metrics()
    assert metrics["method"] == "optimal" and "regional" not in metrics


def test_assign_large_regional_path(medium_with_crops: dict) -> None:
    """Auto with a tiny budget: regional, valid, winning crops right, near the optimum."""
    data = medium_with_crops
    features, weights = data["features"], data["weights"]
    result = assign_large(features, MEDIUM_GRID, weights, max_memory=5 * 10**6, regions=4,
                          runner=BlockRunner(threads=2))
    assert result.choice.method == "regional" == result.assignment.method
    assert result.choice.dense_bytes > DENSE_SHARE * 5 * 10**6  # matrix + features
    assert result.choice.regions == 4 and result.regional is not None
    assert result.regional.regions == 4
    check_large_result(data, result, weights)
    optimum = assign_optimal(data["cost"], weights).objective
    assert result.lower_bound <= optimum * (1 + 1e-6)
    assert optimum * (1 - 1e-6) <= result.assignment.objective <= optimum * (1 + MAX_EXCESS)
    metrics = result.metrics()
    assert metrics["method"] == "regional" and metrics["regional"]["regions"] == 4

