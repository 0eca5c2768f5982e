"""The Detection type and its file."""

from __future__ import annotations

import numpy as np

from mosaic import importance
from mosaic.importance import Detection


def test_save_and_load_detection(tmp_path):
    face = np.zeros((20, 30), bool)
    face[5:9, 6:12] = True
    person = face.copy()
    person[9:20, 4:14] = True
    found = Detection(face, person, [(6, 5, 12, 9)], ["a note"], "mediapipe")
    path = importance.save_detection(found, tmp_path / "run" / "importance.npz")
    assert path.is_file() and not list(path.parent.glob(".*part*"))
    back = importance.load_detection(path)
    np.testing.assert_array_equal(back.face_mask, face)
    np.testing.assert_array_equal(back.person_mask, person)
    assert back.faces == [(6, 5, 12, 9)] and back.notes == ["a note"]
    assert back.segmenter == "mediapipe" and back.summary() == found.summary()
    nobody = Detection(np.zeros((4, 4), bool), np.zeros((4, 4), bool), [])
    again = importance.load_detection(importance.save_detection(nobody, tmp_path / "n.npz"))
    assert again.faces == [] and again.notes == [] and not again.anyone
