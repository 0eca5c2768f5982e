"""Block scoring against the dense cost matrix, the Dask block runner, memory sizes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mosaic.blocks import (
    MIN_BLOCK_TILES,
    BlockRunner,
    block_cost,
    chunks,
    dense_bytes,
    even_chunks,
    pair_cost,
    parse_memory,
    prepare_features,
    score_to_memmap,
)
from mosaic.cost import cost_matrix, mse_matrix
from mosaic.errors import MosaicError
from tests.large_problems import photo_features, tile_features, tile_weights

#: Block scoring and the dense reference differ by float32 rounding only (about 1.5e-7).
ATOL = 1e-5
GRID = (20, 24)


class CountingRunner(BlockRunner):
    """A local runner that remembers how many tasks each ``run`` got."""

    def __init__(self, threads: int = 2) -> None:
        super().__init__(threads=threads)
        self.task_counts: list[int] = []

    def run(self, function, tasks, window=None):
        self.task_counts.append(len(tasks))
        yield from super().run(function, tasks, window)


def problem(crops: int) -> tuple[np.ndarray, np.ndarray]:
    """480 Obama tiles and 854 real photos, with ``crops`` candidates (1: one row each)."""
    photos = photo_features()
    return tile_features(*GRID), (photos[:, 0] if crops == 1 else photos[:, :crops])


def all_crop_costs(tiles: np.ndarray, photos: np.ndarray) -> np.ndarray:
    """Dense cost of every tile against every crop candidate, shape (T, P, K)."""
    return mse_matrix(tiles, photos.reshape(-1, photos.shape[-1])).reshape(
        tiles.shape[0], photos.shape[0], photos.shape[1])


def check_best_crops(tiles: np.ndarray, photos: np.ndarray, crop: np.ndarray,
                     cost: np.ndarray) -> None:
    """``crop`` is the cheapest candidate wherever the two cheapest are not tied."""
    cube = all_crop_costs(tiles, photos)
    ordered = np.sort(cube, axis=2)
    clear = ordered[..., 1] - ordered[..., 0] > ATOL
    assert clear.mean() > 0.95  # the check below must cover almost every pair
    np.testing.assert_array_equal(crop[clear], cube.argmin(axis=2)[clear])
    # Tied or not, the reported crop costs what the reported cost says.
    chosen = np.take_along_axis(cube, crop[..., None].astype(np.int64), axis=2)[..., 0]
    np.testing.assert_allclose(chosen, cost, atol=ATOL, rtol=0)


@pytest.mark.parametrize("crops", [1, 7])
@pytest.mark.parametrize(("max_memory", "min_blocks"), [
    (1, 30),            # every block at the 16-tile minimum: 480 / 16 = 30 blocks
    (3 * 10**6, 3),     # a few blocks of ~100 tiles
    (10**10, 1),        # everything in one block
])
def test_score_to_memmap_equals_dense(tmp_path: Path, crops: int, max_memory: int,
                                      min_blocks: int) -> None:
    """The memory-mapped matrix equals cost_matrix for any block size, crops included."""
    tiles, photos = problem(crops)
    expected, expected_crop = cost_matrix(tiles, photos)
    runner = CountingRunner(threads=2)
    path = tmp_path / "cost.npy"
    cost, crop = score_to_memmap(prepare_features(tiles, photos), path, max_memory, runner,
                                 with_crops=True)
    assert runner.task_counts and runner.task_counts[0] >= min_blocks
    if max_memory == 1:
        assert runner.task_counts[0] == -(-tiles.shape[0] // MIN_BLOCK_TILES)
    assert cost.shape == expected.shape and cost.dtype == np.float32
    np.testing.assert_allclose(cost, expected, atol=ATOL, rtol=0)
    # The file is a valid .npy holding the same matrix.
    loaded = np.load(path)
    assert loaded.dtype == np.float32 and loaded.shape == expected.shape
    np.testing.assert_array_equal(loaded, np.asarray(cost))
    if crops == 1:
        assert crop is None and expected_crop is None
        assert not Path(str(path) + ".crop").exists()
    else:
        assert crop is not None and crop.dtype == np.uint8
        np.testing.assert_array_equal(np.load(str(path) + ".crop"), np.asarray(crop))
        check_best_crops(tiles, photos, np.asarray(crop), expected)


def test_score_to_memmap_without_crops_flag(tmp_path: Path) -> None:
    """with_crops=False stores only the (minimum over crops) cost matrix."""
    tiles, photos = problem(3)
    cost, crop = score_to_memmap(prepare_features(tiles, photos), tmp_path / "c.npy", 10**6,
                                 BlockRunner(threads=2))
    assert crop is None
    assert not (tmp_path / "c.npy.crop").exists()
    np.testing.assert_allclose(cost, cost_matrix(tiles, photos)[0], atol=ATOL, rtol=0)


@pytest.mark.parametrize("crops", [1, 7])
def test_block_cost_on_index_blocks_and_weights(crops: int) -> None:
    """Any block of tiles x photos, weighted or not, matches the dense matrix entries."""
    tiles, photos = problem(crops)
    expected, _ = cost_matrix(tiles, photos)
    features = prepare_features(tiles, photos)
    rng = np.random.default_rng(crops)
    weights = tile_weights(tiles.shape[0], seed=crops)
    blocks = [
        (slice(0, 16), slice(0, photos.shape[0])),
        (slice(100, 357), slice(400, 854)),
        (np.sort(rng.choice(tiles.shape[0], 50, replace=False)),
         rng.choice(photos.shape[0], 300, replace=False)),  # unsorted photo indices
    ]
    for tile_idx, photo_idx in blocks:
        want = expected[tile_idx][:, photo_idx]
        cost, crop = block_cost(features, tile_idx, photo_idx)
        assert cost.dtype == np.float32 and cost.shape == want.shape
        np.testing.assert_allclose(cost, want, atol=ATOL, rtol=0)
        assert (crop is None) == (crops == 1)
        w = weights[tile_idx]
        weighted, weighted_crop = block_cost(features, tile_idx, photo_idx, w)
        np.testing.assert_allclose(weighted, w[:, None] * want, atol=3 * ATOL, rtol=0)
        if crop is not None:
            check_best_crops(tiles[tile_idx], photos[photo_idx], crop, want)
            check_best_crops(tiles[tile_idx], photos[photo_idx], weighted_crop, want)


@pytest.mark.parametrize("crops", [1, 7])
def test_pair_cost_equals_dense_entries(crops: int) -> None:
    """pair_cost gives the dense entries and winning crops of the listed pairs only."""
    tiles, photos = problem(crops)
    expected, expected_crop = cost_matrix(tiles, photos)
    features = prepare_features(tiles, photos)
    rng = np.random.default_rng(5)
    tile_idx = rng.integers(0, tiles.shape[0], 5000)
    photo_idx = rng.integers(0, photos.shape[0], 5000)
    cost, crop = pair_cost(features, tile_idx, photo_idx, chunk=777)  # several chunks
    assert cost.dtype == np.float32 and crop.dtype == np.uint8 and cost.shape == (5000,)
    np.testing.assert_allclose(cost, expected[tile_idx, photo_idx], atol=ATOL, rtol=0)
    if crops == 1:
        assert not crop.any()
    else:
        cube = all_crop_costs(tiles, photos)[tile_idx, photo_idx]
        ordered = np.sort(cube, axis=1)
        clear = ordered[:, 1] - ordered[:, 0] > ATOL
        assert clear.mean() > 0.95
        np.testing.assert_array_equal(crop[clear], expected_crop[tile_idx, photo_idx][clear])


def test_prepare_features_rejects_bad_input() -> None:
    """Mismatched lengths, wrong dimensions and integer features are refused."""
    tiles = np.zeros((4, 6), dtype=np.float32)
    with pytest.raises(ValueError, match="lengths differ"):
        prepare_features(tiles, np.zeros((5, 7), dtype=np.float32))
    with pytest.raises(ValueError, match="bad feature shapes"):
        prepare_features(tiles[0], np.zeros((5, 6), dtype=np.float32))
    with pytest.raises(ValueError, match="floating point"):
        prepare_features(tiles, np.zeros((5, 6), dtype=np.uint8))
    features = prepare_features(tiles, np.zeros((5, 3, 6), dtype=np.float64))
    assert (features.n_tiles, features.n_photos, features.n_crops, features.dims) == (4, 5, 3, 6)


def _meet(barrier: threading.Barrier, index: int, delay: float) -> tuple[int, int]:
    barrier.wait()  # fails (timeout) unless two tasks really run at the same time
    time.sleep(delay)
    return index, index * index


@pytest.mark.parametrize("window", [None, 2, 4])
def test_block_runner_local_threads_results_in_order(window: int | None) -> None:
    """Two local threads run tasks concurrently; results come back with their index, in order."""
    runner = BlockRunner(threads=2)
    assert runner.workers == 2
    barrier = threading.Barrier(2, timeout=20)
    # Later tasks finish first within each pair, so an unordered runner would show it.
    tasks = [(barrier, i, 0.02 * (1 - i % 2)) for i in range(10)]
    results = list(runner.run(_meet, tasks, window=window))
    assert [index for index, _ in results] == list(range(10))
    assert [value for _, value in results] == [(i, i * i) for i in range(10)]


def test_block_runner_no_tasks_and_share() -> None:
    """No tasks yield nothing; locally, shared values are passed through unchanged."""
    runner = BlockRunner(threads=1)
    assert list(runner.run(_meet, [])) == []
    value = np.arange(3)
    assert runner.share(value) is value
    assert BlockRunner(threads=0).workers >= 1


@pytest.mark.parametrize(("text", "expected"), [
    ("4GB", 4 * 10**9),
    ("512MB", 512 * 10**6),
    ("1.5 GiB", 3 * 2**29),
    ("1.5GiB", 3 * 2**29),
    ("8G", 8 * 10**9),
    ("  2 kib ", 2048),
    ("100", 100),
    ("0.5TB", 5 * 10**11),
    (".5gb", 5 * 10**8),
    (4096, 4096),
    (2.5e9, 2_500_000_000),
])
def test_parse_memory(text: str | int | float, expected: int) -> None:
    """Decimal and binary units, spaces, case and plain numbers."""
    value = parse_memory(text)
    assert value == expected
    assert isinstance(value, int)


@pytest.mark.parametrize("text", ["lots", "4 parsecs", "GB", "", "-4GB", "4 GB free", "1e9",
                                  "4,5GB"])
def test_parse_memory_nonsense(text: str) -> None:
    """Nonsense is refused with a message that shows the value and valid examples."""
    with pytest.raises(MosaicError, match=r"is not understood: use e\.g\. 4GB"):
        parse_memory(text)


@pytest.mark.parametrize("value", [0, -1, "0GB", "0.1"])
def test_parse_memory_not_positive(value: str | int) -> None:
    """Zero, negative or less than a byte is refused."""
    with pytest.raises(MosaicError, match="must be positive"):
        parse_memory(value)


@pytest.mark.parametrize(("count", "size"), [(0, 3), (1, 5), (10, 3), (12, 4), (7, 100), (5, 0)])
def test_chunks_cover_range(count: int, size: int) -> None:
    """chunks() cuts range(count) into consecutive pieces of at most size."""
    pieces = chunks(count, size)
    covered = [i for start, stop in pieces for i in range(start, stop)]
    assert covered == list(range(count))
    assert all(0 < stop - start <= max(1, size) for start, stop in pieces)


@pytest.mark.parametrize(("count", "pieces"), [(10, 3), (10, 4), (7, 7), (3, 10), (100, 9),
                                                (5, 0)])
def test_even_chunks_nearly_equal(count: int, pieces: int) -> None:
    """even_chunks() covers range(count) with min(pieces, count) parts differing by <= 1."""
    parts = even_chunks(count, pieces)
    assert [i for start, stop in parts for i in range(start, stop)] == list(range(count))
    assert len(parts) == max(1, min(pieces, count))
    sizes = [stop - start for start, stop in parts]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_dense_bytes() -> None:
    """The dense estimate holds the float32 matrix, a crop matrix only with candidates."""
    plain = dense_bytes(1000, 2000)
    solver = plain - 4 * 1000 * 2000
    assert 0 < solver < 0.1 * plain
    assert dense_bytes(2000, 4000) - 4 * 2000 * 4000 == 2 * solver  # work arrays: linear
    assert dense_bytes(1000, 2000, crops=7) == plain + 1000 * 2000


def test_score_to_memmap_coarse_to_fine_gives_the_same_matrix(tmp_path: Path) -> None:
    from mosaic.cost_refine import refine_features

    rng = np.random.default_rng(21)
    base = rng.random((60, 48), dtype=np.float32)
    tiles = base[:37] + rng.normal(0, 0.05, (37, 48)).astype(np.float32)
    photos = np.clip(base[rng.integers(0, 60, 90)][:, None, :]
                     + rng.normal(0, 0.1, (90, 5, 48)).astype(np.float32), 0, 1)
    features = prepare_features(tiles, photos)
    cost, crop = score_to_memmap(features, tmp_path / "a.npy", 10**6, with_crops=True)
    fine, fine_crop = score_to_memmap(refine_features(features, rank=8), tmp_path / "b.npy",
                                      10**6, with_crops=True)
    np.testing.assert_allclose(fine, cost, atol=2e-6)
    assert fine_crop is not None and crop is not None
    differ = fine_crop != crop  # only where two crops tie within rounding
    assert differ.mean() < 0.01
