"""Stage 4: per-cell weights and classes (face, person, background) from the detection."""

from __future__ import annotations

import numpy as np

from mosaic.cells import cells_of
from mosaic.files import FileRef, save_npy_atomic
from mosaic.importance import (
    FACE,
    Detection,
    load_detection,
    resolve_mode,
    tile_classes,
    tile_weights,
    weights_settings,
)
from mosaic.layout import Layout
from mosaic.options import WeightRequest
from mosaic.pipeline import stage_folder
from mosaic.pipeline.results import PeopleResult, WeightsResult


def cell_weights(found: Detection, layout: Layout, mode: str, request: WeightRequest
                 ) -> np.ndarray:
    """Each cell's weight: a whole tile's as without ``detail``, a quarter's on its own.

    A quarter is weighed on the grid of half tiles (the fall-off kept as long in target
    pixels) and keeps that weight whole, not scaled by its area: every cell takes one
    photo, and scaled quarters get the photos nothing else wants (where a bad photo hurts
    least), which made the face worse than without ``detail`` (``bench_detail``, 400
    photos: area scaling -7% to +59% face error on the group photos, unscaled -16% to
    -32%).
    """
    weights = tile_weights(found, layout.crop, layout.rows, layout.cols, mode,
                           request.face_weight, request.person_weight, request.falloff)
    if not layout.split:
        return weights
    units = tile_weights(found, layout.crop, 2 * layout.rows, 2 * layout.cols, mode,
                         request.face_weight, request.person_weight, request.falloff * 2)
    return cells_of(weights, units, layout.cell_grid)


def cell_classes(found: Detection, layout: Layout) -> np.ndarray:
    """Each cell's class; the quarters of a split tile are face cells, as their tile."""
    classes = tile_classes(found, layout.crop, layout.rows, layout.cols)
    if not layout.split:
        return classes
    return cells_of(classes, np.full(4 * layout.tiles, FACE, np.int8), layout.cell_grid)


def weigh(people: PeopleResult | None, layout: Layout, request: WeightRequest, workdir: str
          ) -> WeightsResult:
    """Weights and classes as ``.npy`` files, one entry per cell.

    Without a detection (``weights`` none), weights are uniform and every tile is
    background; a target with nobody in it is uniform too, with a note saying so.
    """
    folder = stage_folder(workdir, "weights", people.detection if people else None, layout,
                          request)
    if people is None:
        mode, note = "none", None
        weights = np.ones(layout.cells)
        classes = np.zeros(layout.cells, dtype=np.int8)
    else:
        found = load_detection(people.detection.path)
        mode, note = resolve_mode(found, request.mode)
        weights = cell_weights(found, layout, mode, request)
        classes = cell_classes(found, layout)
    save_npy_atomic(folder / "weights.npy", weights)
    save_npy_atomic(folder / "classes.npy", classes)
    settings = weights_settings(mode, request.face_weight, request.person_weight,
                                request.falloff, requested=request.mode)
    return WeightsResult(FileRef.of(folder / "weights.npy"), FileRef.of(folder / "classes.npy"),
                         settings, note, mode == "none" and not layout.split)
