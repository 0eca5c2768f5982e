"""Real-feature problems for the block scoring and regional tests.

Photo features come from the bundled sample JPEGs (every photo, its seven square crop
candidates, 8 x 8 CIELAB thumbnails); tile features from the Obama target cut into a
grid. Everything is computed once per test session (about 2 s) and returned read-only.
"""

from __future__ import annotations

import functools

import numpy as np

from mosaic.features import tile_thumbnails, to_features
from mosaic.images import open_rgb, square_crop_boxes, thumbnails
from tests.conftest import SAMPLE_PHOTOS, SAMPLES

THUMB = 8
CROPS = 7
TARGET = SAMPLES / "targets" / "obama.jpg"


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@functools.cache
def photo_features() -> np.ndarray:
    """Features of every sample photo's crop candidates, shape (854, 7, 192), float32."""
    thumbs = []
    for path in SAMPLE_PHOTOS:
        image = open_rgb(path, draft_size=4 * THUMB)
        boxes = square_crop_boxes(*image.size, CROPS)
        boxes += [boxes[0]] * (CROPS - len(boxes))
        thumbs.append(thumbnails(image, boxes, THUMB))
    return _frozen(to_features(np.stack(thumbs), "lab"))


def distinct_photos(crops: int) -> np.ndarray:
    """The first ``crops`` candidates of every photo as separate photos, (854 * crops, 192)."""
    return _frozen(np.ascontiguousarray(photo_features()[:, :crops].reshape(-1, THUMB**2 * 3)))


@functools.cache
def tile_features(rows: int, cols: int) -> np.ndarray:
    """Features of the Obama target cut into ``rows x cols`` tiles (row by row)."""
    image = open_rgb(TARGET)
    thumbs = tile_thumbnails(image, (0, 0, *image.size), rows, cols, THUMB)
    return _frozen(to_features(thumbs, "lab"))


def tile_weights(count: int, seed: int = 0) -> np.ndarray:
    """Tile importance weights in [0.5, 3], as face weighting produces."""
    return np.random.default_rng(seed).uniform(0.5, 3.0, count)
