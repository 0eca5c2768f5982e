"""Stage 2: the faces and people of the target, saved as masks (``detection.npz``)."""

from __future__ import annotations

import time

from mosaic.files import FileRef
from mosaic.images import open_rgb
from mosaic.importance import detect_people, save_detection
from mosaic.options import WeightRequest
from mosaic.pipeline import stage_folder
from mosaic.pipeline.results import PeopleResult
from mosaic.progress import stage


def detect(target: FileRef, workdir: str, request: WeightRequest, max_pixels: int
           ) -> PeopleResult:
    """Find the faces and people of the target.

    Only the segmenter matters here (the weights are the next stage's), so changing a
    weight does not detect again.
    """
    started = time.perf_counter()
    image = open_rgb(target.path, max_pixels=max_pixels)
    with stage("find faces and people", 1) as advance:
        detection = detect_people(image, request.segmenter, request.pointrend_config,
                                  request.pointrend_weights)
        advance(1)
    folder = stage_folder(workdir, "people", target.sha256, request.segmenter,
                          request.pointrend_config, request.pointrend_weights)
    path = save_detection(detection, folder / "detection.npz")
    return PeopleResult(FileRef.of(path), detection.faces_found,
                        tuple(tuple(int(v) for v in box) for box in detection.faces),
                        float(detection.person_fraction), detection.segmenter,
                        tuple(detection.notes), time.perf_counter() - started)
