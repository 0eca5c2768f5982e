"""Stage 6: the poster, each tile's photo cropped as scored, at print resolution."""

from __future__ import annotations

import time

import numpy as np

from mosaic.files import FileRef
from mosaic.images import Box
from mosaic.library import PhotoRecord, load_records
from mosaic.pipeline.assign import load_assignment
from mosaic.pipeline.results import (
    AssignResult,
    LibraryResult,
    RenderResult,
    TargetResult,
    WeightsResult,
)
from mosaic.placement import PlacedTile
from mosaic.render import render_mosaic


def _tile_photos(chosen: AssignResult, photo_of_tile: np.ndarray,
                 records: list[PhotoRecord]) -> list[tuple[PhotoRecord, Box]]:
    """Each tile's photo record and crop box, row by row."""
    crops = (np.load(chosen.tile_crop.path, allow_pickle=False)
             if chosen.tile_crop is not None else np.zeros(len(photo_of_tile), np.int64))
    return [(records[photo], records[photo].boxes[int(crop)])
            for photo, crop in zip(photo_of_tile.tolist(), crops.tolist(), strict=True)]


def placed_tiles(chosen: AssignResult, library: LibraryResult, target: TargetResult,
                 weights: WeightsResult) -> list[PlacedTile]:
    """The placement list of ``chosen``: each tile's photo, crop, cost and weight."""
    cols = target.layout.cols
    assignment = load_assignment(chosen.assignment)
    weight = np.load(weights.weights.path, allow_pickle=False).reshape(-1)
    return [PlacedTile(index // cols, index % cols, record.path, record.sha256, box,
                       float(assignment.tile_cost[index]), float(weight[index]))
            for index, (record, box) in enumerate(_tile_photos(
                chosen, assignment.photo_of_tile, load_records(library.manifest.path)))]


def render(chosen: AssignResult, library: LibraryResult, target: TargetResult, out: str,
           dpi: float | None) -> RenderResult:
    """Draw the mosaic into ``out`` (written atomically, carrying this tool's mark)."""
    started = time.perf_counter()
    layout = target.layout
    photo_of_tile = load_assignment(chosen.assignment).photo_of_tile
    sources = [(record.path, box) for record, box in
               _tile_photos(chosen, photo_of_tile, load_records(library.manifest.path))]
    path = render_mosaic(layout, sources, out, dpi=dpi)
    width, height = layout.output_size
    return RenderResult(FileRef.of(path), width, height, time.perf_counter() - started)
