"""``max_uses``: a photo may fill up to K tiles, still by an exact assignment."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from mosaic.assign.methods import solve_dense
from mosaic.errors import MosaicError
from mosaic.layout import plan_layout
from mosaic.options import ScaleRequest
from mosaic.pipeline.assign import plan
from tests.conftest import SAMPLE_PHOTOS
from tests.test_cli import (
    _all_finished,
    _args,
    _assert_one_line_error,
    _start_subprocess_build,
)


def capacity_optimum(cost: np.ndarray, weights: np.ndarray, max_uses: int) -> float:
    """The transportation problem as a 0/1 program solved by HiGHS (scipy.optimize.milp)."""
    tiles, photos = cost.shape
    each_tile = np.kron(np.eye(tiles), np.ones(photos))
    each_photo = np.kron(np.ones(tiles), np.eye(photos))
    result = milp((cost * weights[:, None]).ravel(), integrality=np.ones(tiles * photos),
                  bounds=Bounds(0, 1),
                  constraints=[LinearConstraint(each_tile, 1, 1),
                               LinearConstraint(each_photo, 0, max_uses)])
    assert result.success
    return float(result.fun)


@pytest.mark.parametrize(("tiles", "photos", "max_uses"), [(12, 5, 3), (9, 3, 3), (10, 8, 2)])
def test_optimal_with_repeats_is_the_capacity_optimum(tiles, photos, max_uses):
    rng = np.random.default_rng(tiles + photos)
    cost = rng.random((tiles, photos)).astype(np.float32)
    weights = rng.uniform(1.0, 3.0, tiles)
    result = solve_dense("optimal", cost, weights, max_uses)
    assert result.objective == pytest.approx(capacity_optimum(cost, weights, max_uses),
                                             rel=1e-9)
    assert np.bincount(result.photo_of_tile, minlength=photos).max() <= max_uses
    assert result.gap == pytest.approx(0.0, abs=1e-9)
    rows = np.arange(tiles)
    assert np.array_equal(result.tile_cost, cost[rows, result.photo_of_tile])


def test_greedy_and_lp_keep_the_limit_too():
    cost = np.random.default_rng(4).random((20, 6)).astype(np.float32)
    for method in ("greedy", "lp"):
        result = solve_dense(method, cost, None, 4)
        assert np.bincount(result.photo_of_tile, minlength=6).max() <= 4
    assert (solve_dense("lp", cost, None, 4).objective
            == pytest.approx(solve_dense("optimal", cost, None, 4).objective, rel=1e-7))


def test_the_grid_may_need_up_to_photos_times_max_uses():
    layout = plan_layout((400, 300), 100, tiles=450, max_uses=5)
    assert layout.tiles <= 500
    assert plan_layout((400, 300), 100, max_uses=3).tiles <= 300
    assert plan_layout((400, 300), 100, max_uses=3).tiles > 100  # the default grows
    with pytest.raises(MosaicError, match="fill only 500 tiles; raise max_uses to 6"):
        plan_layout((400, 300), 100, tiles=550, max_uses=5)
    with pytest.raises(MosaicError, match="with max_uses"):
        plan_layout((400, 300), 100, tiles=150)


def test_repeats_go_regional_when_the_repeated_matrix_does_not_fit():
    request = ScaleRequest(max_memory="2GB")
    chosen = plan("regional", 2000, 400, 7, 16, request, max_uses=5)
    assert chosen.method == "regional" and chosen.max_uses == 5 and not chosen.dense
    chosen = plan("auto", 2000, 400, 7, 16, request, max_uses=5)
    assert chosen.method == "optimal" and chosen.max_uses == 5
    assert chosen.cache_key == ("optimal", None, 5, 0)
    assert plan("auto", 2000, 2000, 7, 16, request).cache_key == ("optimal", None)
    large = plan("auto", 40000, 8000, 7, 16, request, max_uses=5)
    assert large.method == "regional" and large.max_uses == 5 and large.regions
    # The distance rule needs the dense matrix: said, not silently dropped.
    with pytest.raises(MosaicError, match="min_repeat_distance 6 needs the dense matrix"):
        plan("auto", 40000, 8000, 7, 16, request, max_uses=5, min_distance=6)
    with pytest.raises(MosaicError, match="regional was asked"):
        plan("regional", 2000, 400, 7, 16, request, max_uses=5, min_distance=6)


def test_regional_repeats_match_the_exact_optimum_over_photo_copies():
    from mosaic.assign.regional import assign_regional
    from mosaic.blocks import BlockRunner, prepare_features
    from mosaic.cost import cost_matrix
    from mosaic.pipeline.assign import repeated_features
    from tests.large_problems import photo_features, tile_features

    tiles, photos = tile_features(12, 10), photo_features()[:40, 0]
    cost, _ = cost_matrix(tiles, photos)
    exact = solve_dense("optimal", cost, None, 3)
    features = repeated_features(prepare_features(tiles, photos), 3)
    assert features.n_photos == 120
    for regions, slack in ((1, 1e-6), (4, 0.02)):  # one region is one exact solve
        result = assign_regional(features, (12, 10), regions=regions,
                                 runner=BlockRunner(threads=1))
        placed = result.assignment.photo_of_tile // 3
        assert np.bincount(placed, minlength=40).max() <= 3
        value = float(cost[np.arange(120), placed].astype(np.float64).sum())
        assert exact.objective * (1 - 1e-6) <= value <= exact.objective * (1 + slack)


@pytest.fixture
def few_photos(tmp_path) -> Path:
    """24 real sample photos, for grids that need repeats."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in SAMPLE_PHOTOS[:24]:
        shutil.copy(path, photos / path.name)
    return photos


def _check_uses(workdir: Path, max_uses: int) -> dict:
    """The run's metrics, after checking them against its placement list."""
    metrics = json.loads((workdir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["tiles"] == 48 and metrics["max_uses"] == max_uses
    assert 2 <= metrics["most_uses"] <= max_uses and 16 <= metrics["photos_used"] <= 24
    with (workdir / "placement.csv").open(encoding="utf-8") as file:
        placed = [line["photo_sha256"] for line in csv.DictReader(file)]
    assert len(placed) == 48 and max(placed.count(p) for p in placed) == metrics["most_uses"]
    return metrics


def test_a_build_with_few_photos_fills_a_bigger_grid_copies_apart(prefect_api, portrait,
                                                                   few_photos, tmp_path):
    photos = few_photos
    workdir = tmp_path / "run"
    # The build and the refused one share only the photos (read): both run at once.
    result, too_many = _all_finished(
        _start_subprocess_build(*_args(photos, portrait, tmp_path / "poster.jpg"),
                                "--workdir", str(workdir), "--grid", "8x6", "--max-uses",
                                "3", "--min-repeat-distance", "3", "--tile-px", "12",
                                "--crops", "1"),
        _start_subprocess_build(*_args(photos, portrait, tmp_path / "p2.jpg"), "--grid",
                                "8x6", "--workdir", str(tmp_path / "run2")))
    assert result.returncode == 0, result.stderr
    metrics = _check_uses(workdir, 3)
    assert metrics["min_repeat_distance"] == 3 and metrics["closest_copies"] >= 3
    _assert_one_line_error(too_many, "needs 48 distinct photos", "--max-uses")


def test_a_regional_build_repeats_photos_too(prefect_api, portrait, few_photos, tmp_path):
    photos = few_photos
    workdir = tmp_path / "run"
    # The build and the refused one share only the photos (read): both run at once.
    result, spaced = _all_finished(
        _start_subprocess_build(*_args(photos, portrait, tmp_path / "poster.jpg"),
                                "--workdir", str(workdir), "--grid", "8x6", "--max-uses",
                                "3", "--method", "regional", "--regions", "2", "--tile-px",
                                "12", "--crops", "2"),
        _start_subprocess_build(*_args(photos, portrait, tmp_path / "p2.jpg"), "--grid",
                                "8x6", "--max-uses", "3", "--min-repeat-distance", "3",
                                "--method", "regional", "--workdir", str(tmp_path / "run2")))
    assert result.returncode == 0, result.stderr
    metrics = _check_uses(workdir, 3)
    assert metrics["method"] == "regional"
    assert metrics["gap"] is not None and 0 <= metrics["gap"] < 0.05
    _assert_one_line_error(spaced, "--min-repeat-distance 3 needs the dense matrix")
