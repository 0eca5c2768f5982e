"""Capped scoring (a cost only matters below its cap) and the regional passes' capped scans."""

from __future__ import annotations

import numpy as np
import pytest

from mosaic import cost_refine
from mosaic.assign.regional import minima
from mosaic.cost import Features
from mosaic.cost_refine import PRUNED, refined_block_cost, refined_block_cost_stats
from mosaic.scoring import for_scoring, scoring_cost
from tests.test_cost_refine import real_features, real_refine  # noqa: F401 (fixtures)

TOLERANCE = 2e-6
C_KERNELS = ["c", "portable"] if cost_refine.c_kernel_built() else []
needs_c = pytest.mark.skipif(not C_KERNELS, reason="the C kernel mosaic._pairdot is not built")


def quantile_cap(cost: np.ndarray, share: float, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A cap ``row + col`` near each photo's ``share`` quantile, with a ragged row part."""
    rng = np.random.default_rng(seed)
    col = np.quantile(cost, share, axis=0).astype(np.float32)
    row = rng.uniform(-0.002, 0.002, cost.shape[0]).astype(np.float32)
    return row, col


@needs_c
@pytest.mark.parametrize("kernel", C_KERNELS)
@pytest.mark.parametrize("share", [0.0, 0.02, 0.3, 1.0])
def test_costs_below_the_cap_are_exact_and_the_rest_are_bounds(real_features,  # noqa: F811
                                                                real_refine,  # noqa: F811
                                                                kernel, share):
    weights = np.random.default_rng(5).uniform(0.2, 3.0, real_features.n_tiles)
    exact, exact_crop, _ = refined_block_cost_stats(real_refine, slice(None), slice(None),
                                                    weights, kernel=kernel)
    row, col = quantile_cap(exact, share)
    cost, crop, stats = refined_block_cost_stats(real_refine, slice(None), slice(None),
                                                 weights, kernel=kernel, cap=(row, col))
    cap = row[:, None] + col[None, :]
    below, pruned = exact < cap, crop == PRUNED
    np.testing.assert_allclose(cost[below], exact[below], rtol=0, atol=TOLERANCE)
    assert not (below & pruned).any()
    # A pruned pair's value is a bound: at or above its cap, at most its exact cost.
    assert (cost[pruned] >= cap[pruned] - TOLERANCE).all()
    assert (cost[pruned] <= exact[pruned] + TOLERANCE).all()
    kept = ~pruned
    np.testing.assert_allclose(cost[kept], exact[kept], rtol=0, atol=TOLERANCE)
    assert (crop[kept & below] == exact_crop[kept & below]).mean() > 0.99  # ties aside
    assert stats.pruned == pruned.sum()
    if share < 1.0:  # the cap bites: most pairs above it never get their exact cost
        assert pruned.sum() > 0.5 * (~below).sum()


@needs_c
def test_photo_major_is_the_transpose(real_features, real_refine):  # noqa: F811
    tiles, photos = np.arange(3, 150, 2), slice(7, 100)
    weights = np.random.default_rng(6).uniform(0.5, 2.0, tiles.size)  # of the rows
    cost, _ = refined_block_cost(real_refine, tiles, photos, weights)
    cap = quantile_cap(cost, 0.05)
    for given in (None, cap):
        tile_major, tile_crop = refined_block_cost(real_refine, tiles, photos, weights,
                                                   cap=given)
        photo_major, photo_crop = refined_block_cost(real_refine, tiles, photos, weights,
                                                     cap=given, photo_major=True)
        np.testing.assert_array_equal(photo_major, tile_major.T)
        np.testing.assert_array_equal(photo_crop, tile_crop.T)
    plain_cost, _ = scoring_cost(real_features, tiles, photos, weights, photo_major=True)
    np.testing.assert_allclose(plain_cost, cost.T, rtol=0, atol=TOLERANCE)


@needs_c
def test_no_cap_where_it_is_nan_or_the_weight_is_zero(real_features, real_refine):  # noqa: F811
    weights = np.ones(real_features.n_tiles)
    weights[:10] = 0.0
    row = np.full(real_features.n_tiles, -1.0, dtype=np.float32)  # prunes everything...
    row[10:20] = np.nan  # ...but where it is NaN
    col = np.zeros(real_features.n_photos, dtype=np.float32)
    cost, crop = refined_block_cost(real_refine, slice(None), slice(None), weights,
                                    cap=(row, col))
    assert (crop[20:] == PRUNED).all()
    assert (crop[:20] != PRUNED).all()  # weight 0 and NaN rows are scored in full
    exact, _ = refined_block_cost(real_refine, slice(None), slice(None), weights)
    np.testing.assert_allclose(cost[:20], exact[:20], rtol=0, atol=TOLERANCE)


def test_numpy_kernel_ignores_the_cap(real_features, real_refine):  # noqa: F811
    exact, _, _ = refined_block_cost_stats(real_refine, slice(None), slice(None),
                                           kernel="numpy")
    row, col = quantile_cap(exact, 0.01)
    cost, crop, _ = refined_block_cost_stats(real_refine, slice(None), slice(None),
                                             kernel="numpy", cap=(row, col))
    np.testing.assert_array_equal(cost, exact)
    assert not (crop == PRUNED).any()


def test_cap_parts_must_match_the_block(real_refine):  # noqa: F811
    with pytest.raises(ValueError, match="cap parts"):
        refined_block_cost(real_refine, slice(0, 10), slice(0, 5),
                           cap=(np.zeros(9, np.float32), np.zeros(5, np.float32)))


def test_steps_double_up_to_the_last():
    assert minima.steps(1000, 64, 256) == [(0, 64), (64, 192), (192, 448), (448, 704),
                                           (704, 960), (960, 1000)]
    assert minima.steps(0) == []


def dense(features: Features, weights: np.ndarray) -> np.ndarray:
    cost, _ = scoring_cost(features, slice(None), slice(None), weights)
    return cost


def scan_inputs(features: Features, seed: int
                ) -> tuple[object, np.random.Generator, np.ndarray]:
    """Coarse-to-fine scoring of ``features``, a random stream and random tile weights."""
    rng = np.random.default_rng(seed)
    return for_scoring(features, always=True), rng, rng.uniform(0.5, 3.0, features.n_tiles)


@pytest.mark.parametrize("start", [False, True])
def test_photo_minima_equal_the_dense_minima(real_features, monkeypatch, start):  # noqa: F811
    monkeypatch.setattr(minima, "FIRST_STEP", 8)  # several capped steps on a small grid
    monkeypatch.setattr(minima, "LAST_STEP", 32)
    scoring, rng, weights = scan_inputs(real_features, 7)
    offset = rng.uniform(0.0, 0.05, real_features.n_tiles).astype(np.float32)
    tiles = np.arange(0, real_features.n_tiles, 3)
    values = dense(real_features, weights)[tiles] - offset[tiles, None]
    expected = values[:, 10:90].min(axis=0)
    known = values[5, 10:90] if start else None  # a real pair's value: an upper bound
    got = minima.photo_minima(scoring, weights, tiles, offset[tiles], slice(10, 90), known)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


def test_tile_best_equals_the_dense_choice(real_features, monkeypatch):  # noqa: F811
    monkeypatch.setattr(minima, "LAST_STEP", 16)
    scoring, rng, weights = scan_inputs(real_features, 8)
    prices = rng.uniform(0.0, 0.03, real_features.n_photos).astype(np.float32)
    tiles = np.arange(1, real_features.n_tiles, 2)
    keep = 5
    cost = dense(real_features, weights)[tiles]
    priced = cost + prices[None, :]
    duals, best, best_cost = minima.tile_best(scoring, weights, tiles, prices, keep)
    np.testing.assert_allclose(duals, priced.min(axis=1), rtol=0, atol=TOLERANCE)
    rows = np.arange(tiles.size)[:, None]
    kth = np.sort(priced, axis=1)[:, keep - 1]
    assert best.shape == best_cost.shape == (tiles.size, keep)
    assert all(np.unique(row).size == keep for row in best)
    assert (priced[rows, best] <= kth[:, None] + TOLERANCE).all()
    np.testing.assert_allclose(best_cost, cost[rows, best], rtol=0, atol=TOLERANCE)


def test_photo_minima_with_floors_skip_photos_yet_equal_the_dense_minima(
        real_features, monkeypatch):  # noqa: F811
    monkeypatch.setattr(minima, "FIRST_STEP", 8)
    monkeypatch.setattr(minima, "LAST_STEP", 16)
    scoring, rng, weights = scan_inputs(real_features, 9)
    offset = rng.uniform(0.0, 0.05, real_features.n_tiles).astype(np.float32)
    values = dense(real_features, weights) - offset[:, None]
    lift = rng.uniform(0.0, 0.02, real_features.n_photos).astype(np.float32)
    # The tightest floors that hold for every pair: value >= floor[t] - lift[i].
    floor = (values + lift[None, :]).min(axis=1)
    tiles, photos = np.arange(real_features.n_tiles), slice(0, real_features.n_photos)
    calls = []
    real_cost = minima.scoring_cost
    monkeypatch.setattr(minima, "scoring_cost",
                        lambda *a, **k: calls.append(a[2]) or real_cost(*a, **k))
    got = minima.photo_minima(scoring, weights, tiles, offset, photos,
                              floors=(floor, lift))
    np.testing.assert_allclose(got, values.min(axis=0), rtol=0, atol=TOLERANCE)
    # Photos left the scan once no tile left could beat them.
    assert any(not isinstance(columns, slice) for columns in calls)
