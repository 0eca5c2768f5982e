"""Places that may hold a face: FaceMesh and mediapipe's face detectors, whole and cropped.

Proposals are generous; :mod:`mosaic.importance.faces` decides which are faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from mosaic.importance.detection import FloatBox, box_iou, points_box

MIN_FACE_PX = 20
"""Smallest face side (target pixels, up to FACE_SIDE) the crop search is sized for;
also the smallest detector box accepted without FaceMesh landmarks."""

_SMALLEST_CROP = 5  # smallest crop side, in min_face_px: such a face fills 1/10-1/5 of it
_MAX_CANDIDATES = 60  # candidates verified at most, which bounds the time on busy images
_VOTE_IOU = 0.3  # overlap at which two proposals are one place (one candidate, more votes)
_DETECTOR_CONFIDENCE = 0.5  # mediapipe's default; weak proposals are cheap to verify away
_FULL_RANGE, _SHORT_RANGE = 1, 0  # FaceDetection model_selection: faces within 5 m / 2 m


def _window_starts(length: int, side: int) -> list[int]:
    """Starts of windows of ``side`` covering ``length`` with half-window overlap."""
    if side >= length:
        return [0]
    stride = max(1, side // 2)
    starts = list(range(0, length - side + 1, stride))
    if starts[-1] + side < length:
        starts.append(length - side)
    return starts


def crop_sides(short_side: int, min_face_px: int = MIN_FACE_PX) -> list[int]:
    """Sides of the square crops searched for small faces, largest first.

    Halves of the short side, down to ``5 * min_face_px``, so a face of ``min_face_px``
    fills a tenth to a fifth of the smallest crop's side (the short-range detector
    found faces of an eighth of the crop in the sample targets, and larger ones surely).
    An image whose short side is under ``10 * min_face_px`` gets no crops.
    """
    sides = []
    side = short_side / 2
    while side >= _SMALLEST_CROP * min_face_px:
        sides.append(round(side))
        side /= 2
    return sides


def _detections(detector: Any, rgb: np.ndarray, offset: tuple[int, int]
                ) -> list[tuple[FloatBox, float]]:
    """Face boxes found by a mediapipe FaceDetection in ``rgb``, in working pixels."""
    found = detector.process(rgb).detections or []
    height, width = rgb.shape[:2]
    boxes = []
    for detection in found:
        rel = detection.location_data.relative_bounding_box
        left = offset[0] + rel.xmin * width
        top = offset[1] + rel.ymin * height
        box = (left, top, left + rel.width * width, top + rel.height * height)
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append((box, float(detection.score[0])))
    return boxes


def landmark_arrays(result: Any, box: FloatBox, shape: tuple[int, int]) -> list[np.ndarray]:
    """FaceMesh landmarks as (468, 2) arrays in working pixels, from a crop ``box``.

    Parameters
    ----------
    result : Any
        What ``FaceMesh.process`` returned for the crop.
    box : (float, float, float, float)
        Where the crop lies in the working image.
    shape : (int, int)
        (height, width) of the crop as FaceMesh saw it.

    Returns
    -------
    list of ndarray, shape (468, 2)
        One (x, y) array per face.
    """
    scale = np.array([(box[2] - box[0]) / shape[1], (box[3] - box[1]) / shape[0]])
    faces = []
    for landmarks in result.multi_face_landmarks or []:
        points = np.array([(p.x * shape[1], p.y * shape[0]) for p in landmarks.landmark])
        faces.append(points * scale + np.array(box[:2]))
    return faces


@dataclass
class Candidate:
    """A place that may hold a face: its box and the detector votes behind it.

    ``score`` and ``votes`` count the mediapipe face detector only (best score, number
    of models and crops that found a box here); ``mesh`` is True when whole-image
    FaceMesh proposed it.
    """

    box: FloatBox
    score: float = 0.0
    votes: int = 0
    mesh: bool = False

    def add(self, score: float | None) -> None:
        """Count one more proposal here: a detector score, or None for FaceMesh."""
        if score is None:
            self.mesh = True
        else:
            self.votes += 1
            self.score = max(self.score, score)


def face_candidates(mp: ModuleType, work: np.ndarray, mesh: Any, min_face_px: int
                    ) -> list[Candidate]:
    """Boxes that may hold a face: FaceMesh, full-range and cropped short-range detection.

    Boxes that overlap (IoU >= ``_VOTE_IOU``) are one candidate, with the box of the
    first one (FaceMesh first, then by detector score).

    Parameters
    ----------
    mp : module
        mediapipe, from :func:`mosaic.importance.session.mediapipe_session`.
    work : ndarray of uint8, shape (H, W, 3)
        The image searched.
    mesh : Any
        A whole-image ``FaceMesh`` (static images).
    min_face_px : int
        Smallest face side the crop search is sized for.

    Returns
    -------
    list of Candidate
        At most ``_MAX_CANDIDATES``, FaceMesh proposals first.
    """
    height, width = work.shape[:2]
    whole = (0.0, 0.0, float(width), float(height))
    meshes = [points_box(p) for p in landmark_arrays(mesh.process(work), whole,
                                                     (height, width))]
    scored: list[tuple[FloatBox, float]] = []
    detection = mp.solutions.face_detection
    with detection.FaceDetection(model_selection=_FULL_RANGE,
                                 min_detection_confidence=_DETECTOR_CONFIDENCE) as far:
        scored += _detections(far, work, (0, 0))
    with detection.FaceDetection(model_selection=_SHORT_RANGE,
                                 min_detection_confidence=_DETECTOR_CONFIDENCE) as near:
        scored += _detections(near, work, (0, 0))
        for side in crop_sides(min(width, height), min_face_px):
            for top in _window_starts(height, side):
                for left in _window_starts(width, side):
                    crop = np.ascontiguousarray(work[top:top + side, left:left + side])
                    scored += _detections(near, crop, (left, top))
    scored.sort(key=lambda item: -item[1])
    kept: list[Candidate] = []
    for box, score in [(b, None) for b in meshes] + scored:
        for candidate in kept:
            if box_iou(box, candidate.box) >= _VOTE_IOU:
                candidate.add(score)
                break
        else:
            kept.append(Candidate(box))
            kept[-1].add(score)
    return kept[:_MAX_CANDIDATES]
