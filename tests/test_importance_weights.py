"""Tile weights: the fall-off formula, tile classes, the weighted objective."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mosaic import importance
from mosaic.assign.exact import assign_optimal
from mosaic.assign.greedy import assign_greedy
from mosaic.assign.lp import assign_lp_highs
from mosaic.errors import MosaicError
from mosaic.importance import Detection


def _detection(face: np.ndarray, person: np.ndarray | None = None) -> Detection:
    boxes = []
    if face.any():
        ys, xs = np.nonzero(face)
        boxes = [(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)]
    return Detection(face, face if person is None else person, boxes)


def _brute_pixel_weights(mask: np.ndarray, weight: float, length: float) -> np.ndarray:
    """The formula pixel by pixel: distance to the nearest labelled pixel centre."""
    labelled = np.argwhere(mask)
    out = np.ones(mask.shape)
    for y, x in itertools.product(range(mask.shape[0]), range(mask.shape[1])):
        d = np.sqrt(((labelled - (y, x)) ** 2).sum(axis=1)).min()
        out[y, x] = 1 + (weight - 1) * math.exp(-d / length) if length > 0 else (
            weight if d == 0 else 1.0)
    return out


def test_falloff_weights_exact_values():
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    w = importance.falloff_weights(mask, 5.0, 2.0)
    assert w[4, 4] == 5.0
    assert w[4, 7] == pytest.approx(1 + 4 * math.exp(-3 / 2), abs=1e-12)
    assert w[0, 1] == pytest.approx(1 + 4 * math.exp(-5 / 2), abs=1e-12)  # a 3-4-5 triangle
    np.testing.assert_allclose(w, _brute_pixel_weights(mask, 5.0, 2.0), atol=1e-12)
    stretched = importance.falloff_weights(mask, 5.0, 2.0, sampling=(1.0, 2.0))
    assert stretched[4, 6] == pytest.approx(1 + 4 * math.exp(-4 / 2), abs=1e-12)
    step = importance.falloff_weights(mask, 5.0, 0.0)
    assert step[4, 4] == 5.0 and step.sum() == 5.0 + 80
    np.testing.assert_array_equal(importance.falloff_weights(np.zeros((3, 3), bool), 9, 1),
                                  np.ones((3, 3)))
    np.testing.assert_array_equal(importance.falloff_weights(mask, 1.0, 1.0), np.ones((9, 9)))


def _tile_max(pixels: np.ndarray) -> np.ndarray:
    """The largest pixel of each 8 x 8 tile of a (40, 40) array, row by row."""
    return pixels.reshape(5, 8, 5, 8).max(axis=(1, 3)).ravel()


@pytest.mark.parametrize("falloff", [0.0, 0.25, 1.0])
def test_tile_weights_are_tile_maxima_of_the_formula(falloff):
    # 40 x 40 target, 5 x 5 tiles of 8 px, 8 samples per tile: cells are pixels, so the
    # result must equal the formula evaluated pixel by pixel, maximum per tile. With
    # head_scale 0 the head is the ellipse inscribed in the face box, inside the mask.
    face = np.zeros((40, 40), bool)
    face[16:24, 18:26] = True
    person = face.copy()
    person[24:40, 12:30] = True
    found = _detection(face, person)
    got = importance.tile_weights(found, (0, 0, 40, 40), 5, 5, "faces+people", 6.0, 2.0,
                                  falloff, head_scale=0.0)
    length = falloff * 8
    pixels = np.maximum(_brute_pixel_weights(face, 6.0, length),
                        _brute_pixel_weights(person, 2.0, length))
    np.testing.assert_allclose(got, _tile_max(pixels), rtol=0, atol=1e-12)
    faces_only = importance.tile_weights(found, (0, 0, 40, 40), 5, 5, "faces", 6.0, 2.0,
                                         falloff, head_scale=0.0)
    np.testing.assert_allclose(faces_only, _tile_max(_brute_pixel_weights(face, 6.0, length)),
                               atol=1e-12)
    people_only = importance.tile_weights(found, (0, 0, 40, 40), 5, 5, "people", 6.0, 2.0,
                                          falloff, head_scale=0.0)
    assert people_only.max() == pytest.approx(2.0)
    np.testing.assert_array_equal(
        importance.tile_weights(found, (0, 0, 40, 40), 5, 5, "none", 6.0, 2.0, falloff),
        np.ones(25))


def test_tile_weights_see_a_face_just_outside_the_crop():
    face = np.zeros((40, 64), bool)
    face[16:24, 44:52] = True
    found = _detection(face)
    crop = (0, 0, 40, 40)  # the face is 4 px right of the crop's edge
    got = importance.tile_weights(found, crop, 5, 5, "faces", 5.0, 1.0, 1.0, head_scale=0.0)
    np.testing.assert_allclose(got, _tile_max(_brute_pixel_weights(face, 5.0, 8.0)[:, :40]),
                               atol=1e-12)
    assert got.reshape(5, 5)[2, 4] > 3.0


def test_tile_weights_at_reduced_resolution_stay_close():
    face = np.zeros((160, 160), bool)
    yy, xx = np.mgrid[:160, :160]
    face[(yy - 70) ** 2 + (xx - 90) ** 2 < 25 ** 2] = True
    found = _detection(face)
    fine = importance.tile_weights(found, (0, 0, 160, 160), 5, 5, "faces", 4.0, 1.0, 0.5,
                                   samples_per_tile=32)
    coarse = importance.tile_weights(found, (0, 0, 160, 160), 5, 5, "faces", 4.0, 1.0, 0.5,
                                     samples_per_tile=8)
    # Distances are measured between cells (to 1/8 tile at 8 cells a tile): a tile-level
    # maximum then differs by up to ~8 % at a fall-off of half a tile.
    np.testing.assert_allclose(coarse, fine, rtol=0.1)


def test_tile_classes_and_class_costs():
    # Face tiles are the tiles showing any part of a face: touching its hull, or its
    # whole head (the box grown to hair, ears and chin); person tiles a quarter person.
    face = np.zeros((40, 40), bool)
    face[0:8, 0:8] = True  # all of tile 0
    face[0:1, 8:9] = True  # one pixel of tile 1
    person = face.copy()
    person[32:40, 32:40] = True  # all of tile 24
    person[16:18, 16:24] = True  # a quarter of tile 12
    person[0:1, 39:40] = True  # a pixel of tile 4
    found = Detection(face, person, [])  # no box: the hull alone
    classes = importance.tile_classes(found, (0, 0, 40, 40), 5, 5)
    assert classes[0] == importance.FACE and classes[1] == importance.FACE
    assert classes[12] == classes[24] == importance.PERSON
    assert classes[4] == importance.BACKGROUND
    assert (classes == importance.BACKGROUND).sum() == 21
    # A face box 12 x 8 px at (10, 26), rows 3-4 and columns 1-2: its head reaches 3.6 px
    # above it, into row 2 (the forehead and hair), so tiles 11 and 12 are face tiles too.
    headed = Detection(np.zeros((40, 40), bool), np.zeros((40, 40), bool),
                       [(10, 26, 22, 34)])
    labels = importance.tile_classes(headed, (0, 0, 40, 40), 5, 5)
    assert set(np.flatnonzero(labels == importance.FACE)) == {11, 12, 16, 17, 21, 22}
    cost = np.arange(25, dtype=np.float64)
    result = importance.class_costs(cost, classes)
    assert result["face"] == {"tiles": 2, "mean_cost": 0.5}
    assert result["person"] == {"tiles": 2, "mean_cost": 18.0}
    assert result["background"]["tiles"] == 21
    assert result["background"]["mean_cost"] == pytest.approx((300 - 1 - 12 - 24) / 21)
    empty = importance.class_costs(np.ones(3), np.zeros(3, dtype=np.int8))
    assert empty["face"] == {"tiles": 0, "mean_cost": None}


def test_bad_weights_are_mosaic_errors():
    found = _detection(np.zeros((8, 8), bool))
    for kwargs in ({"mode": "eyes"}, {"face_weight": 0.5}, {"person_weight": math.nan},
                   {"falloff_tiles": -1.0}):
        with pytest.raises(MosaicError):
            importance.tile_weights(found, (0, 0, 8, 8), 2, 2, **kwargs)


# ------------------------------------------------------------------ the weighted objective


def _brute_force(cost: np.ndarray, weights: np.ndarray) -> float:
    tiles, photos = cost.shape
    return min(sum(weights[t] * cost[t, p] for t, p in enumerate(choice))
               for choice in itertools.permutations(range(photos), tiles))


def test_weighted_objective_is_exact_on_tiny_problems():
    face = np.zeros((16, 16), bool)
    face[2:7, 3:8] = True
    weights = importance.tile_weights(_detection(face), (0, 0, 16, 16), 2, 2, "faces", 5.0,
                                      1.0, 0.5)
    assert weights[0] > weights[3] >= 1.0
    rng = np.random.default_rng(3)
    for trial in range(12):
        # float32 values: the result stores tile costs as float32 (exactly, for these).
        cost = rng.random((4, 6)).astype(np.float32).astype(np.float64)
        w = weights if trial % 2 == 0 else rng.uniform(1, 10, 4)
        best = _brute_force(cost, w)
        assert assign_optimal(cost, w).objective == pytest.approx(best, abs=1e-12)
        assert assign_lp_highs(cost, w).objective == pytest.approx(best, abs=1e-9)
        assert assign_greedy(cost, w).objective >= best - 1e-12


def test_weights_give_the_face_tile_its_best_photo():
    cost = np.array([[0.1, 0.2],    # tile 0 (face): photo 0 is its best match
                     [0.1, 0.5]])   # tile 1 (background)
    assert assign_optimal(cost).photo_of_tile.tolist() == [1, 0]
    weighted = assign_optimal(cost, np.array([5.0, 1.0]))
    assert weighted.photo_of_tile.tolist() == [0, 1]
    assert weighted.objective == pytest.approx(5 * 0.1 + 0.5)
