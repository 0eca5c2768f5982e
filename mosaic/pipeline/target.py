"""Stage 3: the grid and the target's tiles (the crop keeps the faces in the frame)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
from PIL import Image

from mosaic.cells import cells_of, check_cell_spacing, check_split_fits, plan_detail
from mosaic.errors import MosaicError
from mosaic.features import tile_thumbnails
from mosaic.files import FileRef, save_npy_atomic
from mosaic.images import open_rgb
from mosaic.importance import FACE, Detection, face_crop, load_detection, tile_classes
from mosaic.layout import Layout
from mosaic.options import LayoutRequest
from mosaic.pipeline import stage_folder
from mosaic.pipeline.results import PeopleResult, TargetResult
from mosaic.progress import stage

logger = logging.getLogger("mosaic.target")


def _face_framed(layout: Layout, found: Detection | None) -> Layout:
    """``layout`` with its crop moved to keep the faces in the frame (when there are any)."""
    if found is None:
        return layout
    aspect = layout.cols * layout.tile_ratio / layout.rows
    return replace(layout, crop=face_crop(found, aspect))


def face_tiles(layout: Layout, found: Detection) -> tuple[int, ...]:
    """The tiles of ``layout`` that show any part of a face (the weights' face class)."""
    classes = tile_classes(found, layout.crop, layout.rows, layout.cols)
    return tuple(int(t) for t in np.flatnonzero(classes == FACE))


def plan_grid(request: LayoutRequest, size: tuple[int, int], photos: int,
              found: Detection | None) -> Layout:
    """The layout: the grid for ``photos``, and with ``detail`` faces its split face tiles.

    With ``detail`` faces the grid has as many tiles as leave enough photos for the
    quarters of its face tiles (:func:`mosaic.cells.plan_detail`); an explicit ``grid``
    is kept and refused when its quarters need more photos than there are.
    """
    layout = _face_framed(request.plan(size, photos), found)
    if request.detail != "faces":
        return layout
    if found is None or not found.faces:
        logger.warning("detail faces: no face was found in the target, so every tile stays "
                       "whole")
        return layout
    if min(layout.tile_px, layout.tile_height) < 2:
        raise MosaicError(f"`detail` faces needs tiles of at least 2 pixels to draw quarters;"
                          f" these are {layout.tile_px}x{layout.tile_height}: raise `tile_px` "
                          "or `dpi`")
    budget = request.tiles if request.tiles is not None else photos * request.max_uses
    if request.grid is not None:
        layout = replace(layout, split=face_tiles(layout, found))
        check_split_fits(layout, budget, request.grid)
    else:
        layout = plan_detail(budget,
                             lambda tiles: _face_framed(request.plan(size, photos, tiles), found),
                             lambda planned: face_tiles(planned, found))
    check_cell_spacing(layout.cell_grid, photos, request.max_uses, request.min_repeat_distance)
    return layout


def cell_thumbnails(image: Image.Image, layout: Layout, feature_size: int) -> np.ndarray:
    """Thumbnails of every cell: the tiles, and the quarters of the split ones."""
    tiles = tile_thumbnails(image, layout.crop, layout.rows, layout.cols, feature_size)
    if not layout.split:
        return tiles
    units = tile_thumbnails(image, layout.crop, 2 * layout.rows, 2 * layout.cols, feature_size)
    return cells_of(tiles, units, layout.cell_grid)


def prepare_target(target: FileRef, photos: int, workdir: str, request: LayoutRequest,
                   feature_size: int, max_pixels: int, people: PeopleResult | None = None
                   ) -> TargetResult:
    """Plan the grid for ``photos`` distinct photos, crop the target, cut cell thumbnails."""
    started = time.perf_counter()
    image = open_rgb(target.path, max_pixels=max_pixels)
    found = (load_detection(people.detection.path)
             if people is not None and people.faces_found else None)
    layout = plan_grid(request, image.size, photos, found)
    with stage("cut target tiles", 1) as advance:
        tiles = cell_thumbnails(image, layout, feature_size)
        advance(1)
    folder = stage_folder(workdir, "target", target.sha256, layout, feature_size)
    save_npy_atomic(folder / "tiles.npy", tiles)
    return TargetResult(layout, FileRef.of(folder / "tiles.npy"), time.perf_counter() - started)
