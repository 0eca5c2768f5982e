"""Stage 3: the grid and the target's tiles (the crop keeps the faces in the frame)."""

from __future__ import annotations

import time
from dataclasses import replace

from mosaic.features import tile_thumbnails
from mosaic.files import FileRef, save_npy_atomic
from mosaic.images import open_rgb
from mosaic.importance import face_crop, load_detection
from mosaic.options import LayoutRequest
from mosaic.pipeline import stage_folder
from mosaic.pipeline.results import PeopleResult, TargetResult
from mosaic.progress import stage


def prepare_target(target: FileRef, photos: int, workdir: str, request: LayoutRequest,
                   feature_size: int, max_pixels: int, people: PeopleResult | None = None
                   ) -> TargetResult:
    """Plan the grid for ``photos`` distinct photos, crop the target, cut tile thumbnails."""
    started = time.perf_counter()
    image = open_rgb(target.path, max_pixels=max_pixels)
    layout = request.plan(image.size, photos)
    if people is not None and people.faces_found:
        found = load_detection(people.detection.path)
        aspect = layout.cols * layout.tile_ratio / layout.rows
        layout = replace(layout, crop=face_crop(found, aspect))
    with stage("cut target tiles", 1) as advance:
        tiles = tile_thumbnails(image, layout.crop, layout.rows, layout.cols, feature_size)
        advance(1)
    folder = stage_folder(workdir, "target", target.sha256, layout, feature_size)
    save_npy_atomic(folder / "tiles.npy", tiles)
    return TargetResult(layout, FileRef.of(folder / "tiles.npy"), time.perf_counter() - started)
