"""Composing the mosaic at print resolution."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from mosaic.errors import MosaicError
from mosaic.files import OutputError, atomic_path
from mosaic.images import DEFAULT_MAX_PIXELS, Box, crop_resize, open_rgb
from mosaic.layout import Layout
from mosaic.machine import map_in_threads
from mosaic.outputs import check_output_format, check_output_pixels, check_replaceable, image_exif
from mosaic.progress import stage

JPEG_QUALITY = 92


def render_tile(path: str, box: Box, tile_px: int, max_pixels: int = DEFAULT_MAX_PIXELS
                ) -> Image.Image:
    """One photo cropped to ``box`` and resized (Lanczos) to a ``tile_px`` square."""
    image = open_rgb(path, max_pixels=max_pixels, draft_size=tile_px * 2)
    return crop_resize(image, box, tile_px, Image.Resampling.LANCZOS)


def render_mosaic(
    layout: Layout,
    tile_sources: Sequence[tuple[str, Box]],
    out_path: str | os.PathLike[str],
    dpi: float | None = None,
    workers: int | None = None,
) -> Path:
    """Draw every tile's photo and save the mosaic atomically.

    Parameters
    ----------
    layout : Layout
        Grid and tile size.
    tile_sources : sequence of (str, Box)
        For each tile, row by row: the photo file and its crop box.
    out_path : path-like
        Output image; the format follows the suffix (.jpg, .png, .tif...).
    dpi : float, optional
        Stored in the file's metadata for printing.
    workers : int, optional
        Decoding threads (default: the CPU count).

    Returns
    -------
    pathlib.Path
        ``out_path``.

    Raises
    ------
    MosaicError
        A photo can no longer be read, or the output cannot be written.
    """
    if len(tile_sources) != layout.tiles:
        raise ValueError(f"{len(tile_sources)} tile photos for {layout.tiles} tiles")
    width, height = layout.output_size
    canvas = Image.new("RGB", (width, height))
    size = layout.tile_px

    def draw(item: tuple[str, Box]) -> Image.Image:
        return render_tile(item[0], item[1], size)

    with stage("render", layout.tiles) as advance:
        for index, tile in enumerate(map_in_threads(draw, tile_sources, workers)):
            row, col = divmod(index, layout.cols)
            canvas.paste(tile, (col * size, row * size))
            advance(1)
    out = Path(out_path)
    save_image(canvas, out, dpi)
    return out


def save_image(image: Image.Image, out: Path, dpi: float | None = None) -> None:
    """Save a poster atomically in the format its suffix names, with this tool's mark.

    Raises
    ------
    MosaicError
        The format cannot hold it, a file of the user's appeared at ``out`` meanwhile,
        or the file cannot be written.
    """
    fmt = check_output_format(out)
    width, height = image.size
    check_output_pixels(width, height, fmt, memory_budget=2**63)
    check_replaceable(out, "`out`")
    options: dict[str, object] = {"exif": image_exif()}
    if fmt == "JPEG":
        options.update(quality=JPEG_QUALITY, subsampling=0, optimize=True)
    if fmt == "TIFF" and 3 * width * height >= 2**32 - 2**24:
        options["big_tiff"] = True  # classic TIFF stops at 4 GB
    if dpi:
        options["dpi"] = (dpi, dpi)
    try:
        with atomic_path(out) as tmp:
            image.save(tmp, format=fmt, **options)
    except OutputError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise MosaicError(f"cannot write {out}: {exc}") from None
