"""``--detail faces``: face tiles split into 2x2 quarters, placed exactly, drawn at their size."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy.optimize import linear_sum_assignment

from cli.main import command as app
from mosaic.cells import CellGrid, cells_of, plan_detail
from mosaic.errors import MosaicError
from mosaic.layout import Layout, plan_layout
from mosaic.options import build_options
from mosaic.placement import PlacedTile, read_placement, split_of, write_placement
from tests.conftest import PORTRAIT, copy_sample_photos
from tests.test_cli import (
    _all_finished,
    _args,
    _assert_one_line_error,
    _start_subprocess_build,
    _subprocess_build,
)

BUILDS = {
    "split": ("--tile-px", "17"),
    "repeats": ("--tiles", "200", "--max-uses", "3", "--min-repeat-distance", "3",
                "--tile-px", "8"),
}
"""The module's two ``--detail faces`` builds: the options each adds."""


@pytest.mark.parametrize("size", [(16, 16), (17, 13), (3, 2), (100, 125)])
def test_cells_cover_every_pixel_of_a_row_exactly_once(size):
    grid = CellGrid(3, 4, (0, 5, 6, 11))
    assert grid.count == 12 + 3 * 4
    for row in range(grid.rows):
        covered = np.zeros((size[1], 4 * size[0]), dtype=int)
        for cell in grid.row_cells(row):
            left, top, right, bottom = grid.box_in_row(cell, size)
            assert right > left and bottom > top
            covered[top:bottom, left:right] += 1
        assert (covered == 1).all()
    # Spread over the half-tile units, every unit belongs to exactly one cell.
    units = grid.spread(np.arange(grid.count))
    assert sorted(np.unique(units).tolist()) == list(range(grid.count))
    counts = np.bincount(units, minlength=grid.count)
    assert counts.tolist() == [1 if quarter >= 0 else 4 for quarter in grid.table[:, 1]]


def test_cells_take_quarters_from_the_half_tile_grid():
    grid = CellGrid(2, 2, (3,))
    tiles = np.array([10, 11, 12, 13])
    units = np.arange(16) + 100  # the 4 x 4 grid of half tiles, row-major
    # Tile 3 is the bottom-right tile: its quarters are units 10, 11, 14, 15.
    assert cells_of(tiles, units, grid).tolist() == [10, 11, 12, 110, 111, 114, 115]


def test_split_tiles_must_be_distinct_and_inside_the_grid():
    for split in [(4,), (1, 1), (2, 1), (-1,)]:
        with pytest.raises(ValueError):
            CellGrid(2, 2, split)


def test_the_planned_grid_leaves_photos_for_the_quarters():
    def layout_for(tiles: int) -> Layout:
        return plan_layout((900, 1200), 500, tiles=tiles)

    def split_of_layout(layout: Layout) -> tuple[int, ...]:
        # a "face" covering the middle ninth of the grid
        rows, cols = layout.rows, layout.cols
        return tuple(r * cols + c for r in range(rows // 3, 2 * rows // 3)
                     for c in range(cols // 3, 2 * cols // 3))

    layout = plan_detail(500, layout_for, split_of_layout)
    assert layout.split == split_of_layout(layout) and layout.split
    assert layout.cells <= 500
    # The next larger grid would need more photos than there are.
    bigger = layout_for(layout.tiles + layout.cols)
    assert bigger.tiles + 3 * len(split_of_layout(bigger)) > 500


def test_the_placement_list_keeps_quarters_and_refuses_a_missing_one(tmp_path):
    def placed(row: int, column: int, quarter: str = "") -> PlacedTile:
        return PlacedTile(row, column, f"p{row}{column}{quarter}.jpg", "", (0, 0, 1, 1), 0.1,
                          1.0, "1:1", quarter)

    tiles = [placed(0, 0), *(placed(0, 1, q) for q in ("br", "tl", "bl", "tr"))]
    write_placement(tmp_path / "p.csv", tiles)
    again = read_placement(tmp_path / "p.csv")
    assert [tile.quarter for tile in again] == ["", "tl", "tr", "bl", "br"]
    assert split_of(again) == (1,)
    write_placement(tmp_path / "bad.csv", tiles[:-1])
    with pytest.raises(MosaicError, match="four quarters"):
        read_placement(tmp_path / "bad.csv")


@pytest.mark.parametrize(("extra", "named"), [
    ({"weights": "none"}, "weights"),
])
def test_what_detail_cannot_combine_with_is_refused_naming_it(extra, named):
    with pytest.raises(MosaicError, match=named):
        build_options(target="t.jpg", out="o.jpg", photos="p", detail="faces", **extra)


def test_an_unknown_detail_is_refused(prefect_api, photo_dir, portrait, tmp_path):
    result = _subprocess_build(*_args(photo_dir, portrait, tmp_path / "o.jpg", "--detail",
                                      "eyes", "--workdir", str(tmp_path / "w")))
    _assert_one_line_error(result, "--detail", "eyes")
    assert not (tmp_path / "w").exists()


@dataclass(frozen=True)
class DetailBuild:
    """A finished build of :data:`BUILDS`: its folder (``poster.png``, ``m.json``, ``w/``)."""

    folder: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def detail_builds(prefect_api, tmp_path_factory) -> dict[str, DetailBuild]:
    """Both builds of :data:`BUILDS`, run at once as real processes.

    They share only the photos (read), each with its own run folder and outputs, so the
    second core builds one while the first builds the other.
    """
    root = tmp_path_factory.mktemp("detail")
    photos = copy_sample_photos(root / "photos")
    folders = {name: root / name for name in BUILDS}
    results = _all_finished(*(_start_subprocess_build(*_args(
        photos, PORTRAIT, folder / "poster.png", "--detail", "faces", *BUILDS[name],
        "--no-compare", "--workdir", str(folder / "w"), "--metrics", str(folder / "m.json")))
        for name, folder in folders.items()))
    return {name: DetailBuild(folder, result)
            for (name, folder), result in zip(folders.items(), results, strict=True)}


def _exact_objective(workdir: Path, weights: np.ndarray) -> float:
    matrix = np.load(next((workdir / "score").glob("*/cost.npy")))
    weighted = matrix * weights[:, None]
    rows, cols = linear_sum_assignment(weighted)
    return float(weighted[rows, cols].sum())


def test_a_detail_build_splits_face_tiles_places_exactly_and_redraws(detail_builds, tmp_path):
    build = detail_builds["split"]
    out, workdir = build.folder / "poster.png", build.folder / "w"
    assert build.result.returncode == 0, build.result.stderr
    metrics = json.loads((build.folder / "m.json").read_text())
    rows, cols, detail = metrics["rows"], metrics["cols"], metrics["detail"]
    assert detail["split_tiles"] > 0
    assert detail["cells"] == rows * cols + 3 * detail["split_tiles"] <= metrics[
        "photos_available"]
    assert metrics["photos_used"] == detail["cells"]  # each photo once, on every cell
    tiles = read_placement(workdir / "placement.csv")
    assert len(tiles) == detail["cells"] and len(split_of(tiles)) == detail["split_tiles"]
    assert len({tile.photo_sha256 for tile in tiles}) == len(tiles)
    weights = np.load(next((workdir / "weights").glob("*/weights.npy")))
    assert [tile.weight for tile in tiles] == pytest.approx(weights, rel=1e-5)
    assert metrics["objective"] == pytest.approx(_exact_objective(workdir, weights), rel=1e-6)
    with Image.open(out) as image:
        assert image.size == (cols * 17, rows * 17)
        first = np.asarray(image.convert("RGB"))
    # A quarter is its photo drawn at a quarter's size, where its box says.
    quarter = next(tile for tile in tiles if tile.quarter == "br")
    from mosaic.strips import render_tile

    drawn = np.asarray(render_tile(quarter.photo, quarter.box, (9, 9)))
    top, left = quarter.row * 17 + 8, quarter.column * 17 + 8
    assert np.array_equal(first[top:top + 9, left:left + 9], drawn)
    again = tmp_path / "again.png"
    redrawn = CliRunner().invoke(app, ["render", str(workdir / "placement.csv"), "--out",
                                       str(again), "--tile-px", "17"])
    assert redrawn.exit_code == 0, redrawn.output
    with Image.open(again) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), first)
    report = (workdir / "report.md").read_text()
    assert f"{detail['split_tiles']} face tiles drawn as 2x2 quarter tiles" in report


def test_detail_modes_are_the_options_choices():
    from typing import get_args

    from mosaic.cells import DETAIL_MODES
    from mosaic.options import BuildOptions

    assert get_args(BuildOptions.model_fields["detail"].annotation) == DETAIL_MODES


def test_a_face_is_split_and_its_quarters_weighed_on_the_half_tile_grid():
    from mosaic.importance import FACE, Detection
    from mosaic.options import LayoutRequest, WeightRequest
    from mosaic.pipeline.target import plan_grid
    from mosaic.pipeline.weights import cell_classes, cell_weights

    face = np.zeros((400, 400), dtype=bool)
    face[150:230, 170:230] = True
    found = Detection(face, face, [(170, 150, 230, 230)])
    layout = plan_grid(LayoutRequest(detail="faces"), (400, 400), 100, found)
    assert layout.split and layout.cells <= 100
    grid = layout.cell_grid
    request = WeightRequest("faces", 2.5, 1.0, 0.5)
    weights, classes = cell_weights(found, layout, "faces", request), cell_classes(found, layout)
    quarter = grid.table[:, 1] >= 0
    assert (classes[quarter] == FACE).all()
    # A quarter on the face keeps the whole face weight; one beside the head gets less.
    assert weights[quarter].max() == pytest.approx(2.5)
    assert weights[quarter].min() < 2.5
    whole_weights = cell_weights(found, plan_grid(LayoutRequest(), (400, 400), 100, found),
                                 "faces", request)
    assert weights[~quarter].max() <= whole_weights.max()


def test_regional_places_the_cells_of_a_split_grid_within_its_bound():
    from mosaic.assign.methods import solve_dense
    from mosaic.assign.regional import assign_regional
    from mosaic.blocks import BlockRunner, prepare_features
    from mosaic.cost import cost_matrix
    from tests.large_problems import photo_features, tile_features

    grid = CellGrid(8, 10, (23, 24, 33, 34, 45, 46))  # a "face" of six split tiles
    whole, units = tile_features(8, 10), tile_features(16, 20)
    cells = cells_of(whole, units, grid)
    photos = photo_features()[:200, 0]
    cost, _ = cost_matrix(cells, photos)
    weights = np.where(grid.table[:, 1] >= 0, 2.5, 1.0)
    exact = solve_dense("optimal", cost, weights, 1)
    for regions, slack in ((1, 1e-6), (4, 0.02)):  # one region is one exact solve
        result = assign_regional(prepare_features(cells, photos), (8, 10), weights,
                                 regions=regions, runner=BlockRunner(threads=1),
                                 tile_of=grid.tile_of_cell)
        placed = result.assignment.photo_of_tile
        assert len(placed) == grid.count and len(set(placed.tolist())) == grid.count
        value = float((weights * cost[np.arange(grid.count), placed]).sum())
        assert exact.objective * (1 - 1e-6) <= value <= exact.objective * (1 + slack)


def _cell_problem(rows: int, cols: int, split: tuple[int, ...], photos: int, seed: int):
    grid = CellGrid(rows, cols, split)
    rng = np.random.default_rng(seed)
    cost = rng.uniform(0.0, 1.0, (grid.count, photos)).astype(np.float32)
    weights = rng.uniform(1.0, 3.0, grid.count)
    return grid, cost, weights


def test_copies_on_a_split_grid_keep_their_distance_exactly_when_small():
    from mosaic.assign.methods import solve_dense
    from mosaic.assign.spacing import Grid, closest_copies, space_copies

    # On a 2x2 grid, distance 2 puts every cell in one window: all photos differ, which
    # is the plain exact assignment; quarters of one tile count as 0 apart.
    cells, cost, weights = _cell_problem(2, 2, (1,), 9, seed=3)
    grid = Grid(2, 2, cells.tile_of_cell)
    start = solve_dense("optimal", cost, weights, 2)
    spaced = space_copies(cost, weights, grid, start, 2, 2, start.objective)
    assert spaced.status == "optimal"
    assert len(set(spaced.photo_of_tile.tolist())) == cells.count
    assert spaced.objective == pytest.approx(solve_dense("optimal", cost, weights, 1).objective)
    assert closest_copies(spaced.photo_of_tile, grid) is None  # no photo twice


def test_copies_on_a_large_split_grid_are_repaired_apart():
    from mosaic.assign.methods import solve_dense
    from mosaic.assign.spacing import Grid, closest_copies, space_copies

    cells, cost, weights = _cell_problem(12, 15, (50, 51, 65, 66, 80, 81), 120, seed=5)
    assert cells.count * 120 > 20_000  # past the HiGHS model: the repair runs
    grid = Grid(12, 15, cells.tile_of_cell)
    start = solve_dense("optimal", cost, weights, 3)
    spaced = space_copies(cost, weights, grid, start, 3, 4, start.objective)
    assert spaced.status == "feasible"
    assert closest_copies(spaced.photo_of_tile, grid) >= 4
    assert np.bincount(spaced.photo_of_tile, minlength=120).max() <= 3
    assert start.objective * (1 - 1e-9) <= spaced.objective


def test_a_distance_a_window_of_quarters_cannot_meet_is_refused():
    from mosaic.cells import check_cell_spacing

    grid = CellGrid(4, 4, (5, 6, 9, 10))  # a 2x2 window of split tiles holds 16 cells
    check_cell_spacing(grid, 16, 2, 2)
    with pytest.raises(MosaicError, match="min_repeat_distance"):
        check_cell_spacing(grid, 15, 2, 2)


def test_a_detail_build_with_repeats_keeps_copies_apart(detail_builds):
    build = detail_builds["repeats"]
    assert build.result.returncode == 0, build.result.stderr
    metrics = json.loads((build.folder / "m.json").read_text())
    assert metrics["detail"]["split_tiles"] > 0 and metrics["detail"]["cells"] <= 200
    assert metrics["most_uses"] <= 3 and metrics["closest_copies"] >= 3
    tiles = read_placement(build.folder / "w" / "placement.csv")
    where: dict[str, list[tuple[int, int]]] = {}
    for tile in tiles:
        where.setdefault(tile.photo_sha256, []).append((tile.row, tile.column))
    for places in where.values():  # checked again from the list: tiles, not cells
        for i, (row, col) in enumerate(places):
            for other_row, other_col in places[i + 1:]:
                assert max(abs(row - other_row), abs(col - other_col)) >= 3


def test_an_explicit_grid_is_kept_and_refused_when_its_quarters_need_more_photos():
    from mosaic.importance import Detection
    from mosaic.options import LayoutRequest
    from mosaic.pipeline.target import plan_grid

    face = np.zeros((400, 400), dtype=bool)
    face[150:230, 170:230] = True
    found = Detection(face, face, [(170, 150, 230, 230)])
    layout = plan_grid(LayoutRequest(grid="8x8", detail="faces"), (400, 400), 200, found)
    assert (layout.rows, layout.cols) == (8, 8) and layout.split
    with pytest.raises(MosaicError, match="grid"):
        plan_grid(LayoutRequest(grid="8x8", detail="faces"), (400, 400), 64, found)
