import math

import pytest

from mosaic.errors import MosaicError
from mosaic.layout import (
    POSTER_PRESETS_MM,
    choose_grid,
    crop_to_aspect,
    parse_grid,
    parse_size,
    plan_layout,
)


@pytest.mark.parametrize("text,expected", [
    ("A4", (210, 297, "mm")),
    ("a0", (841, 1189, "mm")),
    ("50x70cm", (500, 700, "mm")),
    ("24x36in", (609.6, 914.4, "mm")),
    ("30 x 40 cm", (300, 400, "mm")),
    ("6000x8000px", (6000, 8000, "px")),
    ("297x420mm", (297, 420, "mm")),
])
def test_parse_size_units_and_presets(text, expected):
    size, _ = parse_size(text)
    assert math.isclose(size.width, expected[0]) and math.isclose(size.height, expected[1])
    assert size.unit == expected[2]


def test_presets_follow_target_orientation_explicit_sizes_do_not():
    preset, is_preset = parse_size("A3")
    assert is_preset
    landscape = preset.oriented_like(1.5)
    assert landscape.width > landscape.height
    _, is_preset = parse_size("50x70cm")
    assert not is_preset


@pytest.mark.parametrize("text", ["big", "50x70", "0x70cm", "50x70furlongs", "A9", "-3x4cm", ""])
def test_parse_size_rejects_nonsense(text):
    with pytest.raises(MosaicError, match="size"):
        parse_size(text)


def test_size_pixels_at_dpi():
    size, _ = parse_size("10x20in")
    assert size.pixels(150) == (1500, 3000)
    assert size.pixels(None) is None
    assert parse_size("640x480px")[0].pixels(None) == (640, 480)


@pytest.mark.parametrize("text", ["40", "40x", "0x10", "ax3", "4x-3", "4.5x3"])
def test_parse_grid_rejects_nonsense(text):
    with pytest.raises(MosaicError, match="grid"):
        parse_grid(text)


def test_parse_grid():
    assert parse_grid("40x30") == (40, 30)
    assert parse_grid(" 2 X 3 ") == (2, 3)


@pytest.mark.parametrize("photos,aspect,expected", [
    (100, 1.0, (10, 10)),
    (99, 1.0, (9, 9)),  # 10x10 does not fit; 9x10 or 9x11 are more than 5% off square
    (2500, 1.0, (50, 50)),
    (775, 910 / 1137, (31, 25)),
    (1, 2.0, (1, 1)),
    (12, 3.0, (2, 6)),
])
def test_choose_grid_examples(photos, aspect, expected):
    assert choose_grid(photos, aspect) == expected


@pytest.mark.parametrize("photos", [1, 2, 7, 50, 333, 1000, 4999])
@pytest.mark.parametrize("aspect", [0.5, 0.707, 1.0, 1.414, 3.0])
def test_choose_grid_properties(photos, aspect):
    rows, cols = choose_grid(photos, aspect)
    assert 1 <= rows * cols <= photos
    if photos < aspect or photos < 1 / aspect:
        return  # too few photos for any grid of this shape: the best that fits
    # Aspect within tolerance, or the best rounding of the column count.
    assert abs(cols / rows / aspect - 1) <= 0.05 or cols == max(1, round(rows * aspect))
    # No grid with one more row and a fitting aspect would also fit.
    bigger_rows = rows + 1
    bigger_cols = max(1, round(bigger_rows * aspect))
    assert bigger_rows * bigger_cols > photos or abs(bigger_cols / bigger_rows / aspect - 1) > 0.05


def test_crop_to_aspect_centres_and_clamps():
    assert crop_to_aspect(200, 100, 1.0) == (50, 0, 150, 100)
    assert crop_to_aspect(100, 200, 1.0) == (0, 50, 100, 150)
    assert crop_to_aspect(200, 100, 1.0, centre=(0, 0)) == (0, 0, 100, 100)
    left, top, right, bottom = crop_to_aspect(1137, 910, 4 / 3)
    assert abs((right - left) / (bottom - top) - 4 / 3) < 0.01


def test_plan_layout_grid_needs_enough_photos():
    with pytest.raises(MosaicError, match="needs 1200 distinct photos but only 100"):
        plan_layout((800, 600), 100, grid=(30, 40))


def test_plan_layout_tiles_needs_enough_photos():
    with pytest.raises(MosaicError, match="tiles 500 needs 500"):
        plan_layout((800, 600), 100, tiles=500)


def test_plan_layout_size_and_dpi_fix_pixels():
    poster, preset = parse_size("A4")
    layout = plan_layout((600, 800), 1000, poster=poster, poster_is_preset=preset, dpi=150)
    width_px, height_px = poster.pixels(150)
    assert layout.output_size[0] <= width_px and layout.output_size[1] <= height_px
    assert layout.output_size[0] > width_px * 0.9
    assert layout.tiles <= 1000
    # The crop has the grid's aspect.
    left, top, right, bottom = layout.crop
    assert abs((right - left) / (bottom - top) - layout.cols / layout.rows) < 0.01


def test_plan_layout_tile_px_default_and_override():
    assert plan_layout((500, 500), 100).tile_px == 100
    assert plan_layout((500, 500), 100, tile_px=33).output_size == (330, 330)


def test_all_presets_parse():
    for name in POSTER_PRESETS_MM:
        size, is_preset = parse_size(name)
        assert is_preset == name.startswith("A")
        assert size.unit == "mm" and size.height > size.width


def test_default_crops_follow_the_library_size():
    """30 crops up to MANY_PHOTOS photo files, 7 above; a given --crops is kept."""
    from mosaic.options import MANY_PHOTOS, build_options

    options = build_options(photos="p", target="t.jpg", out="o.jpg")
    assert options.crops is None
    assert options.with_crops_for(MANY_PHOTOS).crops == 30
    assert options.with_crops_for(MANY_PHOTOS + 1).crops == 7
    given = build_options(photos="p", target="t.jpg", out="o.jpg", crops=3)
    assert given.with_crops_for(10).crops == 3
