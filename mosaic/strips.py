"""The poster drawn one row of tiles at a time, each row kept on disk until it is written.

Holding a 400-megapixel poster in memory takes 1.2 GB (and Pillow's encoders more); a row
of tiles is a few tens of MB. Each finished row is a raw RGB file in a folder of the run,
written atomically, so a render that is stopped or killed restarts at the first row that
is missing. libvips then joins the rows and streams them into the output file
(:mod:`mosaic.poster`), reading each row from disk as it goes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mosaic.cells import CellGrid
from mosaic.files import atomic_path, hash_jsonable
from mosaic.images import DEFAULT_MAX_PIXELS, Box, crop_resize, open_rgb
from mosaic.machine import map_in_threads

TileSource = tuple[str, Box]
"""A tile's photo file and the crop box of it that fills the tile."""

_KEY_FILE = "strips.key"


def render_tile(path: str, box: Box, tile_px: int | tuple[int, int],
                max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """One photo cropped to ``box`` and resized (Lanczos) to a tile.

    ``tile_px`` is the side of a square tile, or (width, height).
    """
    size = (tile_px, tile_px) if isinstance(tile_px, int) else tile_px
    image = open_rgb(path, max_pixels=max_pixels, draft_size=max(size) * 2)
    return crop_resize(image, box, size, Image.Resampling.LANCZOS)


@dataclass(frozen=True)
class StripFolder:
    """Rows of tiles on disk: ``row-NNNNN.rgb``, each ``width x row_height`` raw RGB bytes.

    ``key`` names what the rows show (the photos, crops and tile size); a folder holding
    rows of another key is emptied before use, so a resumed render never mixes posters.
    """

    folder: Path
    key: str
    width: int
    row_height: int

    def row_path(self, row: int) -> Path:
        """The file of row ``row``."""
        return self.folder / f"row-{row:05d}.rgb"

    def has_row(self, row: int) -> bool:
        """Whether row ``row`` was written in full (atomic writes leave nothing partial)."""
        path = self.row_path(row)
        return path.is_file() and path.stat().st_size == self.row_bytes

    @property
    def row_bytes(self) -> int:
        """Bytes of one row."""
        return self.width * self.row_height * 3

    def prepare(self) -> None:
        """Create the folder; empty it first when it holds another poster's rows."""
        key_file = self.folder / _KEY_FILE
        if self.folder.is_dir() and (not key_file.is_file()
                                     or key_file.read_text(encoding="ascii") != self.key):
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not key_file.is_file():
            with atomic_path(key_file) as tmp:
                tmp.write_text(self.key, encoding="ascii")

    def write_row(self, row: int, pixels: np.ndarray) -> None:
        """Store one drawn row (uint8, ``row_height x width x 3``) atomically."""
        with atomic_path(self.row_path(row)) as tmp:
            pixels.tofile(tmp)

    def read_row(self, row: int) -> Image.Image:
        """A stored row as an image."""
        data = self.row_path(row).read_bytes()
        return Image.frombytes("RGB", (self.width, self.row_height), data)

    def remove(self) -> None:
        """Delete the folder and its rows (after the poster is written)."""
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class ColourCorrection:
    """Each tile's colours moved toward its cell's mean colour (``--color-correct``).

    A tile's pixels are shifted by ``strength * (cell mean - tile mean)`` in RGB, so its
    texture is the photo's and only its overall colour leans toward the target's.
    """

    strength: float
    """0 to 0.5: the part of the gap between the two mean colours that is closed."""
    cell_means: np.ndarray
    """float (tiles, 3): the mean RGB colour of each tile's cell of the target."""

    def apply(self, tile: Image.Image, index: int) -> Image.Image:
        """Tile ``index`` with its colours shifted."""
        pixels = np.asarray(tile, dtype=np.float32)
        shift = self.strength * (self.cell_means[index] - pixels.mean(axis=(0, 1)))
        return Image.fromarray(np.clip(np.rint(pixels + shift), 0, 255).astype(np.uint8))

    def key(self) -> list[object]:
        """What names the corrected rows (for :func:`strips_key`)."""
        return [self.strength, np.round(self.cell_means, 4).tolist()]


def strips_key(sources: Sequence[TileSource], tile_px: int | Sequence[int],
               identity: Sequence[object] = ()) -> str:
    """A key naming the rows of a poster: its tiles' files, crops and size.

    ``identity`` adds what the paths do not say (each photo's SHA-256), so a photo
    replaced at the same path is drawn again.
    """
    size = tile_px if isinstance(tile_px, int) else list(tile_px)
    return hash_jsonable([size, [[path, list(box)] for path, box in sources],
                          list(identity)])


def draw_rows(strips: StripFolder, grid: CellGrid, sources: Sequence[TileSource],
              cells: Sequence[tuple[int, int]], advance: Callable[[int], None],
              workers: int | None = None, correction: ColourCorrection | None = None
              ) -> list[np.ndarray]:
    """Draw every missing row of tiles into ``strips``; return the poster shrunk.

    Parameters
    ----------
    strips : StripFolder
        Where the rows go (prepared); rows already there are kept.
    grid : CellGrid
        The tiles, and which are drawn as quarters (:mod:`mosaic.cells`).
    sources : sequence of TileSource
        Every cell, in the grid's order (tile by tile, row by row).
    cells : sequence of (int, int)
        Pixels (width, height) of a tile in each shrunk copy (box-averaged, as the
        quality figures shrink a poster); a quarter gets its part of that.
    advance : callable
        Called with the number of cells done, as they are done.
    workers : int, optional
        Decoding threads (default: the CPU count).
    correction : ColourCorrection, optional
        Shift each cell's colours toward its cell of the target (none by default: every
        pixel is then the photo's own).

    Returns
    -------
    list of ndarray of uint8, shape (rows * cell height, cols * cell width, 3)
        The poster at each of ``cells`` pixels a tile, made while drawing (never by
        reading the written poster back).
    """
    rows, cols = grid.rows, grid.cols
    tile_size = (strips.width // cols, strips.row_height)
    shrunk = [np.zeros((rows * ch, cols * cw, 3), np.uint8) for cw, ch in cells]
    missing = [row for row in range(rows) if not strips.has_row(row)]
    for row in sorted(set(range(rows)) - set(missing)):
        image = strips.read_row(row)
        for (cw, ch), copy in zip(cells, shrunk, strict=True):
            copy[row * ch:(row + 1) * ch] = np.asarray(
                image.resize((cols * cw, ch), Image.Resampling.BOX))
        advance(len(grid.row_cells(row)))
    todo = [cell for row in missing for cell in grid.row_cells(row)]
    last_of_row = {grid.row_cells(row)[-1]: row for row in missing}

    def draw(index: int) -> tuple[np.ndarray, list[np.ndarray]]:
        path, box = sources[index]
        left, top, right, bottom = grid.box_in_row(index, tile_size)
        tile = render_tile(path, box, (right - left, bottom - top))  # shrunk here too
        if correction is not None:
            tile = correction.apply(tile, index)
        return np.asarray(tile), [np.asarray(tile.resize(_size(grid.box_in_row(index, cell)),
                                                          Image.Resampling.BOX))
                                  for cell in cells]

    # Two row buffers: one is written to disk by a thread while the other fills.
    buffers = [np.zeros((tile_size[1], strips.width, 3), np.uint8) for _ in range(2)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="row-writer") as writer:
        writing: list[Future[None]] = []
        position = 0
        for index, (tile, small) in zip(todo, map_in_threads(draw, todo, workers),
                                        strict=True):
            row, canvas = missing[position], buffers[position % 2]
            if index == grid.row_cells(row)[0] and len(writing) >= 2:
                writing.pop(0).result()  # this buffer's last row is on disk
            left, top, right, bottom = grid.box_in_row(index, tile_size)
            canvas[top:bottom, left:right] = tile
            for cell, copy, piece in zip(cells, shrunk, small, strict=True):
                x0, y0, x1, y1 = grid.box_in_row(index, cell)
                copy[row * cell[1] + y0:row * cell[1] + y1, x0:x1] = piece[:y1 - y0, :x1 - x0]
            advance(1)
            if index in last_of_row:
                writing.append(writer.submit(strips.write_row, row, canvas))
                position += 1
        for future in writing:
            future.result()
    return shrunk


def _size(box: tuple[int, int, int, int]) -> tuple[int, int]:
    """(width, height) of a pixel box, at least one pixel each way."""
    return max(1, box[2] - box[0]), max(1, box[3] - box[1])
