"""Which tiles matter most: faces and people in the target, as per-tile weights.

A good match matters much more on a face than on the background, so the assignment
minimises ``sum_t w_t * cost_t`` with tile weights ``w_t >= 1`` taken from where the
faces and people of the target are.

Detection (:func:`detect_people`) runs offline, with the models that ship in the
mediapipe wheel and the Haar cascades of the opencv wheel it depends on:

- Faces: FaceMesh and mediapipe's face detectors propose boxes on the whole image and,
  for small faces, on overlapping square crops (:mod:`.candidates`). Each candidate is
  verified by FaceMesh on crops at several zooms, by Haar cascades (frontal and
  profile) and, for a face neither can read, by the pose model finding an upright head
  with shoulders below it (:mod:`.faces`). A face is the filled convex hull of its 468
  landmarks, or the ellipse inscribed in the detector's box for a face without
  landmarks.
- People: selfie and pose segmentation, where a segmented pixel counts only near a
  face or inside a pose model's person mask; or, with ``segmenter="pointrend"``, the
  person masks of a detectron2 PointRend model, which is not installed here
  (:mod:`.people`).

Weights (:func:`tile_weights`): a face's region is its whole head, forehead to chin
and ear to ear with the hair (:mod:`.heads`: the face box grown in proportion to the
face), plus its hull; a person's is its mask. For a class with weight ``W`` every
point gets ``1 + (W - 1) * exp(-d / (falloff * tile))``, ``d`` the Euclidean distance
to the region (0 inside it) and ``tile`` the tile side in target pixels; classes
combine by the maximum and a tile's weight is the maximum over its points, so any tile
overlapping a head gets the full face weight. Distances are computed on a grid of
``samples_per_tile`` x ``samples_per_tile`` cells per tile (a cell belongs to a region
when it touches it), over the crop and a margin around it, so heads just outside the
crop still count.

Modules, each importing only those listed before it: :mod:`.detection` (the
:class:`Detection` type, its file, box geometry), :mod:`.session` (mediapipe, quietly),
:mod:`.candidates`, :mod:`.faces`, :mod:`.people`, :mod:`.detect` (:func:`detect_people`),
:mod:`.heads`, :mod:`.weights`, :mod:`.crop` (the face-aware crop) and :mod:`.picture`
(the weight map).
How the rules and defaults were chosen: ``benchmarks/TUNING-importance.md``.
"""

from mosaic.importance.candidates import MIN_FACE_PX, crop_sides
from mosaic.importance.crop import face_crop, faces_centre
from mosaic.importance.detect import FACE_SIDE, WORKING_SIDE, detect_people
from mosaic.importance.detection import (
    Detection,
    PixelBox,
    box_iou,
    load_detection,
    save_detection,
)
from mosaic.importance.people import POINTREND_MISSING, SEGMENTERS, check_segmenter
from mosaic.importance.picture import weight_map_image
from mosaic.importance.session import logger
from mosaic.importance.weights import (
    BACKGROUND,
    CLASS_FRACTION,
    DEFAULT_FACE_WEIGHT,
    DEFAULT_FALLOFF,
    DEFAULT_HEAD_SCALE,
    DEFAULT_PERSON_TOUCH,
    DEFAULT_PERSON_WEIGHT,
    FACE,
    MODES,
    PERSON,
    SAMPLES_PER_TILE,
    check_weights,
    class_costs,
    falloff_weights,
    resolve_mode,
    tile_classes,
    tile_fractions,
    tile_weights,
    weights_settings,
)

__all__ = [
    "BACKGROUND",
    "CLASS_FRACTION",
    "DEFAULT_FACE_WEIGHT",
    "DEFAULT_FALLOFF",
    "DEFAULT_HEAD_SCALE",
    "DEFAULT_PERSON_TOUCH",
    "DEFAULT_PERSON_WEIGHT",
    "FACE",
    "FACE_SIDE",
    "MIN_FACE_PX",
    "MODES",
    "PERSON",
    "POINTREND_MISSING",
    "SAMPLES_PER_TILE",
    "SEGMENTERS",
    "WORKING_SIDE",
    "Detection",
    "PixelBox",
    "box_iou",
    "check_segmenter",
    "check_weights",
    "class_costs",
    "crop_sides",
    "detect_people",
    "face_crop",
    "faces_centre",
    "falloff_weights",
    "load_detection",
    "logger",
    "resolve_mode",
    "save_detection",
    "tile_classes",
    "tile_fractions",
    "tile_weights",
    "weight_map_image",
    "weights_settings",
]
