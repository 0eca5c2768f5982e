"""What detection found: the :class:`Detection` type, its file, and box geometry.

Nothing here runs a model; the weights, the crop and the picture need only this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mosaic.files import atomic_path

PixelBox = tuple[int, int, int, int]
"""(left, top, right, bottom) in target pixels, right and bottom exclusive."""
FloatBox = tuple[float, float, float, float]
"""(left, top, right, bottom) in the pixels of a shrunk working image, not rounded."""


@dataclass
class Detection:
    """Faces and people found in a target.

    Attributes
    ----------
    face_mask : ndarray of bool, shape (H, W)
        Pixels inside a face: the convex hull of its FaceMesh landmarks, or the ellipse
        in the detector's box for a face without landmarks (see :mod:`mosaic.importance`).
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


def points_box(points: np.ndarray) -> FloatBox:
    """The box around (N, 2) points (x, y), as floats."""
    low, high = points.min(axis=0), points.max(axis=0)
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])
