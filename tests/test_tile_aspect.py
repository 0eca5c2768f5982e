"""``--tile-aspect W:H``: the grid, the crop candidates, the render and the list in that shape."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import command as app
from mosaic.errors import MosaicError
from mosaic.images import crop_boxes, pixel_box, square_crop_boxes, upright_size
from mosaic.layout import plan_layout
from mosaic.placement import read_placement
from mosaic.tile_shape import parse_tile_aspect
from tests.test_cli import _args, _assert_one_line_error, _subprocess_build


@pytest.mark.parametrize(("text", "shape"), [("4:5", (4, 5)), ("8:10", (4, 5)),
                                              (" 3 : 4 ", (3, 4)), ("1:1", (1, 1)),
                                              ("16:9", (16, 9))])
def test_tile_shapes_are_read_and_reduced(text, shape):
    assert parse_tile_aspect(text) == shape


@pytest.mark.parametrize("text", ["4x5", "0:5", "4:", "-4:5", "1.5:1", "5:1", "1:5", ""])
def test_a_shape_that_is_not_w_h_or_too_long_is_refused(text):
    with pytest.raises(MosaicError, match="tile_aspect"):
        parse_tile_aspect(text)


def test_the_grid_of_portrait_tiles_still_fits_the_poster():
    square = plan_layout((1200, 900), 500)
    portrait = plan_layout((1200, 900), 500, tile_aspect=(4, 5))
    assert portrait.tiles <= 500 and portrait.tile_aspect == (4, 5)
    # Narrower tiles: more columns for the same picture, and the same covered shape.
    assert portrait.cols / portrait.rows > square.cols / square.rows
    left, top, right, bottom = portrait.crop
    covered = portrait.cols * 4 / (portrait.rows * 5)
    assert (right - left) / (bottom - top) == pytest.approx(covered, rel=0.01)
    assert covered == pytest.approx(1200 / 900, rel=0.05)
    assert portrait.output_size == (portrait.cols * 100, portrait.rows * 125)
    sized = plan_layout((1200, 900), 500, tile_aspect=(4, 5), poster=None, tile_px=40)
    assert (sized.tile_px, sized.tile_height) == (40, 50)


def test_a_poster_size_bounds_both_sides_of_a_portrait_tile():
    from mosaic.layout import parse_size

    poster, preset = parse_size("3000x2000px")
    layout = plan_layout((1500, 1000), 600, poster=poster, poster_is_preset=preset,
                         tile_aspect=(3, 4))
    width, height = layout.output_size
    assert width <= 3000 and height <= 2000
    assert width > 2700 or height > 1800  # and fills it, up to a tile


def test_crop_candidates_take_the_tile_shape():
    assert crop_boxes(400, 200, 13) == square_crop_boxes(400, 200, 13)
    for size in ((400, 200), (200, 400), (300, 300)):
        boxes = crop_boxes(*size, 13, 4 / 5)
        assert len(boxes) >= 11
        for box in boxes:
            left, top, right, bottom = pixel_box(box, *size, 4 / 5)
            assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]
            assert (right - left) / (bottom - top) == pytest.approx(0.8, abs=0.02)
        # The first candidate is the largest 4:5 box: it spans one side in full.
        left, top, right, bottom = pixel_box(boxes[0], *size, 4 / 5)
        assert right - left == size[0] or bottom - top == size[1]


def test_a_portrait_tile_build_renders_lists_and_redraws_in_its_shape(prefect_api, photo_dir,
                                                                      portrait, tmp_path):
    out = tmp_path / "poster.png"
    metrics_path = tmp_path / "m.json"
    result = _subprocess_build(*_args(photo_dir, portrait, out, "--tiles", "60", "--tile-px",
                                      "16", "--tile-aspect", "4:5", "--workdir",
                                      str(tmp_path / "w"), "--metrics", str(metrics_path)))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(metrics_path.read_text())
    rows, cols = metrics["rows"], metrics["cols"]
    assert metrics["tile_aspect"] == "4:5" and metrics["tile_px"] == [16, 20]
    with Image.open(out) as image:
        assert image.size == (cols * 16, rows * 20)
        first = np.asarray(image.convert("RGB"))
    tiles = read_placement(tmp_path / "w" / "placement.csv")
    assert {tile.tile_aspect for tile in tiles} == {"4:5"}
    assert len({tile.photo_sha256 for tile in tiles}) == rows * cols  # each photo once
    for tile in tiles[:10]:  # each photo's crop is 4:5 in the photo's own pixels
        width, height = upright_size(tile.photo)
        left, top, right, bottom = tile.box
        assert (right - left) * width / ((bottom - top) * height) == pytest.approx(0.8,
                                                                                   abs=0.02)
    again = tmp_path / "again.png"
    redrawn = CliRunner().invoke(app, ["render", str(tmp_path / "w" / "placement.csv"),
                                       "--out", str(again), "--tile-px", "16"])
    assert redrawn.exit_code == 0, redrawn.output
    with Image.open(again) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), first)


def test_a_bad_tile_shape_is_one_line_and_exit_2(prefect_api, photo_dir, portrait, tmp_path):
    result = _subprocess_build(*_args(photo_dir, portrait, tmp_path / "o.jpg",
                                      "--tile-aspect", "4x5", "--workdir", str(tmp_path / "w")))
    _assert_one_line_error(result, "--tile-aspect", "4x5", "W:H")
    assert not (tmp_path / "w").exists() and not (tmp_path / "o.jpg").exists()
