"""Opening images safely and cutting square crops out of them.

Every image that enters the pipeline goes through :func:`open_rgb`: the EXIF orientation
is applied, any mode (RGBA, LA, P, CMYK, 16-bit, greyscale) becomes 8-bit RGB, and an
image with more pixels than the cap is refused before it is decoded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mosaic.errors import ImageTooLargeError, UnreadableImageError

DEFAULT_MAX_PIXELS = 100_000_000
"""Decompression-bomb cap: images with more pixels than this are refused."""

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".jfif"}
)

Box = tuple[float, float, float, float]
"""A crop box as fractions of the image: (left, top, right, bottom) in [0, 1]."""


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ImageTooLargeError(
                f"{path}: refused, too many pixels for the decompression-bomb guard ({exc})"
            ) from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageTooLargeError(
            f"{path}: {width}x{height} is {width * height / 1e6:.0f} MP, over the "
            f"{max_pixels / 1e6:.0f} MP decompression-bomb cap"
        )
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}:
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_rgb(
    path: str | os.PathLike[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
) -> Image.Image:
    """Open an image as upright 8-bit RGB.

    Parameters
    ----------
    path : path-like
        Image file.
    max_pixels : int
        Refuse images with more pixels than this (decompression-bomb guard).
    draft_size : int, optional
        When given, JPEG decoding may shrink the image by a power of two as long as both
        sides stay at least this many pixels: much faster for small thumbnails.

    Returns
    -------
    PIL.Image.Image
        A fully loaded RGB image with its EXIF orientation applied.

    Raises
    ------
    ImageTooLargeError
        More pixels than ``max_pixels``.
    UnreadableImageError
        Not an image, a format PIL cannot decode, or a truncated file.
    """
    file = Path(path)
    try:
        image = _open_checked(file, max_pixels)
        with image:
            if draft_size is not None and image.format == "JPEG":
                _draft_keeping(image, draft_size)
            image.load()
            upright = ImageOps.exif_transpose(image)
            return _to_rgb(upright).copy()
    except ImageTooLargeError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnreadableImageError(f"{file}: cannot read image ({reason})") from None


def _draft_keeping(image: Image.Image, min_side: int) -> None:
    """Ask the JPEG decoder for a reduced scale that keeps the short side >= min_side."""
    width, height = image.size
    scale = min(width, height) / max(min_side, 1)
    if scale < 2:
        return
    requested = (max(1, int(width / scale)), max(1, int(height / scale)))
    image.draft("RGB", requested)


def square_crop_boxes(width: int, height: int, count: int) -> list[Box]:
    """Return up to ``count`` square crop candidates for an image, centre first.

    The candidates are: the centred square; the two ends of the long side; then zoomed
    squares (three quarters of the short side) at the four corners. Candidates that
    coincide (a square image has no distinct "ends") are dropped, so fewer than
    ``count`` boxes may come back.

    Parameters
    ----------
    width, height : int
        Image size in pixels.
    count : int
        How many candidates are wanted (at least 1).

    Returns
    -------
    list of Box
        Fractions (left, top, right, bottom) of the image.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    side = min(width, height)
    fw, fh = side / width, side / height
    boxes: list[Box] = [((1 - fw) / 2, (1 - fh) / 2, (1 + fw) / 2, (1 + fh) / 2)]
    boxes += [(0.0, 0.0, fw, fh), (1 - fw, 1 - fh, 1.0, 1.0)]
    zw, zh = 0.75 * fw, 0.75 * fh
    boxes += [
        (0.0, 0.0, zw, zh),
        (1 - zw, 0.0, 1.0, zh),
        (0.0, 1 - zh, zw, 1.0),
        (1 - zw, 1 - zh, 1.0, 1.0),
    ]
    unique: list[Box] = []
    for box in boxes:
        rounded: Box = (round(box[0], 6), round(box[1], 6), round(box[2], 6), round(box[3], 6))
        if all(_distance(rounded, kept) > 1e-3 for kept in unique):
            unique.append(rounded)
        if len(unique) == count:
            break
    return unique


def _distance(first: Box, second: Box) -> float:
    return max(abs(a - b) for a, b in zip(first, second, strict=True))


def pixel_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """Turn a fractional box into integer pixel coordinates, kept square."""
    left, top = round(box[0] * width), round(box[1] * height)
    side = min(round((box[2] - box[0]) * width), round((box[3] - box[1]) * height))
    side = max(1, min(side, width - left, height - top))
    return left, top, left + side, top + side


def crop_resize(image: Image.Image, box: Box, size: int, resample: int) -> Image.Image:
    """Crop a fractional square ``box`` out of ``image`` and resize it to ``size``."""
    width, height = image.size
    return image.resize((size, size), resample=resample, box=pixel_box(box, width, height))


def thumbnails(image: Image.Image, boxes: Sequence[Box], size: int) -> np.ndarray:
    """Area-averaged ``size`` x ``size`` RGB thumbnails of each box, stacked (K, s, s, 3)."""
    return np.stack(
        [np.asarray(crop_resize(image, box, size, Image.Resampling.BOX)) for box in boxes]
    )
