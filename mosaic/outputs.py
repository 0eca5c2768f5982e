"""What a build may write, and what it may replace: never a file of the user's.

* **Marks.** Every file a build writes under a name the user sees (the mosaic, the
  metrics, the report and its pictures) carries this tool's mark: the EXIF ``Software``
  tag of an image, a ``generator`` key in JSON, a first comment line in text. A file may
  be replaced only when it carries the mark; anything else at that name is the user's,
  and the build stops before it starts.
* **Apart from the inputs.** The output is never the target, one of the photos, or
  inside the photo folder (the next build would take it for a photo).
* **Run folders.** A run folder holds a marker file; an existing folder without one is
  used only if it holds nothing but what a run folder holds. One build at a time uses a
  run folder (an ``flock`` that dies with its process, so a killed build leaves no lock).
* **Formats.** Only formats that can be written and read back (JPEG, PNG, TIFF, WebP),
  within their size limits.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from mosaic import __version__
from mosaic.errors import MosaicError
from mosaic.files import OutputError, describe_os_error, forget_temporary, new_temporary
from mosaic.sources.folder import PhotoFolder

MARK = "photo-mosaic"
"""Start of the mark every output carries."""
TEXT_MARK = f"<!-- written by {MARK} -->"
"""First line of every text output (markdown, HTML)."""
_SOFTWARE = 0x0131
"""The EXIF (TIFF) ``Software`` tag."""
_DESCRIPTION = 0x010E
"""The TIFF ``ImageDescription`` tag."""

OUTPUT_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF",
                  ".tiff": "TIFF", ".webp": "WEBP"}
"""Suffixes a mosaic can be written as, and Pillow's format for each."""
MAX_SIDE = {"JPEG": 65_500, "WEBP": 16_383, "PNG": 2**31 - 1, "TIFF": 2**31 - 1,
            "DZI": 2**31 - 1}
"""Longest side each format can hold, in pixels (libjpeg's and libwebp's limits)."""

RUN_MARKER = ".photo-mosaic-run"
RUN_LOCK = ".photo-mosaic-lock"
_RUN_ENTRIES = frozenset({
    RUN_MARKER, RUN_LOCK, ".prefect-results", "prefect-results", "cache", "library", "people",
    "target", "weights", "score", "assign", "metrics.json", "report.md", "comparison.jpg",
    "tile-costs.png", "weights.png", "mosaic.jpg", "photos"})
"""What a run folder of an earlier version holds: such a folder is adopted. ``photos`` is
where ``mosaic build --instagram`` keeps an account's photos, inside the scrape's folder."""
_RUN_PREFIXES = (".mosaic-tmp.", "chromium-profile-")
"""Temporaries, and the browser profiles of earlier versions (deleted by the scraper)."""


def image_exif() -> Image.Exif:
    """EXIF data that marks an image as written by this tool."""
    exif = Image.Exif()
    exif[_SOFTWARE] = f"{MARK} {__version__}"
    return exif


def json_mark() -> dict[str, str]:
    """The key every JSON output starts with."""
    return {"generator": f"{MARK} {__version__}"}


def carries_mark(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` was written by this tool (it carries the mark).

    Parameters
    ----------
    path : path-like
        An existing regular file.

    Returns
    -------
    bool
        False for anything unreadable or unmarked.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    try:
        if suffix == ".json":
            with open(file, "rb") as handle:
                head = handle.read(4096).decode("utf-8", "replace")
            return f'"generator": "{MARK}' in head or f'"generator":"{MARK}' in head
        if suffix in {".md", ".html", ".htm", ".txt", ".csv"}:
            with open(file, "rb") as handle:
                return handle.read(len(TEXT_MARK) + 3).decode("utf-8", "replace").lstrip(
                    "\ufeff").startswith(TEXT_MARK)
        with Image.open(file) as image:
            exif = image.getexif()
            # libvips writes no EXIF into a TIFF: its ImageDescription carries the mark.
            return any(str(exif.get(tag, "")).startswith(MARK)
                       for tag in (_SOFTWARE, _DESCRIPTION))
    except Image.DecompressionBombError:
        return _vips_mark(file)  # a poster too big for Pillow's guard: read the header only
    except (OSError, ValueError, SyntaxError):
        return False


def _vips_mark(file: Path) -> bool:
    """Whether libvips finds the mark in an image's header (it decodes no pixels)."""
    import pyvips  # only for posters too big for Pillow

    try:
        image = pyvips.Image.new_from_file(str(file))
        fields = set(image.get_fields())
        return any(str(image.get(name)).startswith(MARK)
                   for name in ("exif-ifd0-Software", "image-description") if name in fields)
    except pyvips.Error:
        return False


def check_replaceable(path: str | os.PathLike[str], what: str) -> None:
    """Refuse to write at ``path`` when a file of the user's is there.

    Parameters
    ----------
    path : path-like
        Where an output will be written.
    what : str
        How messages name it ("--out", "the report").

    Raises
    ------
    MosaicError
        ``path`` is a folder or a special file, or a file this tool did not write (a
        file directly in a run folder counts as the tool's).
    """
    file = Path(path)
    if file.is_symlink():
        raise MosaicError(f"{what} {file} is a symbolic link; give the file's real path")
    if not file.exists():
        return
    if file.is_dir():
        raise MosaicError(f"{what} {file} is a folder; give a file name")
    if not file.is_file():
        raise MosaicError(f"{what} {file} is not a regular file")
    if (file.parent / RUN_MARKER).is_file():
        return  # a run folder's files are the tool's, earlier versions' unmarked ones too
    if not carries_mark(file):
        raise MosaicError(f"{what} {file} exists and was not written by mosaic; it is left "
                          "alone: remove it or choose another name")


def check_output_format(path: str | os.PathLike[str], what: str = "`out`") -> str:
    """The Pillow format of an output path, once it has written and read back an image.

    Raises
    ------
    MosaicError
        A suffix that is not JPEG, PNG, TIFF or WebP, or a format this Pillow cannot
        write and read.
    """
    file = Path(path)
    fmt = OUTPUT_FORMATS.get(file.suffix.lower())
    if fmt is None:
        kind = f"{file.suffix} files" if file.suffix else "files without a suffix"
        raise MosaicError(f"{what} {file}: mosaic writes .jpg, .png, .tif or .webp images, "
                          f"not {kind}")
    probe = io.BytesIO()
    try:
        Image.new("RGB", (16, 16), (200, 100, 50)).save(probe, format=fmt, exif=image_exif())
        probe.seek(0)
        with Image.open(probe) as image:
            image.load()
    except (OSError, KeyError, ValueError) as exc:
        raise MosaicError(f"{what} {file}: this machine cannot write {fmt} images "
                          f"({exc})") from None
    return fmt


def check_output_pixels(width: int, height: int, fmt: str, memory_budget: int,
                        tile_px: int, what: str = "the mosaic") -> None:
    """Refuse a poster the format cannot hold or the memory budget cannot render.

    The render holds a few rows of tiles at a time (:func:`render_bytes`), whatever the
    poster's height.

    Raises
    ------
    MosaicError
        A side over the format's limit, or the render over ``memory_budget``.
    """
    limit = MAX_SIDE[fmt]
    if max(width, height) > limit:
        raise MosaicError(f"{what} would be {width:,} x {height:,} px, over {fmt}'s limit of "
                          f"{limit:,} px a side; lower `dpi`, `tile_px` or `size`, or use "
                          ".tif")
    needed = render_bytes(width, tile_px)
    if needed > memory_budget:
        raise MosaicError(f"{what} would be {width:,} x {height:,} px "
                          f"({width * height / 1e6:,.0f} MP): rendering it needs about "
                          f"{needed / 1e9:,.1f} GB of memory, over the budget of "
                          f"{memory_budget / 1e9:,.1f} GB; lower `dpi`, `tile_px` or `size`, "
                          "or raise `max_memory`")


def render_bytes(width: int, tile_px: int) -> int:
    """Memory the render needs for a poster ``width`` pixels wide of ``tile_px`` tiles.

    The row being drawn and its copy on the way to disk, libvips' buffers of about two
    rows, the tiles being decoded (photos opened at twice the tile size), and the
    interpreter and libraries.
    """
    row = 3 * width * tile_px
    return 4 * row + 64 * 3 * (2 * tile_px) ** 2 + 2**28


def _same_file(first: Path, second: Path) -> bool:
    with contextlib.suppress(OSError):
        return first.samefile(second)
    return first.resolve() == second.resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def check_apart(path: str | os.PathLike[str], what: str, target: str | os.PathLike[str],
                photos: PhotoFolder) -> None:
    """Refuse an output that is the target, one of the photos, or in the photo folder.

    Parameters
    ----------
    path : path-like
        The output (a file or a folder the build writes into).
    what : str
        How messages name it ("--out", "--workdir").
    target : path-like
        The target picture.
    photos : PhotoFolder
        The photos and every folder they were found in (symbolic links may lead out of
        the photo folder).

    Raises
    ------
    MosaicError
        The output would replace or join the inputs.
    """
    out = Path(path)
    if out.exists() and _same_file(out, Path(target)):
        raise MosaicError(f"{what} {out} is the target picture; write the mosaic elsewhere")
    root = photos.folders[0]
    for folder in photos.folders:
        if _inside(out, folder):
            where = "" if folder == root else f" (through a link, at {folder})"
            raise MosaicError(f"{what} {out} is inside the photo folder {root}{where}: the "
                              "next build would take it for a photo; write it elsewhere")
        if _inside(folder, out):
            raise MosaicError(f"{what} {out} holds the photo folder {folder}; choose a place "
                              "apart from it")
    if out.exists() and out.is_file():
        identity = out.stat()
        for photo in photos.files:
            with contextlib.suppress(OSError):
                found = photo.stat()
                if (found.st_dev, found.st_ino) == (identity.st_dev, identity.st_ino):
                    raise MosaicError(f"{what} {out} is one of the photos ({photo}); write "
                                      "the mosaic elsewhere")


# --- run folders -----------------------------------------------------------------------


def _writable(folder: Path) -> None:
    """Create and delete a temporary file in ``folder``, or raise :class:`OutputError`."""
    probe = new_temporary(folder, "probe")
    try:
        with open(probe, "wb") as handle:
            handle.write(b"x")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise OutputError(describe_os_error(exc, folder)) from None
    finally:
        forget_temporary(probe)


def prepare_run_folder(path: str | os.PathLike[str], what: str = "`workdir`") -> Path:
    """Create or adopt a run folder and check that it can be written.

    Parameters
    ----------
    path : path-like
        The run folder.
    what : str
        How messages name it.

    Returns
    -------
    pathlib.Path
        The folder, resolved.

    Raises
    ------
    MosaicError
        It cannot be created or written, or it is a folder of the user's (it holds files
        that no run folder holds).
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise MosaicError(f"{what} {folder} is a file, not a folder") from None
    except OSError as exc:
        raise MosaicError(f"{what} {folder}: cannot create the folder "
                          f"({exc.strerror or exc})") from None
    marker = folder / RUN_MARKER
    if not marker.is_file():
        foreign = sorted(entry.name for entry in folder.iterdir()
                         if entry.name not in _RUN_ENTRIES
                         and not entry.name.startswith(_RUN_PREFIXES))
        if foreign:
            raise MosaicError(f"{what} {folder} is a folder mosaic did not make (it holds "
                              f"{foreign[0]!r}{' and more' if len(foreign) > 1 else ''}); "
                              "give a new or empty folder")
        try:
            marker.write_text(json.dumps({**json_mark(), "kind": "run folder"}) + "\n",
                              encoding="utf-8")
        except OSError as exc:
            raise OutputError(describe_os_error(exc, marker)) from None
    _writable(folder)
    return folder.resolve()


_held: dict[str, tuple[int, int]] = {}
_held_lock = threading.Lock()


@contextlib.contextmanager
def run_folder_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold a run folder for one build; a second build stops with one line.

    Re-entrant within a process (the command line takes the lock before the flow does).
    The lock is an ``flock``: the kernel drops it when its process dies, even by SIGKILL.

    Raises
    ------
    MosaicError
        Another process holds the folder.
    """
    key = str(Path(path).resolve() / RUN_LOCK)
    with _held_lock:
        if key in _held:
            fd, count = _held[key]
            _held[key] = (fd, count + 1)
        else:
            _held[key] = (_acquire(key), 1)
    try:
        yield
    finally:
        with _held_lock:
            fd, count = _held[key]
            if count == 1:
                del _held[key]
                os.close(fd)
            else:
                _held[key] = (fd, count - 1)


def _acquire(lock_path: str) -> int:
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, lock_path)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            folder = Path(lock_path).parent
            raise MosaicError(f"run folder {folder} is in use by another build (pid "
                              f"{holder}); wait for it to finish or give another "
                              "`workdir`") from None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
    return fd


# --- disk room -------------------------------------------------------------------------


def check_room(planned: dict[Path, int]) -> None:
    """Refuse to start when a disk cannot hold the files the build will write.

    Parameters
    ----------
    planned : dict
        Folder -> bytes the build will write there (folders on one disk are added up).

    Raises
    ------
    MosaicError
        A disk has less free space than planned; the message names the folder.
    """
    by_device: dict[int, tuple[Path, int]] = {}
    for folder, size in planned.items():
        device = os.stat(folder).st_dev
        first, total = by_device.get(device, (folder, 0))
        by_device[device] = (first, total + size)
    for folder, needed in by_device.values():
        free = shutil.disk_usage(folder).free
        if needed > free:
            raise MosaicError(f"not enough disk space in {folder}: this build writes about "
                              f"{needed / 1e6:,.0f} MB there but {free / 1e6:,.0f} MB are "
                              "free; free some space or choose another `workdir` or `out`")
