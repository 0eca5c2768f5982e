"""Which tiles matter most: faces and people in the target, as per-tile weights.

A good match matters much more on a face than on the background, so the assignment
minimises ``sum_t w_t * cost_t`` with tile weights ``w_t >= 1`` taken from where the
faces and people of the target are.

Detection (:func:`detect_people`), offline with the models that ship in the mediapipe
wheel:

- Faces: candidate boxes come from mediapipe FaceMesh on the whole image, the
  full-range and short-range face detectors on the whole image, and the short-range
  detector on overlapping square crops (sides halving down to ``5 * min_face_px``, 20 px
  faces by default), so small faces in large targets are still proposed; overlapping
  boxes are one candidate, with the number of detections (votes) behind it. Each
  candidate is checked by FaceMesh (static images, 468 landmarks) on square crops 2,
  1.5 and 3 times its size (brightened when dark), and by OpenCV's Haar cascades (three
  frontal, profile, mirrored profile; they ship in the opencv wheel mediapipe depends
  on) around it. A face is accepted when FaceMesh finds it at all three zooms, or at
  two and Haar agrees, or, for faces FaceMesh cannot read (strong profiles, dark or
  blurred faces), when the detector found it often and confidently and a Haar cascade
  agrees, or, when neither FaceMesh nor Haar sees it (a face half hidden behind another
  head), when the detector found it often and confidently and the pose model, run on a
  crop around it, puts an upright face (eyes above nose above mouth) in its box with
  both shoulders below it (see :func:`_verify_face`). A face is the filled convex hull
  of its 468 landmarks; **a face without landmarks (only the detector, with Haar or
  pose, found it) is the ellipse inscribed in the detector's box**, which covers the
  eyes-to-mouth region and less of the forehead and chin than a mesh would. On the ten
  shared targets this finds all 20 clearly visible faces (``benchmarks/bench_faces.py``)
  with no false ones; missed are faces under ~15 px. The rules were tuned on those
  targets; hands, tattooed arms, sleeve buttons and clouds seen there are rejected, but
  the margins are small (detector scores 0.58-0.63 for rejected candidates against 0.64
  for the weakest accepted profile). The pose check found the half-hidden face of
  cold_water only with the detector's box of the 800 px target (at 720 px the box is
  smaller and shifted and pose no longer fits in it); on the pose model's face on a
  hand it fails by geometry (upside down, shoulders above).
- People: selfie segmentation (general and landscape models) and pose segmentation,
  each thresholded at 0.5, united with the faces. Selfie segmentation also calls sky and
  clouds "person" when nobody is there, so a segmented pixel counts only near a face (4
  face widths either side, 1 face height above to 8 below) or inside a pose model's
  person mask; pose runs on the whole image and again on the crop of every large
  segmented region left unexplained (the pose model sees one person at a time).
- ``segmenter="pointrend"`` takes the people from a detectron2 PointRend model instead
  (faces still come from FaceMesh). detectron2 is not on PyPI and is not installed
  here, so that path fails with a one-line message saying what to install; it is not
  emulated, and it has not been run in this project's tests.

Weights (:func:`tile_weights`): for a class with weight ``W`` every pixel gets
``1 + (W - 1) * exp(-d / (falloff * tile))``, ``d`` the Euclidean distance to the
nearest pixel of the class (0 inside it) and ``tile`` the tile side in target pixels;
classes combine by the per-pixel maximum and a tile's weight is the mean over its
pixels. Distances are computed on a grid of ``samples_per_tile`` x ``samples_per_tile``
cells per tile (a cell belongs to a class when at least half of it does), over the crop
and a margin around it, so labelled pixels just outside the crop still count.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from mosaic.errors import MosaicError
from mosaic.files import atomic_path
from mosaic.layout import crop_to_aspect

logger = logging.getLogger("mosaic.importance")

PixelBox = tuple[int, int, int, int]
"""(left, top, right, bottom) in target pixels, right and bottom exclusive."""
_FloatBox = tuple[float, float, float, float]

MODES = ("faces+people", "faces", "people", "none")
"""Weighting modes: which classes raise the weight of the tiles near them."""
SEGMENTERS = ("mediapipe", "pointrend")
"""Where the person masks come from."""

DEFAULT_FACE_WEIGHT = 3.0
"""Weight of a pixel inside a face. From ``benchmarks/bench_weights.py`` (775 photos, as
many tiles): face-tile cost 32-63 % lower and overall mean cost at most 2.6 % higher on 8
of the 9 targets with faces. The close-up ``jesper`` (face on 57 % of the tiles) gets
-27 % / +5.4 %; no setting tried meets both goals there (5 gives -32 % / +9.9 %)."""
DEFAULT_PERSON_WEIGHT = 1.25
"""Weight of a pixel inside a person: person tiles improve too (5 % on average); 1.5
takes from the faces and pushes a group photo to +4.7 % overall."""
DEFAULT_FALLOFF = 0.25
"""Fall-off length around a face or person, in tiles (0.25 to 1 differ little; the
shortest keeps the overall cost lowest)."""

MIN_FACE_PX = 20
"""Smallest face side (target pixels, up to FACE_SIDE) the crop search is sized for;
also the smallest detector box accepted without FaceMesh landmarks."""
FACE_SIDE = 4096
"""The face search runs on the target shrunk to at most this many pixels on its long side."""
WORKING_SIDE = 1600
"""Person segmentation runs on the target shrunk to at most this long side (the models
see 256 x 256 pixels or fewer anyway)."""
SAMPLES_PER_TILE = 8
"""Distance-transform cells per tile side in :func:`tile_weights`."""
CLASS_FRACTION = 0.25
"""A tile is a face (person) tile when at least this fraction of it is face (person)."""
FACE, PERSON, BACKGROUND = 2, 1, 0
"""Tile labels of :func:`tile_classes`."""

_MAX_FACES = 20
_MAX_CANDIDATES = 60
_VOTE_IOU = 0.3
_HAAR_SIDE = 48
_HAAR_IOU = 0.4
_CASCADES = (("frontalface_default", False), ("frontalface_alt", False),
             ("frontalface_alt2", False), ("profileface", False), ("profileface", True))
_ALONE_SCORE = 0.6
_ALONE_VOTES = 3
_HAAR_FRONTAL = 2
_PROFILE_SCORE = 0.75
_MASK_THRESHOLD = 0.5
_VERIFY_SIDE = 256
_VERIFY_ZOOMS = (2.0, 1.5, 3.0)
_VERIFY_IOU = 0.4
_DARK_PERCENTILE_LEVEL = 128
_SAME_FACE_IOU = 0.3
_CANDIDATE_NMS_IOU = 0.5
_MIN_REGION_FRACTION = 0.01
_BODY_SIDE, _BODY_ABOVE, _BODY_BELOW = 4.0, 1.0, 8.0
_MAX_REGION_CHECKS = 8
_POSE_AGREEMENT = 0.3
_POSE_SIDE, _POSE_ABOVE, _POSE_BELOW = 2.0, 1.0, 5.0
_POSE_VISIBILITY = 0.8
_POSE_FACE = (0, 2, 5, 9, 10)  # nose, left and right eye, mouth left and right
_POSE_SHOULDERS = (11, 12)

POINTREND_MISSING = (
    "--segmenter pointrend needs detectron2 with its PointRend project, which is not "
    "installed (it is not on PyPI: build detectron2 from "
    "https://github.com/facebookresearch/detectron2 on top of torch, then pass "
    "--pointrend-config and --pointrend-weights); or use --segmenter mediapipe"
)


@dataclass
class Detection:
    """Faces and people found in a target.

    Attributes
    ----------
    face_mask : ndarray of bool, shape (H, W)
        Pixels inside a face: the convex hull of its FaceMesh landmarks, or the ellipse
        in the detector's box for a face without landmarks (see the module docstring).
    person_mask : ndarray of bool, shape (H, W)
        Pixels of a person; includes the faces.
    faces : list of (int, int, int, int)
        One box (left, top, right, bottom) per face, in target pixels.
    notes : list of str
        What the user should know (nothing found, regions ignored...).
    segmenter : str
        "mediapipe" or "pointrend".
    """

    face_mask: np.ndarray
    person_mask: np.ndarray
    faces: list[PixelBox]
    notes: list[str] = field(default_factory=list)
    segmenter: str = "mediapipe"

    def __post_init__(self) -> None:
        self.face_mask = np.asarray(self.face_mask, dtype=bool)
        self.person_mask = np.asarray(self.person_mask, dtype=bool) | self.face_mask
        if self.face_mask.ndim != 2 or self.face_mask.shape != self.person_mask.shape:
            raise ValueError("face_mask and person_mask must be 2-D and of the same shape")
        self.faces = [tuple(int(v) for v in box) for box in self.faces]  # type: ignore[misc]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the target."""
        return int(self.face_mask.shape[1]), int(self.face_mask.shape[0])

    @property
    def faces_found(self) -> int:
        """Number of faces."""
        return len(self.faces)

    @property
    def person_fraction(self) -> float:
        """Fraction of the target's pixels that belong to a person (faces included)."""
        return float(self.person_mask.mean()) if self.person_mask.size else 0.0

    @property
    def anyone(self) -> bool:
        """True when a face or a person was found."""
        return bool(self.faces) or bool(self.person_mask.any())

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts for metrics: faces found, boxes, person fraction, notes."""
        return {
            "faces_found": self.faces_found,
            "faces": [list(box) for box in self.faces],
            "person_fraction": self.person_fraction,
            "segmenter": self.segmenter,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- mediapipe


_NATIVE_NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    r"|[IW]\d{4} |E\d{4} .*(inference_feedback_manager|landmark_projection_calculator))"
)
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _native_logs_quiet() -> Iterator[None]:
    """Hide what mediapipe's C++ code writes on file descriptor 2 (absl/glog, TFLite).

    Those logs ignore ``GLOG_minloglevel``, so the descriptor is pointed at a temporary
    file for the duration; afterwards every line that is not known mediapipe chatter
    (for example another thread's log line) is written back to the real stderr, and
    mediapipe's own lines go to the debug log.
    """
    with _stderr_lock:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 at all: nothing to hide
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                _replay(sink)


def _replay(sink: Any) -> None:
    """Write back what is not mediapipe chatter from a captured stderr file."""
    sink.seek(0)
    kept = []
    for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True):
        if _NATIVE_NOISE.match(line):
            logger.debug("mediapipe: %s", line.rstrip())
        else:
            kept.append(line)
    if kept:
        os.write(2, "".join(kept).encode("utf-8"))


@contextlib.contextmanager
def _mediapipe_session() -> Iterator[ModuleType]:
    """Import mediapipe quietly and keep its native logs and Python warnings in."""
    with _native_logs_quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(mediapipe|google\.protobuf)(\.|$)")
        try:
            import mediapipe
        except ImportError as exc:
            raise MosaicError(
                f"face and person detection needs mediapipe (pip install mediapipe): {exc}"
            ) from None
        yield mediapipe


def _working_image(rgb: Image.Image, side: int) -> tuple[np.ndarray, float]:
    """An RGB image as contiguous uint8, shrunk to ``side`` on its long side; the scale."""
    scale = min(1.0, side / max(rgb.size))
    if scale < 1.0:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BOX)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), scale


def box_iou(first: Sequence[float], second: Sequence[float]) -> float:
    """Intersection over union of two ``(left, top, right, bottom)`` boxes."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    area = ((first[2] - first[0]) * (first[3] - first[1])
            + (second[2] - second[0]) * (second[3] - second[1]) - inter)
    return float(inter / area) if area > 0 else 0.0


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
    while side >= 5 * min_face_px:
        sides.append(round(side))
        side /= 2
    return sides


def _detections(detector: Any, rgb: np.ndarray, offset: tuple[int, int]
                ) -> list[tuple[_FloatBox, float]]:
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


def _landmark_arrays(result: Any, box: _FloatBox, shape: tuple[int, int]) -> list[np.ndarray]:
    """FaceMesh landmarks as (468, 2) arrays in working pixels, from a crop ``box``."""
    scale = np.array([(box[2] - box[0]) / shape[1], (box[3] - box[1]) / shape[0]])
    faces = []
    for landmarks in result.multi_face_landmarks or []:
        points = np.array([(p.x * shape[1], p.y * shape[0]) for p in landmarks.landmark])
        faces.append(points * scale + np.array(box[:2]))
    return faces


def _points_box(points: np.ndarray) -> _FloatBox:
    low, high = points.min(axis=0), points.max(axis=0)
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])


@dataclass
class _Candidate:
    """A place that may hold a face: its box and the detector votes behind it.

    ``score`` and ``votes`` count the mediapipe face detector only (best score, number
    of models and crops that found a box here); ``mesh`` is True when whole-image
    FaceMesh proposed it.
    """

    box: _FloatBox
    score: float = 0.0
    votes: int = 0
    mesh: bool = False

    def add(self, score: float | None) -> None:
        if score is None:
            self.mesh = True
        else:
            self.votes += 1
            self.score = max(self.score, score)


def _face_candidates(mp: ModuleType, work: np.ndarray, mesh: Any, min_face_px: int
                     ) -> list[_Candidate]:
    """Boxes that may hold a face: FaceMesh, full-range and cropped short-range detection.

    Boxes that overlap (IoU >= ``_VOTE_IOU``) are one candidate, with the box of the
    first one (FaceMesh first, then by detector score).
    """
    height, width = work.shape[:2]
    whole = (0.0, 0.0, float(width), float(height))
    meshes = [_points_box(p) for p in _landmark_arrays(mesh.process(work), whole,
                                                       (height, width))]
    scored: list[tuple[_FloatBox, float]] = []
    detection = mp.solutions.face_detection
    with detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as far:
        scored += _detections(far, work, (0, 0))
    with detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as near:
        scored += _detections(near, work, (0, 0))
        for side in crop_sides(min(width, height), min_face_px):
            for top in _window_starts(height, side):
                for left in _window_starts(width, side):
                    crop = np.ascontiguousarray(work[top:top + side, left:left + side])
                    scored += _detections(near, crop, (left, top))
    scored.sort(key=lambda item: -item[1])
    kept: list[_Candidate] = []
    for box, score in [(b, None) for b in meshes] + scored:
        for candidate in kept:
            if box_iou(box, candidate.box) >= _VOTE_IOU:
                candidate.add(score)
                break
        else:
            kept.append(_Candidate(box))
            kept[-1].add(score)
    return kept[:_MAX_CANDIDATES]


def _mesh_in_box(mesh: Any, work_image: Image.Image, box: _FloatBox, zoom: float
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
    if np.percentile(np.asarray(crop.convert("L")), 99) < _DARK_PERCENTILE_LEVEL:
        crop = ImageOps.autocontrast(crop, cutoff=1)
    pixels = np.ascontiguousarray(np.asarray(crop))
    faces = _landmark_arrays(mesh.process(pixels), region, pixels.shape[:2])
    best, best_iou = None, _VERIFY_IOU
    for points in faces:
        overlap = box_iou(_points_box(points), box)
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


def _haar_votes(cascades: Sequence[tuple[Any, bool, bool]], gray: Image.Image, box: _FloatBox
                ) -> tuple[int, int]:
    """How many frontal and how many profile Haar cascades see a face on ``box``.

    A cascade agrees when one of its boxes overlaps ``box`` with IoU >= ``_HAAR_IOU``.
    They look at a square three times the box, scaled so the box is ``_HAAR_SIDE``
    pixels, for faces of half to twice that size.
    """
    side = max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    region = (cx - 1.5 * side, cy - 1.5 * side, cx + 1.5 * side, cy + 1.5 * side)
    size = 3 * _HAAR_SIDE
    crop = np.asarray(gray.transform((size, size), Image.Transform.EXTENT, region,
                                     Image.Resampling.BICUBIC))
    inner = (float(_HAAR_SIDE), float(_HAAR_SIDE), 2.0 * _HAAR_SIDE, 2.0 * _HAAR_SIDE)
    frontal = profile = 0
    for cascade, mirrored, is_profile in cascades:
        pixels = np.ascontiguousarray(crop[:, ::-1]) if mirrored else crop
        found = cascade.detectMultiScale(pixels, scaleFactor=1.05, minNeighbors=1,
                                         minSize=(_HAAR_SIDE // 2,) * 2,
                                         maxSize=(2 * _HAAR_SIDE,) * 2)
        for x, y, w, h in np.asarray(found).reshape(-1, 4).tolist():
            left = size - x - w if mirrored else x
            if box_iou((left, y, left + w, y + h), inner) >= _HAAR_IOU:
                profile += is_profile
                frontal += not is_profile
                break
    return frontal, profile


def _ellipse(box: _FloatBox, points: int = 64) -> np.ndarray:
    """A face without landmarks: the ellipse inscribed in its box, as (points, 2)."""
    angles = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    return np.column_stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)])


def _pose_confirms(pose: Any, work_image: Image.Image, box: _FloatBox) -> bool:
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
                 cascades: Sequence[tuple[Any, bool, bool]], candidate: _Candidate,
                 min_face_px: int, pose: Callable[[], Any] | None = None
                 ) -> np.ndarray | None:
    """The outline of a candidate face (landmarks or an ellipse), or None: not a face.

    "Haar agrees" means at least ``_HAAR_FRONTAL`` frontal cascades see the face, or
    one profile cascade (plain or mirrored) does and the mediapipe detector scored it
    at least ``_PROFILE_SCORE``. A candidate is a face when

    1. FaceMesh finds it at every zoom of ``_VERIFY_ZOOMS`` (and, for a box under
       ``2 * min_face_px``, Haar agrees: small round things such as the buttons on a
       sleeve pass FaceMesh); or
    2. FaceMesh finds it at all zooms but one, and Haar agrees (a tattooed arm in a
       shrunk group photo passed two zooms and the profile cascade, with detector
       score 0.63; the dark profile it must keep in bar55 scored 0.86); or
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
    if hits == len(_VERIFY_ZOOMS) and side >= 2 * min_face_px:
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
        return first if first is not None else _ellipse(box)
    if alone and pose is not None and _pose_confirms(pose(), work_image, box):
        logger.debug("face candidate %s confirmed by the pose model",
                     tuple(round(v) for v in box))
        return first if first is not None else _ellipse(box)
    return None


def _find_faces(mp: ModuleType, work: np.ndarray, min_face_px: int) -> list[np.ndarray]:
    """Outlines (N, 2) of every face in ``work`` (its pixels), largest face first.

    An outline is the 468 FaceMesh landmarks, or 64 points on an ellipse for a face only
    the detectors found (see :func:`_verify_face`).
    """
    work_image = Image.fromarray(work)
    gray = work_image.convert("L")
    cascades = _cascades()
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=_MAX_FACES,
                                         refine_landmarks=False,
                                         min_detection_confidence=0.5) as mesh:
        candidates = _face_candidates(mp, work, mesh, min_face_px)
    faces: list[np.ndarray] = []
    with contextlib.ExitStack() as stack:
        mesh = stack.enter_context(mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=3, refine_landmarks=False,
            min_detection_confidence=0.5))
        poses: list[Any] = []

        def pose() -> Any:
            if not poses:
                poses.append(stack.enter_context(mp.solutions.pose.Pose(
                    static_image_mode=True, model_complexity=1)))
            return poses[0]

        for candidate in candidates:
            if any(box_iou(candidate.box, _points_box(other)) >= _CANDIDATE_NMS_IOU
                   for other in faces):
                continue  # the same face again, already verified
            points = _verify_face(mesh, work_image, gray, cascades, candidate, min_face_px,
                                  pose)
            if points is None:
                continue
            found = _points_box(points)
            if all(box_iou(found, _points_box(other)) < _SAME_FACE_IOU for other in faces):
                faces.append(points)
    faces.sort(key=lambda p: -np.prod(p.max(axis=0) - p.min(axis=0)))
    return faces


def _pose_mask(pose: Any, rgb: np.ndarray) -> np.ndarray:
    """Pose segmentation of the (one) person the pose model finds, or all False."""
    result = pose.process(np.ascontiguousarray(rgb))
    if result.segmentation_mask is None or result.pose_landmarks is None:
        return np.zeros(rgb.shape[:2], dtype=bool)
    return np.asarray(result.segmentation_mask) > _MASK_THRESHOLD


def _body_regions(boxes: Sequence[_FloatBox], shape: tuple[int, int]) -> np.ndarray:
    """Where the body of each face can be: a box around and below it, in face sizes."""
    regions = np.zeros(shape, dtype=bool)
    for left, top, right, bottom in boxes:
        width, height = right - left, bottom - top
        x0, x1 = left - _BODY_SIDE * width, right + _BODY_SIDE * width
        y0, y1 = top - _BODY_ABOVE * height, bottom + _BODY_BELOW * height
        regions[max(0, math.floor(y0)):max(0, math.ceil(y1)),
                max(0, math.floor(x0)):max(0, math.ceil(x1))] = True
    return regions


def _mediapipe_people(mp: ModuleType, work: np.ndarray, faces: np.ndarray,
                      face_boxes: Sequence[_FloatBox], notes: list[str]) -> np.ndarray:
    """Person mask at working resolution: segmentation confirmed by a face or a body pose.

    Selfie-segmentation pixels count only near a face (its body region) or inside a
    pose model's person mask. Pose is run on the whole image, then on the crop of each
    large segmented region left unexplained (the pose model sees one person at a time).
    """
    selfie = mp.solutions.selfie_segmentation
    union = np.zeros(work.shape[:2], dtype=bool)
    for model in (0, 1):
        with selfie.SelfieSegmentation(model_selection=model) as segmenter:
            union |= np.asarray(segmenter.process(work).segmentation_mask) > _MASK_THRESHOLD
    with mp.solutions.pose.Pose(static_image_mode=True, enable_segmentation=True,
                                model_complexity=1) as pose:
        body = _pose_mask(pose, work)
        evidence = _body_regions(face_boxes, union.shape) | body
        leftover = union & ~evidence
        labels, count = ndimage.label(leftover, structure=np.ones((3, 3), dtype=bool))
        areas = ndimage.sum_labels(leftover, labels, np.arange(1, count + 1))
        slices = ndimage.find_objects(labels)
        for index in np.argsort(-areas)[:_MAX_REGION_CHECKS]:
            if areas[index] < _MIN_REGION_FRACTION * union.size:
                break
            region = _padded_slice(slices[index], union.shape, 0.1)
            found = _pose_mask(pose, work[region])
            inside = labels[region] == index + 1
            if found.any() and (found & inside).sum() >= _POSE_AGREEMENT * found.sum():
                body[region] |= found
    person = (union & (evidence | body)) | body | faces
    ignored = float((union & ~person).mean())
    if ignored >= 0.05:
        notes.append(f"segmentation marked {ignored:.0%} of the target as people where no face"
                     " or body pose confirmed it; ignored")
    return person


def _padded_slice(region: tuple[slice, slice], shape: tuple[int, ...], pad: float
                  ) -> tuple[slice, slice]:
    """A 2-D slice grown by ``pad`` of its size on every side, inside ``shape``."""
    grown = []
    for part, length in zip(region, shape[:2], strict=True):
        margin = round((part.stop - part.start) * pad)
        grown.append(slice(max(0, part.start - margin), min(length, part.stop + margin)))
    return grown[0], grown[1]


# --------------------------------------------------------------------------- PointRend


def check_segmenter(segmenter: str, pointrend_config: str | None = None,
                    pointrend_weights: str | None = None) -> None:
    """Fail early, in one line, when ``segmenter`` cannot run here.

    Raises
    ------
    MosaicError
        Unknown segmenter; or "pointrend" without detectron2 (saying what to install),
        without its config and weights, or with files that do not exist.
    """
    if segmenter not in SEGMENTERS:
        raise MosaicError(f"--segmenter {segmenter!r}: choose one of {', '.join(SEGMENTERS)}")
    if segmenter == "pointrend":
        _check_pointrend(pointrend_config, pointrend_weights)


def _check_pointrend(config: str | None, weights: str | None) -> None:
    """Fail with what to install or pass, unless PointRend can run."""
    if importlib.util.find_spec("detectron2") is None:
        raise MosaicError(POINTREND_MISSING)
    if config is None or weights is None:
        raise MosaicError("--segmenter pointrend needs --pointrend-config (a PointRend "
                          "instance-segmentation .yaml) and --pointrend-weights (its .pkl/.pth)")
    for label, path in (("--pointrend-config", config), ("--pointrend-weights", weights)):
        if not Path(path).is_file():
            raise MosaicError(f"{label} {path}: no such file")


def _pointrend_people(work: np.ndarray, config: str, weights: str) -> np.ndarray:
    """Union of the COCO "person" instance masks a detectron2 PointRend model predicts.

    Written against detectron2's documented API (``get_cfg``, ``DefaultPredictor``,
    ``detectron2.projects.point_rend.add_pointrend_config``); detectron2 is not
    installable here, so this path has not been run in this project's tests.
    """
    try:
        import torch
        from detectron2.config import get_cfg
        from detectron2.engine import DefaultPredictor
        from detectron2.projects import point_rend
    except ImportError as exc:
        raise MosaicError(f"{POINTREND_MISSING} ({exc})") from None
    cfg = get_cfg()
    point_rend.add_pointrend_config(cfg)
    cfg.merge_from_file(config)
    cfg.MODEL.WEIGHTS = weights
    cfg.MODEL.DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = _MASK_THRESHOLD
    predictor = DefaultPredictor(cfg)
    instances = predictor(np.ascontiguousarray(work[:, :, ::-1]))["instances"].to("cpu")
    people = instances.pred_masks[instances.pred_classes == 0].numpy()
    return people.any(axis=0) if len(people) else np.zeros(work.shape[:2], dtype=bool)


# --------------------------------------------------------------------------- detection


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
    with _mediapipe_session() as mp:
        landmarks = _find_faces(mp, search, min_face_px)
        to_work = face_scale / work_scale
        faces_work = _hull_mask(landmarks, (work.shape[1], work.shape[0]), to_work)
        if segmenter == "pointrend":
            people_work = _pointrend_people(work, str(pointrend_config),
                                            str(pointrend_weights)) | faces_work
        else:
            boxes = [_points_box(points / to_work) for points in landmarks]
            people_work = _mediapipe_people(mp, work, faces_work, boxes, notes)
    face_mask = _hull_mask(landmarks, size, face_scale)
    people = Image.fromarray(people_work.astype(np.uint8) * 255)
    if people.size != size:
        people = people.resize(size, Image.Resampling.BILINEAR)
    person_mask = (np.asarray(people) > 127) | face_mask
    faces = [_face_box(points, face_scale, size) for points in landmarks]
    if not faces and not person_mask.any():
        notes.insert(0, "nobody found in the target: no face and no person")
    elif not faces:
        notes.insert(0, "no face found in the target (people only)")
    return Detection(face_mask, person_mask, faces, notes, segmenter)


def save_detection(detection: Detection, path: str | os.PathLike[str]) -> Path:
    """Write a detection to ``path`` (compressed .npz) atomically."""
    out = Path(path)
    faces = np.asarray(detection.faces, dtype=np.int64).reshape(-1, 4)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle, face_mask=detection.face_mask, person_mask=detection.person_mask,
                faces=faces, notes=np.asarray(detection.notes, dtype=str),
                segmenter=np.asarray(detection.segmenter))
    return out


def load_detection(path: str | os.PathLike[str]) -> Detection:
    """Read a detection written by :func:`save_detection`."""
    with np.load(path, allow_pickle=False) as data:
        return Detection(
            face_mask=data["face_mask"], person_mask=data["person_mask"],
            faces=[tuple(int(v) for v in row) for row in data["faces"]],
            notes=[str(n) for n in data["notes"]], segmenter=str(data["segmenter"]))


# --------------------------------------------------------------------------- weights


def check_weights(mode: str, face_weight: float, person_weight: float, falloff_tiles: float
                  ) -> None:
    """Raise :class:`MosaicError` for an unknown mode or weights below 1.

    Raises
    ------
    MosaicError
        ``mode`` not in :data:`MODES`, a weight below 1 or not finite, or a negative
        fall-off.
    """
    if mode not in MODES:
        raise MosaicError(f"--weights {mode!r}: choose one of {', '.join(MODES)}")
    for label, value in (("--face-weight", face_weight), ("--person-weight", person_weight)):
        if not (math.isfinite(value) and value >= 1):
            raise MosaicError(f"{label} {value}: must be a number >= 1 (1 = no preference)")
    if not (math.isfinite(falloff_tiles) and falloff_tiles >= 0):
        raise MosaicError(f"--falloff {falloff_tiles}: must be a number of tiles >= 0")


def falloff_weights(mask: np.ndarray, weight: float, length: float,
                    sampling: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Per-pixel ``1 + (weight - 1) * exp(-d / length)``, ``d`` the distance to ``mask``.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
        The labelled pixels (distance 0).
    weight : float
        Weight inside the mask (>= 1).
    length : float
        Fall-off length, in the units of ``sampling``; 0 means no fall-off (``weight``
        inside the mask, 1 outside).
    sampling : (float, float)
        Pixel height and width, for the Euclidean distance transform.

    Returns
    -------
    ndarray of float64, shape (H, W)
        All ones when the mask is empty.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any() or weight == 1:
        return np.ones(mask.shape)
    distance = ndimage.distance_transform_edt(~mask, sampling=sampling)
    if length <= 0:
        return np.where(mask, float(weight), 1.0)
    return 1.0 + (weight - 1.0) * np.exp(-distance / length)


def _class_masks(detection: Detection, mode: str, face_weight: float, person_weight: float
                 ) -> list[tuple[np.ndarray, float]]:
    if mode == "faces+people":
        return [(detection.face_mask, face_weight), (detection.person_mask, person_weight)]
    if mode == "faces":
        return [(detection.face_mask, face_weight)]
    if mode == "people":
        return [(detection.person_mask, person_weight)]
    return []


def _resample_mask(mask: np.ndarray, box: _FloatBox, size: tuple[int, int]) -> np.ndarray:
    """Fraction of each cell of ``box`` (split into ``size`` = (w, h) cells) in ``mask``."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    small = image.resize(size, Image.Resampling.BOX, box=box)
    return np.asarray(small, dtype=np.float64) / 255.0


def _check_grid(detection: Detection, crop: Sequence[int], rows: int, cols: int) -> None:
    width, height = detection.size
    left, top, right, bottom = crop
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be positive, got {rows}x{cols}")
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(f"crop {tuple(crop)} is not inside the {width}x{height} target")


def tile_weights(detection: Detection, crop: tuple[int, int, int, int], rows: int, cols: int,
                 mode: str = "faces+people", face_weight: float = DEFAULT_FACE_WEIGHT,
                 person_weight: float = DEFAULT_PERSON_WEIGHT,
                 falloff_tiles: float = DEFAULT_FALLOFF,
                 samples_per_tile: int = SAMPLES_PER_TILE) -> np.ndarray:
    """Importance of every tile: the mean over its pixels of the fall-off weights.

    Parameters
    ----------
    detection : Detection
        Faces and people of the target.
    crop : (int, int, int, int)
        The part of the target the mosaic covers.
    rows, cols : int
        The grid; tiles are numbered row by row as in :func:`mosaic.features.tile_boxes`.
    mode : {"faces+people", "faces", "people", "none"}
        Which classes count. Classes combine by the per-pixel maximum of their weights.
    face_weight, person_weight : float
        Weight ``W`` of a pixel inside a face / a person (>= 1).
    falloff_tiles : float
        Fall-off length in tiles: pixel weights are ``1 + (W - 1) exp(-d / (f * tile))``
        with ``d`` the distance to the class and ``tile`` the mean tile side in target
        pixels; 0 = no fall-off.
    samples_per_tile : int
        Resolution of the distance transform: cells per tile side.

    Returns
    -------
    ndarray of float64, shape (rows * cols,)
        All >= 1; all exactly 1 for mode "none" or when nothing of the chosen classes
        was found.
    """
    check_weights(mode, face_weight, person_weight, falloff_tiles)
    _check_grid(detection, crop, rows, cols)
    if samples_per_tile < 1:
        raise ValueError("samples_per_tile must be at least 1")
    classes = [(m, w) for m, w in _class_masks(detection, mode, face_weight, person_weight)
               if w > 1 and m.any()]
    if not classes:
        return np.ones(rows * cols)
    left, top, right, bottom = crop
    tile_w, tile_h = (right - left) / cols, (bottom - top) / rows
    cell_w, cell_h = tile_w / samples_per_tile, tile_h / samples_per_tile
    width, height = detection.size
    # A margin of whole cells (as far as the image goes) where weights still reach the crop.
    reach = min(max(rows, cols), math.ceil(7 * falloff_tiles) + 1) * samples_per_tile
    pad_left = min(reach, math.floor(left / cell_w + 1e-9))
    pad_top = min(reach, math.floor(top / cell_h + 1e-9))
    pad_right = min(reach, math.floor((width - right) / cell_w + 1e-9))
    pad_bottom = min(reach, math.floor((height - bottom) / cell_h + 1e-9))
    box = (left - pad_left * cell_w, top - pad_top * cell_h,
           right + pad_right * cell_w, bottom + pad_bottom * cell_h)
    grid_size = (cols * samples_per_tile + pad_left + pad_right,
                 rows * samples_per_tile + pad_top + pad_bottom)
    length = falloff_tiles * (tile_w + tile_h) / 2
    combined = np.ones((grid_size[1], grid_size[0]))
    for mask, weight in classes:
        cells = _resample_mask(mask, box, grid_size) >= 0.5
        np.maximum(combined, falloff_weights(cells, weight, length, (cell_h, cell_w)),
                   out=combined)
    inner = combined[pad_top:pad_top + rows * samples_per_tile,
                     pad_left:pad_left + cols * samples_per_tile]
    per_tile = inner.reshape(rows, samples_per_tile, cols, samples_per_tile).mean(axis=(1, 3))
    return np.maximum(per_tile.ravel(), 1.0)


def resolve_mode(detection: Detection, mode: str) -> tuple[str, str | None]:
    """The mode that will actually apply, and a note for the user when it is not ``mode``.

    ``faces+people`` (the default) needs a face or a person, ``faces`` a face and
    ``people`` a person; otherwise the weights are uniform ("none") and the note says
    why.
    """
    if mode not in MODES:
        raise MosaicError(f"--weights {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "none":
        return "none", None
    has_faces, has_people = bool(detection.faces), bool(detection.person_mask.any())
    if not has_faces and not has_people:
        return "none", "nobody found in the target: weights are uniform (every tile counts alike)"
    if mode == "faces" and not has_faces:
        return "none", "no face found in the target: weights are uniform"
    if mode == "people" and not has_people:
        return "none", "no person found in the target: weights are uniform"
    return mode, None


def weights_settings(mode: str, face_weight: float = DEFAULT_FACE_WEIGHT,
                     person_weight: float = DEFAULT_PERSON_WEIGHT,
                     falloff_tiles: float = DEFAULT_FALLOFF, requested: str | None = None
                     ) -> dict[str, Any]:
    """The ``weights`` entry of metrics.json: mode and parameters."""
    return {"mode": mode, "requested": requested if requested is not None else mode,
            "face_weight": face_weight, "person_weight": person_weight,
            "falloff_tiles": falloff_tiles}


def tile_fractions(detection: Detection, crop: tuple[int, int, int, int], rows: int, cols: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of each tile covered by a face and by a person, each shape (rows*cols,)."""
    _check_grid(detection, crop, rows, cols)
    box = tuple(float(v) for v in crop)
    face = _resample_mask(detection.face_mask, box, (cols, rows)).ravel()  # type: ignore[arg-type]
    person = _resample_mask(detection.person_mask, box, (cols, rows)).ravel()  # type: ignore[arg-type]
    return face, person


def tile_classes(detection: Detection, crop: tuple[int, int, int, int], rows: int, cols: int,
                 threshold: float = CLASS_FRACTION) -> np.ndarray:
    """Label every tile: :data:`FACE` (2), :data:`PERSON` (1) or :data:`BACKGROUND` (0).

    A tile is a face tile when at least ``threshold`` (a quarter, by default) of its area
    is face; otherwise a person tile when at least ``threshold`` of it is person (faces
    included); otherwise background. A quarter rather than a majority so that a face
    spanning few tiles still has face tiles.

    Returns
    -------
    ndarray of int8, shape (rows * cols,)
    """
    face, person = tile_fractions(detection, crop, rows, cols)
    labels = np.full(rows * cols, BACKGROUND, dtype=np.int8)
    labels[person >= threshold] = PERSON
    labels[face >= threshold] = FACE
    return labels


def class_costs(tile_cost: np.ndarray, classes: np.ndarray) -> dict[str, dict[str, Any]]:
    """Mean cost over face, person and background tiles separately.

    Parameters
    ----------
    tile_cost : ndarray, shape (T,)
        Unweighted cost of each tile's photo.
    classes : ndarray, shape (T,)
        Labels from :func:`tile_classes`.

    Returns
    -------
    dict
        ``{"face": {"tiles": n, "mean_cost": x}, "person": ..., "background": ...}``;
        ``mean_cost`` is None for a class without tiles. The person class excludes face
        tiles.
    """
    cost = np.asarray(tile_cost, dtype=np.float64).ravel()
    labels = np.asarray(classes).ravel()
    if cost.shape != labels.shape:
        raise ValueError(f"tile_cost has {cost.size} tiles but classes {labels.size}")
    result: dict[str, dict[str, Any]] = {}
    for name, label in (("face", FACE), ("person", PERSON), ("background", BACKGROUND)):
        chosen = cost[labels == label]
        result[name] = {"tiles": int(chosen.size),
                        "mean_cost": float(chosen.mean()) if chosen.size else None}
    return result


# --------------------------------------------------------------------------- crop


def _best_start(spans: Sequence[tuple[float, float, float]], box: int, length: int,
                preferred: float) -> int:
    """Start of a window of ``box`` in ``[0, length]`` covering most of the weighted spans.

    When all spans fit together the window is centred on them (as far as the image
    allows); otherwise the start maximising the covered weight wins, ties going to the
    start nearest the centred one.
    """
    last = length - box
    centred = min(max(round(preferred - box / 2), 0), last)
    low, high = min(s[0] for s in spans), max(s[1] for s in spans)
    if high - low <= box:
        return centred

    def covered(start: int) -> float:
        return sum(w * max(0.0, min(b, start + box) - max(a, start)) / max(b - a, 1e-9)
                   for a, b, w in spans)

    starts = {centred}
    for a, b, _w in spans:
        starts |= {min(max(math.floor(a), 0), last), min(max(math.ceil(b) - box, 0), last)}
    return max(sorted(starts), key=lambda s: (round(covered(s), 9), -abs(s - centred)))


def faces_centre(detection: Detection, aspect: float | None = None
                 ) -> tuple[float, float] | None:
    """Where to centre the target crop so the faces stay in the frame; None without faces.

    Parameters
    ----------
    detection : Detection
    aspect : float, optional
        Width / height of the crop (``cols / rows``). With it, the returned point is the
        centre of the best crop (see :func:`face_crop`); without it, the centre of the
        box around all faces.

    Returns
    -------
    (float, float) or None
        (x, y) in target pixels, for ``crop_to_aspect``/``plan_layout(centre=...)``.
    """
    if not detection.faces:
        return None
    boxes = np.asarray(detection.faces, dtype=np.float64)
    cx = (boxes[:, 0].min() + boxes[:, 2].max()) / 2
    cy = (boxes[:, 1].min() + boxes[:, 3].max()) / 2
    if aspect is None:
        return float(cx), float(cy)
    width, height = detection.size
    left, top, right, bottom = crop_to_aspect(width, height, aspect)
    box_w, box_h = right - left, bottom - top
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    if box_w < width:
        spans = [(b[0], b[2], a) for b, a in zip(boxes, areas, strict=True)]
        start = _best_start(spans, box_w, width, cx)
        return start + box_w / 2, height / 2
    if box_h < height:
        spans = [(b[1], b[3], a) for b, a in zip(boxes, areas, strict=True)]
        start = _best_start(spans, box_h, height, cy)
        return width / 2, start + box_h / 2
    return width / 2, height / 2


def face_crop(detection: Detection, aspect: float) -> tuple[int, int, int, int]:
    """The largest crop of ``aspect`` that keeps the faces inside (a centre crop without).

    All faces stay inside whenever the box around them fits in the crop; otherwise the
    crop covers as much face area as it can.
    """
    width, height = detection.size
    return crop_to_aspect(width, height, aspect, faces_centre(detection, aspect))


# --------------------------------------------------------------------------- pictures


_RAMP = np.array([[0, 160, 255], [255, 215, 0], [255, 30, 60]], dtype=np.float64)


def _ramp(values: np.ndarray) -> np.ndarray:
    """Colours for values in [0, 1]: blue, yellow, red."""
    position = np.clip(values, 0, 1) * (len(_RAMP) - 1)
    lower = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    frac = (position - lower)[..., None]
    return (_RAMP[lower] * (1 - frac) + _RAMP[lower + 1] * frac).astype(np.uint8)


def weight_map_image(target: Image.Image, weights: np.ndarray, crop: tuple[int, int, int, int],
                     rows: int, cols: int, max_side: int = 1024) -> Image.Image:
    """The tile weights drawn over the (greyed) target crop, with a legend strip.

    Tiles of weight 1 show the target in grey; heavier tiles are tinted from blue (just
    above 1) through yellow to red (the heaviest), more opaque the heavier they are
    (opacity grows with the square root of ``(w - 1) / (max - 1)``).

    Parameters
    ----------
    target : PIL.Image.Image
        The upright target.
    weights : ndarray, shape (rows * cols,)
        From :func:`tile_weights`.
    crop : (int, int, int, int)
        The part of the target the mosaic covers.
    rows, cols : int
        The grid.
    max_side : int
        Long side of the picture (without the legend).
    """
    grid = np.asarray(weights, dtype=np.float64).reshape(rows, cols)
    region = target.convert("RGB").crop(crop)
    scale = min(1.0, max_side / max(region.size))
    size = (max(cols, round(region.width * scale)), max(rows, round(region.height * scale)))
    base = ImageOps.grayscale(region.resize(size, Image.Resampling.BOX)).convert("RGB")
    base = Image.blend(base, Image.new("RGB", size, (0, 0, 0)), 0.3)
    peak = float(grid.max())
    scaled = (grid - 1.0) / (peak - 1.0) if peak > 1.0 else np.zeros_like(grid)
    alpha = 0.8 * np.sqrt(scaled)
    tint = Image.fromarray(_ramp(scaled), "RGB").resize(size, Image.Resampling.NEAREST)
    mask = Image.fromarray((alpha * 255).astype(np.uint8), "L").resize(
        size, Image.Resampling.NEAREST)
    picture = Image.composite(tint, base, mask)
    strip = 28
    canvas = Image.new("RGB", (size[0], size[1] + strip), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    bar_w = max(1, min(size[0] // 2, 240))
    bar = Image.fromarray(_ramp(np.linspace(0, 1, bar_w))[None, :, :].repeat(10, axis=0),
                          "RGB")
    draw = ImageDraw.Draw(canvas)
    label = (f"weights: grey = 1, red = {peak:.2f}" if peak > 1.0
             else "uniform weights (all 1)")
    draw.text((4, size[1] + 8), label, fill=(0, 0, 0))
    if peak > 1.0 and size[0] - bar_w - 4 > 0:
        canvas.paste(bar, (size[0] - bar_w - 4, size[1] + 9))
    return canvas
