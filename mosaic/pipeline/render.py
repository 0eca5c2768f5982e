"""Stage 6: the poster, each tile's photo cropped as scored, at print resolution."""

from __future__ import annotations

import time

import numpy as np

from mosaic.files import FileRef
from mosaic.library import load_records
from mosaic.pipeline.assign import load_assignment
from mosaic.pipeline.results import AssignResult, LibraryResult, RenderResult, TargetResult
from mosaic.render import render_mosaic


def render(chosen: AssignResult, library: LibraryResult, target: TargetResult, out: str,
           dpi: float | None) -> RenderResult:
    """Draw the mosaic into ``out`` (written atomically, carrying this tool's mark)."""
    started = time.perf_counter()
    layout = target.layout
    records = load_records(library.manifest.path)
    photo_of_tile = load_assignment(chosen.assignment).photo_of_tile
    crops = (np.load(chosen.tile_crop.path, allow_pickle=False)
             if chosen.tile_crop is not None else np.zeros(len(photo_of_tile), np.int64))
    sources = [(records[photo].path, records[photo].boxes[int(crop)])
               for photo, crop in zip(photo_of_tile.tolist(), crops.tolist(), strict=True)]
    path = render_mosaic(layout, sources, out, dpi=dpi)
    width, height = layout.output_size
    return RenderResult(FileRef.of(path), width, height, time.perf_counter() - started)
