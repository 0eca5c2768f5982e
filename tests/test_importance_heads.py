"""Whole-face weights on a real group photo: forehead, hair and ears weigh as the face.

A face tile is any tile showing part of a face (forehead to chin, ear to ear, hair
included); the FaceMesh hull stops at the brows and cheeks, so these tests look at
tiles the hull does not reach. They fail with the old per-pixel mean over the hull.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mosaic import importance
from mosaic.images import open_rgb
from mosaic.importance import Detection
from mosaic.importance.heads import head_ellipses, rectangles_touching, tiles_touching

GROUP = Path(__file__).resolve().parent / "data" / "qt-logo.jpg"  # three men, 800 x 542
ROWS, COLS = 30, 40  # the grid of `mosaic weights --grid 40x30`


@pytest.fixture(scope="module")
def group() -> tuple[Image.Image, Detection]:
    image = open_rgb(GROUP)
    return image, importance.detect_people(image)


def _tile_at(x: float, y: float, crop: tuple[int, int, int, int], rows: int, cols: int
             ) -> int:
    """Index of the tile holding point (x, y) of the target."""
    left, top, right, bottom = crop
    col = int((x - left) // ((right - left) / cols))
    row = int((y - top) // ((bottom - top) / rows))
    return row * cols + col


def test_forehead_hair_and_ear_tiles_get_the_full_face_weight(group):
    image, found = group
    assert found.faces_found == 3
    crop = (0, 0, image.width, image.height)
    weights = importance.tile_weights(found, crop, ROWS, COLS)
    hull, _ = importance.tile_fractions(found, crop, ROWS, COLS)
    for left, top, right, bottom in found.faces:
        width, height = right - left, bottom - top
        middle = (top + bottom) / 2
        points = {"hair above the forehead": ((left + right) / 2, top - 0.2 * height),
                  "left ear": (left - 0.07 * width, middle),
                  "right ear": (right + 0.07 * width, middle)}
        for where, (x, y) in points.items():
            tile = _tile_at(x, y, crop, ROWS, COLS)
            # Not covered by the hull, so a mean over the tile's pixels stays below W...
            assert hull[tile] < 1.0, where
            # ...but the tile shows the head: it weighs as the face.
            assert weights[tile] == importance.DEFAULT_FACE_WEIGHT, where
    hair = [_tile_at((left + right) / 2, top - 0.2 * (bottom - top), crop, ROWS, COLS)
            for left, top, right, bottom in found.faces]
    assert hull[hair].max() == 0.0  # the hair tiles hold no hull at all


def test_a_tile_just_touching_the_head_gets_the_full_weight(group):
    image, found = group
    # The leftmost face's head ellipse; a crop whose tile edges fall so that one tile
    # overlaps the ellipse's leftmost point by under a pixel.
    cx, cy, rx, _ = min(head_ellipses(found.faces), key=lambda e: e[0] - e[2])
    edge = math.floor(cx - rx) + 1  # a tile's right edge, 0-1 px inside the head
    side, rows, cols = 18, 30, 30
    crop = (edge - 5 * side, 0, edge - 5 * side + cols * side, rows * side)
    assert crop[0] >= 0 and crop[2] <= image.width and crop[3] <= image.height
    row = int(cy // side)
    touching, outside = row * cols + 4, row * cols + 3
    assert tiles_touching(head_ellipses(found.faces), crop, rows, cols)[touching]
    weights = importance.tile_weights(found, crop, rows, cols)
    assert weights[touching] == importance.DEFAULT_FACE_WEIGHT
    # One tile further out: the soft border, above 1 but well under the face weight.
    assert 1.0 < weights[outside] < importance.DEFAULT_FACE_WEIGHT - 0.5


def test_tiles_far_from_every_face_fall_back_to_one_or_the_person_weight(group):
    image, found = group
    crop = (0, 0, image.width, image.height)
    person_weight = importance.DEFAULT_PERSON_WEIGHT
    weights = importance.tile_weights(found, crop, ROWS, COLS, falloff_tiles=0.0)
    heads = tiles_touching(head_ellipses(found.faces), crop, ROWS, COLS)
    assert (weights[heads] == importance.DEFAULT_FACE_WEIGHT).all()
    tile_h, tile_w = image.height / ROWS, image.width / COLS
    persons = np.array([found.person_mask[round(r * tile_h):round((r + 1) * tile_h),
                                          round(c * tile_w):round((c + 1) * tile_w)].any()
                        for r in range(ROWS) for c in range(COLS)])
    far = ~heads
    assert far.sum() > 600 and (far & persons).any() and (far & ~persons).any()
    np.testing.assert_array_equal(weights[far & persons], person_weight)
    np.testing.assert_array_equal(weights[far & ~persons], 1.0)
    # With the default fall-off, the border is soft but never above the face weight.
    soft = importance.tile_weights(found, crop, ROWS, COLS)
    assert (soft[far] < importance.DEFAULT_FACE_WEIGHT).all() and (soft >= weights).all()


def test_rectangles_touching_is_exact_at_the_edge():
    ellipse = np.array([[10.0, 10.0, 4.0, 2.0]])  # x 6-14, y 8-12
    edges = np.array([0.0, 5.99, 6.01, 20.0])
    touched = rectangles_touching(ellipse, edges, np.array([9.0, 11.0]))
    assert touched.tolist() == [[False, True, True]]
    corner = rectangles_touching(ellipse, np.array([12.9, 14.0]), np.array([11.0, 12.0]))
    # (12.9, 11): ((2.9 / 4) ** 2 + (1 / 2) ** 2) = 0.776 < 1: the corner is inside.
    assert corner.tolist() == [[True]]
    apart = rectangles_touching(ellipse, np.array([13.5, 14.0]), np.array([11.5, 12.0]))
    assert apart.tolist() == [[False]]  # (3.5/4)^2 + (1.5/2)^2 = 1.33
