"""``mosaic render``: draw a poster again from a build's placement list.

``placement.csv`` (in every build's run folder) says which photo and which crop went on
each tile; this command redraws it, for example at a larger tile size for print, without
scoring or solving again. Every photo is checked against its SHA-256 first, so a photo that
moved or changed is named instead of drawn wrong. No Prefect.

Registered by :mod:`cli.main`, which turns its errors into one line and exit status 2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mosaic.errors import MosaicError

if TYPE_CHECKING:
    from mosaic.placement import PlacedTile

DEFAULT_TILE_PX = 100
"""Tile width when --tile-px is not given (the build's default)."""


def _photo_path(tile: PlacedTile, where: Path) -> Path:
    """The tile's photo file; a relative path is relative to the list."""
    photo = Path(tile.photo)
    return photo if photo.is_absolute() else where.parent / photo


def _check_photos(tiles: list[PlacedTile], where: Path) -> None:
    """Refuse when a listed photo is missing or is not the file that was placed."""
    from mosaic.files import sha256_file

    checked: dict[str, str] = {}
    for tile in tiles:
        if tile.photo in checked:
            continue
        try:
            checked[tile.photo] = sha256_file(_photo_path(tile, where))
        except OSError as exc:
            raise MosaicError(f"{where}: photo {tile.photo} (row {tile.row}, column "
                              f"{tile.column}) cannot be read: {exc.strerror or exc}") from None
        if tile.photo_sha256 and checked[tile.photo] != tile.photo_sha256:
            raise MosaicError(f"{where}: photo {tile.photo} changed since it was placed "
                              "(its SHA-256 differs); put the original back or build again")


def render(
    placement: Annotated[Path, typer.Argument(
        help="A placement.csv from a build's run folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Poster to write (.jpg, .png, "
                                      ".tif, .webp), or the folder of --format dzi.")],
    tile_px: Annotated[int, typer.Option(min=1, max=4096, help="Tile width in pixels (the "
                                         "height follows the list's tile shape).")] = (
        DEFAULT_TILE_PX),
    dpi: Annotated[Optional[float], typer.Option(min=1.0, help="Resolution stored in the "
                                                 "file for printing.")] = None,
    bleed: Annotated[Optional[str], typer.Option(
        help="Margin for the trim on every side: 3mm (with --dpi) or 40px, the edge tiles "
             "mirrored outwards.")] = None,
    format: Annotated[str, typer.Option(
        "--format", metavar="auto|dzi", help="auto: the image format --out's suffix names; "
        "dzi: a Deep Zoom folder with viewer.html.")] = "auto",
) -> None:
    """Draw a poster again from a build's placement list."""
    from mosaic.layout import Layout, parse_bleed
    from mosaic.outputs import check_output_format, check_replaceable
    from mosaic.placement import grid_of, read_placement, split_of
    from mosaic.render import render_mosaic
    from mosaic.tile_shape import parse_tile_aspect, tile_height_for
    from mosaic.viewer import check_deep_zoom_out

    started = time.perf_counter()
    if format not in {"auto", "dzi"}:
        raise MosaicError(f"--format {format!r}: give auto or dzi")
    deep_zoom = format == "dzi"
    if deep_zoom:
        check_deep_zoom_out(out)
    else:
        check_output_format(out, "--out")
        check_replaceable(out, "--out")
    bleed_px = parse_bleed(bleed, dpi) if bleed else 0
    tiles = read_placement(placement)
    _check_photos(tiles, placement)
    rows, cols = grid_of(tiles)
    shape = parse_tile_aspect(tiles[0].tile_aspect)
    width, height = cols * tile_px, rows * tile_height_for(tile_px, shape)
    layout = Layout(rows, cols, tile_px, (0, 0, width, height), (width, height),
                    tile_aspect=shape, split=split_of(tiles))
    if layout.split and min(tile_px, layout.tile_height) < 2:
        raise MosaicError(f"--tile-px {tile_px}: the list has quarter tiles, which need "
                          "tiles of at least 2 pixels")
    sources = [(str(_photo_path(tile, placement)), tile.box) for tile in tiles]
    out.parent.mkdir(parents=True, exist_ok=True)
    poster = render_mosaic(layout, sources, out, dpi=dpi, bleed_px=bleed_px,
                           deep_zoom=deep_zoom)
    width, height = poster.width, poster.height
    typer.echo(f"mosaic: {poster.path} ({width}x{height} px, {rows}x{cols} tiles) in "
               f"{time.perf_counter() - started:.1f} s")
