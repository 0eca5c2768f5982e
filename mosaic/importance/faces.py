"""Which candidates are faces: FaceMesh at several zooms, Haar cascades, the pose model.

The acceptance rules are in :func:`_verify_face`; how their thresholds were chosen is in
``benchmarks/TUNING-importance.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from mosaic.importance.candidates import Candidate, face_candidates, landmark_arrays
from mosaic.importance.detection import FloatBox, box_iou, points_box
from mosaic.importance.session import logger

_MAX_FACES = 20  # faces whole-image FaceMesh may propose; detectors and crops add the rest
_MESH_CONFIDENCE = 0.5  # FaceMesh's default face-presence threshold; the rules filter after
_VERIFY_MAX_FACES = 3  # FaceMesh faces per verification crop: neighbours may share it
_VERIFY_SIDE = 256  # verification crops are resized to this, above FaceMesh's 192 px input
_VERIFY_ZOOMS = (2.0, 1.5, 3.0)  # crop sides in box sides; landmarks from the first that hits
_VERIFY_IOU = 0.4  # overlap the landmarks' box needs with the candidate to count as a hit
_DARK_PERCENTILE = 99  # a crop is dark when this percentile of its grey levels...
_DARK_PERCENTILE_LEVEL = 128  # ...is below mid-grey; it is then auto-contrasted
_AUTOCONTRAST_CUTOFF = 1  # percent clipped at each end when brightening: a few highlights
_SMALL_FACE = 2  # boxes under this many min_face_px need Haar too: sleeve buttons pass FaceMesh
_CANDIDATE_NMS_IOU = 0.5  # a candidate this much on an accepted face is that face: skipped
_SAME_FACE_IOU = 0.3  # a verified face this much on an accepted one is a duplicate: dropped

# (cascade file, mirrored): three frontal cascades vote; the profile cascade sees faces
# turned one way only, so it runs on the mirrored crop too.
_CASCADES = (("frontalface_default", False), ("frontalface_alt", False),
             ("frontalface_alt2", False), ("profileface", False), ("profileface", True))
_HAAR_SIDE = 48  # the box is scaled to this for Haar: twice the cascades' 20-24 px windows
_HAAR_SPAN = 3  # Haar looks at a square of three box sides: the face and its surroundings
_HAAR_IOU = 0.4  # overlap for a Haar box to vouch for a candidate
_HAAR_SCALE_STEP = 1.05  # fine scale steps; the face size is known within 2x, so few steps
_HAAR_NEIGHBOURS = 1  # one Haar hit suffices, since it must also overlap the candidate
_HAAR_FRONTAL = 2  # frontal cascades that must agree: a majority of the three
_PROFILE_SCORE = 0.75  # a lone profile cascade vouches only for a detector score this high
_ALONE_SCORE = 0.6  # detector score for a face FaceMesh cannot read (rules 3 and 4)
_ALONE_VOTES = 3  # detector hits (models and crops) for such a face: one lucky hit is not

# Pose check (rule 4): the crop around a box, in box sizes, holds the head and shoulders.
_POSE_SIDE, _POSE_ABOVE, _POSE_BELOW = 2.0, 1.0, 5.0
_POSE_VISIBILITY = 0.8  # landmark visibility the check needs: only points the model is sure of
_POSE_FACE = (0, 2, 5, 9, 10)  # nose, left and right eye, mouth left and right
_POSE_SHOULDERS = (11, 12)  # left and right shoulder
_POSE_MODEL = 1  # Pose model_complexity 1 ("full"): the only pose model in the wheel
_ELLIPSE_POINTS = 64  # points on the outline of a face without landmarks: smooth enough


def _mesh_in_box(mesh: Any, work_image: Image.Image, box: FloatBox, zoom: float
                 ) -> np.ndarray | None:
    """FaceMesh landmarks of the face in ``box``, or None when FaceMesh sees no face there.

    The crop is a square ``zoom`` times the box (padded with black beyond the image),
    resized to ``_VERIFY_SIDE`` pixels and auto-contrasted when dark. The landmarks
    must overlap the box (IoU >= ``_VERIFY_IOU``).
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * zoom / 2
    region = (cx - half, cy - half, cx + half, cy + half)
    crop = work_image.transform((_VERIFY_SIDE, _VERIFY_SIDE), Image.Transform.EXTENT, region,
                                Image.Resampling.BICUBIC)
    if (np.percentile(np.asarray(crop.convert("L")), _DARK_PERCENTILE)
            < _DARK_PERCENTILE_LEVEL):
        crop = ImageOps.autocontrast(crop, cutoff=_AUTOCONTRAST_CUTOFF)
    pixels = np.ascontiguousarray(np.asarray(crop))
    faces = landmark_arrays(mesh.process(pixels), region, pixels.shape[:2])
    best, best_iou = None, _VERIFY_IOU
    for points in faces:
        overlap = box_iou(points_box(points), box)
        if overlap >= best_iou:
            best, best_iou = points, overlap
    return best


def _cascades() -> list[tuple[Any, bool, bool]]:
    """OpenCV's Haar face cascades (frontal x3, profile, profile mirrored); [] without cv2."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - cv2 ships with mediapipe
        return []
    folder = Path(cv2.data.haarcascades)
    found = []
    for name, mirrored in _CASCADES:
        cascade = cv2.CascadeClassifier(str(folder / f"haarcascade_{name}.xml"))
        if not cascade.empty():
            found.append((cascade, mirrored, name.startswith("profile")))
    return found


def _haar_votes(cascades: Sequence[tuple[Any, bool, bool]], gray: Image.Image, box: FloatBox
                ) -> tuple[int, int]:
    """How many frontal and how many profile Haar cascades see a face on ``box``.

    A cascade agrees when one of its boxes overlaps ``box`` with IoU >= ``_HAAR_IOU``.
    They look at a square ``_HAAR_SPAN`` times the box, scaled so the box is
    ``_HAAR_SIDE`` pixels, for faces of half to twice that size.
    """
    side = max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    reach = _HAAR_SPAN / 2 * side
    region = (cx - reach, cy - reach, cx + reach, cy + reach)
    size = _HAAR_SPAN * _HAAR_SIDE
    crop = np.asarray(gray.transform((size, size), Image.Transform.EXTENT, region,
                                     Image.Resampling.BICUBIC))
    # The candidate's box is the middle square of the crop.
    low = (_HAAR_SPAN - 1) / 2 * _HAAR_SIDE
    inner = (low, low, low + _HAAR_SIDE, low + _HAAR_SIDE)
    frontal = profile = 0
    for cascade, mirrored, is_profile in cascades:
        pixels = np.ascontiguousarray(crop[:, ::-1]) if mirrored else crop
        found = cascade.detectMultiScale(pixels, scaleFactor=_HAAR_SCALE_STEP,
                                         minNeighbors=_HAAR_NEIGHBOURS,
                                         minSize=(_HAAR_SIDE // 2,) * 2,
                                         maxSize=(2 * _HAAR_SIDE,) * 2)
        for x, y, w, h in np.asarray(found).reshape(-1, 4).tolist():
            left = size - x - w if mirrored else x
            if box_iou((left, y, left + w, y + h), inner) >= _HAAR_IOU:
                profile += is_profile
                frontal += not is_profile
                break
    return frontal, profile


def ellipse(box: FloatBox, points: int = _ELLIPSE_POINTS) -> np.ndarray:
    """A face without landmarks: the ellipse inscribed in its box, as (points, 2)."""
    angles = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    return np.column_stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)])


def _pose_confirms(pose: Any, work_image: Image.Image, box: FloatBox) -> bool:
    """True when the pose model sees an upright head in ``box`` with shoulders under it.

    The pose model looks at a crop ``_POSE_SIDE`` box widths either side of the box,
    ``_POSE_ABOVE`` box height above and ``_POSE_BELOW`` below (black beyond the
    image). It must place its nose, both eyes and both mouth corners inside the box,
    the eyes above the nose and the mouth corners below it, and both shoulders below
    the box and at least a box width apart; all with visibility >= ``_POSE_VISIBILITY``.
    (The pose model does put a face on a hand at the end of a stretched arm, but upside
    down and with the shoulders above it.)
    """
    width, height = box[2] - box[0], box[3] - box[1]
    region = (round(box[0] - _POSE_SIDE * width), round(box[1] - _POSE_ABOVE * height),
              round(box[2] + _POSE_SIDE * width), round(box[3] + _POSE_BELOW * height))
    crop = work_image.crop(region)
    result = pose.process(np.ascontiguousarray(np.asarray(crop)))
    if result.pose_landmarks is None:
        return False
    marks = result.pose_landmarks.landmark
    indices = _POSE_FACE + _POSE_SHOULDERS
    if min(marks[i].visibility for i in indices) < _POSE_VISIBILITY:
        return False
    points = np.array([(region[0] + marks[i].x * crop.width, region[1] + marks[i].y * crop.height)
                       for i in indices])
    face, shoulders = points[:len(_POSE_FACE)], points[len(_POSE_FACE):]
    inside = bool(np.all((face >= box[:2]) & (face <= box[2:])))
    nose_y, eyes_y, mouth_y = face[0, 1], face[1:3, 1], face[3:5, 1]
    upright = bool(np.all(eyes_y < nose_y) and np.all(mouth_y > nose_y))
    body = bool(shoulders[:, 1].min() > box[3]
                and abs(shoulders[0, 0] - shoulders[1, 0]) >= width)
    return inside and upright and body


def _verify_face(mesh: Any, work_image: Image.Image, gray: Image.Image,
                 cascades: Sequence[tuple[Any, bool, bool]], candidate: Candidate,
                 min_face_px: int, pose: Callable[[], Any] | None = None
                 ) -> np.ndarray | None:
    """The outline of a candidate face (landmarks or an ellipse), or None: not a face.

    "Haar agrees" means at least ``_HAAR_FRONTAL`` frontal cascades see the face, or
    one profile cascade (plain or mirrored) does and the mediapipe detector scored it
    at least ``_PROFILE_SCORE``. A candidate is a face when

    1. FaceMesh finds it at every zoom of ``_VERIFY_ZOOMS`` (and, for a box under
       ``_SMALL_FACE * min_face_px``, Haar agrees: small round things such as the
       buttons on a sleeve pass FaceMesh); or
    2. FaceMesh finds it at all zooms but one, and Haar agrees (a tattooed arm passed
       two zooms and the profile cascade, but not the profile score); or
    3. FaceMesh finds it at one zoom at most (strong profile, dark, blurred or small
       faces; what FaceMesh reads at two zooms must pass rule 2), but the mediapipe
       face detector found it with score >= ``_ALONE_SCORE`` in at least
       ``_ALONE_VOTES`` crops or models, one Haar cascade at least agrees, and its box
       is at least ``min_face_px`` wide. Without landmarks, the face's outline is the
       ellipse inscribed in the detector's box.
    4. Neither FaceMesh nor Haar confirm it (a face half hidden behind another head),
       but the detector found it as in rule 3 and the pose model sees an upright head
       there with the shoulders under it (:func:`_pose_confirms`). ``pose`` is a
       callable returning the pose model (made on first use); without it, no rule 4.

    The landmarks come from the first zoom that found the face.
    """
    box = candidate.box
    side = min(box[2] - box[0], box[3] - box[1])
    alone = (candidate.score >= _ALONE_SCORE and candidate.votes >= _ALONE_VOTES
             and side >= min_face_px)
    found: list[np.ndarray] = []
    for done, zoom in enumerate(_VERIFY_ZOOMS):
        if not alone and len(found) + len(_VERIFY_ZOOMS) - done < len(_VERIFY_ZOOMS) - 1:
            return None  # too few zooms left for rules 1 and 2; rules 3 and 4 cannot apply
        points = _mesh_in_box(mesh, work_image, box, zoom)
        if points is not None:
            found.append(points)
    first, hits = (found[0] if found else None), len(found)
    if hits == len(_VERIFY_ZOOMS) and side >= _SMALL_FACE * min_face_px:
        return first
    frontal, profile = _haar_votes(cascades, gray, box) if cascades else (0, 0)
    haar = frontal >= _HAAR_FRONTAL or (profile >= 1 and candidate.score >= _PROFILE_SCORE)
    logger.debug("face candidate %s score %.2f votes %d%s mesh %d/%d haar %d+%d",
                 tuple(round(v) for v in box), candidate.score, candidate.votes,
                 " (+mesh)" if candidate.mesh else "", hits, len(_VERIFY_ZOOMS),
                 frontal, profile)
    if haar and hits >= len(_VERIFY_ZOOMS) - 1:
        return first
    if alone and hits <= 1 and frontal + profile >= 1:
        return first if first is not None else ellipse(box)
    if alone and pose is not None and _pose_confirms(pose(), work_image, box):
        logger.debug("face candidate %s confirmed by the pose model",
                     tuple(round(v) for v in box))
        return first if first is not None else ellipse(box)
    return None


def find_faces(mp: ModuleType, work: np.ndarray, min_face_px: int) -> list[np.ndarray]:
    """Outlines (N, 2) of every face in ``work`` (its pixels), largest face first.

    An outline is the 468 FaceMesh landmarks, or ``_ELLIPSE_POINTS`` points on an
    ellipse for a face only the detectors found (see :func:`_verify_face`).

    Parameters
    ----------
    mp : module
        mediapipe, from :func:`mosaic.importance.session.mediapipe_session`.
    work : ndarray of uint8, shape (H, W, 3)
        The image searched.
    min_face_px : int
        Smallest face side looked for, in pixels of ``work``.

    Returns
    -------
    list of ndarray, shape (N, 2)
        (x, y) outline points in pixels of ``work``.
    """
    work_image = Image.fromarray(work)
    gray = work_image.convert("L")
    cascades = _cascades()
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=_MAX_FACES,
                                         refine_landmarks=False,
                                         min_detection_confidence=_MESH_CONFIDENCE) as mesh:
        candidates = face_candidates(mp, work, mesh, min_face_px)
    faces: list[np.ndarray] = []
    with contextlib.ExitStack() as stack:
        mesh = stack.enter_context(mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=_VERIFY_MAX_FACES, refine_landmarks=False,
            min_detection_confidence=_MESH_CONFIDENCE))
        poses: list[Any] = []

        def pose() -> Any:
            if not poses:
                poses.append(stack.enter_context(mp.solutions.pose.Pose(
                    static_image_mode=True, model_complexity=_POSE_MODEL)))
            return poses[0]

        for candidate in candidates:
            if any(box_iou(candidate.box, points_box(other)) >= _CANDIDATE_NMS_IOU
                   for other in faces):
                continue  # the same face again, already verified
            points = _verify_face(mesh, work_image, gray, cascades, candidate, min_face_px,
                                  pose)
            if points is None:
                continue
            found = points_box(points)
            if all(box_iou(found, points_box(other)) < _SAME_FACE_IOU for other in faces):
                faces.append(points)
    faces.sort(key=lambda p: -np.prod(p.max(axis=0) - p.min(axis=0)))
    return faces
