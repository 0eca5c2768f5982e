import numpy as np
import pytest
from skimage.metrics import mean_squared_error

from mosaic.cost import block_cost, cost_matrix, mse_matrix, pair_cost, prepare_features
from mosaic.features import scaled_lab, to_features


@pytest.mark.parametrize("metric", ["rgb", "lab"])
def test_cost_equals_skimage_mse_pair_by_pair(metric):
    rng = np.random.default_rng(1)
    tiles = rng.integers(0, 256, (13, 16, 16, 3), dtype=np.uint8)
    photos = rng.integers(0, 256, (17, 16, 16, 3), dtype=np.uint8)
    photos[3] = tiles[5]  # an identical pair: cost exactly 0
    # Near-uniform images stress float32 cancellation.
    tiles[0] = 128
    photos[0] = 129
    cost, crops = cost_matrix(to_features(tiles, metric), to_features(photos, metric))
    assert crops is None and cost.shape == (13, 17) and cost.dtype == np.float32
    if metric == "rgb":
        images_t, images_p = tiles / 255.0, photos / 255.0
    else:
        images_t, images_p = scaled_lab(tiles).astype(np.float64), scaled_lab(photos).astype(
            np.float64)
    for t in range(13):
        for p in range(17):
            assert abs(cost[t, p] - mean_squared_error(images_t[t], images_p[p])) < 1e-6
    assert cost[5, 3] == pytest.approx(0.0, abs=1e-7)
    assert (cost >= 0).all() and (cost <= 1).all()


def test_opposite_images_cost_one():
    black = np.zeros((1, 4, 4, 3), np.uint8)
    white = np.full((1, 4, 4, 3), 255, np.uint8)
    cost, _ = cost_matrix(to_features(black, "rgb"), to_features(white, "rgb"))
    assert cost[0, 0] == pytest.approx(1.0)


def test_blocks_equal_dense_and_crops_take_the_minimum():
    rng = np.random.default_rng(2)
    tiles = rng.random((20, 48), dtype=np.float32)
    photos = rng.random((30, 3, 48), dtype=np.float32)
    cost, best = cost_matrix(tiles, photos, block=7)
    per_crop = np.stack([mse_matrix(tiles, photos[:, k]) for k in range(3)], axis=2)
    np.testing.assert_allclose(cost, per_crop.min(axis=2), atol=1e-6)
    np.testing.assert_array_equal(best, per_crop.argmin(axis=2))
    single, _ = cost_matrix(tiles, photos[:, 0], block=4096)
    np.testing.assert_allclose(single, per_crop[:, :, 0], atol=1e-6)


def test_dense_path_is_the_block_kernel():
    """cost_matrix and mse_matrix are the block kernel on the prepared features, bit for bit."""
    rng = np.random.default_rng(3)
    tiles = rng.random((25, 48), dtype=np.float32)
    photos = rng.random((40, 3, 48), dtype=np.float32)
    features = prepare_features(tiles, photos)
    cost, best = cost_matrix(tiles, photos)
    want, want_best = block_cost(features, slice(None), slice(None))
    np.testing.assert_array_equal(cost, want)
    np.testing.assert_array_equal(best, want_best)
    single = prepare_features(tiles, photos[:, 1])
    np.testing.assert_array_equal(mse_matrix(tiles, photos[:, 1]),
                                  block_cost(single, slice(None), slice(None))[0])
    # The same pairs scored one by one: the same formula, up to float32 rounding.
    t, p = np.divmod(np.arange(25 * 40), 40)
    pairs, _ = pair_cost(features, t, p)
    np.testing.assert_allclose(pairs, cost.ravel(), atol=1e-6, rtol=0)


def test_progress_is_reported_per_block():
    seen = []
    cost_matrix(np.zeros((2, 3), np.float32), np.zeros((10, 3), np.float32), block=4,
                progress=seen.append)
    assert seen == [4, 4, 2]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="feature lengths differ"):
        mse_matrix(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        to_features(np.zeros((2, 4, 4, 3), np.float32), "rgb")


def test_lab_features_are_in_unit_range():
    every = np.stack(np.meshgrid(*[np.arange(0, 256, 15)] * 3), -1).reshape(-1, 1, 1, 3)
    features = to_features(every.astype(np.uint8), "lab")
    assert features.min() >= 0 and features.max() <= 1


def test_lab_features_are_exactly_skimages_rgb2lab():
    from skimage.color import rgb2lab

    levels = np.r_[np.arange(0, 256, 3), 254, 255]  # all 2^24 colours pass too (11 s)
    every = np.stack(np.meshgrid(*[levels] * 3, indexing="ij"), -1)
    every = every.reshape(-1, 64, 3).astype(np.uint8)
    lab = rgb2lab(every.astype(np.float32) / 255.0)
    expected = np.empty(lab.shape, dtype=np.float32)
    expected[..., 0] = lab[..., 0] / 100.0
    expected[..., 1:] = (lab[..., 1:] + 128.0) / 255.0
    np.clip(expected, 0.0, 1.0, out=expected)
    assert np.array_equal(scaled_lab(every), expected)


@pytest.mark.parametrize("crops", [1, 3])
def test_thumb_features_equal_prepared_features_in_chunks(crops):
    from mosaic.cost import thumb_features

    rng = np.random.default_rng(5)
    tiles = rng.integers(0, 256, (9, 4, 4, 3), dtype=np.uint8)
    shape = (23, crops, 4, 4, 3) if crops > 1 else (23, 4, 4, 3)
    photos = rng.integers(0, 256, shape, dtype=np.uint8)
    expected = prepare_features(to_features(tiles, "lab"), to_features(photos, "lab"))
    built = thumb_features(tiles, photos, "lab", chunk=5)
    assert built.photos.shape == expected.photos.shape
    for name in ("tiles", "tile_sq", "photos"):
        np.testing.assert_allclose(getattr(built, name), getattr(expected, name), atol=1e-6)


@pytest.mark.parametrize("photos", [slice(None), slice(3, 40), slice(2, 40, 3),
                                    np.array([39, 0, 7, 7, 12, 25, 1])])
def test_block_cost_in_photo_chunks_is_the_same(monkeypatch, photos):
    import mosaic.cost

    rng = np.random.default_rng(8)
    features = prepare_features(rng.random((11, 12), dtype=np.float32),
                                rng.random((41, 3, 12), dtype=np.float32))
    whole, whole_crop = block_cost(features, slice(None), photos)
    monkeypatch.setattr(mosaic.cost, "KERNEL_BYTES", 11 * 3 * 4 * 4)  # 4 photos a chunk
    cost, crop = block_cost(features, slice(None), photos)
    np.testing.assert_allclose(cost, whole, atol=1e-6)
    assert cost.shape == whole.shape and np.array_equal(crop, whole_crop)


@pytest.mark.parametrize("strength", [0.0, 0.3, 0.5])
def test_priced_colour_correction_is_the_error_left_after_the_shift(strength):
    """``mean_kept = 1 - S``: each cost is the MSE once the photo's mean colour has moved
    ``S`` of the way to the tile's, as ``--color-correct S`` draws it (best crop kept)."""
    from mosaic.cost import thumb_features

    rng = np.random.default_rng(4)
    tiles = rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    photos = rng.integers(0, 256, (6, 2, 4, 4, 3), dtype=np.uint8)
    cost, crop = block_cost(thumb_features(tiles, photos, "rgb", mean_kept=1.0 - strength),
                            slice(None), slice(None))
    cells, candidates = tiles / 255.0, photos / 255.0
    for t in range(5):
        for p in range(6):
            left = [mean_squared_error(cells[t], candidate + strength * (
                cells[t].mean(axis=(0, 1)) - candidate.mean(axis=(0, 1))))
                for candidate in candidates[p]]
            assert cost[t, p] == pytest.approx(min(left), abs=1e-6)
            assert crop[t, p] == int(np.argmin(left))
