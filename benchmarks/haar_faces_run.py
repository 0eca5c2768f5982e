"""Faces found by OpenCV's Haar cascades, run by the side environment's Python.

Used by :mod:`benchmarks.bench_quality` as
``.venv-peers/bin/python benchmarks/haar_faces_run.py IMAGE ...``: it measures which tiles
show a face with a detector the project's weighting does not use (the weighting uses
mediapipe). It imports only OpenCV (installed in ``.venv-peers`` for mosaicraft; the
cascades ship inside the ``opencv-python`` wheel) and the standard library.

Frontal faces come from ``haarcascade_frontalface_default.xml``, profiles from
``haarcascade_profileface.xml`` on the image and on its mirror (the cascade finds
left-facing profiles only). Boxes of one face found twice (overlap over a third of the
smaller box) are merged into the larger. Settings (``minNeighbors`` 5, faces at least
4 % of the image's shorter side) are OpenCV's usual ones and were not fitted to the
targets. Prints ``{"image": [[left, top, right, bottom], ...], ...}`` in image pixels.
"""

from __future__ import annotations

import json
import sys

import cv2

MIN_NEIGHBOURS = 5
MIN_FACE_SHARE = 0.04
MERGE_OVERLAP = 1 / 3


def detect(path: str) -> list[list[int]]:
    """Face boxes ``[left, top, right, bottom]`` in ``path``'s pixels."""
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f"haar_faces_run: cannot read {path}")
    image = cv2.equalizeHist(image)
    height, width = image.shape
    side = max(24, int(MIN_FACE_SHARE * min(width, height)))
    boxes: list[list[int]] = []
    for name, mirrored in (("frontalface_default", False), ("profileface", False),
                           ("profileface", True)):
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + f"haarcascade_{name}.xml")
        seen = cv2.flip(image, 1) if mirrored else image
        for x, y, w, h in cascade.detectMultiScale(seen, scaleFactor=1.1,
                                                   minNeighbors=MIN_NEIGHBOURS,
                                                   minSize=(side, side)):
            left = width - int(x) - int(w) if mirrored else int(x)
            boxes.append([left, int(y), left + int(w), int(y) + int(h)])
    return merged(boxes)


def merged(boxes: list[list[int]]) -> list[list[int]]:
    """Boxes with duplicates of one face dropped (the larger kept)."""
    kept: list[list[int]] = []
    for box in sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True):
        if all(overlap(box, other) <= MERGE_OVERLAP for other in kept):
            kept.append(box)
    return kept


def overlap(a: list[int], b: list[int]) -> float:
    """Intersection area over the smaller box's area."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / smaller


if __name__ == "__main__":
    print(json.dumps({path: detect(path) for path in sys.argv[1:]}))
