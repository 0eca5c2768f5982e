"""Writing the poster file from its rows with libvips, streamed, stoppable, atomic.

libvips reads the rows of :mod:`mosaic.strips` from disk and encodes the output as it
goes, so memory stays at a few rows whatever the poster's size. The encoder runs in a
worker thread while the main thread waits in Python: a stop signal (Ctrl-C, SIGTERM)
is handled at once, kills the encoder, and the half-written temporary is removed.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyvips

from mosaic import __version__
from mosaic.errors import MosaicError
from mosaic.files import OutputError, atomic_path, describe_os_error
from mosaic.outputs import MARK, image_exif
from mosaic.strips import StripFolder

JPEG_QUALITY = 92
WEBP_QUALITY = 92
DEFAULT_DPI = 72.0
"""Resolution stored when none is asked for (what viewers assume anyway)."""

pyvips.cache_set_max(0)  # no operation cache: it would keep every row file open

_SAVERS: dict[str, tuple[str, dict[str, Any]]] = {
    # 4:4:4 chroma: tiles are small, and 4:2:0 smears the colour of their edges. No
    # optimised Huffman tables: libjpeg would hold the whole poster's coefficients for
    # them (4.7 GB at 400 MP, against 0.2 GB streamed, for a file 5-8% smaller).
    "JPEG": ("jpegsave", {"Q": JPEG_QUALITY, "subsample_mode": "off"}),
    "PNG": ("pngsave", {"compression": 6}),
    # Tiled, so readers open any part without reading it all; LZW, which every print
    # workflow reads (deflate at its default level takes 23 s at 400 MP against 14 s).
    "TIFF": ("tiffsave", {"tile": True, "tile_width": 256, "tile_height": 256,
                          "compression": "lzw", "predictor": "horizontal",
                          "resunit": "inch"}),
    "WEBP": ("webpsave", {"Q": WEBP_QUALITY}),
}
_BIG_TIFF = 2**32 - 2**26
"""Uncompressed bytes from which a TIFF is written as BigTIFF (classic TIFF stops at 4 GB)."""


def poster_image(strips: StripFolder, rows: int, bleed_px: int = 0,
                 dpi: float | None = None) -> pyvips.Image:
    """The poster as a lazy libvips image: the rows joined, the bleed added, the mark set.

    Parameters
    ----------
    strips : StripFolder
        Every row written.
    rows : int
        Rows of tiles.
    bleed_px : int
        Margin added on every side for the print shop's trim: the edge tiles mirrored
        outwards, so a trim a little off still shows photos, not a white line.
    dpi : float, optional
        Resolution stored in the file (default :data:`DEFAULT_DPI`).

    Returns
    -------
    pyvips.Image
    """
    parts = [pyvips.Image.rawload(str(strips.row_path(row)), strips.width, strips.row_height, 3)
             for row in range(rows)]
    image = parts[0] if rows == 1 else pyvips.Image.arrayjoin(parts, across=1)
    if bleed_px:
        image = image.embed(bleed_px, bleed_px, image.width + 2 * bleed_px,
                            image.height + 2 * bleed_px, extend="mirror")
    per_mm = (dpi or DEFAULT_DPI) / 25.4
    image = image.copy(interpretation="srgb", xres=per_mm, yres=per_mm)
    image.set_type(pyvips.GValue.blob_type, "exif-data", image_exif().tobytes())
    # libvips writes no EXIF into TIFF; its ImageDescription tag carries the mark there.
    image.set_type(pyvips.GValue.gstr_type, "image-description", f"{MARK} {__version__}")
    return image


def save_poster(image: pyvips.Image, out: Path, fmt: str,
                advance: Callable[[int], None] | None = None) -> None:
    """Encode ``image`` into ``out`` atomically, in the format ``fmt`` (a Pillow name).

    Parameters
    ----------
    image : pyvips.Image
        From :func:`poster_image`.
    out : pathlib.Path
        The poster file; replaced only once the new one is complete.
    fmt : str
        "JPEG", "PNG", "TIFF" or "WEBP".
    advance : callable, optional
        Called with each percent written.

    Raises
    ------
    MosaicError
        The file cannot be written (disk full, folder read-only...).
    """
    method, options = _SAVERS[fmt]
    options = {**options, "profile": "srgb"}
    if fmt == "TIFF" and 3 * image.width * image.height >= _BIG_TIFF:
        options["bigtiff"] = True
    with atomic_path(out) as tmp:
        try:
            run_stoppable(image, lambda: getattr(image, method)(str(tmp), **options),
                          advance)
        except pyvips.Error as exc:
            raise _write_error(exc, out) from None


def run_stoppable(image: pyvips.Image, write: Callable[[], object],
                  advance: Callable[[int], None] | None = None) -> None:
    """Run libvips' ``write`` of ``image`` in a thread; a stop in the main thread kills it.

    Parameters
    ----------
    image : pyvips.Image
        What ``write`` computes (it is killed on a stop).
    write : callable
        The libvips call that writes it.
    advance : callable, optional
        Called with each percent written.

    Raises
    ------
    pyvips.Error
        libvips failed.
    """
    failure: list[pyvips.Error] = []
    percent = [0]
    image.set_progress(True)
    image.signal_connect("eval", lambda _image, progress: percent.__setitem__(
        0, int(progress.percent)))

    def work() -> None:
        try:
            write()
        except pyvips.Error as exc:
            failure.append(exc)

    worker = threading.Thread(target=work, name="poster-writer", daemon=True)
    worker.start()
    reported = 0
    try:
        while worker.is_alive():
            worker.join(0.1)
            if advance is not None and percent[0] > reported:
                advance(percent[0] - reported)
                reported = percent[0]
    except BaseException:
        image.set_kill(True)  # a stop signal: end the encoder before its file is removed
        worker.join()
        raise
    if advance is not None and reported < 100 and not failure:
        advance(100 - reported)
    if failure:
        raise failure[0]


def _write_error(exc: pyvips.Error, out: Path) -> MosaicError:
    """The one line, naming the file, for a libvips error of several lines."""
    detail = " ".join(str(exc.detail or exc.message).split())
    for code, text in ((errno.ENOSPC, "No space left"), (errno.EDQUOT, "Disk quota"),
                       (errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only")):
        if text in detail:
            return OutputError(describe_os_error(OSError(code, os.strerror(code)), out))
    return MosaicError(f"cannot write {out}: {detail}")
