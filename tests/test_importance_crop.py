"""The face-aware crop."""

from __future__ import annotations

import numpy as np

from mosaic import importance
from mosaic.importance import Detection


def test_face_aware_crop_keeps_the_faces_in_the_frame():
    face = np.zeros((100, 300), bool)
    face[20:50, 240:280] = True
    found = Detection(face, face, [(240, 20, 280, 50)])
    crop = importance.face_crop(found, 1.0)
    assert crop == (200, 0, 300, 100)  # a blind centre crop would be (100, 0, 200, 100)
    assert importance.faces_centre(found) == (260.0, 35.0)
    # Two faces that cannot both fit: the crop keeps the larger one whole.
    face[40:60, 10:30] = True
    found = Detection(face, face, [(240, 20, 280, 50), (10, 40, 30, 60)])
    left, _, right, _ = importance.face_crop(found, 1.0)
    assert left <= 240 and right >= 280
    # Two faces that fit together: both stay inside.
    found = Detection(face, face, [(240, 20, 280, 50), (190, 40, 210, 60)])
    left, _, right, _ = importance.face_crop(found, 1.0)
    assert (left, right) == (185, 285)
    tall = np.zeros((300, 100), bool)
    tall[230:260, 40:60] = True
    assert importance.face_crop(Detection(tall, tall, [(40, 230, 60, 260)]), 1.0) == (
        0, 195, 100, 295)
