"""Scoring: the blog's per-pair skimage loop (extrapolated) vs one BLAS product."""

from __future__ import annotations

import time

import numpy as np
from skimage.metrics import mean_squared_error

from benchmarks.synthetic import TARGETS, synthetic_thumbs
from benchmarks.table import print_table
from mosaic.cost import cost_matrix
from mosaic.features import tile_thumbnails, to_features
from mosaic.images import open_rgb
from mosaic.layout import plan_layout

SIZES = (1000, 2500, 10000)
LOOP_PAIRS = 3000


def skimage_seconds_per_pair(tiles: np.ndarray, photos: np.ndarray) -> float:
    """Time the blog's approach: ``mean_squared_error`` on each (tile, photo) pair."""
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, [len(tiles), len(photos)], size=(LOOP_PAIRS, 2))
    tiles_f, photos_f = tiles / 255.0, photos / 255.0
    started = time.perf_counter()
    for t, p in pairs:
        mean_squared_error(tiles_f[t], photos_f[p])
    return (time.perf_counter() - started) / LOOP_PAIRS


def run(target: str = "obama", size: int = 16) -> list[list[object]]:
    """Rows: photos, tiles, skimage loop s (extrapolated), ours rgb s, ours lab s, speed-up."""
    image = open_rgb(TARGETS / f"{target}.jpg")
    rows = []
    for count in SIZES:
        layout = plan_layout(image.size, count)
        tiles = tile_thumbnails(image, layout.crop, layout.rows, layout.cols, size)
        photos = synthetic_thumbs(count, size)
        loop = skimage_seconds_per_pair(tiles, photos) * len(tiles) * count
        timings = {}
        for metric in ("rgb", "lab"):
            tile_f, photo_f = to_features(tiles, metric), to_features(photos, metric)
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                cost_matrix(tile_f, photo_f)
                best = min(best, time.perf_counter() - started)
            timings[metric] = best
        rows.append([count, len(tiles), f"{loop:.1f}", f"{timings['rgb']:.3f}",
                     f"{timings['lab']:.3f}", f"{loop / timings['rgb']:.0f}x"])
    return rows


def main() -> None:
    """Print the scoring table."""
    print_table("Scoring: cost matrix at 16x16 (obama target, best of 3)",
                ["photos", "tiles", "skimage loop s (extrap.)", "ours rgb s", "ours lab s",
                 "speed-up"], run())


if __name__ == "__main__":
    main()
