"""The weight map picture."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mosaic import importance


def test_weight_map_image_sizes():
    target = Image.new("RGB", (200, 100), (120, 80, 40))
    weights = np.ones(8)
    weights[3] = 4.0
    picture = importance.weight_map_image(target, weights, (0, 0, 200, 100), 2, 4)
    assert picture.size == (200, 128)
    tinted = np.asarray(picture)[10, 160]
    plain = np.asarray(picture)[10, 10]
    assert tinted[0] > 200 and plain[0] == plain[1] == plain[2]
