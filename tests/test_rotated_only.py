"""The regional method keeps only the rotated photo features, and sizes its coarse samples."""

from __future__ import annotations

import numpy as np
import pytest

from mosaic.assign.regional import assign_regional, bounded_share
from mosaic.assign.regional.prices import COARSE_MEMORY_SHARE, COARSE_PAIR_BYTES
from mosaic.blocks import BlockRunner
from mosaic.cost import Features, pair_cost
from mosaic.cost_refine import refine_features
from mosaic.scoring import base_features, rotated_only, scoring_cost, scoring_pair_cost
from tests.test_cost_refine import random_features


def _pairs(features: Features, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, features.n_tiles, count), rng.integers(0, features.n_photos, count))


def test_pair_cost_from_the_rotated_parts_equals_the_features():
    features = random_features(n_tiles=80, n_photos=60, seed=4)
    tiles, photos = _pairs(features, 500, seed=1)
    expected_cost, expected_crop = pair_cost(features, tiles, photos)
    rotated = refine_features(features, rank=16)
    cost, crop = scoring_pair_cost(rotated, tiles, photos, chunk=64)  # several chunks
    np.testing.assert_allclose(cost, expected_cost, atol=2e-6)
    # A crop may differ only where two crops tie within rounding.
    differs = crop != expected_crop
    ranks = np.einsum("id,ikd->ik", features.tile_rows(tiles), features.photos[photos])
    np.testing.assert_allclose(ranks[differs, crop[differs]],
                               ranks[differs, expected_crop[differs]], atol=2e-6)
    assert differs.mean() < 0.01
    # Plain features take the plain path.
    plain_cost, _ = scoring_pair_cost(features, tiles, photos)
    np.testing.assert_array_equal(plain_cost, expected_cost)


def test_duplicate_crops_do_not_win_the_rotated_pair_cost():
    features = random_features(n_photos=20, seed=7)
    photos = features.photos.copy()
    photos[:, 6] = photos[:, 0]  # the library pads square photos with the centre crop
    features = Features(features.tiles, features.tile_sq, photos)
    tiles, chosen = _pairs(features, 300, seed=2)
    _, crop = scoring_pair_cost(refine_features(features, rank=8), tiles, chosen)
    assert not (crop == 6).any()


def test_rotated_only_drops_the_photo_features_and_scores_the_same():
    features = random_features(n_tiles=70, n_photos=50, seed=5)
    rotated = refine_features(features, rank=16)
    light = rotated_only(rotated)
    kept = base_features(light)
    assert kept.photos.nbytes == 0
    assert (kept.n_tiles, kept.n_photos, kept.n_crops, kept.dims) == (
        features.n_tiles, features.n_photos, features.n_crops, features.dims)
    cost, crop = scoring_cost(light, slice(None), slice(None))
    expected_cost, expected_crop = scoring_cost(rotated, slice(None), slice(None))
    np.testing.assert_array_equal(cost, expected_cost)
    np.testing.assert_array_equal(crop, expected_crop)
    tiles, photos = _pairs(features, 100, seed=3)
    np.testing.assert_array_equal(scoring_pair_cost(light, tiles, photos)[0],
                                  scoring_pair_cost(rotated, tiles, photos)[0])
    with pytest.raises(ValueError):  # nothing can score from the dropped features
        pair_cost(kept, tiles, photos)
    assert rotated_only(features) is features


def test_regional_on_rotated_only_features_gives_the_same_placement():
    features = random_features(n_tiles=96, n_photos=110, seed=6)
    weights = np.random.default_rng(0).uniform(1, 3, features.n_tiles)
    rotated = refine_features(features, rank=16)
    results = [assign_regional(scoring, (8, 12), weights, regions=4,
                               runner=BlockRunner(threads=1))
               for scoring in (rotated, rotated_only(rotated))]
    np.testing.assert_array_equal(results[0].assignment.photo_of_tile,
                                  results[1].assignment.photo_of_tile)
    assert results[0].report.gap == pytest.approx(results[1].report.gap)
    expected, _ = pair_cost(features, np.arange(features.n_tiles),
                            results[1].assignment.photo_of_tile)
    np.testing.assert_allclose(results[1].assignment.tile_cost, expected, atol=2e-6)


@pytest.mark.parametrize(("size", "share"), [(10_000, 4), (50_000, 4), (56_000, 4),
                                              (60_000, 5), (100_000, 8), (200_000, 15)])
def test_coarse_share_keeps_the_samples_in_a_quarter_of_the_budget(size, share):
    budget, workers = 8 * 10**9, 2
    assert bounded_share(size, size, budget, workers) == share
    in_flight = 2 * (size / share) ** 2 * COARSE_PAIR_BYTES
    assert in_flight <= COARSE_MEMORY_SHARE * budget


def test_coarse_share_follows_the_budget_and_the_samples_in_flight():
    assert bounded_share(50_000, 50_000, 10**9, 2) > bounded_share(50_000, 50_000, 8 * 10**9, 2)
    # One worker solves one sample at a time: each may be twice as large.
    assert bounded_share(100_000, 100_000, 8 * 10**9, 1) == 5
    assert bounded_share(100, 100, 10**6, 2, least=3) == 3
