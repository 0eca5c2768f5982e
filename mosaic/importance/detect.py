""":func:`detect_people`: the faces, then the people, as masks at the target's full size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy.spatial import ConvexHull, QhullError

from mosaic.errors import MosaicError
from mosaic.importance.candidates import MIN_FACE_PX
from mosaic.importance.detection import Detection, PixelBox, points_box
from mosaic.importance.faces import find_faces
from mosaic.importance.people import check_segmenter, mediapipe_people, pointrend_people
from mosaic.importance.session import mediapipe_session

FACE_SIDE = 4096
"""The face search runs on the target shrunk to at most this many pixels on its long side."""
WORKING_SIDE = 1600
"""Person segmentation runs on the target shrunk to at most this long side (the models
see 256 x 256 pixels or fewer anyway)."""

_MASK_ON = 127  # a resized 0/255 person mask pixel is a person when more than half on


def _working_image(rgb: Image.Image, side: int) -> tuple[np.ndarray, float]:
    """An RGB image as contiguous uint8, shrunk to ``side`` on its long side; the scale."""
    scale = min(1.0, side / max(rgb.size))
    if scale < 1.0:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BOX)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), scale


def _hull_mask(faces: Sequence[np.ndarray], size: tuple[int, int], scale: float) -> np.ndarray:
    """Filled convex hulls of landmark sets on a ``size`` canvas (points / scale)."""
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    for points in faces:
        full = points / scale
        try:
            outline = full[ConvexHull(full).vertices]
        except QhullError:
            continue
        draw.polygon([(float(x), float(y)) for x, y in outline], fill=1)
    return np.asarray(canvas, dtype=bool)


def _face_box(points: np.ndarray, scale: float, size: tuple[int, int]) -> PixelBox:
    """The pixel box around a face outline, at the target's size and inside it."""
    full = points / scale
    left, top = np.floor(full.min(axis=0)).astype(int)
    right, bottom = np.ceil(full.max(axis=0)).astype(int)
    return (max(0, int(left)), max(0, int(top)), min(size[0], int(right)),
            min(size[1], int(bottom)))


def detect_people(image: Image.Image, segmenter: str = "mediapipe",
                  pointrend_config: str | None = None, pointrend_weights: str | None = None,
                  min_face_px: int = MIN_FACE_PX) -> Detection:
    """Find the faces and people in a target, offline.

    Parameters
    ----------
    image : PIL.Image.Image
        The upright target (any mode; converted to RGB).
    segmenter : {"mediapipe", "pointrend"}
        Where the person masks come from. Faces always come from mediapipe FaceMesh.
    pointrend_config, pointrend_weights : str, optional
        PointRend config (.yaml) and weights, for ``segmenter="pointrend"``.
    min_face_px : int
        Smallest face side the crop search is sized for, in target pixels (in pixels of
        the target shrunk to :data:`FACE_SIDE` on its long side, when it is larger).

    Returns
    -------
    Detection
        Masks at the target's full size; a note when nobody was found.

    Raises
    ------
    MosaicError
        Unknown segmenter, or PointRend asked for but detectron2 or its files missing.
    """
    check_segmenter(segmenter, pointrend_config, pointrend_weights)
    if min_face_px < 1:
        raise MosaicError(f"min_face_px {min_face_px}: must be at least 1")
    rgb = image.convert("RGB")
    size = rgb.size
    search, face_scale = _working_image(rgb, FACE_SIDE)
    work, work_scale = _working_image(rgb, WORKING_SIDE)
    notes: list[str] = []
    with mediapipe_session() as mp:
        landmarks = find_faces(mp, search, min_face_px)
        to_work = face_scale / work_scale
        faces_work = _hull_mask(landmarks, (work.shape[1], work.shape[0]), to_work)
        if segmenter == "pointrend":
            people_work = pointrend_people(work, str(pointrend_config),
                                           str(pointrend_weights)) | faces_work
        else:
            boxes = [points_box(points / to_work) for points in landmarks]
            people_work = mediapipe_people(mp, work, faces_work, boxes, notes)
    face_mask = _hull_mask(landmarks, size, face_scale)
    people = Image.fromarray(people_work.astype(np.uint8) * 255)
    if people.size != size:
        people = people.resize(size, Image.Resampling.BILINEAR)
    person_mask = (np.asarray(people) > _MASK_ON) | face_mask
    faces = [_face_box(points, face_scale, size) for points in landmarks]
    if not faces and not person_mask.any():
        notes.insert(0, "nobody found in the target: no face and no person")
    elif not faces:
        notes.insert(0, "no face found in the target (people only)")
    return Detection(face_mask, person_mask, faces, notes, segmenter)
