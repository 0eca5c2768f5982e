"""Photos from a folder on disk.

Only regular files are listed: a named pipe, socket or device named like a photo would
block the build when it is read, so it is skipped with a warning. Symbolic links are
followed, to files and to folders; a folder reached a second time (a link to a parent,
or two links to one folder) is skipped with a warning, so a link loop cannot recurse.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from mosaic.errors import MosaicError
from mosaic.files import describe_file_type
from mosaic.images import IMAGE_SUFFIXES

logger = logging.getLogger("mosaic.sources.folder")


class _Walk:
    """One listing: the photos found, the folders entered and the linked folders to visit."""

    def __init__(self, warn: bool = True) -> None:
        self.found: list[Path] = []
        self.entered: dict[tuple[int, int], Path] = {}
        self.linked: deque[tuple[Path, os.stat_result]] = deque()
        self.warning = logger.warning if warn else _quiet

    def enter(self, folder: Path, info: os.stat_result) -> None:
        """List ``folder`` (already known to be a folder) and its real sub-folders."""
        key = (info.st_dev, info.st_ino)
        if key in self.entered:
            self.warning("skipped folder %s: same folder as %s, listed already", folder,
                           self.entered[key])
            return
        self.entered[key] = folder
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            self.warning("skipped folder %s: cannot read it (%s)", folder,
                           exc.strerror or exc)
            return
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            found = self._classify(folder / entry.name, entry)
            if found is not None:
                subfolders.append(found)
        # Real sub-folders come right after their parent's files, as os.walk lists them;
        # linked ones wait until the real tree is listed, so a folder is listed under its
        # own path and a link to it is the one skipped.
        for path, info, is_link in subfolders:
            if is_link:
                self.linked.append((path, info))
            else:
                self.enter(path, info)

    def _classify(self, path: Path, entry: os.DirEntry[str]
                  ) -> tuple[Path, os.stat_result, bool] | None:
        """Record a photo; return a sub-folder as (path, stat, is a link) to enter."""
        is_link = entry.is_symlink()
        try:
            if not is_link and entry.is_file(follow_symlinks=False):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    self.found.append(path)
                return None
            info = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            if is_link:
                self.warning("skipped %s: broken symbolic link (to %s, which does not "
                               "exist)", path, _link_target(path))
            return None  # otherwise removed while the folder was read: nothing to list
        except OSError as exc:
            self.warning("skipped %s: cannot read it (%s)", path, exc.strerror or exc)
            return None
        if stat.S_ISDIR(info.st_mode):
            return path, info, is_link
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            return None  # never opened, like any other file that is not an image
        if stat.S_ISREG(info.st_mode):
            self.found.append(path)
        else:
            self.warning("skipped %s: %s, not a regular file", path,
                           describe_file_type(info.st_mode))
        return None


def _quiet(*_args: object) -> None:
    """A warning not worth repeating (the folder is listed again later, with warnings)."""


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


@dataclass(frozen=True)
class PhotoFolder:
    """What a photo folder holds.

    Attributes
    ----------
    files : list of Path
        The image files, in listing order (see :func:`list_photo_files`).
    folders : list of Path
        Every folder listed, the photo folder first: linked ones are where the links
        lead, so an output inside any of them would be taken for a photo.
    """

    files: list[Path]
    folders: list[Path]


def scan_photo_folder(folder: str | os.PathLike[str], warn: bool = True) -> PhotoFolder:
    """List a photo folder: its image files and the folders they were found in.

    Parameters
    ----------
    folder : path-like
        The photo folder.
    warn : bool
        Log a warning for each file skipped (off for a listing made only to check, when
        the build lists the folder again).

    Returns
    -------
    PhotoFolder

    Raises
    ------
    MosaicError
        As :func:`list_photo_files`.
    """
    root = Path(folder)
    if not root.exists():
        raise MosaicError(f"photo folder {root} does not exist")
    if not root.is_dir():
        raise MosaicError(f"{root} is not a folder; `photos` takes a folder of images")
    try:
        root_info = root.stat()
        os.scandir(root).close()
    except OSError as exc:
        raise MosaicError(f"cannot read photo folder {root} ({exc.strerror or exc})") from None
    walk = _Walk(warn)
    walk.enter(root, root_info)
    while walk.linked:
        walk.enter(*walk.linked.popleft())
    if not walk.found:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise MosaicError(f"photo folder {root} holds no image files ({suffixes})")
    return PhotoFolder(walk.found, [path.resolve() for path in walk.entered.values()])


def list_photo_files(folder: str | os.PathLike[str]) -> list[Path]:
    """All image files under ``folder`` (recursively), sorted, hidden files skipped.

    Files are chosen by suffix (.jpg, .png, .heic, .avif, ...); whether each one decodes
    is found out when it is loaded. Only regular files are listed: named pipes, sockets
    and devices, broken symbolic links and unreadable sub-folders are skipped with one
    warning line each (logger ``mosaic.sources.folder``). Symbolic links to files and to
    folders are followed; a folder reached again through a link is skipped with a
    warning.

    The order is stable: the files of a folder by name, then its sub-folders by name,
    recursively; folders reached only through symbolic links come after the rest, in
    the order their links were met.

    Parameters
    ----------
    folder : path-like
        The photo folder.

    Returns
    -------
    list of Path
        The image files, each path under ``folder`` (through links, as they were met).

    Raises
    ------
    MosaicError
        The folder does not exist, is not a folder, cannot be read, or holds no image
        files.
    """
    return scan_photo_folder(folder).files
