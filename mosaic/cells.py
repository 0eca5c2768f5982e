"""Mixed grids: some tiles split into 2x2 quarter tiles (``--detail faces``).

A poster of few photos has coarse tiles; on a face that loses the likeness first. With
``--detail faces`` every tile that shows a face is drawn as four quarter tiles instead,
each its own photo, so the face gets four times the detail from the same library. The
assignment does not change: it places one photo on every *cell* (a whole tile or a
quarter), exactly, over the cells' own thumbnails.

Cells are numbered tile by tile, row by row; a split tile's four quarters follow each
other in the order of :data:`QUARTERS` (top left, top right, bottom left, bottom right).
Positions are in *units* of half a tile: tile ``(r, c)`` covers units ``2r..2r+1`` x
``2c..2c+1``, so the units form a ``2 rows x 2 cols`` grid that every per-cell value can
be spread over (:meth:`CellGrid.spread`) for the report's pictures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Protocol, TypeVar

import numpy as np

from mosaic.errors import MosaicError

DETAIL_MODES = ("none", "faces")
"""``--detail``: none (every tile whole, the default) or faces (face tiles split)."""

QUARTERS = ("tl", "tr", "bl", "br")
"""The quarters of a split tile, in cell order (as ``placement.csv`` names them)."""


def unit_edge(unit: int, tile: int) -> int:
    """Pixel position of the edge before half-tile ``unit`` for tiles ``tile`` pixels wide.

    A tile's left quarter is ``tile // 2`` wide and its right quarter the rest, so the
    quarters of odd-sized tiles still meet their neighbours without a gap.
    """
    return (unit // 2) * tile + (unit % 2) * (tile // 2)


@dataclass(frozen=True)
class CellGrid:
    """A ``rows x cols`` grid of tiles, those listed in ``split`` cut into quarters."""

    rows: int
    cols: int
    split: tuple[int, ...] = ()
    """Indices (row-major) of the tiles drawn as four quarters, ascending."""

    def __post_init__(self) -> None:
        if any(not 0 <= t < self.rows * self.cols for t in self.split) or (
                list(self.split) != sorted(set(self.split))):
            raise ValueError(f"split tiles {self.split[:5]}... must be distinct, ascending and "
                             f"inside the {self.rows} x {self.cols} grid")

    @property
    def count(self) -> int:
        """Number of cells: every tile, and three more for each split one."""
        return self.rows * self.cols + 3 * len(self.split)

    @cached_property
    def parts(self) -> np.ndarray:
        """int64 (rows, cols): cells of each tile, 1 or 4 for a split one."""
        parts = np.ones((self.rows, self.cols), dtype=np.int64)
        parts.ravel()[list(self.split)] = 4
        return parts

    @cached_property
    def table(self) -> np.ndarray:
        """int64 (count, 5): each cell's tile, quarter (-1: whole), top and left unit, span.

        The span is 2 units for a whole tile and 1 for a quarter.
        """
        parts = self.parts.ravel()
        tile = np.repeat(np.arange(self.rows * self.cols), parts)
        first = np.repeat(np.cumsum(parts) - parts, parts)
        quarter = np.where(parts[tile] == 4, np.arange(len(tile)) - first, -1)
        row, col = np.divmod(tile, self.cols)
        inside = np.maximum(quarter, 0)
        top = 2 * row + np.where(quarter >= 0, inside // 2, 0)
        left = 2 * col + np.where(quarter >= 0, inside % 2, 0)
        span = np.where(quarter >= 0, 1, 2)
        return np.stack([tile, quarter, top, left, span], axis=1).astype(np.int64)

    @property
    def tile_of_cell(self) -> np.ndarray:
        """The tile each cell lies in."""
        return self.table[:, 0]

    def row_cells(self, row: int) -> range:
        """The cells of tile row ``row`` (they are consecutive)."""
        starts = self._row_starts
        return range(int(starts[row]), int(starts[row + 1]))

    @cached_property
    def _row_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.parts.sum(axis=1))])

    def box_in_row(self, cell: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """Pixel box (left, top, right, bottom) of ``cell`` inside its row of tiles.

        ``size`` is a tile's (width, height) in pixels.
        """
        tile, _, top, left, span = (int(v) for v in self.table[cell])
        base = 2 * (tile // self.cols)
        width, height = size
        return (unit_edge(left, width), unit_edge(top - base, height),
                unit_edge(left + span, width), unit_edge(top - base + span, height))

    def spread(self, values: np.ndarray) -> np.ndarray:
        """Per-cell values on the ``2 rows x 2 cols`` grid of units, row-major (flat).

        A whole tile's value covers its four units, a quarter's its own.
        """
        data = np.asarray(values).reshape(-1)
        if data.size != self.count:
            raise ValueError(f"{data.size} values for {self.count} cells")
        units = np.empty((2 * self.rows, 2 * self.cols), dtype=data.dtype)
        for (_, _, top, left, span), value in zip(self.table.tolist(), data, strict=True):
            units[top:top + span, left:left + span] = value
        return units.reshape(-1)

    def unit_index(self) -> np.ndarray:
        """For each cell, the row-major index of its top-left unit (in the units grid)."""
        return self.table[:, 2] * 2 * self.cols + self.table[:, 3]


def check_cell_spacing(grid: CellGrid, photos: int, max_uses: int, min_distance: int) -> None:
    """Refuse a distance between copies that a window of split tiles cannot meet.

    Every D x D window of tiles needs as many different photos as it holds cells (four
    for a split tile), as :func:`mosaic.layout.check_repeat_spacing` says for whole tiles.

    Raises
    ------
    MosaicError
        Some window holds more cells than there are photos.
    """
    if min_distance <= 1 or max_uses <= 1 or not grid.split:
        return
    height, width = min(min_distance, grid.rows), min(min_distance, grid.cols)
    summed = np.zeros((grid.rows + 1, grid.cols + 1), dtype=np.int64)
    summed[1:, 1:] = grid.parts.cumsum(axis=0).cumsum(axis=1)
    windows = (summed[height:, width:] - summed[:-height, width:] - summed[height:, :-width]
               + summed[:-height, :-width])
    most = int(windows.max())
    if most > photos:
        raise MosaicError(f"`min_repeat_distance` {min_distance} needs {most} different photos "
                          f"in a {height}x{width} block of tiles with quarters "
                          f"(`detail` faces), but there are {photos}; lower it or add photos")


def cells_of(tile_values: np.ndarray, unit_values: np.ndarray, grid: CellGrid) -> np.ndarray:
    """Each cell's entry: a whole tile's from ``tile_values``, a quarter's from ``unit_values``.

    Parameters
    ----------
    tile_values : ndarray, shape (rows * cols, ...)
        One entry per tile (for example the target's tile thumbnails).
    unit_values : ndarray, shape (4 * rows * cols, ...)
        The same for the grid of half tiles (``2 rows x 2 cols``).
    grid : CellGrid

    Returns
    -------
    ndarray, shape (grid.count, ...)
    """
    quarter = grid.table[:, 1] >= 0
    out = np.asarray(tile_values)[grid.tile_of_cell].copy()
    if quarter.any():
        out[quarter] = np.asarray(unit_values)[grid.unit_index()[quarter]]
    return out


class _Planned(Protocol):
    """What :func:`plan_detail` needs of a layout (:class:`mosaic.layout.Layout`)."""

    @property
    def tiles(self) -> int: ...

    @property
    def split(self) -> tuple[int, ...]: ...


LayoutT = TypeVar("LayoutT", bound=_Planned)


def plan_detail(budget: int, layout_for: Callable[[int], LayoutT],
                split_of: Callable[[LayoutT], tuple[int, ...]]) -> LayoutT:
    """The largest grid whose tiles and quarters need at most ``budget`` photos.

    Parameters
    ----------
    budget : int
        Cells the photos can fill (photos x max uses, or ``--tiles``).
    layout_for : callable
        The layout (grid, crop) for at most ``n`` tiles.
    split_of : callable
        The tiles of a layout to split (its face tiles).

    Returns
    -------
    Layout
        With ``split`` set; the split tiles' quarters and the other tiles number at most
        ``budget``. The tile count is found by bisection (more tiles mean more face
        tiles, so whether a count fits is nearly monotone) and a scan just above it; the
        fit with most cells is kept.
    """
    best: LayoutT | None = None

    def fits(wanted: int) -> bool:
        nonlocal best
        layout = layout_for(wanted)
        split = split_of(layout)
        if layout.tiles + 3 * len(split) > budget:
            return False
        candidate = replace(layout, split=split)  # type: ignore[type-var]
        if best is None or _cells(candidate) > _cells(best):
            best = candidate
        return True

    low, high = 1, budget
    while low <= high:
        wanted = (low + high) // 2
        if fits(wanted):
            low = wanted + 1
        else:
            high = wanted - 1
    # Just above the bisection's answer another grid shape may still fit and fill more.
    for wanted in range(low, min(budget, low + _SCAN_ABOVE) + 1):
        fits(wanted)
    if best is None:  # not even one tile and its quarters fit
        return layout_for(1)
    return best


_SCAN_ABOVE = 128
"""Tile counts tried above the bisection's answer (a plan takes about 2 ms)."""


def _cells(layout: _Planned) -> int:
    return layout.tiles + 3 * len(layout.split)


def check_split_fits(layout: _Planned, budget: int, grid_text: str) -> None:
    """Refuse an explicit ``--grid`` whose split face tiles need more photos than there are."""
    needed = _cells(layout)
    if needed > budget:
        raise MosaicError(f"`detail` faces splits {len(layout.split)} face tiles of `grid` "
                          f"{grid_text} into quarters: {needed} cells, but the photos fill "
                          f"only {budget}; ask for a smaller grid or leave `grid` out")


__all__ = ["DETAIL_MODES", "QUARTERS", "CellGrid", "cells_of", "check_cell_spacing",
           "check_split_fits", "plan_detail", "unit_edge"]
