"""Images saved exactly as downloaded, as ``<sha256>.<ext>``, and never half-written.

Images are streamed to a hidden temporary file (this tool's own prefix) in the output
folder while they are hashed, checked (content type, magic bytes, size, completeness)
and only then renamed to ``<sha256>.<ext>``: the bytes are kept exactly as downloaded,
and no empty or partial file is ever left under a final name.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import requests

from mosaic.files import forget_temporary, new_temporary
from mosaic.sources.download.errors import PermanentFetchError, TransientFetchError
from mosaic.sources.download.fetch import CHUNK, FetchSettings, open_response, with_retries
from mosaic.sources.download.hosts import AllowList

IMAGE_CONTENT_TYPES = {"image/jpeg": "jpg", "image/jpg": "jpg", "image/pjpeg": "jpg",
                       "image/png": "png", "image/webp": "webp"}
"""Content types accepted for images, and the file extension each is saved under."""


@dataclass(frozen=True)
class SavedImage:
    """An image saved as ``<sha256>.<ext>`` in the output folder."""

    url: str
    sha256: str
    file: str
    """File name inside the output folder."""
    bytes: int
    content_type: str
    attempts: int
    new: bool
    """False when a file with the same content was already there."""



def sniff_image(head: bytes) -> str | None:
    """The image type from its first bytes: ``"jpg"``, ``"png"``, ``"webp"`` or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def image_is_complete(kind: str, head: bytes, tail: bytes, size: int) -> bool:
    """Whether an image's bytes end where its format says they should.

    JPEG ends with the EOI marker (allowing a little trailing padding), PNG with its
    ``IEND`` chunk, WebP at the length its RIFF header gives.
    """
    if kind == "jpg":
        return b"\xff\xd9" in tail[-32:]
    if kind == "png":
        return tail.endswith(b"IEND\xaeB`\x82")
    if kind == "webp":
        return int.from_bytes(head[4:8], "little") + 8 == size
    return False


class _Stream:
    """Streams a response into a hidden temporary file while hashing and checking it."""

    def __init__(self, folder: Path, cap: int, url: str) -> None:
        self.cap, self.url = cap, url
        self.path = new_temporary(folder, "download")
        self.handle = open(self.path, "wb")  # closed by the caller, or by discard()
        self.digest = hashlib.sha256()
        self.head = b""
        self.tail = b""
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise PermanentFetchError(f"{self.url} is over the {self.cap}-byte cap", self.url)
        if len(self.head) < 16:
            self.head = (self.head + chunk)[:16]
            if len(self.head) >= 12 and sniff_image(self.head) is None:
                raise PermanentFetchError(
                    f"{self.url} does not start like a JPEG, PNG or WebP image", self.url)
        self.tail = (self.tail + chunk)[-64:]
        self.digest.update(chunk)
        self.handle.write(chunk)

    def discard(self) -> None:
        self.handle.close()
        forget_temporary(self.path)


def _content_type(response: requests.Response, url: str) -> str:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in IMAGE_CONTENT_TYPES:
        raise PermanentFetchError(
            f"{url} is {content_type or 'of no content type'}, not a JPEG, PNG or WebP image",
            url)
    return content_type


def _stream_to_file(response: requests.Response, folder: Path, cap: int, url: str
                    ) -> tuple[_Stream, str]:
    """Save a response body in a temporary file; return the stream and the image type."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise PermanentFetchError(f"{url} is {int(declared)} bytes, over the {cap} cap", url)
    stream = _Stream(folder, cap, url)
    try:
        try:
            for chunk in response.iter_content(CHUNK):
                stream.write(chunk)
        except requests.RequestException as exc:
            raise TransientFetchError(f"connection broke while downloading {url}", url) from exc
        stream.handle.close()
        if declared and declared.isdigit() and stream.size != int(declared):
            raise TransientFetchError(f"{url} truncated: {stream.size} of {declared} bytes", url)
        kind = sniff_image(stream.head)
        if kind is None:
            raise PermanentFetchError(f"{url} is empty or not an image", url)
        if not image_is_complete(kind, stream.head, stream.tail, stream.size):
            raise TransientFetchError(f"{url} truncated: the {kind} data is incomplete", url)
    except BaseException:
        stream.discard()
        raise
    return stream, kind


_rename_lock = threading.Lock()


def download_image(session: requests.Session, url: str, out_dir: str | os.PathLike[str],
                   allow: AllowList, settings: FetchSettings) -> SavedImage:
    """Download one image into ``out_dir`` as ``<sha256>.<ext>``, exactly as served.

    Parameters
    ----------
    session : requests.Session
        The HTTP session.
    url : str
        The image; it and every redirect must be on an allowed host.
    out_dir : path-like
        Where the image goes (it must exist).
    allow : AllowList
        Allowed image hosts.
    settings : FetchSettings
        Timeouts, size cap and retries.

    Returns
    -------
    SavedImage
        Hash, file name, size and whether the file is new.

    Raises
    ------
    FetchError
        Refused (host, type, size), not found, or still failing after the retries.
    """
    folder = Path(out_dir)

    def attempt() -> SavedImage:
        with open_response(session, url, allow, settings, "image/jpeg,image/webp,image/png;q=0.9"
                   ) as response:
            content_type = _content_type(response, url)
            stream, kind = _stream_to_file(response, folder, settings.max_image_bytes, url)
        sha = stream.digest.hexdigest()
        final = folder / f"{sha}.{kind}"
        with _rename_lock:
            new = not final.is_file()
            if new:
                os.replace(stream.path, final)
            forget_temporary(stream.path)
        return SavedImage(url, sha, final.name, stream.size, content_type, 0, new)

    saved, attempts = with_retries(attempt, settings.retry, url)
    return SavedImage(saved.url, saved.sha256, saved.file, saved.bytes, saved.content_type,
                      attempts, saved.new)
