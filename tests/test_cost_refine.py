"""Coarse-to-fine scoring (mosaic.cost_refine) gives block_cost's results."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
from PIL import Image

from mosaic import cost_refine, errors
from mosaic.cost import Features, block_cost, prepare_features
from mosaic.cost_refine import (
    RefineStats,
    haar_basis,
    pca_basis,
    refine_features,
    refined_block_cost,
    refined_block_cost_stats,
)
from mosaic.features import tile_thumbnails, to_features
from mosaic.images import open_rgb, square_crop_boxes, thumbnails
from tests.conftest import PORTRAIT, SAMPLE_PHOTOS

TOLERANCE = 2e-6
KERNELS = ["c", "portable", "numpy"] if cost_refine.c_kernel_built() else ["numpy"]


def exact_costs(features: Features, tiles: np.ndarray, photos: np.ndarray,
                crops: np.ndarray) -> np.ndarray:
    """Float64 MSE of each (tile, photo, crop) triple."""
    dims = features.dims
    t = features.tiles[tiles].astype(np.float64)
    p = features.photos[photos, crops, :dims].astype(np.float64)
    return ((t - p) ** 2).sum(axis=1) / dims


def assert_same_as_block_cost(features: Features, cost: np.ndarray, crop: np.ndarray | None,
                              tiles=slice(None), photos=slice(None), weights=None) -> None:
    ref_cost, ref_crop = block_cost(features, tiles, photos, weights)
    assert cost.dtype == np.float32 and cost.shape == ref_cost.shape
    np.testing.assert_allclose(cost, ref_cost, rtol=0, atol=TOLERANCE)
    if ref_crop is None:
        assert crop is None
        return
    assert crop.dtype == np.uint8
    # A different crop is allowed only where the two candidates' exact costs tie.
    rows, cols = np.nonzero(crop != ref_crop)
    tile_idx = np.arange(features.n_tiles)[tiles][rows]
    photo_idx = np.arange(features.n_photos)[photos][cols]
    scale = 1.0 if weights is None else np.asarray(weights)[rows]
    ours = exact_costs(features, tile_idx, photo_idx, crop[rows, cols]) * scale
    theirs = exact_costs(features, tile_idx, photo_idx, ref_crop[rows, cols]) * scale
    assert np.all(np.abs(ours - theirs) <= TOLERANCE)


def random_features(n_tiles: int = 150, n_photos: int = 90, crops: int = 7, dims: int = 192,
                    seed: int = 0) -> Features:
    rng = np.random.default_rng(seed)
    tiles = rng.random((n_tiles, dims), dtype=np.float32)
    base = rng.random((n_photos, 1, dims), dtype=np.float32)
    # Crop candidates of one photo are similar, as real crops are: close bounds, real work.
    photos = np.clip(base + 0.15 * rng.standard_normal((n_photos, crops, dims)), 0, 1)
    return prepare_features(tiles, photos.astype(np.float32))


def window_candidates(image: Image.Image, rng: np.random.Generator, crops: int) -> np.ndarray:
    """K candidate thumbnails of a random window of a real photo, as the library cuts them."""
    width, height = image.size
    w = int(width * rng.uniform(0.5, 1.0))
    h = int(height * rng.uniform(0.5, 1.0))
    left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    window = image.crop((left, top, left + w, top + h))
    boxes = square_crop_boxes(*window.size, crops)
    return thumbnails(window, boxes + [boxes[0]] * (crops - len(boxes)), 16)


@pytest.fixture(scope="module")
def real_features() -> Features:
    """Lab 16x16 features: tiles of a real portrait, 7 crops of windows of real photos."""
    rng = np.random.default_rng(3)
    images = [open_rgb(path, draft_size=128) for path in SAMPLE_PHOTOS[::29][:30]]
    photos = np.stack([window_candidates(images[i % len(images)], rng, 7) for i in range(120)])
    target = open_rgb(PORTRAIT, draft_size=256)
    tiles = tile_thumbnails(target, (0, 0, *target.size), 12, 16, 16)
    return prepare_features(to_features(tiles, "lab"), to_features(photos, "lab"))


@pytest.fixture(scope="module")
def real_refine(real_features: Features) -> cost_refine.RefineFeatures:
    return refine_features(real_features)


@pytest.mark.parametrize("kernel", KERNELS)
def test_random_features_equal_block_cost(kernel):
    features = random_features()
    rf = refine_features(features, rank=16)
    cost, crop, stats = refined_block_cost_stats(rf, slice(None), slice(None), kernel=kernel)
    assert_same_as_block_cost(features, cost, crop)
    assert stats.pairs == features.n_tiles * features.n_photos
    assert stats.pairs <= stats.started <= stats.pairs * features.n_crops
    assert stats.hist.sum() == stats.pairs


@pytest.mark.parametrize("kernel", KERNELS)
def test_real_photos_equal_block_cost(real_features, real_refine, kernel):
    cost, crop, stats = refined_block_cost_stats(real_refine, slice(None), slice(None),
                                                 kernel=kernel)
    assert_same_as_block_cost(real_features, cost, crop)
    # The bounds are tight on real features: far fewer than K candidates refined per pair.
    assert stats.mean_refinements < 2.5


@pytest.mark.parametrize("rank", [1, 8, 100, 767])
def test_any_rank_and_segment_is_exact(real_features, rank):
    rf = refine_features(real_features, rank=rank, segment=48)
    cost, crop = refined_block_cost(rf, slice(0, 70), slice(10, 60))
    assert_same_as_block_cost(real_features, cost, crop, slice(0, 70), slice(10, 60))


def test_haar_basis_is_exact_too(real_features):
    rf = refine_features(real_features, rank=192, basis="haar")
    cost, crop = refined_block_cost(rf, slice(None), slice(None))
    assert_same_as_block_cost(real_features, cost, crop)


@pytest.mark.parametrize("kernel", KERNELS)
def test_weights(real_features, real_refine, kernel):
    rng = np.random.default_rng(4)
    weights = rng.uniform(0.1, 3.0, real_features.n_tiles)
    weights[5] = 0.0
    cost, crop, _ = refined_block_cost_stats(real_refine, slice(None), slice(None), weights,
                                             kernel=kernel)
    assert_same_as_block_cost(real_features, cost, crop, weights=weights)
    assert not cost[5].any()
    unweighted, crop_1 = refined_block_cost(real_refine, slice(None), slice(None))
    np.testing.assert_array_equal(crop, crop_1)  # weights scale costs, never choices
    np.testing.assert_allclose(cost, unweighted * weights[:, None].astype(np.float32),
                               rtol=1e-6)


def test_one_crop_is_one_exact_pass():
    features = random_features(crops=1)
    rf = refine_features(features, rank=12)
    cost, crop, stats = refined_block_cost_stats(rf, slice(3, 40), np.array([5, 1, 7]))
    assert crop is None
    np.testing.assert_array_equal(cost, block_cost(features, slice(3, 40),
                                                   np.array([5, 1, 7]))[0])
    assert stats.mean_refinements == 1.0


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("tiles", "photos"), [
    (slice(10, 120, 3), slice(5, 80)),
    (np.array([149, 0, 7, 7, 30]), np.array([88, 2, 2, 40])),
    (np.arange(150) % 3 == 0, slice(None, None, -1)),
    (slice(0, 0), slice(None)),
    (np.array([4]), np.array([9])),
])
def test_slices_and_index_arrays(kernel, tiles, photos):
    features = random_features(seed=5)
    rf = refine_features(features, rank=24)
    cost, crop, _ = refined_block_cost_stats(rf, tiles, photos, kernel=kernel)
    assert_same_as_block_cost(features, cost, crop, tiles, photos)


def test_blocks_larger_than_the_kernel_pieces(real_features, real_refine, monkeypatch):
    monkeypatch.setattr(cost_refine, "TILE_CHUNK", 37)
    monkeypatch.setattr(cost_refine, "PHOTO_PIECE", 11)
    cost, crop = refined_block_cost(real_refine, slice(None), slice(None))
    assert_same_as_block_cost(real_features, cost, crop)


def coarse_misleads() -> Features:
    """Tiles whose smallest-bound crop is not their best one.

    With the Haar basis at rank 3 the coarse part is each channel's mean. Candidate 0 has
    the tile's means and a residual of the tile's norm but opposite sign (bound 0, large
    cost); candidate 1 has slightly different means and the tile's residual (small bound,
    smaller cost).
    """
    rng = np.random.default_rng(6)
    tiles = np.full((20, 2, 2, 3), 0.5) + rng.uniform(-0.05, 0.05, (20, 1, 1, 3))
    detail = rng.uniform(-0.2, 0.2, (20, 2, 2, 3))
    detail -= detail.mean(axis=(1, 2), keepdims=True)  # no change of the means
    tiles = tiles + detail
    means = tiles.mean(axis=(1, 2), keepdims=True)
    crops = np.stack([means - detail, tiles + 0.02, means + 0.3 * detail], axis=1)
    return prepare_features(tiles.reshape(20, 12).astype(np.float32),
                            crops.reshape(20, 3, 12).astype(np.float32))


@pytest.mark.parametrize("kernel", KERNELS)
def test_refines_beyond_the_smallest_bound(kernel):
    features = coarse_misleads()
    rf = refine_features(features, rank=3, basis="haar")
    rows = rf.lb_rows(np.arange(20))
    bounds = (rows @ rf.photo_coarse.reshape(-1, 6).T).reshape(20, 20, 3)
    _, ref_crop = block_cost(features, slice(None), slice(None))
    diagonal = np.arange(20)
    assert (bounds[diagonal, diagonal].argmin(axis=1) == 0).all()  # the bound points at 0
    assert (ref_crop[diagonal, diagonal] == 1).all()  # but crop 1 wins
    cost, crop, stats = refined_block_cost_stats(rf, slice(None), slice(None), kernel=kernel)
    assert_same_as_block_cost(features, cost, crop)
    assert (crop[diagonal, diagonal] == 1).all()
    assert stats.started > stats.pairs and stats.hist[2:].sum() > 0


def test_kernels_agree(real_features, real_refine):
    if not cost_refine.c_kernel_built():
        pytest.skip("the C kernel is not built")
    results = {kernel: refined_block_cost_stats(real_refine, slice(None), slice(None),
                                                kernel=kernel) for kernel in KERNELS}
    cost, crop, stats = results["c"]
    for kernel in ("portable", "numpy"):
        other_cost, other_crop, other = results[kernel]
        np.testing.assert_allclose(other_cost, cost, rtol=0, atol=TOLERANCE)
        assert (other_crop != crop).mean() < 0.01  # only float32 ties may differ
        assert abs(other.started - stats.started) <= 0.01 * stats.pairs


def test_numpy_fallback_warns_once(real_features, real_refine, monkeypatch, caplog):
    monkeypatch.setattr(cost_refine, "_pairdot", None)
    monkeypatch.setattr(errors, "_warned_once", set())
    with caplog.at_level(logging.WARNING, logger="mosaic.cost_refine"):
        cost, crop = refined_block_cost(real_refine, slice(0, 50), slice(None))
        refined_block_cost(real_refine, slice(50, 60), slice(None))
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "not built" in caplog.records[0].message
    assert_same_as_block_cost(real_features, cost, crop, slice(0, 50))
    with pytest.raises(RuntimeError, match="not built"):
        refined_block_cost_stats(real_refine, slice(0, 5), slice(None), kernel="c")


def test_duplicate_candidates_are_skipped():
    features = random_features(n_photos=30, seed=7)
    photos = features.photos.copy()
    photos[:, 5] = photos[:, 0]  # the library pads square photos with the centre crop
    photos[:, 6] = photos[:, 2]
    features = Features(features.tiles, features.tile_sq, photos)
    rf = refine_features(features, rank=16)
    cost, crop, stats = refined_block_cost_stats(rf, slice(None), slice(None))
    assert_same_as_block_cost(features, cost, crop)
    assert not np.isin(crop, [5, 6]).any()  # the earlier twin wins the tie
    assert stats.hist[6:].sum() == 0  # duplicates are never refined


def test_threads_share_features(real_features, real_refine):
    expected = refined_block_cost(real_refine, slice(None), slice(None))
    stats = RefineStats()
    out: list = [None] * 4

    def work(n: int) -> None:
        out[n] = refined_block_cost_stats(real_refine, slice(None), slice(None),
                                          stats=stats)[:2]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for cost, crop in out:
        np.testing.assert_array_equal(cost, expected[0])
        np.testing.assert_array_equal(crop, expected[1])
    assert stats.pairs == 4 * expected[0].size


def test_bases_are_orthonormal_and_ordered(real_features):
    for basis in (pca_basis(real_features), haar_basis(768)):
        assert basis.dtype == np.float32
        np.testing.assert_allclose(basis.T.astype(np.float64) @ basis, np.eye(768), atol=1e-6)
    np.testing.assert_array_equal(pca_basis(real_features), pca_basis(real_features))
    # PCA: the first components carry the most variance.
    rotated = real_features.tiles @ pca_basis(real_features)
    variance = rotated.var(axis=0)
    assert variance[:10].sum() > variance[10:20].sum() > variance[-10:].sum()
    # Haar: the first 192 columns span the 2 x 2 block averages.
    haar = haar_basis(768)[:, :192].astype(np.float64)
    blocks = np.kron(np.eye(64), np.ones((4, 1))) / 2  # one (16x16)/(2x2) block per column
    pixel_of = (np.arange(256).reshape(8, 2, 8, 2).transpose(0, 2, 1, 3).reshape(-1))
    averages = np.zeros((768, 192))
    for c in range(3):
        averages[pixel_of * 3 + c, c::3] = blocks
    np.testing.assert_allclose(haar @ (haar.T @ averages), averages, atol=1e-6)


def test_rejects_bad_arguments(real_features):
    with pytest.raises(ValueError, match="rank"):
        refine_features(real_features, rank=768)
    with pytest.raises(ValueError, match="rank"):
        refine_features(real_features, rank=0)
    with pytest.raises(ValueError, match="segment"):
        refine_features(real_features, segment=0)
    with pytest.raises(ValueError, match="basis"):
        refine_features(real_features, basis="dct")
    with pytest.raises(ValueError, match="power of two"):
        haar_basis(3 * 36)
    rf = refine_features(real_features, rank=16)
    with pytest.raises(IndexError):
        refined_block_cost(rf, np.array([10_000]), slice(None))
