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


def halves(names: list[str]) -> dict[str, list[str]]:
    """The fixed split: sorted names, odd places (1st, 3rd...) half A, even places B."""
    ordered = sorted(names)
    return {"A": ordered[0::2], "B": ordered[1::2]}


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


ASPECTS = ((4, 3), (3, 4), (1, 1), (16, 9))
"""Shapes of the synthetic folder's photos (width:height), as phones and Instagram save them."""


def synthetic_photo(source: Image.Image, rng: np.random.Generator, long_side: int
                    ) -> Image.Image:
    """One random crop of ``source`` in one of :data:`ASPECTS`, mirrored and colour-jittered."""
    aspect_w, aspect_h = ASPECTS[int(rng.integers(len(ASPECTS)))]
    width, height = source.size
    scale = min(width / aspect_w, height / aspect_h) * rng.uniform(0.5, 1.0)
    crop_w, crop_h = int(aspect_w * scale), int(aspect_h * scale)
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    size = ((long_side, long_side * aspect_h // aspect_w) if aspect_w >= aspect_h
            else (long_side * aspect_w // aspect_h, long_side))
    photo = source.resize(size, Image.Resampling.BOX,
                          box=(left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    photo = ImageEnhance.Brightness(photo).enhance(rng.uniform(0.8, 1.2))
    photo = ImageEnhance.Contrast(photo).enhance(rng.uniform(0.8, 1.2))
    return ImageEnhance.Color(photo).enhance(rng.uniform(0.7, 1.3))


def write_synthetic_folder(folder: Path, count: int, long_side: int = 320, seed: int = 0
                           ) -> Path:
    """Write ``count`` synthetic JPEG photos (long side ``long_side`` px) into ``folder``.

    Photos already there are kept, so a larger count extends a smaller folder; photo ``i``
    is the same whatever the count (its own random stream).
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = library_paths()
    # Sources decoded once at a reduced size; a photo is a crop of one of them.
    sources = [open_rgb(p, draft_size=2 * long_side) for p in paths]
    for i in range(count):
        out = folder / f"synthetic-{i:06d}.jpg"
        if out.exists():
            continue
        rng = np.random.default_rng([seed, i])
        photo = synthetic_photo(sources[int(rng.integers(len(sources)))], rng, long_side)
        partial = out.with_name(out.name + ".partial")
        photo.save(partial, format="JPEG", quality=85)
        partial.replace(out)
    return folder


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.synthetic FOLDER COUNT``: write a synthetic photo folder."""
    import argparse

    parser = argparse.ArgumentParser(description=write_synthetic_folder.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--long-side", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_synthetic_folder(args.folder, args.count, args.long_side, args.seed)


if __name__ == "__main__":
    main()
