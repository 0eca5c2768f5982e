"""The measures of ``make bench-quality`` (benchmarks/quality_figures.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmarks import quality_figures as qf


def _noise(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    return Image.fromarray(pixels)


def test_identical_images_have_no_error_and_full_similarity() -> None:
    image = _noise(1)
    masks = {"hand": np.ones((3, 4), dtype=bool)}
    out = qf.figures(image, image, 3, 4, masks)
    assert out["tile_mse"] == 0.0
    assert out["ciede2000"] == pytest.approx(0.0, abs=1e-9)
    assert out["ssim"] == pytest.approx(1.0)
    assert out["face_hand"] == 0.0


def test_face_tile_error_is_the_mean_over_the_masked_tiles_only() -> None:
    target = Image.new("RGB", (40, 20), (0, 0, 0))
    mosaic = target.copy()
    mosaic.paste((255, 255, 255), (0, 0, 10, 10))  # the top-left tile of a 2x4 grid
    mask = np.zeros((2, 4), dtype=bool)
    mask[0, 0] = True
    out = qf.figures(mosaic, target, 2, 4, {"hand": mask, "haar": ~mask})
    assert out["face_hand"] == pytest.approx(1.0)
    assert out["face_haar"] == 0.0
    assert out["tile_mse"] == pytest.approx(1 / 8)
    assert out["ciede2000"] > 10


def test_no_face_gives_nan_not_zero() -> None:
    image = _noise(2)
    out = qf.figures(image, _noise(3), 3, 4, {"haar": np.zeros((3, 4), dtype=bool)})
    assert np.isnan(out["face_haar"])


def test_face_tiles_grow_the_box_to_the_head_inside_the_region() -> None:
    # A 20 x 20 face at (110, 140) in a region starting at (100, 100), 10 px tiles: the
    # head grows 3 px to each side, 9 px up and 2 px down: columns 0-3, rows 3-6.
    tiles = qf.face_tiles([(110, 140, 130, 160)], (100, 100, 200, 200), 10, 10)
    rows, cols = np.nonzero(tiles)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 6, 0, 3)
    assert not qf.face_tiles([], (0, 0, 10, 10), 2, 2).any()


def test_mosaic_of_the_wrong_size_is_refused(tmp_path) -> None:
    path = tmp_path / "m.png"
    _noise(4, (30, 20)).save(path)
    with pytest.raises(qf.MeasureError, match="expected"):
        qf.load_mosaic(path, 2, 3, 11)
    assert qf.load_mosaic(path, 2, 3, 10).size == (30, 20)


def test_hand_faces_include_the_optional_ones() -> None:
    assert len(qf.hand_faces("bar55")) == 11
    assert qf.hand_faces("landscape-kite") == []
