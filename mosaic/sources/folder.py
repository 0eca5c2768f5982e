"""Photos from a folder on disk."""

from __future__ import annotations

import os
from pathlib import Path

from mosaic.errors import MosaicError
from mosaic.images import IMAGE_SUFFIXES


def list_photo_files(folder: str | os.PathLike[str]) -> list[Path]:
    """All image files under ``folder`` (recursively), sorted, hidden files skipped.

    Files are chosen by suffix (.jpg, .png, .webp, ...); whether each one really decodes
    is found out when it is loaded.

    Raises
    ------
    MosaicError
        The folder does not exist, is not a folder, or holds no image files.
    """
    root = Path(folder)
    if not root.exists():
        raise MosaicError(f"photo folder {root} does not exist")
    if not root.is_dir():
        raise MosaicError(f"{root} is not a folder; --photos takes a folder of images")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES:
                found.append(path)
    if not found:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise MosaicError(f"photo folder {root} holds no image files ({suffixes})")
    return found
