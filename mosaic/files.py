"""Files between steps: content hashes, atomic writes, and references.

Every step writes its output under a temporary name in the same folder and renames it
when complete (``os.replace`` is atomic on POSIX), so an interrupted run never leaves a
half-written file behind. Temporary names carry this tool's prefix and the identity of
the process writing them (:func:`mosaic.processes.owner_tag`), so the clean-up after a
killed run removes only temporaries whose writer is dead, never a user's file nor a live
build's temporary. Where a run folder and the user's own files are kept apart, and what
may be replaced, is :mod:`mosaic.outputs`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mosaic.errors import MosaicError, UnreadableImageError
from mosaic.processes import at_hard_exit, owner_alive, owner_tag

TEMP_PREFIX = ".mosaic-tmp."
TEMP_SUFFIX = ".part"
_TEMP_NAME = re.compile(r"^\.mosaic-tmp\.(?P<owner>[0-9a-f]{8}-\d+-\d+)\.")
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                          errno.EPERM})
_live: set[Path] = set()
_live_lock = threading.Lock()


class OutputError(MosaicError):
    """A file could not be written: a full disk, a read-only or forbidden folder."""


def describe_os_error(exc: OSError, path: str | os.PathLike[str]) -> str:
    """One line for an ``OSError`` met while writing ``path`` ("no space left ...")."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = _free_bytes(Path(path))
        left = f"; {free / 1e6:.0f} MB left" if free is not None else ""
        return f"cannot write {path}: the disk is full ({reason}{left})"
    return f"cannot write {path}: {reason}"


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        with contextlib.suppress(OSError):
            return os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    return None


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` is not thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    return 0o022


def is_temporary(name: str) -> bool:
    """Whether a file name is one of this tool's temporaries."""
    return _TEMP_NAME.match(name) is not None


def new_temporary(folder: str | os.PathLike[str], final_name: str) -> Path:
    """Create an empty temporary file in ``folder`` for a file to be named ``final_name``.

    The name is ``.mosaic-tmp.<owner>.<random>.<stem>.part<suffix>``: hidden, this tool's
    own, naming the process that writes it, and keeping the final suffix so libraries
    that infer a format from the name still see it. Its mode is what a new file gets
    (0666 less the umask), not ``mkstemp``'s 0600.

    Raises
    ------
    OutputError
        The folder cannot be written.
    """
    final = Path(final_name)
    base = Path(folder)
    try:
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{owner_tag()}.",
                                    suffix=f".{final.stem[:80]}{TEMP_SUFFIX}{final.suffix}",
                                    dir=base)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, base / final.name)) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    path = Path(name)
    with _live_lock:
        _live.add(path)
    return path


def forget_temporary(path: Path) -> None:
    """Remove ``path`` if it still exists and stop tracking it."""
    path.unlink(missing_ok=True)
    with _live_lock:
        _live.discard(path)


def remove_live_temporaries() -> None:
    """Delete every temporary this process is writing (for an exit that skips clean-up)."""
    with _live_lock:
        paths = list(_live)
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


at_hard_exit(remove_live_temporaries)


_FILE_TYPES = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
               (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def describe_file_type(mode: int) -> str:
    """Name the kind of file an ``st_mode`` stands for ("a named pipe (FIFO)", ...)."""
    return next((name for test, name in _FILE_TYPES if test(mode)), "a special file")


def _refuse_unless_regular(path: str | os.PathLike[str], mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise UnreadableImageError(f"{path}: {describe_file_type(mode)}, not a regular file")


def open_regular_file(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a file for binary reading, refusing anything but a regular file.

    A named pipe, socket or device is refused without blocking, even one swapped in
    after the file was listed: the file is opened non-blocking and checked on the open
    descriptor.

    Parameters
    ----------
    path : path-like
        The file; a symbolic link to a regular file is fine.

    Returns
    -------
    BinaryIO
        An open, buffered, blocking reader; the caller closes it.

    Raises
    ------
    UnreadableImageError
        Not a regular file (the message names the file and what it is).
    OSError
        The file cannot be opened.
    """
    # Checked before opening too: opening some devices has side effects (a tape rewinds).
    _refuse_unless_regular(path, os.stat(path).st_mode)
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        _refuse_unless_regular(path, os.fstat(descriptor).st_mode)
        # Reads of a regular file never block; drop the flag so the reader behaves normally.
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of a file's bytes (a regular file only: never blocks).

    Parameters
    ----------
    path : path-like
        File to hash.

    Returns
    -------
    str
        64 hex digits.

    Raises
    ------
    UnreadableImageError
        Not a regular file (a named pipe, a socket, a device).
    """
    with open_regular_file(path) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def hash_jsonable(value: Any) -> str:
    """Hash a JSON-serialisable value canonically (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(text.encode("utf-8"))


def is_disk_error(exc: OSError) -> bool:
    """Whether an ``OSError`` is a full disk or a read-only or forbidden place to write."""
    return exc.errno in _DISK_ERRORS


def _is_write_error(exc: OSError, *paths: Path) -> bool:
    return is_disk_error(exc) and (exc.filename is None
                                   or str(exc.filename) in {str(p) for p in paths})


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.

    Parameters
    ----------
    path : path-like
        The final destination. Its folder is created if missing.

    Yields
    ------
    pathlib.Path
        Where to write (see :func:`new_temporary` for its name).

    Raises
    ------
    OutputError
        The disk is full, or the folder is read-only or forbidden (the message names
        ``path``).
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, final)) from None
    tmp = new_temporary(final.parent, final.name)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        if _is_write_error(exc, tmp, final):
            raise OutputError(describe_os_error(exc, final)) from None
        raise
    finally:
        forget_temporary(tmp)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike[str], value: Any) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically."""
    text = json.dumps(value, indent=2, sort_keys=False, default=str) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save ``array`` in ``.npy`` format to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


def remove_stale_temporaries(folder: str | os.PathLike[str], recursive: bool = False
                             ) -> list[Path]:
    """Delete this tool's temporaries in ``folder`` whose writing process is gone.

    Only names made by :func:`new_temporary` are considered, and only those whose
    owner (pid and start time, on this host) no longer runs, so a user's own dot-files
    and the temporaries of a build still running are never touched.

    Parameters
    ----------
    folder : path-like
        Where to look.
    recursive : bool
        Also look in sub-folders (for a run folder, which is the tool's own).

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    removed: list[Path] = []
    base = Path(folder)
    if not base.is_dir():
        return removed
    candidates = base.rglob(f"{TEMP_PREFIX}*") if recursive else base.glob(f"{TEMP_PREFIX}*")
    for candidate in candidates:
        match = _TEMP_NAME.match(candidate.name)
        if match is None or owner_alive(match["owner"]):
            continue
        with contextlib.suppress(OSError):
            if candidate.is_file() and not candidate.is_symlink():
                candidate.unlink()
                removed.append(candidate)
    return removed


@dataclass(frozen=True)
class FileRef:
    """A file produced by a step: where it is and the SHA-256 of its bytes.

    Steps pass these to one another instead of the arrays themselves, and cache keys
    are built from the hashes.
    """

    path: str
    sha256: str

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileRef:
        """Reference an existing file, hashing its bytes."""
        return cls(path=str(Path(path)), sha256=sha256_file(path))

    def is_intact(self) -> bool:
        """Return True when the file exists and still has the recorded hash."""
        return Path(self.path).is_file() and sha256_file(self.path) == self.sha256

    def to_dict(self) -> dict[str, str]:
        """Return the reference as a plain dict."""
        return asdict(self)
