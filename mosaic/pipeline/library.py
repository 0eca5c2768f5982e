"""Stage 1: the photos. List the folder, hash every file, decode the distinct photos."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from mosaic.files import FileRef
from mosaic.library import build_library, hash_photos, save_library, skipped_warnings
from mosaic.pipeline import stage_folder
from mosaic.pipeline.results import HashedFile, LibraryResult
from mosaic.sources.folder import list_photo_files
from mosaic.tile_shape import shape_key

logger = logging.getLogger("mosaic.library")


def scan_photos(photos_dir: str) -> list[HashedFile]:
    """The image files of a folder with their SHA-256 (None: unreadable), in order."""
    return hash_photos(list_photo_files(photos_dir))


def load_library(photos: list[HashedFile], workdir: str, feature_size: int, crops: int,
                 max_pixels: int, tile_aspect: tuple[int, int] = (1, 1)) -> LibraryResult:
    """Decode the distinct photos into thumbnails (resumable) and save the library.

    Parameters
    ----------
    photos : list of (str, str or None)
        From :func:`scan_photos`.
    workdir : str
        The run folder (the thumbnail cache and the library go there).
    feature_size, crops, max_pixels
        Thumbnail side, crop candidates per photo, decompression-bomb cap.
    tile_aspect : (int, int)
        Shape W:H of the tiles, which the crop candidates take.

    Returns
    -------
    LibraryResult
    """
    started = time.perf_counter()
    library = build_library(photos, feature_size, crops, cache_dir=f"{workdir}/cache",
                            max_pixels=max_pixels, tile_aspect=tuple(tile_aspect))
    folder = stage_folder(workdir, "library", photos, feature_size, crops, max_pixels,
                          *shape_key(tile_aspect))
    manifest, thumbs = save_library(library, folder)
    return LibraryResult(FileRef.of(manifest), FileRef.of(thumbs), len(library), len(photos),
                         len(library.skipped), len(library.duplicates),
                         len(library.near_duplicates), time.perf_counter() - started)


def skipped_files(result: LibraryResult) -> list[dict[str, str]]:
    """The files the library left out: path, reason, ``same_as`` for identical copies."""
    manifest = json.loads(Path(result.manifest.path).read_text(encoding="utf-8"))
    return list(manifest["skipped"])


def name_skipped(result: LibraryResult) -> None:
    """Warn again about the files a cached library left out, as building it did."""
    for line in skipped_warnings(skipped_files(result)):
        logger.warning("%s", line)
