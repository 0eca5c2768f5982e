"""A synthetic photo library for benchmarks: real photos cut into random crops.

Each synthetic photo is a random square crop (40-100 % of the short side) of a real
photo from ``../shared/data/library``, possibly mirrored, with brightness, contrast and
saturation jitter, so the colour statistics stay those of real photos.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from mosaic.images import open_rgb

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED_DATA.is_dir():
    SHARED_DATA = Path(os.environ.get("MOSAIC_SHARED_DATA", "../shared/data"))
LIBRARY = SHARED_DATA / "library"
TARGETS = SHARED_DATA / "targets"


def library_paths() -> list[Path]:
    """The real photos the synthetic ones are cut from."""
    paths = sorted(LIBRARY.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no photos in {LIBRARY}; set MOSAIC_SHARED_DATA")
    return paths


def jittered_crop(image: Image.Image, rng: np.random.Generator, side: int) -> Image.Image:
    """One random crop of ``image``, resized to ``side`` px, mirrored and colour-jittered."""
    width, height = image.size
    crop = int(min(width, height) * rng.uniform(0.4, 1.0))
    left = int(rng.integers(0, width - crop + 1))
    top = int(rng.integers(0, height - crop + 1))
    tile = image.resize((side, side), Image.Resampling.BOX, box=(left, top, left + crop,
                                                                   top + crop))
    if rng.random() < 0.5:
        tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    tile = ImageEnhance.Brightness(tile).enhance(rng.uniform(0.8, 1.2))
    tile = ImageEnhance.Contrast(tile).enhance(rng.uniform(0.8, 1.2))
    return ImageEnhance.Color(tile).enhance(rng.uniform(0.7, 1.3))


def synthetic_thumbs(count: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """``count`` synthetic thumbnails, uint8 (count, size, size, 3); real photos first."""
    rng = np.random.default_rng(seed)
    sources = [open_rgb(p, draft_size=4 * size) for p in library_paths()]
    thumbs = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        image = sources[i % len(sources)] if i < len(sources) else sources[
            int(rng.integers(len(sources)))]
        if i < len(sources):
            side = min(image.size)
            box = ((image.width - side) // 2, (image.height - side) // 2)
            tile = image.resize((size, size), Image.Resampling.BOX,
                                box=(box[0], box[1], box[0] + side, box[1] + side))
        else:
            tile = jittered_crop(image, rng, size)
        thumbs[i] = np.asarray(tile)
    return thumbs


def write_synthetic_folder(folder: Path, count: int, side: int = 256, seed: int = 0) -> Path:
    """Write ``count`` synthetic JPEG photos of ``side`` px into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = library_paths()
    for i in range(count):
        out = folder / f"synthetic-{i:06d}.jpg"
        if out.exists():
            continue
        image = open_rgb(sources[int(rng.integers(len(sources)))])
        jittered_crop(image, rng, side).save(out, quality=85)
    return folder
