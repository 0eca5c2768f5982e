"""``mosaic weights``: see which tiles the mosaic will protect, before building it.

Detects the faces and people of the target, lays out the grid as ``mosaic build`` would
(with the face-aware crop), and writes the tile weights drawn over the target. No
Prefect, no photo library: it takes a few seconds.

Registered by :mod:`cli.main`, which turns its errors into one line and exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mosaic.errors import MosaicError
from mosaic.images import DEFAULT_MAX_PIXELS
from mosaic.importance import (
    DEFAULT_FACE_WEIGHT,
    DEFAULT_FALLOFF,
    DEFAULT_PERSON_WEIGHT,
    MODES,
    SEGMENTERS,
)

DEFAULT_TILES = 1000
"""Tiles when neither --grid nor --tiles is given."""
_NO_PHOTO_LIMIT = 10**9


def _check_out(path: Path, target: Path) -> None:
    """Refuse an output that is the target, a file of the user's, or not an image type."""
    from mosaic.outputs import check_output_format, check_replaceable

    check_replaceable(path, "--out")
    if path.exists() and target.exists() and path.samefile(target):
        raise MosaicError(f"--out {path} is the target picture; write the map elsewhere")
    check_output_format(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MosaicError(f"--out {path}: cannot create folder {path.parent} "
                          f"({exc.strerror or exc})") from None


def _check_options(mode: str, face_weight: float, person_weight: float, falloff: float,
                   segmenter: str, pointrend: tuple[Path | None, Path | None],
                   grid: str | None, tiles: int | None) -> None:
    """Check what can be checked before the target is opened."""
    from mosaic.importance import check_segmenter, check_weights

    check_weights(mode, face_weight, person_weight, falloff)
    check_segmenter(segmenter, *(str(p) if p is not None else None for p in pointrend))
    if grid is not None and tiles is not None:
        raise MosaicError("give --grid or --tiles, not both")


def describe(faces: int, person_fraction: float, target: Path) -> str:
    """One line: faces found and how much of the target is people."""
    if faces == 0 and person_fraction == 0:
        return (f"nobody found in {target.name}: no face, no person; the mosaic will treat "
                "every tile alike (uniform weights)")
    noun = "face" if faces == 1 else "faces"
    return f"{faces} {noun} found; people cover {person_fraction:.0%} of the target"


def weights(
    target: Annotated[Path, typer.Option(help="The picture the mosaic reproduces.")],
    out: Annotated[Path, typer.Option(help="Where to write the weight map (.png, .jpg).")],
    grid: Annotated[Optional[str], typer.Option(help="ROWSxCOLS, e.g. 40x30.")] = None,
    tiles: Annotated[Optional[int], typer.Option(
        help=f"Number of tiles, when no --grid (default {DEFAULT_TILES}).")] = None,
    size: Annotated[Optional[str], typer.Option(
        help="Poster size (A3, 50x70cm, 24x36in...): its aspect decides the grid for "
             "--tiles, as in `mosaic build`.")] = None,
    mode: Annotated[str, typer.Option(
        "--weights", help=f"Which tiles count more: {', '.join(MODES)}.")] = "faces+people",
    face_weight: Annotated[float, typer.Option(
        help="Weight of tiles on a face's whole head (>= 1).")] = DEFAULT_FACE_WEIGHT,
    person_weight: Annotated[float, typer.Option(
        help="Weight of tiles on a person (>= 1).")] = DEFAULT_PERSON_WEIGHT,
    falloff: Annotated[float, typer.Option(
        help="How far the weights reach beyond a face or person, in tiles.")
    ] = DEFAULT_FALLOFF,
    segmenter: Annotated[str, typer.Option(
        help=f"Where person masks come from: {', '.join(SEGMENTERS)} (pointrend needs "
             "detectron2, not installable from PyPI).")] = "mediapipe",
    pointrend_config: Annotated[Optional[Path], typer.Option(
        help="PointRend config (.yaml), with --segmenter pointrend.")] = None,
    pointrend_weights: Annotated[Optional[Path], typer.Option(
        help="PointRend weights, with --segmenter pointrend.")] = None,
    max_pixels: Annotated[int, typer.Option(
        help="Refuse images with more pixels (decompression-bomb guard).")
    ] = DEFAULT_MAX_PIXELS,
) -> None:
    """Show which tiles of TARGET the mosaic will protect (faces and people)."""
    _check_options(mode, face_weight, person_weight, falloff, segmenter,
                   (pointrend_config, pointrend_weights), grid, tiles)
    _check_out(out, target)
    lines = run_weights(target, out, grid, tiles, size, mode, face_weight, person_weight,
                        falloff, segmenter, pointrend_config, pointrend_weights,
                        max_pixels)
    typer.echo("\n".join(lines))


def run_weights(target: Path, out: Path, grid: str | None, tiles: int | None,
                size: str | None, mode: str, face_weight: float, person_weight: float,
                falloff: float, segmenter: str, pointrend_config: Path | None,
                pointrend_weights: Path | None, max_pixels: int) -> list[str]:
    """Detect, lay out, weigh, draw; return the lines to print.

    Raises
    ------
    MosaicError
        Unreadable target, bad grid or size, PointRend unavailable.
    """
    from mosaic import importance
    from mosaic.images import open_rgb
    from mosaic.layout import parse_grid, parse_size, plan_layout
    from mosaic.report import save_image_atomic

    if not target.is_file():
        raise MosaicError(f"target {target} does not exist or is not a file")
    rows_cols = parse_grid(grid) if grid is not None else None
    poster, preset = parse_size(size) if size is not None else (None, False)
    if tiles is not None and tiles < 1:
        raise MosaicError(f"--tiles {tiles}: must be at least 1")
    image = open_rgb(target, max_pixels=max_pixels)
    detection = importance.detect_people(
        image, segmenter, str(pointrend_config) if pointrend_config else None,
        str(pointrend_weights) if pointrend_weights else None)
    wanted = None if rows_cols is not None else (tiles or DEFAULT_TILES)
    layout = plan_layout(image.size, _NO_PHOTO_LIMIT, grid=rows_cols, tiles=wanted,
                         poster=poster, poster_is_preset=preset)
    rows, cols = layout.rows, layout.cols
    crop = importance.face_crop(detection, cols / rows)
    effective, note = importance.resolve_mode(detection, mode)
    tile_weights = importance.tile_weights(detection, crop, rows, cols, effective,
                                           face_weight, person_weight, falloff)
    classes = importance.tile_classes(detection, crop, rows, cols)
    picture = importance.weight_map_image(image, tile_weights, crop, rows, cols)
    save_image_atomic(picture, out, quality=90)
    counts = {name: int((classes == label).sum()) for name, label in
              (("face", importance.FACE), ("person", importance.PERSON))}
    lines = [describe(detection.faces_found, detection.person_fraction, target)]
    lines += [f"note: {text}" for text in detection.notes
              if not text.startswith(("nobody found", "no face found"))]
    if note is not None and detection.anyone:
        lines.append(f"note: {note}")
    if effective == "none":
        lines.append(f"weights: uniform (1 on all {rows * cols} tiles)")
    else:
        lines.append(
            f"weights {effective} (face {face_weight:g}, person {person_weight:g}, fall-off "
            f"{falloff:g} tiles): min {tile_weights.min():.2f}, mean {tile_weights.mean():.2f},"
            f" max {tile_weights.max():.2f}; {counts['face']} face tiles, {counts['person']} "
            f"person tiles")
    lines.append(f"grid {rows}x{cols}, crop {crop} of {image.width}x{image.height}")
    lines.append(f"weight map: {out}")
    return lines
