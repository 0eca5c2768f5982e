"""Opening images safely and cutting square crops out of them.

Every image that enters the pipeline goes through :func:`open_rgb`: the EXIF orientation
is applied, any mode (RGBA, LA, P, CMYK, 16-bit, greyscale) becomes 8-bit RGB, and an
image with more pixels than the cap is refused before it is decoded. Only regular files
are opened (:func:`open_regular_file`): a named pipe or a device would block a read
forever.

Phone photos decode too: AVIF through Pillow, HEIC/HEIF through pillow-heif, whose opener
is registered here. pillow-heif turns the picture upright itself (the HEIF ``irot``/``imir``
transforms) and resets the EXIF orientation to 1, so ``exif_transpose`` leaves it alone;
Pillow's AVIF reader instead reports the transform as an EXIF orientation, applied once by
``exif_transpose`` like a JPEG's.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError, features

from mosaic.errors import ImageTooLargeError, UnreadableImageError
from mosaic.files import open_regular_file

try:
    import pillow_heif
except ImportError:  # HEIC files are still listed, then skipped as unreadable with the reason
    HEIF_SUPPORTED = False
else:
    pillow_heif.register_heif_opener()
    # The library already decodes one photo per core; more threads per photo only contend.
    pillow_heif.options.DECODE_THREADS = 1
    HEIF_SUPPORTED = True

DEFAULT_MAX_PIXELS = 100_000_000
"""Decompression-bomb cap: images with more pixels than this are refused."""

HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
"""Suffixes of HEIC/HEIF photos (iPhones, many Android and camera phones)."""

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".jfif", ".avif"}
) | HEIF_SUFFIXES

Box = tuple[float, float, float, float]
"""A crop box as fractions of the image: (left, top, right, bottom) in [0, 1]."""

_ORIENTATION = 0x0112
_SWAPPED_ORIENTATIONS = frozenset({5, 6, 7, 8})
_PNG_METADATA_CHUNKS = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt"})
# Major brands of the ISO-BMFF ``ftyp`` box that pillow-heif and Pillow's AVIF reader accept.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm",
                          b"hevs", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
# Formats whose decoder can hand back a smaller picture: JPEG by DCT scaling, HEIF by
# decoding an embedded thumbnail (pillow-heif picks one of the same aspect and rotation).
_DRAFT_FORMATS = frozenset({"JPEG", "HEIF"})


def _open_checked(handle: BinaryIO, path: Path, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(handle)
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
        When given, JPEG decoding may shrink the image by a power of two, and HEIC
        decoding may use an embedded thumbnail, as long as both sides stay at least this
        many pixels: much faster for small thumbnails.

    Returns
    -------
    PIL.Image.Image
        A fully loaded RGB image with its EXIF orientation applied.

    Raises
    ------
    ImageTooLargeError
        More pixels than ``max_pixels``.
    UnreadableImageError
        Not an image, a format PIL cannot decode, a truncated file, or not a regular
        file (a named pipe, socket or device is refused without blocking).
    """
    file = Path(path)
    try:
        with open_regular_file(file) as handle, _open_checked(handle, file, max_pixels) as image:
            if draft_size is not None and image.format in _DRAFT_FORMATS:
                _draft_keeping(image, draft_size)
            image.load()
            upright = ImageOps.exif_transpose(image)
            return _to_rgb(upright).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UnreadableImageError(f"{file}: cannot read image ({_reason(exc, file)})") from None


def upright_size(
    path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[int, int]:
    """Size of an image as :func:`open_rgb` would return it, read from the header only.

    Nothing is decoded: the size comes from the header and the EXIF orientation
    (orientations 5 to 8 turn the image a quarter, swapping width and height).

    Parameters
    ----------
    path : path-like
        Image file.
    max_pixels : int
        Refuse images with more pixels than this (decompression-bomb guard).

    Returns
    -------
    tuple of int
        ``(width, height)`` in pixels, upright.

    Raises
    ------
    ImageTooLargeError
        More pixels than ``max_pixels``.
    UnreadableImageError
        Not an image, a format PIL cannot read, or not a regular file.
    """
    file = Path(path)
    try:
        with open_regular_file(file) as handle, _open_checked(handle, file, max_pixels) as image:
            width, height = image.size
            if _orientation(image, handle) in _SWAPPED_ORIENTATIONS:
                return height, width
            return width, height
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UnreadableImageError(f"{file}: cannot read image ({_reason(exc, file)})") from None


def sniff_heif(head: bytes) -> str | None:
    """The kind of a HEIF-family image from its ``ftyp`` box: ``"heic"``, ``"avif"`` or None.

    AVIF is HEIF holding AV1 pictures: a file whose brands (major or compatible) include
    ``avif`` or ``avis`` is AVIF, any other HEIF brand is HEIC. Videos (``mp42``, ``qt``)
    and other files are None.

    Parameters
    ----------
    head : bytes
        The file's first bytes; a few hundred hold the whole ``ftyp`` box.

    Returns
    -------
    str or None
        ``"heic"``, ``"avif"`` or None.
    """
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    major = head[8:12]
    if major not in _HEIF_BRANDS | _AVIF_BRANDS:
        return None
    end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {major} | {head[at:at + 4] for at in range(16, end - 3, 4)}
    return "avif" if brands & _AVIF_BRANDS else "heic"


def _reason(exc: BaseException, file: Path) -> str:
    if isinstance(exc, UnidentifiedImageError):  # its text names the reader, not the file
        return _missing_decoder(file) or "not an image format Pillow reads"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _missing_decoder(file: Path) -> str | None:
    """Why a phone photo cannot be read here, when the decoder for its suffix is absent."""
    suffix = file.suffix.lower()
    if suffix in HEIF_SUFFIXES and not HEIF_SUPPORTED:
        return "HEIC/HEIF photos need the pillow-heif package, which is not installed"
    if suffix == ".avif" and not features.check("avif"):
        return "AVIF photos need a Pillow built with AVIF support, which this one is not"
    return None


def _orientation(image: Image.Image, handle: BinaryIO) -> int:
    """The EXIF orientation ``exif_transpose`` will apply, without decoding the pixels."""
    if image.format != "PNG" or "exif" in image.info:
        exif = image.getexif()
    else:
        # PNG's getexif decodes the whole image to reach metadata after the pixel data;
        # read those chunks directly instead and use the generic lookup.
        for key, value in _png_trailing_metadata(handle).items():
            image.info.setdefault(key, value)
        exif = Image.Image.getexif(image)
    value = exif.get(_ORIENTATION, 1)
    return value if isinstance(value, int) else 1


def _png_trailing_metadata(handle: BinaryIO) -> dict[str | tuple[int, int], object]:
    """EXIF and text chunks stored after a PNG's pixel data, read as Pillow's load does.

    Like Pillow, reading stops at the end of the first frame; a damaged chunk ends the
    search (decoding, not this header read, is where damage is reported).
    """
    stream = PngImagePlugin.PngStream(handle)
    seen_pixels = False
    try:
        handle.seek(8)
        while True:
            cid, pos, length = stream.read()
            if cid == b"IDAT":
                seen_pixels = True
            elif seen_pixels and cid in {b"IEND", b"fcTL"}:
                break
            elif seen_pixels and cid in _PNG_METADATA_CHUNKS:
                stream.call(cid, pos, length)
            handle.seek(pos + length + 4)  # past the data and its CRC
    except (OSError, ValueError, SyntaxError, EOFError, struct.error):
        pass  # a damaged chunk ends the search: keep the metadata read before it
    return stream.im_info


def _draft_keeping(image: Image.Image, min_side: int) -> None:
    """Ask the decoder for a reduced picture whose short side stays >= min_side."""
    width, height = image.size
    scale = min(width, height) / max(min_side, 1)
    if scale < 2:
        return
    requested = (max(1, int(width / scale)), max(1, int(height / scale)))
    image.draft("RGB", requested)


MAX_CROP_BOXES = 30
"""Crop candidates :func:`crop_boxes` can give."""
_CLOSE = 0.6  # the close centre's side, in short sides: a tighter view of the subject
_CENTRE = ((0.5, 0.5),)
_CORNERS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
_SIDES = ((0.0, 0.5), (1.0, 0.5), (0.5, 0.0), (0.5, 1.0))  # subjects mid-side: corners miss
_CANDIDATES = (
    (1.0, (*_CENTRE, (0.0, 0.0), (1.0, 1.0))),  # the largest box, then the long side's ends
    (0.75, _CORNERS + _CENTRE + _SIDES),
    (_CLOSE, _CENTRE),
    # Shifted views around the 3/4 ones: a tile's best match is often a little off them.
    (0.85, _CENTRE + _CORNERS + _SIDES),
    (_CLOSE, _CORNERS + _SIDES),
)
"""(size in largest boxes, spots) of every crop candidate, in :func:`crop_boxes`' order."""


def square_crop_boxes(width: int, height: int, count: int) -> list[Box]:
    """Return up to ``count`` square crop candidates for an image, centre first.

    The square case of :func:`crop_boxes` (square tiles, the default).
    """
    return crop_boxes(width, height, count)


def crop_boxes(width: int, height: int, count: int, aspect: float = 1.0) -> list[Box]:
    """Return up to ``count`` crop candidates of ``aspect`` (width / height), centre first.

    The candidates are: the centred box (the largest of ``aspect`` inside the image); the
    two ends of the long side; then zoomed boxes (three quarters of that size) at the four
    corners, at the centre and at the middle of the four sides; a close centre (0.6 of
    it); then slightly zoomed boxes (0.85) at the centre, the four corners and the four
    side middles, and close boxes (0.6) at the four corners and the four side middles.
    No box is closer than the close centre: a tile still shows most of its photo. Each
    candidate keeps its place when more are asked for, so the first ``k`` of any longer
    list are the ``k``-candidate list. Candidates that coincide (an image of the same
    aspect has no distinct "ends") are dropped, so fewer than ``count`` boxes may come
    back (11 of 13 and 28 of 30 for a square image and square tiles). Libraries cached by
    earlier versions keep the boxes they were cut with.

    Parameters
    ----------
    width, height : int
        Image size in pixels.
    count : int
        How many candidates are wanted (at least 1).
    aspect : float
        Width / height of the tiles the boxes fill (1: squares).

    Returns
    -------
    list of Box
        Fractions (left, top, right, bottom) of the image.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    if not aspect > 0:
        raise ValueError("aspect must be positive")
    if width / height > aspect:
        fw, fh = height * aspect / width, 1.0
    else:
        fw, fh = 1.0, width / aspect / height
    # Which sizes (of the largest box) sit where, in the order the candidates are tried.
    boxes = [box for scale, spots in _CANDIDATES
             for box in _boxes_at(scale * fw, scale * fh, spots)]
    unique: list[Box] = []
    for box in boxes:
        rounded: Box = (round(box[0], 6), round(box[1], 6), round(box[2], 6), round(box[3], 6))
        if all(_distance(rounded, kept) > 1e-3 for kept in unique):
            unique.append(rounded)
        if len(unique) == count:
            break
    return unique


def _boxes_at(width: float, height: float, spots: Sequence[tuple[float, float]]
              ) -> list[Box]:
    """Boxes of one size, each placed at a spot: (0, 0) top left, (0.5, 0.5) centred."""
    boxes: list[Box] = []
    for x, y in spots:
        (left, right), (top, bottom) = _span(x, width), _span(y, height)
        boxes.append((left, top, right, bottom))
    return boxes


def _span(at: float, size: float) -> tuple[float, float]:
    """Start and end of a span of ``size`` in [0, 1], at the start, centred or at the end."""
    if at == 0.0:
        return 0.0, size
    if at == 1.0:
        return 1.0 - size, 1.0
    return (1 - size) / 2, (1 + size) / 2


def _distance(first: Box, second: Box) -> float:
    return max(abs(a - b) for a, b in zip(first, second, strict=True))


def pixel_box(box: Box, width: int, height: int, aspect: float = 1.0
              ) -> tuple[int, int, int, int]:
    """Turn a fractional box into integer pixel coordinates, kept at ``aspect`` (w / h)."""
    left, top = round(box[0] * width), round(box[1] * height)
    box_w = min(round((box[2] - box[0]) * width), round((box[3] - box[1]) * height * aspect))
    box_w = max(1, min(box_w, width - left, round((height - top) * aspect)))
    box_h = max(1, min(round(box_w / aspect), height - top))
    return left, top, left + box_w, top + box_h


def crop_resize(image: Image.Image, box: Box, size: int | tuple[int, int], resample: int,
                aspect: float | None = None) -> Image.Image:
    """Crop a fractional ``box`` out of ``image`` and resize it to ``size``.

    ``size`` is a side (a square) or (width, height). The box's pixels are kept at
    ``aspect`` (default: the aspect of ``size``); a thumbnail passes the tile aspect, so a
    4:5 crop is squeezed into an ``s x s`` thumbnail as the target's 4:5 cells are.
    """
    width, height = image.size
    out = (size, size) if isinstance(size, int) else size
    keep = out[0] / out[1] if aspect is None else aspect
    return image.resize(out, resample=resample, box=pixel_box(box, width, height, keep))


def thumbnails(image: Image.Image, boxes: Sequence[Box], size: int, aspect: float = 1.0
               ) -> np.ndarray:
    """Area-averaged ``size`` x ``size`` RGB thumbnails of each box, stacked (K, s, s, 3).

    ``aspect`` is the width / height the boxes were cut at (:func:`crop_boxes`).
    """
    return np.stack([np.asarray(crop_resize(image, box, size, Image.Resampling.BOX, aspect))
                     for box in boxes])
