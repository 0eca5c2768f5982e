"""The face-aware crop: where to cut the target so its faces stay in the frame."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mosaic.importance.detection import Detection
from mosaic.layout import crop_to_aspect

_MIN_SPAN = 1e-9  # a zero-width face box still divides by something when its share is taken
_TIE_DIGITS = 9  # covered weights equal to this many decimals tie (nearest the centre wins)


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
        return sum(w * max(0.0, min(b, start + box) - max(a, start)) / max(b - a, _MIN_SPAN)
                   for a, b, w in spans)

    starts = {centred}
    for a, b, _w in spans:
        starts |= {min(max(math.floor(a), 0), last), min(max(math.ceil(b) - box, 0), last)}
    return max(sorted(starts),
               key=lambda s: (round(covered(s), _TIE_DIGITS), -abs(s - centred)))


def faces_centre(detection: Detection, aspect: float | None = None
                 ) -> tuple[float, float] | None:
    """Where to centre the target crop so the faces stay in the frame; None without faces.

    Parameters
    ----------
    detection : Detection
        The faces of the target.
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
