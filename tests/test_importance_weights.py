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


@pytest.mark.parametrize("falloff", [0.0, 0.25, 1.0])
def test_tile_weights_are_tile_means_of_the_formula(falloff):
    # 40 x 40 target, 5 x 5 tiles of 8 px, 8 samples per tile: cells are pixels, so the
    # result must equal the formula evaluated pixel by pixel and averaged per tile.
    face = np.zeros((40, 40), bool)
    face[16:24, 18:26] = True
    person = face.copy()
    person[24:40, 12:30] = True
    found = _detection(face, person)
    got = importance.tile_weights(found, (0, 0, 40, 40), 5, 5, "faces+people", 6.0, 2.0,
                                  falloff)
    length = falloff * 8
    pixels = np.maximum(_brute_pixel_weights(face, 6.0, length),
                        _brute_pixel_weights(person, 2.0, length))
    expected = pixels.reshape(5, 8, 5, 8).mean(axis=(1, 3)).ravel()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    faces_only = importance.tile_weights(found, (0, 0, 40, 40), 5, 5, "faces", 6.0, 2.0,
                                         falloff)
    expected_faces = _brute_pixel_weights(face, 6.0, length).reshape(5, 8, 5, 8).mean(
        axis=(1, 3)).ravel()
    np.testing.assert_allclose(faces_only, expected_faces, atol=1e-12)
    people_only = importance.tile_weights(found, (0, 0, 40, 40), 5, 5, "people", 6.0, 2.0,
                                          falloff)
    assert people_only.max() == pytest.approx(2.0)
    np.testing.assert_array_equal(
        importance.tile_weights(found, (0, 0, 40, 40), 5, 5, "none", 6.0, 2.0, falloff),
        np.ones(25))


def test_tile_weights_see_a_face_just_outside_the_crop():
    face = np.zeros((40, 64), bool)
    face[16:24, 44:52] = True
    found = _detection(face)
    crop = (0, 0, 40, 40)  # the face is 4 px right of the crop's edge
    got = importance.tile_weights(found, crop, 5, 5, "faces", 5.0, 1.0, 1.0)
    expected = _brute_pixel_weights(face, 5.0, 8.0)[:, :40].reshape(5, 8, 5, 8).mean(
        axis=(1, 3)).ravel()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert got.reshape(5, 5)[2, 4] > 2.0


def test_tile_weights_at_reduced_resolution_stay_close():
    face = np.zeros((160, 160), bool)
    yy, xx = np.mgrid[:160, :160]
    face[(yy - 70) ** 2 + (xx - 90) ** 2 < 25 ** 2] = True
    found = _detection(face)
    fine = importance.tile_weights(found, (0, 0, 160, 160), 5, 5, "faces", 4.0, 1.0, 0.5,
                                   samples_per_tile=32)
    coarse = importance.tile_weights(found, (0, 0, 160, 160), 5, 5, "faces", 4.0, 1.0, 0.5,
                                     samples_per_tile=8)
    np.testing.assert_allclose(coarse, fine, rtol=0.05)


def test_tile_classes_and_class_costs():
    face = np.zeros((40, 40), bool)
    face[0:8, 0:8] = True  # all of tile 0
    face[0:4, 8:12] = True  # a quarter of tile 1
    face[0:3, 16:19] = True  # less than a quarter of tile 2
    person = face.copy()
    person[32:40, 32:40] = True  # all of tile 24
    found = _detection(face, person)
    classes = importance.tile_classes(found, (0, 0, 40, 40), 5, 5)
    assert classes[0] == importance.FACE and classes[1] == importance.FACE
    assert classes[2] == importance.BACKGROUND and classes[24] == importance.PERSON
    assert (classes == importance.BACKGROUND).sum() == 22
    cost = np.arange(25, dtype=np.float64)
    result = importance.class_costs(cost, classes)
    assert result["face"] == {"tiles": 2, "mean_cost": 0.5}
    assert result["person"] == {"tiles": 1, "mean_cost": 24.0}
    assert result["background"]["tiles"] == 22
    assert result["background"]["mean_cost"] == pytest.approx((300 - 1 - 24) / 22)
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
