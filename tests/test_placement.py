"""The placement list: written by every build, read back exactly, redraws the same poster."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import command as app
from mosaic.errors import MosaicError
from mosaic.files import sha256_file
from mosaic.placement import COLUMNS, PlacedTile, read_placement, write_placement
from tests.test_cli import _assert_one_line_error
from tests.test_pipeline import inputs, render_and_report  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory) -> Path:  # noqa: F811
    """A 4x5 build's run folder, its poster drawn as PNG with 8 px tiles."""
    workdir = tmp_path_factory.mktemp("placed")
    render_and_report(inputs, workdir, "mosaic.png")
    return workdir


def test_every_build_lists_each_tile_with_its_photo_crop_cost_and_weight(built):
    tiles = read_placement(built / "placement.csv")
    assert [(t.row, t.column) for t in tiles] == [(r, c) for r in range(4) for c in range(5)]
    for tile in tiles:
        assert sha256_file(tile.photo) == tile.photo_sha256
        assert 0.0 <= tile.cost <= 1.0 and tile.weight == 1.0
    assert len({t.photo_sha256 for t in tiles}) == 20  # each photo at most once
    metrics = json.loads((built / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["placement_list"] == str(built / "placement.csv")
    assert np.mean([t.cost for t in tiles]) == pytest.approx(metrics["mean_cost"], rel=1e-5)


def test_the_list_redraws_the_build_poster_pixel_for_pixel(built, tmp_path):
    out = tmp_path / "again.png"
    result = CliRunner().invoke(app, ["render", str(built / "placement.csv"), "--out",
                                      str(out), "--tile-px", "8"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as again, Image.open(built / "mosaic.png") as first:
        assert np.array_equal(np.asarray(again), np.asarray(first))
    bigger = tmp_path / "big.jpg"
    result = CliRunner().invoke(app, ["render", str(built / "placement.csv"), "--out",
                                      str(bigger), "--tile-px", "20"])
    assert result.exit_code == 0, result.output
    with Image.open(bigger) as image:
        assert image.size == (100, 80)
    site = tmp_path / "site"
    result = CliRunner().invoke(app, ["render", str(built / "placement.csv"), "--out",
                                      str(site), "--format", "dzi", "--bleed", "4px"])
    assert result.exit_code == 0, result.output
    assert 'Width="508"' in (site / "mosaic.dzi").read_text()  # 5 x 100 px + 2 x 4 px


def test_a_moved_or_changed_photo_is_named_not_drawn(built, tmp_path):
    listed = tmp_path / "placement.csv"
    shutil.copy(built / "placement.csv", listed)
    tiles = read_placement(listed)
    copy = tmp_path / "photo.jpg"
    shutil.copy(tiles[3].photo, copy)
    Image.new("RGB", (30, 20), (9, 9, 9)).save(copy)  # not the photo that was placed
    write_placement(listed, [PlacedTile(t.row, t.column, str(copy) if i == 3 else t.photo,
                                        t.photo_sha256, t.box, t.cost, t.weight)
                             for i, t in enumerate(tiles)])
    result = CliRunner().invoke(app, ["render", str(listed), "--out", str(tmp_path / "o.jpg")])
    _assert_one_line_error(result, "photo.jpg", "changed since it was placed")
    copy.unlink()
    result = CliRunner().invoke(app, ["render", str(listed), "--out", str(tmp_path / "o.jpg")])
    _assert_one_line_error(result, "photo.jpg", "cannot be read")
    assert not (tmp_path / "o.jpg").exists()


def test_render_refuses_to_write_over_a_photo_or_a_non_image(built, tmp_path):
    photo = read_placement(built / "placement.csv")[0].photo
    before = sha256_file(photo)
    result = CliRunner().invoke(app, ["render", str(built / "placement.csv"), "--out", photo])
    _assert_one_line_error(result, photo)
    assert sha256_file(photo) == before
    result = CliRunner().invoke(app, ["render", str(built / "placement.csv"), "--out",
                                      str(built / "placement.csv")])
    _assert_one_line_error(result, ".csv")


def _lines(path: Path, rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)


def test_round_trip_keeps_boxes_exactly(tmp_path):
    tiles = [PlacedTile(r, c, f"/photos/{r}-{c}.jpg", "ab" * 32,
                        (0.1 / 3, 0.2, 2 / 3, 0.9 + r / 100), 0.0123 * c, 1.25)
             for r in range(3) for c in range(2)]
    write_placement(tmp_path / "p.csv", tiles[::-1])  # any order on disk
    assert [t.box for t in read_placement(tmp_path / "p.csv")] == [t.box for t in tiles]


@pytest.mark.parametrize(("rows", "message"), [
    ([["row", "col"]], "header must be"),
    ([COLUMNS], "lists no tiles"),
    ([COLUMNS, [0, 0, "a.jpg", "", 0, 0, 1, 1, 0.1, 1], [0, 0, "b.jpg", "", 0, 0, 1, 1, 0, 1]],
     "more than once"),
    ([COLUMNS, [0, 0, "a.jpg", "", 0, 0, 1, 1, 0.1, 1], [1, 1, "b.jpg", "", 0, 0, 1, 1, 0, 1]],
     "not a full 2x2 grid"),
    ([COLUMNS, [0, 0, "a.jpg", "", 0.5, 0, 0.2, 1, 0.1, 1]], "line 2: crop box"),
    ([COLUMNS, [0, "x", "a.jpg", "", 0, 0, 1, 1, 0.1, 1]], "line 2:"),
])
def test_a_bad_list_is_one_clear_error(tmp_path, rows, message):
    _lines(tmp_path / "p.csv", rows)
    with pytest.raises(MosaicError, match=message):
        read_placement(tmp_path / "p.csv")
