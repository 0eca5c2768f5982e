"""Stage 4: per-tile weights and classes (face, person, background) from the detection."""

from __future__ import annotations

import numpy as np

from mosaic.files import FileRef, save_npy_atomic
from mosaic.importance import (
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


def weigh(people: PeopleResult | None, layout: Layout, request: WeightRequest, workdir: str
          ) -> WeightsResult:
    """Weights and classes as ``.npy`` files.

    Without a detection (``weights`` none), weights are uniform and every tile is
    background; a target with nobody in it is uniform too, with a note saying so.
    """
    folder = stage_folder(workdir, "weights", people.detection if people else None, layout,
                          request)
    if people is None:
        mode, note = "none", None
        weights = np.ones(layout.tiles)
        classes = np.zeros(layout.tiles, dtype=np.int8)
    else:
        found = load_detection(people.detection.path)
        mode, note = resolve_mode(found, request.mode)
        weights = tile_weights(found, layout.crop, layout.rows, layout.cols, mode,
                               request.face_weight, request.person_weight, request.falloff)
        classes = tile_classes(found, layout.crop, layout.rows, layout.cols)
    save_npy_atomic(folder / "weights.npy", weights)
    save_npy_atomic(folder / "classes.npy", classes)
    settings = weights_settings(mode, request.face_weight, request.person_weight,
                                request.falloff, requested=request.mode)
    return WeightsResult(FileRef.of(folder / "weights.npy"), FileRef.of(folder / "classes.npy"),
                         settings, note, mode == "none")
