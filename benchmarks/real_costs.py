"""Cost matrices of real targets against synthetic libraries, for solver benchmarks."""

from __future__ import annotations

import numpy as np

from benchmarks.synthetic import TARGETS, synthetic_thumbs
from mosaic.cost import cost_matrix
from mosaic.features import Metric, tile_thumbnails, to_features
from mosaic.images import open_rgb
from mosaic.layout import plan_layout


def real_cost_matrix(target: str, photos: int, size: int = 16, metric: Metric = "lab",
                     seed: int = 0) -> np.ndarray:
    """Tiles x photos cost of ``TARGETS/<target>.jpg`` with the largest grid that fits."""
    image = open_rgb(TARGETS / f"{target}.jpg")
    layout = plan_layout(image.size, photos)
    tiles = tile_thumbnails(image, layout.crop, layout.rows, layout.cols, size)
    thumbs = synthetic_thumbs(photos, size, seed)
    cost, _ = cost_matrix(to_features(tiles, metric), to_features(thumbs, metric))
    return cost


if __name__ == "__main__":
    import sys

    name, count = sys.argv[1], int(sys.argv[2])
    out = sys.argv[3] if len(sys.argv) > 3 else f"/tmp/cost_{name}_{count}_lab.npy"
    np.save(out, real_cost_matrix(name, count))
    print(out)
