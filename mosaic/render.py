"""Composing the mosaic at print resolution, in bounded memory, resumable.

The tiles are drawn one row at a time into row files (:mod:`mosaic.strips`), then libvips
streams the rows into the output (:mod:`mosaic.poster`): memory stays at a few rows of
tiles whatever the poster's size, a stopped render resumes at its first missing row, and
the quality figures come from a copy shrunk while drawing, never from the output.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mosaic.files import OutputError, describe_os_error
from mosaic.layout import Layout
from mosaic.outputs import check_output_format, check_output_pixels, check_replaceable
from mosaic.poster import poster_image, save_poster
from mosaic.processes import private_dir, remove_private_dir
from mosaic.progress import stage
from mosaic.report import QUALITY_CELL
from mosaic.strips import (
    ColourCorrection,
    StripFolder,
    TileSource,
    draw_rows,
    render_tile,
    strips_key,
)
from mosaic.tile_shape import shape_key
from mosaic.viewer import check_deep_zoom_out, save_deep_zoom

__all__ = ["PREVIEW_HEIGHT", "Poster", "preview_cell", "render_mosaic", "render_tile"]


@dataclass(frozen=True)
class Poster:
    """A written poster, and two copies of it shrunk while drawing (without the bleed)."""

    path: Path
    """The image file, or the Deep Zoom folder's ``viewer.html``."""
    width: int
    height: int
    """Pixels, the bleed included."""
    quality: np.ndarray
    """uint8, :data:`~mosaic.report.QUALITY_CELL` pixels a tile: for the quality figures."""
    preview: np.ndarray
    """uint8, about :data:`PREVIEW_HEIGHT` pixels tall (at least the quality copy): for
    the report's pictures."""


PREVIEW_HEIGHT = 480


def preview_cell(layout: Layout) -> tuple[int, int]:
    """Pixels (width, height) of a tile in the preview, in the tile's shape.

    Enough for :data:`PREVIEW_HEIGHT`, at most a tile.
    """
    wanted = -(-PREVIEW_HEIGHT // layout.rows)
    height = max(QUALITY_CELL, min(wanted, layout.tile_height))
    return max(1, round(height * layout.tile_ratio)), height


def render_mosaic(
    layout: Layout,
    tile_sources: Sequence[TileSource],
    out_path: str | os.PathLike[str],
    dpi: float | None = None,
    workers: int | None = None,
    rows_root: str | os.PathLike[str] | None = None,
    identity: Sequence[str] = (),
    bleed_px: int = 0,
    deep_zoom: bool = False,
    correction: ColourCorrection | None = None,
) -> Poster:
    """Draw every tile's photo and write the poster atomically.

    Parameters
    ----------
    layout : Layout
        Grid and tile size.
    tile_sources : sequence of (str, Box)
        For each cell (each tile, or the quarters of a split one; row by row): the photo
        file and its crop box.
    out_path : path-like
        Output image; the format follows the suffix (.jpg, .png, .tif, .webp).
    dpi : float, optional
        Stored in the file's metadata for printing.
    workers : int, optional
        Decoding threads (default: the CPU count).
    rows_root : path-like, optional
        A folder of the run where the drawn rows are kept until the poster is written,
        so that a stopped render resumes; without it they go to a private folder next to
        the output, removed when the render ends.
    identity : sequence of str
        What the paths do not say about the photos (their SHA-256): rows drawn from
        other bytes are drawn again.
    bleed_px : int
        Pixels of mirrored margin on every side, for the print shop's trim.
    deep_zoom : bool
        Write ``out_path`` as a Deep Zoom folder with its viewer
        (:func:`mosaic.viewer.save_deep_zoom`) instead of one image file.
    correction : ColourCorrection, optional
        Shift each tile toward its cell's mean colour (``--color-correct``); without it
        every output pixel comes from a photo.

    Returns
    -------
    Poster

    Raises
    ------
    MosaicError
        A photo can no longer be read, or the output cannot be written.
    """
    if len(tile_sources) != layout.cells:
        raise ValueError(f"{len(tile_sources)} tile photos for {layout.cells} cells")
    out = Path(out_path)
    if deep_zoom:
        check_deep_zoom_out(out)
    else:
        fmt = check_output_format(out)
        check_replaceable(out, "`out`")
    width, height = layout.output_size
    check_output_pixels(width + 2 * bleed_px, height + 2 * bleed_px,
                        "DZI" if deep_zoom else fmt, 2**63, layout.tile_side)
    size = layout.tile_px if not shape_key(layout.tile_aspect) else (layout.tile_px,
                                                                      layout.tile_height)
    key = strips_key(tile_sources, size,
                     [*identity, *(correction.key() if correction else []),
                      *([list(layout.split)] if layout.split else [])])
    private = rows_root is None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, out)) from None
    folder = private_dir("render", root=out.parent) if private else _own_folder(rows_root, key)
    strips = StripFolder(folder, key, width, layout.tile_height)
    try:
        strips.prepare()
        with stage("render", layout.cells) as advance:
            cells = ((QUALITY_CELL, QUALITY_CELL), preview_cell(layout))
            quality, preview = draw_rows(strips, layout.cell_grid, tile_sources, cells,
                                         advance, workers, correction)
        image = poster_image(strips, layout.rows, bleed_px, dpi)
        with stage("write poster", 100) as advance:
            if deep_zoom:
                written = save_deep_zoom(image, out, f"Mosaic: {out.name}", advance=advance)
            else:
                save_poster(image, out, fmt, advance)
                written = out
    finally:
        if private:
            remove_private_dir(folder)
    strips.remove()
    return Poster(written, image.width, image.height, quality, preview)


def _own_folder(root: str | os.PathLike[str], key: str) -> Path:
    """``root/<key>``, after removing the rows of other posters (a run folder's own)."""
    base = Path(root)
    if base.is_dir():
        for entry in base.iterdir():
            if entry.name != key[:16] and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
    return base / key[:16]
