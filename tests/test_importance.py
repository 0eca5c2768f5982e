"""Importance: face and person masks, fall-off weights, the weighted objective, the CLI."""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from benchmarks.bench_faces import REQUIRED
from flows.cli_weights import weights as weights_command
from mosaic import importance
from mosaic.assign.exact import assign_optimal
from mosaic.assign.greedy import assign_greedy
from mosaic.assign.lp import assign_lp_highs
from mosaic.errors import MosaicError
from mosaic.images import open_rgb
from mosaic.importance import Detection
from tests.conftest import SAMPLES

DATA = Path(__file__).resolve().parent / "data"
OBAMA = SAMPLES / "targets" / "obama.jpg"
GROUP = DATA / "qt-logo.jpg"
LANDSCAPE = DATA / "landscape-kite.jpg"
BAR = DATA / "bar55.jpg"
BEACH = DATA / "cold_water.jpg"
# Every face of the group photos, counted by eye (the ground truth of
# benchmarks/bench_faces.py; tests/data holds the same images): bar55 has two in front,
# three dark ones behind them, a profile, a man in the dark on the right and a woman at
# the left edge; on cold_water the blond woman's face is half hidden behind a head of
# red hair, and only the face detector and the pose model see it.
BAR_FACES = REQUIRED["bar55"]
BEACH_FACES = REQUIRED["cold_water"]


# ------------------------------------------------------------------ real targets (mediapipe)


@pytest.fixture(scope="module")
def portrait() -> tuple[Image.Image, Detection]:
    image = open_rgb(OBAMA)
    return image, importance.detect_people(image)


@pytest.fixture(scope="module")
def group() -> tuple[Image.Image, Detection]:
    image = open_rgb(GROUP)
    return image, importance.detect_people(image)


@pytest.fixture(scope="module")
def landscape() -> tuple[Image.Image, Detection]:
    image = open_rgb(LANDSCAPE)
    return image, importance.detect_people(image)


def test_portrait_masks(portrait):
    image, found = portrait
    assert found.face_mask.shape == found.person_mask.shape == (image.height, image.width)
    assert found.faces_found == 1
    left, top, right, bottom = found.faces[0]
    # The face of the official portrait: centred, in the upper third, about 240 px wide.
    assert 420 < (left + right) / 2 < 560 and 200 < (top + bottom) / 2 < 340
    assert 180 < right - left < 320
    face = found.face_mask
    assert face[(top + bottom) // 2, (left + right) // 2]
    assert 0.03 < face.mean() < 0.12
    assert not (face & ~found.person_mask).any()
    # The suit is a person, the curtains at the top corners are not.
    assert found.person_mask[int(image.height * 0.8), image.width // 2]
    assert not found.person_mask[:100, :100].any()
    assert not found.person_mask[:100, -100:].any()
    assert 0.4 < found.person_fraction < 0.75
    assert found.notes == []


def test_group_photo_finds_each_face_and_not_the_tattoos(group):
    image, found = group
    assert found.faces_found == 3
    centres = sorted((left + right) / 2 for left, _, right, _ in found.faces)
    # One face per man, left to right; all above the tattooed arms (lower half).
    assert centres[0] < image.width / 3 < centres[1] < 2 * image.width / 3 < centres[2]
    assert all(bottom < image.height / 2 for _, _, _, bottom in found.faces)
    assert not found.face_mask[image.height // 2:].any()
    assert found.person_fraction > 0.6


def _assert_exactly(faces: list[tuple[int, int, int, int]],
                    truth: dict[str, tuple[int, int, int, int]]) -> None:
    """Every box of ``truth`` holds the centre of one face, and no face is elsewhere."""
    missed = dict(truth)
    for left, top, right, bottom in faces:
        cx, cy = (left + right) / 2, (top + bottom) / 2
        name = next((k for k, (x0, y0, x1, y1) in missed.items()
                     if x0 <= cx <= x1 and y0 <= cy <= y1), None)
        assert name is not None, f"false face {(left, top, right, bottom)}"
        del missed[name]
    assert not missed, f"faces missed: {sorted(missed)}"
    assert len(faces) == len(truth)


def test_group_photo_in_a_bar_finds_every_face_and_not_the_hands():
    image = open_rgb(BAR)
    found = importance.detect_people(image)
    _assert_exactly(found.faces, BAR_FACES)
    # The hands on the shoulder and the bar (lower third) are no faces.
    assert not found.face_mask[2 * image.height // 3:].any()
    # The profile has no landmarks: its face is the ellipse in the detector's box.
    profile = next(box for box in found.faces if box[0] > 540 and box[2] < 650)
    left, top, right, bottom = profile
    assert found.face_mask[(top + bottom) // 2, (left + right) // 2]
    assert not found.face_mask[top, left] and not found.face_mask[bottom - 1, right - 1]


def test_group_on_a_beach_finds_the_half_hidden_face_and_not_the_hand():
    image = open_rgb(BEACH)
    found = importance.detect_people(image)
    _assert_exactly(found.faces, BEACH_FACES)
    # FaceMesh and Haar miss the half-hidden face; the pose model confirms it (rule 4
    # of _verify_face), so its face is the ellipse in the detector's box.
    left, top, right, bottom = next(box for box in found.faces if box[2] < 200)
    assert found.face_mask[(top + bottom) // 2, (left + right) // 2]
    assert not found.face_mask[top, left] and not found.face_mask[bottom - 1, right - 1]
    # The hand at the end of the stretched right arm (the detector scores it 0.72 there,
    # and the pose model puts an upside-down face on it) is no face.
    assert not found.face_mask[320:370, 615:665].any()


def test_faces_of_40_px_in_a_large_target_are_found():
    # The group photo shrunk so its faces are about 42 px wide, on a 1400 x 900 gradient:
    # too small for the detectors on the whole image, found by the crop search.
    with Image.open(GROUP) as photo:
        small = photo.convert("RGB").resize((240, 163), Image.Resampling.LANCZOS)
    ramp = np.linspace(60, 200, 1400, dtype=np.float64).astype(np.uint8)
    canvas = Image.fromarray(np.repeat(np.repeat(ramp[None, :, None], 900, 0), 3, 2))
    canvas.paste(small, (850, 80))
    found = importance.detect_people(canvas)
    assert found.faces_found == 3
    assert all(35 <= right - left <= 55 for left, _, right, _ in found.faces)
    assert all(850 <= left and right <= 1090 for left, _, right, _ in found.faces)
    assert importance.detect_people(canvas, min_face_px=1000).faces == []


def test_landscape_has_nobody_and_uniform_weights(landscape):
    image, found = landscape
    assert found.faces == [] and not found.person_mask.any() and not found.anyone
    assert found.notes[0].startswith("nobody found")
    # Selfie segmentation calls the sky a person; that must have been thrown out.
    assert any("no face or body pose confirmed" in note for note in found.notes)
    crop = (0, 0, image.width, image.height)
    weights = importance.tile_weights(found, crop, 10, 16)
    np.testing.assert_array_equal(weights, np.ones(160))
    mode, note = importance.resolve_mode(found, "faces+people")
    assert mode == "none" and "uniform" in note
    assert importance.faces_centre(found) is None
    assert importance.face_crop(found, 1.0) == (120, 0, 520, 400)


def test_detection_is_quiet(capfd):
    importance.detect_people(Image.new("RGB", (64, 48), (90, 120, 160)))
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_real_weights_favour_the_faces(group):
    image, found = group
    rows, cols = 10, 15
    crop = importance.face_crop(found, cols / rows)
    weights = importance.tile_weights(found, crop, rows, cols, face_weight=4.0,
                                      person_weight=1.5, falloff_tiles=0.5)
    classes = importance.tile_classes(found, crop, rows, cols)
    assert weights.shape == (rows * cols,) and (weights >= 1).all()
    assert weights[classes == importance.FACE].mean() > 3.0
    assert weights[classes == importance.FACE].min() > weights[classes == importance.PERSON].min()
    picture = importance.weight_map_image(image, weights, crop, rows, cols)
    assert picture.mode == "RGB" and picture.width == crop[2] - crop[0]


# ------------------------------------------------------------------ PointRend and errors


@pytest.mark.skipif(importlib.util.find_spec("detectron2") is not None,
                    reason="detectron2 is installed here")
def test_pointrend_without_detectron2_says_what_to_install():
    with pytest.raises(MosaicError) as error:
        importance.detect_people(Image.new("RGB", (32, 32)), segmenter="pointrend",
                                 pointrend_config="cfg.yaml", pointrend_weights="model.pkl")
    message = str(error.value)
    assert "\n" not in message
    assert "detectron2" in message and "not installed" in message
    assert "--pointrend-config" in message and "--segmenter mediapipe" in message


def test_unknown_segmenter_and_bad_weights_are_mosaic_errors():
    with pytest.raises(MosaicError, match="--segmenter 'sam'"):
        importance.detect_people(Image.new("RGB", (32, 32)), segmenter="sam")
    found = _detection(np.zeros((8, 8), bool))
    for kwargs in ({"mode": "eyes"}, {"face_weight": 0.5}, {"person_weight": math.nan},
                   {"falloff_tiles": -1.0}):
        with pytest.raises(MosaicError):
            importance.tile_weights(found, (0, 0, 8, 8), 2, 2, **kwargs)


# ------------------------------------------------------------------ fall-off maths


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


# ------------------------------------------------------------------ crop, files, picture


def test_face_aware_crop_keeps_the_faces_in_the_frame():
    face = np.zeros((100, 300), bool)
    face[20:50, 240:280] = True
    found = _detection(face)
    crop = importance.face_crop(found, 1.0)
    assert crop == (200, 0, 300, 100)  # a blind centre crop would be (100, 0, 200, 100)
    assert importance.faces_centre(found) == (260.0, 35.0)
    # Two faces that cannot both fit: the crop keeps the larger one whole.
    face[40:60, 10:30] = True
    found = Detection(face, face, [(240, 20, 280, 50), (10, 40, 30, 60)])
    left, _, right, _ = importance.face_crop(found, 1.0)
    assert left <= 240 and right >= 280
    # Two faces that fit together: both stay inside.
    found = Detection(face, face, [(240, 20, 280, 50), (190, 40, 210, 60)])
    left, _, right, _ = importance.face_crop(found, 1.0)
    assert (left, right) == (185, 285)
    tall = np.zeros((300, 100), bool)
    tall[230:260, 40:60] = True
    assert importance.face_crop(_detection(tall), 1.0) == (0, 195, 100, 295)


def test_save_and_load_detection(tmp_path):
    face = np.zeros((20, 30), bool)
    face[5:9, 6:12] = True
    person = face.copy()
    person[9:20, 4:14] = True
    found = Detection(face, person, [(6, 5, 12, 9)], ["a note"], "mediapipe")
    path = importance.save_detection(found, tmp_path / "run" / "importance.npz")
    assert path.is_file() and not list(path.parent.glob(".*part*"))
    back = importance.load_detection(path)
    np.testing.assert_array_equal(back.face_mask, face)
    np.testing.assert_array_equal(back.person_mask, person)
    assert back.faces == [(6, 5, 12, 9)] and back.notes == ["a note"]
    assert back.segmenter == "mediapipe" and back.summary() == found.summary()
    nobody = Detection(np.zeros((4, 4), bool), np.zeros((4, 4), bool), [])
    again = importance.load_detection(importance.save_detection(nobody, tmp_path / "n.npz"))
    assert again.faces == [] and again.notes == [] and not again.anyone


def test_weight_map_image_sizes():
    target = Image.new("RGB", (200, 100), (120, 80, 40))
    weights = np.ones(8)
    weights[3] = 4.0
    picture = importance.weight_map_image(target, weights, (0, 0, 200, 100), 2, 4)
    assert picture.size == (200, 128)
    tinted = np.asarray(picture)[10, 160]
    plain = np.asarray(picture)[10, 10]
    assert tinted[0] > 200 and plain[0] == plain[1] == plain[2]


# ------------------------------------------------------------------ `mosaic weights`


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("weights")(weights_command)

    @app.callback()
    def main() -> None:
        """Test app."""

    return app


def test_cli_weights_on_a_target_with_nobody(cli, tmp_path):
    out = tmp_path / "weights.png"
    result = CliRunner().invoke(cli, ["weights", "--target", str(LANDSCAPE), "--grid",
                                      "10x16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "nobody found in landscape-kite.jpg" in result.stdout
    assert "weights: uniform (1 on all 160 tiles)" in result.stdout
    with Image.open(out) as picture:
        assert picture.size == (640, 428)


@pytest.mark.parametrize("args, fragment", [
    (["--face-weight", "0.5"], "--face-weight 0.5"),
    (["--weights", "eyes"], "--weights 'eyes'"),
    (["--segmenter", "pointrend"], "detectron2"),
    (["--grid", "4"], "--grid '4'"),
    (["--grid", "4x4", "--tiles", "9"], "not both"),
])
def test_cli_weights_bad_input_is_one_line_exit_2(cli, tmp_path, args, fragment):
    if fragment == "detectron2" and importlib.util.find_spec("detectron2") is not None:
        pytest.skip("detectron2 is installed here")
    result = CliRunner().invoke(cli, ["weights", "--target", str(LANDSCAPE), "--out",
                                      str(tmp_path / "w.png"), *args])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mosaic: error: ")
    assert fragment in lines[0]


def test_cli_weights_missing_target(cli, tmp_path):
    result = CliRunner().invoke(cli, ["weights", "--target", str(tmp_path / "nope.jpg"),
                                      "--out", str(tmp_path / "w.png")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
