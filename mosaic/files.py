"""Files between steps: content hashes, atomic writes, and references.

Every step writes its output under a temporary name in the same folder and renames it
when complete (``os.replace`` is atomic on POSIX), so an interrupted run never leaves a
half-written file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

_CHUNK = 1 << 20
TEMP_SUFFIX = ".part"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of a file's bytes.

    Parameters
    ----------
    path : path-like
        File to hash.

    Returns
    -------
    str
        64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def hash_jsonable(value: Any) -> str:
    """Hash a JSON-serialisable value canonically (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(text.encode("utf-8"))


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
        Where to write. Its name ends in ``.part`` and keeps the final suffix before it
        so libraries that infer a format from the name still see it (``x.part.jpg``).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.stem}.", suffix=f"{TEMP_SUFFIX}{final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files a killed run left in ``folder`` (not recursive).

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    removed = []
    base = Path(folder)
    if not base.is_dir():
        return removed
    for candidate in base.glob(f".*{TEMP_SUFFIX}*"):
        if candidate.is_file():
            candidate.unlink(missing_ok=True)
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
