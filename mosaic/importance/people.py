"""People in the target: mediapipe segmentation confirmed by faces or body poses, or PointRend.

Selfie segmentation also calls sky and clouds "person" when nobody is there, so a
segmented pixel counts only near a face or inside a pose model's person mask.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from scipy import ndimage

from mosaic.errors import MosaicError
from mosaic.importance.detection import FloatBox

SEGMENTERS = ("mediapipe", "pointrend")
"""Where the person masks come from."""
POINTREND_MISSING = (
    "`segmenter` pointrend needs detectron2 with its PointRend project, which is not "
    "installed (it is not on PyPI: build detectron2 from "
    "https://github.com/facebookresearch/detectron2 on top of torch, then pass "
    "`pointrend_config` and `pointrend_weights`); or use `segmenter` mediapipe"
)
"""The one-line error when PointRend is asked for but detectron2 is missing."""

_MASK_THRESHOLD = 0.5  # person probability (and PointRend score) at which a pixel counts
_SELFIE_MODELS = (0, 1)  # selfie segmentation's general and landscape models, united
_POSE_MODEL = 1  # Pose model_complexity 1 ("full"): the only pose model in the wheel
# A face's body region, in face sizes: arms either side, hair above, a standing body
# (about seven heads tall) below.
_BODY_SIDE, _BODY_ABOVE, _BODY_BELOW = 4.0, 1.0, 8.0
_MIN_REGION_FRACTION = 0.01  # unexplained regions under 1 % of the image get no pose run
_MAX_REGION_CHECKS = 8  # pose runs on the largest unexplained regions only: bounds the time
_POSE_AGREEMENT = 0.3  # share of a crop's pose mask inside the region for it to explain it
_REGION_PAD = 0.1  # a region's crop grows by this share per side, so the person fits whole
_IGNORED_NOTE = 0.05  # share of the target ignored as unconfirmed before the user is told
_NEIGHBOURS = np.ones((3, 3), dtype=bool)  # regions are 8-connected: diagonal pixels join
_COCO_PERSON = 0  # class id of "person" in COCO, which the PointRend models are trained on


def _pose_mask(pose: Any, rgb: np.ndarray) -> np.ndarray:
    """Pose segmentation of the (one) person the pose model finds, or all False."""
    result = pose.process(np.ascontiguousarray(rgb))
    if result.segmentation_mask is None or result.pose_landmarks is None:
        return np.zeros(rgb.shape[:2], dtype=bool)
    return np.asarray(result.segmentation_mask) > _MASK_THRESHOLD


def _body_regions(boxes: Sequence[FloatBox], shape: tuple[int, int]) -> np.ndarray:
    """Where the body of each face can be: a box around and below it, in face sizes."""
    regions = np.zeros(shape, dtype=bool)
    for left, top, right, bottom in boxes:
        width, height = right - left, bottom - top
        x0, x1 = left - _BODY_SIDE * width, right + _BODY_SIDE * width
        y0, y1 = top - _BODY_ABOVE * height, bottom + _BODY_BELOW * height
        regions[max(0, math.floor(y0)):max(0, math.ceil(y1)),
                max(0, math.floor(x0)):max(0, math.ceil(x1))] = True
    return regions


def _padded_slice(region: tuple[slice, slice], shape: tuple[int, ...], pad: float
                  ) -> tuple[slice, slice]:
    """A 2-D slice grown by ``pad`` of its size on every side, inside ``shape``."""
    grown = []
    for part, length in zip(region, shape[:2], strict=True):
        margin = round((part.stop - part.start) * pad)
        grown.append(slice(max(0, part.start - margin), min(length, part.stop + margin)))
    return grown[0], grown[1]


def mediapipe_people(mp: ModuleType, work: np.ndarray, faces: np.ndarray,
                     face_boxes: Sequence[FloatBox], notes: list[str]) -> np.ndarray:
    """Person mask at working resolution: segmentation confirmed by a face or a body pose.

    Selfie-segmentation pixels count only near a face (its body region) or inside a
    pose model's person mask. Pose is run on the whole image, then on the crop of each
    large segmented region left unexplained (the pose model sees one person at a time).

    Parameters
    ----------
    mp : module
        mediapipe, from :func:`mosaic.importance.session.mediapipe_session`.
    work : ndarray of uint8, shape (H, W, 3)
        The image segmented.
    faces : ndarray of bool, shape (H, W)
        The face mask at the same resolution (always part of the people).
    face_boxes : sequence of (float, float, float, float)
        The faces' boxes in pixels of ``work``.
    notes : list of str
        Gets a note when much of the segmentation was ignored.

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    selfie = mp.solutions.selfie_segmentation
    union = np.zeros(work.shape[:2], dtype=bool)
    for model in _SELFIE_MODELS:
        with selfie.SelfieSegmentation(model_selection=model) as segmenter:
            union |= np.asarray(segmenter.process(work).segmentation_mask) > _MASK_THRESHOLD
    with mp.solutions.pose.Pose(static_image_mode=True, enable_segmentation=True,
                                model_complexity=_POSE_MODEL) as pose:
        body = _pose_mask(pose, work)
        evidence = _body_regions(face_boxes, union.shape) | body
        leftover = union & ~evidence
        labels, count = ndimage.label(leftover, structure=_NEIGHBOURS)
        areas = ndimage.sum_labels(leftover, labels, np.arange(1, count + 1))
        slices = ndimage.find_objects(labels)
        for index in np.argsort(-areas)[:_MAX_REGION_CHECKS]:
            if areas[index] < _MIN_REGION_FRACTION * union.size:
                break
            region = _padded_slice(slices[index], union.shape, _REGION_PAD)
            found = _pose_mask(pose, work[region])
            inside = labels[region] == index + 1
            if found.any() and (found & inside).sum() >= _POSE_AGREEMENT * found.sum():
                body[region] |= found
    person = (union & (evidence | body)) | body | faces
    ignored = float((union & ~person).mean())
    if ignored >= _IGNORED_NOTE:
        notes.append(f"segmentation marked {ignored:.0%} of the target as people where no face"
                     " or body pose confirmed it; ignored")
    return person


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
        raise MosaicError(f"`segmenter` {segmenter!r}: choose one of {', '.join(SEGMENTERS)}")
    if segmenter == "pointrend":
        _check_pointrend(pointrend_config, pointrend_weights)


def _check_pointrend(config: str | None, weights: str | None) -> None:
    """Fail with what to install or pass, unless PointRend can run."""
    if importlib.util.find_spec("detectron2") is None:
        raise MosaicError(POINTREND_MISSING)
    if config is None or weights is None:
        raise MosaicError("`segmenter` pointrend needs `pointrend_config` (a PointRend "
                          "instance-segmentation .yaml) and `pointrend_weights` (its .pkl/.pth)")
    for label, path in (("`pointrend_config`", config), ("`pointrend_weights`", weights)):
        if not Path(path).is_file():
            raise MosaicError(f"{label} {path}: no such file")


def pointrend_people(work: np.ndarray, config: str, weights: str) -> np.ndarray:
    """Union of the COCO "person" instance masks a detectron2 PointRend model predicts.

    Written against detectron2's documented API (``get_cfg``, ``DefaultPredictor``,
    ``detectron2.projects.point_rend.add_pointrend_config``); detectron2 is not
    installable here, so this path has not been run in this project's tests.

    Parameters
    ----------
    work : ndarray of uint8, shape (H, W, 3)
        The image segmented (RGB).
    config, weights : str
        The PointRend config (.yaml) and weights.

    Returns
    -------
    ndarray of bool, shape (H, W)
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
    people = instances.pred_masks[instances.pred_classes == _COCO_PERSON].numpy()
    return people.any(axis=0) if len(people) else np.zeros(work.shape[:2], dtype=bool)
