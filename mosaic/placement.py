"""The placement list: which photo went on which tile, as a CSV anyone can open.

``placement.csv`` has one line per tile, row by row: the tile's row and column, the photo
file and its SHA-256 (to find or credit a photo even after it moved), the crop box drawn
(fractions of the upright photo), the tile's cost (MSE in [0, 1]), its weight, the tile
shape W:H (``--tile-aspect``; lists written before it are read as 1:1) and the quarter:
empty for a whole tile, or ``tl``, ``tr``, ``bl``, ``br`` for the four quarter tiles of a
tile split by ``--detail faces`` (lists without the column are all whole tiles). It holds
everything the render needs, so ``mosaic render`` draws the same poster from it again, at
any tile size.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mosaic.cells import QUARTERS
from mosaic.errors import MosaicError
from mosaic.files import write_bytes_atomic
from mosaic.images import Box
from mosaic.tile_shape import aspect_text, parse_tile_aspect

COLUMNS = ("row", "column", "photo", "photo_sha256", "crop_left", "crop_top", "crop_right",
           "crop_bottom", "cost", "weight", "tile_aspect", "quarter")
"""The header line, in order (lists without the last columns: 1:1 tiles, all whole)."""


@dataclass(frozen=True)
class PlacedTile:
    """One line of the placement list."""

    row: int
    column: int
    photo: str
    photo_sha256: str
    box: Box
    cost: float
    weight: float
    tile_aspect: str = "1:1"
    quarter: str = ""
    """Empty for a whole tile, else the quarter of a split tile (:data:`QUARTERS`)."""


def write_placement(path: str | os.PathLike[str], tiles: Sequence[PlacedTile]) -> None:
    """Write the placement list atomically (UTF-8, comma-separated, a header line).

    Parameters
    ----------
    path : path-like
        Where ``placement.csv`` goes.
    tiles : sequence of PlacedTile
        Every tile, row by row.
    """
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for tile in tiles:
        # repr-exact floats: the list redraws the poster bit for bit
        writer.writerow([tile.row, tile.column, tile.photo, tile.photo_sha256,
                         *(repr(float(v)) for v in tile.box), f"{tile.cost:.6g}",
                         f"{tile.weight:.6g}", tile.tile_aspect, tile.quarter])
    write_bytes_atomic(path, text.getvalue().encode("utf-8"))


def _parse_line(values: dict[str, str], line: int, where: str) -> PlacedTile:
    """One data line, or a MosaicError naming the line and the bad field."""
    try:
        row, column = int(values["row"]), int(values["column"])
        box = tuple(float(values[name]) for name in COLUMNS[4:8])
        cost, weight = float(values["cost"]), float(values["weight"])
        shape = parse_tile_aspect(values.get("tile_aspect") or "1:1")
        quarter = (values.get("quarter") or "").strip()
        if quarter and quarter not in QUARTERS:
            raise ValueError(f"quarter {quarter!r} is not one of {', '.join(QUARTERS)}")
    except (TypeError, ValueError, MosaicError) as exc:
        raise MosaicError(f"{where} line {line}: {exc}") from None
    left, top, right, bottom = box
    if row < 0 or column < 0:
        raise MosaicError(f"{where} line {line}: negative row or column")
    if not (all(math.isfinite(v) for v in box) and 0 <= left < right <= 1
            and 0 <= top < bottom <= 1):
        raise MosaicError(f"{where} line {line}: crop box {box} is not inside the photo")
    if not values["photo"]:
        raise MosaicError(f"{where} line {line}: no photo file")
    return PlacedTile(row, column, values["photo"], values["photo_sha256"],
                      (left, top, right, bottom), cost, weight, aspect_text(shape), quarter)


def read_placement(path: str | os.PathLike[str]) -> list[PlacedTile]:
    """Read a placement list and check that its tiles fill a grid once each.

    Parameters
    ----------
    path : path-like
        A ``placement.csv`` written by :func:`write_placement` (or edited by hand).

    Returns
    -------
    list of PlacedTile
        Row by row.

    Raises
    ------
    MosaicError
        The file cannot be read, its header is not :data:`COLUMNS`, a line is malformed,
        the tiles do not cover a rows x columns grid exactly once, or their shapes differ.
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MosaicError(f"cannot read the placement list {where}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if tuple(reader.fieldnames or ()) not in (COLUMNS, COLUMNS[:-1], COLUMNS[:-2]):
        raise MosaicError(f"{where} is not a placement list: its header must be "
                          f"{','.join(COLUMNS)}")
    tiles = [_parse_line(values, reader.line_num, where) for values in reader]
    if not tiles:
        raise MosaicError(f"{where} lists no tiles")
    shapes = sorted({tile.tile_aspect for tile in tiles})
    if len(shapes) > 1:
        raise MosaicError(f"{where} mixes tile shapes ({', '.join(shapes)}): one poster has "
                          "one tile shape")
    return _in_grid_order(tiles, where)


def _in_grid_order(tiles: list[PlacedTile], where: str) -> list[PlacedTile]:
    """The cells in grid order, after checking they cover every tile exactly once.

    A tile is listed once whole, or as its four quarters once each.
    """
    rows = max(tile.row for tile in tiles) + 1
    cols = max(tile.column for tile in tiles) + 1
    cells = {(tile.row, tile.column, tile.quarter) for tile in tiles}
    if len(cells) != len(tiles):
        raise MosaicError(f"{where} lists a tile more than once")
    parts: dict[tuple[int, int], set[str]] = {}
    for row, column, quarter in cells:
        parts.setdefault((row, column), set()).add(quarter)
    for (row, column), found in sorted(parts.items()):
        if found != {""} and found != set(QUARTERS):
            raise MosaicError(f"{where}: the tile at row {row}, column {column} must be "
                              "listed whole or as its four quarters (tl, tr, bl, br), not "
                              f"{', '.join(sorted(q or 'whole' for q in found))}")
    if len(parts) != rows * cols:
        raise MosaicError(f"{where} lists {len(parts)} tiles, not a full {rows}x{cols} grid")
    order = {"": 0, **{quarter: i for i, quarter in enumerate(QUARTERS)}}
    return sorted(tiles, key=lambda tile: (tile.row, tile.column, order[tile.quarter]))


def grid_of(tiles: Sequence[PlacedTile]) -> tuple[int, int]:
    """Rows and columns of a checked placement list."""
    return tiles[-1].row + 1, tiles[-1].column + 1


def split_of(tiles: Sequence[PlacedTile]) -> tuple[int, ...]:
    """The tiles (row-major indices) a checked list draws as quarters."""
    cols = grid_of(tiles)[1]
    return tuple(sorted({tile.row * cols + tile.column for tile in tiles if tile.quarter}))


__all__ = ["COLUMNS", "PlacedTile", "grid_of", "read_placement", "split_of",
           "write_placement"]
