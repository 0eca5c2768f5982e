"""Stage 6: the poster, each tile's photo cropped as scored, at print resolution."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mosaic.cells import QUARTERS
from mosaic.files import FileRef, save_npy_atomic
from mosaic.images import Box
from mosaic.library import PhotoRecord, load_records
from mosaic.pipeline import stage_folder
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
from mosaic.strips import ColourCorrection
from mosaic.tile_shape import aspect_text, shape_key


def _tile_photos(chosen: AssignResult, photo_of_tile: np.ndarray,
                 records: list[PhotoRecord]) -> list[tuple[PhotoRecord, Box]]:
    """Each tile's photo record and crop box, row by row."""
    crops = (np.load(chosen.tile_crop.path, allow_pickle=False)
             if chosen.tile_crop is not None else np.zeros(len(photo_of_tile), np.int64))
    return [(records[photo], records[photo].boxes[int(crop)])
            for photo, crop in zip(photo_of_tile.tolist(), crops.tolist(), strict=True)]


def placed_tiles(chosen: AssignResult, library: LibraryResult, target: TargetResult,
                 weights: WeightsResult) -> list[PlacedTile]:
    """The placement list of ``chosen``: each cell's photo, crop, cost and weight."""
    layout = target.layout
    cells = layout.cell_grid.table  # tile, quarter (-1: whole), ...
    assignment = load_assignment(chosen.assignment)
    weight = np.load(weights.weights.path, allow_pickle=False).reshape(-1)
    shape = aspect_text(layout.tile_aspect)
    return [PlacedTile(int(cells[index, 0]) // layout.cols, int(cells[index, 0]) % layout.cols,
                       record.path, record.sha256, box, float(assignment.tile_cost[index]),
                       float(weight[index]), shape,
                       QUARTERS[cells[index, 1]] if cells[index, 1] >= 0 else "")
            for index, (record, box) in enumerate(_tile_photos(
                chosen, assignment.photo_of_tile, load_records(library.manifest.path)))]


def render(chosen: AssignResult, library: LibraryResult, target: TargetResult, out: str,
           dpi: float | None, workdir: str, bleed_px: int = 0, deep_zoom: bool = False,
           color_correct: float = 0.0) -> RenderResult:
    """Draw the mosaic into ``out`` (written atomically, carrying this tool's mark).

    The rows drawn are kept under ``WORKDIR/render-rows`` until the poster is written, so
    a stopped render resumes; the shrunk copies go to ``WORKDIR/render/<key>``. With
    ``color_correct`` above 0 each tile leans toward its cell's mean colour; at 0 the
    target's pixels are not even read here.
    """
    started = time.perf_counter()
    photo_of_tile = load_assignment(chosen.assignment).photo_of_tile
    tiles = _tile_photos(chosen, photo_of_tile, load_records(library.manifest.path))
    poster = render_mosaic(target.layout, [(record.path, box) for record, box in tiles], out,
                           dpi=dpi, rows_root=Path(workdir) / "render-rows",
                           identity=[record.sha256 for record, _ in tiles], bleed_px=bleed_px,
                           deep_zoom=deep_zoom,
                           correction=_correction(target, color_correct))
    folder = stage_folder(workdir, "render", chosen.assignment.sha256,
                          chosen.tile_crop.sha256 if chosen.tile_crop else None,
                          library.manifest.sha256, target.layout.tile_px,
                          *shape_key(target.layout.tile_aspect),
                          *([color_correct, target.tiles.sha256] if color_correct else []))
    save_npy_atomic(folder / "quality.npy", poster.quality)
    save_npy_atomic(folder / "preview.npy", poster.preview)
    return RenderResult(FileRef.of(poster.path), poster.width, poster.height,
                        time.perf_counter() - started, FileRef.of(folder / "quality.npy"),
                        FileRef.of(folder / "preview.npy"), bleed_px)


def _correction(target: TargetResult, strength: float) -> ColourCorrection | None:
    """The colour correction of ``--color-correct``: None at 0 (the default)."""
    if strength <= 0:
        return None
    tiles = np.load(target.tiles.path, allow_pickle=False)
    return ColourCorrection(strength, tiles.reshape(len(tiles), -1, 3).mean(axis=1))
