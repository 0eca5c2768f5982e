"""``manifest.json``: what a download or import put in its output folder.

One entry per post (keyed by the Instagram short code, or an export post's id) with its
date, title, image URLs, file hashes and status, so a rerun fetches only what is missing.
The file is rewritten atomically after every post; concurrent writers in one process are
serialised by a lock, writers in several processes by ``flock`` on the folder itself.

A ``manifest.json`` that is not one of ours (another tool's, or not JSON at all) is the
user's: it is never read as empty nor replaced, and the folder is refused
(:class:`ForeignManifestError`) before anything is downloaded into it.

Statuses: ``done``, ``video`` (nothing to save), ``gone`` (the post, or every size of
every image, answers 404/410: deleted from the site) and ``partly-gone`` (some images
saved, the others gone on every size) are *finished*: a rerun does not fetch them again.
``partial`` (an interrupted post) and ``failed`` are fetched again.

Entries are :class:`PostEntry` dicts (the JSON objects themselves), made by one constructor
per status (:func:`done_entry`, :func:`partial_entry`, :func:`video_entry`,
:func:`failed_entry`, :func:`gone_entry`, :func:`partly_gone_entry`) from a :class:`Post`,
what the entry says of the post whatever its status. The web scraper and the export
importer both use them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from mosaic.errors import MosaicError
from mosaic.files import atomic_path

MANIFEST_NAME = "manifest.json"
FORMAT = "photo-mosaic/photos-manifest"
VERSION = 1

DONE = "done"
"""Every image of the post is saved."""
VIDEO = "video"
"""A video post: nothing to save."""
FAILED = "failed"
"""The post could not be fetched; ``error`` says why."""
PARTIAL = "partial"
"""Some images are saved; the post was interrupted before the others."""
GONE = "gone"
"""The post is gone from the site: its page, or every size of every image, answers
404/410. ``error`` says which; ``gone_images`` lists the image URLs that are gone."""
PARTLY_GONE = "partly-gone"
"""Some images are saved; every size of the others answers 404/410 (``gone_images``)."""
FINISHED_STATUSES = frozenset({DONE, VIDEO, GONE, PARTLY_GONE})
"""Statuses a rerun does not fetch again."""
GONE_STATUSES = frozenset({GONE, PARTLY_GONE})
"""Statuses of posts the site no longer holds in full."""

ImageRecord = dict[str, Any]
"""One saved image of an entry: ``sha256``, ``file`` (its name in the folder) and ``bytes``,
with ``url``, ``width`` and ``height`` (web posts) or ``uri`` and ``title`` (export posts)."""


class PostEntry(TypedDict):
    """One post of ``manifest.json`` (``posts[code]``), exactly as the JSON holds it.

    Web posts have ``caption`` and ``gone_images``; export posts have ``title`` instead of
    ``caption``, and no ``gone_images``.
    """

    code: str
    url: str | None
    date: str | None
    caption: NotRequired[str | None]
    title: NotRequired[str | None]
    status: str
    found_by: str | None
    images: list[ImageRecord]
    skipped_videos: int
    error: str | None
    gone_images: NotRequired[list[str]]


@dataclass(frozen=True)
class Post:
    """What an entry says of a post whatever its status.

    Attributes
    ----------
    code : str
        The entry's key: the post's short code, or ``export:<path of its first media>``.
    url : str or None
        The post's page (None for export posts).
    date : str or None
        When it was posted (ISO 8601, UTC).
    found_by : str or None
        Where its images were found (``"json"``, ``"srcset"``, ``"og:image"``,
        ``"unavailable"``, ``"export"``...); None when its page was never read.
    skipped_videos : int
        Videos of the post, not saved.
    caption : str or None
        The post's text (web posts).
    title : str or None
        The post's text (export posts).
    exported : bool
        From a data export: the entry has ``title`` and no ``caption`` nor ``gone_images``.
    """

    code: str
    url: str | None = None
    date: str | None = None
    found_by: str | None = None
    skipped_videos: int = 0
    caption: str | None = None
    title: str | None = None
    exported: bool = False

    @classmethod
    def from_previous(cls, code: str, url: str, previous: Mapping[str, Any] | None) -> Post:
        """A web post as an earlier entry recorded it (only its key and URL when None).

        Parameters
        ----------
        code : str
            The post's short code.
        url : str
            The post's page.
        previous : mapping, optional
            The post's entry in the manifest, if it has one.

        Returns
        -------
        Post
            ``date``, ``caption``, ``found_by`` and ``skipped_videos`` taken from it.
        """
        previous = previous or {}
        return cls(code, url, previous.get("date"), previous.get("found_by"),
                   previous.get("skipped_videos", 0), caption=previous.get("caption"))


def _entry(post: Post, status: str, images: Iterable[ImageRecord] = (),
           error: str | None = None, gone_images: Iterable[str] = ()) -> PostEntry:
    """The entry in the JSON's key order (kept so that files read the same as ever)."""
    if post.exported:
        return {"code": post.code, "url": post.url, "date": post.date, "title": post.title,
                "status": status, "found_by": post.found_by, "images": list(images),
                "skipped_videos": post.skipped_videos, "error": error}
    return {"code": post.code, "url": post.url, "date": post.date, "caption": post.caption,
            "status": status, "found_by": post.found_by, "images": list(images),
            "skipped_videos": post.skipped_videos, "error": error,
            "gone_images": list(gone_images)}


def done_entry(post: Post, images: Iterable[ImageRecord]) -> PostEntry:
    """The entry of a post whose every image is saved (status ``done``)."""
    return _entry(post, DONE, images)


def partial_entry(post: Post, images: Iterable[ImageRecord], gone_images: Iterable[str] = (),
                  error: str | None = None) -> PostEntry:
    """The entry of a post interrupted before all its images were saved (``partial``).

    ``gone_images`` and ``error`` name images already found gone on every size.
    """
    return _entry(post, PARTIAL, images, error, gone_images)


def video_entry(post: Post) -> PostEntry:
    """The entry of a video post: nothing to save (status ``video``)."""
    return _entry(post, VIDEO)


def failed_entry(post: Post, error: str, images: Iterable[ImageRecord] = (),
                 gone_images: Iterable[str] = ()) -> PostEntry:
    """The entry of a post that could not be fetched (``failed``); ``error`` says why.

    ``images`` and ``gone_images`` keep what an earlier attempt had saved or found gone.
    """
    return _entry(post, FAILED, images, error, gone_images)


def gone_entry(post: Post, error: str, gone_images: Iterable[str] = ()) -> PostEntry:
    """The entry of a post gone from the site, its page or every image (status ``gone``).

    ``error`` says which; ``gone_images`` lists the image URLs that are gone.
    """
    return _entry(post, GONE, (), error, gone_images)


def partly_gone_entry(post: Post, images: Iterable[ImageRecord], error: str,
                      gone_images: Iterable[str] = ()) -> PostEntry:
    """The entry of a post with some images saved and the others gone (``partly-gone``)."""
    return _entry(post, PARTLY_GONE, images, error, gone_images)



_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def manifest_path(out_dir: str | os.PathLike[str]) -> Path:
    """Where the manifest of ``out_dir`` lives."""
    return Path(out_dir) / MANIFEST_NAME


def now_iso() -> str:
    """The current UTC time in ISO 8601, to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def timestamp_iso(seconds: float | int | None) -> str | None:
    """A Unix timestamp as ISO 8601 UTC, or None."""
    if seconds is None:
        return None
    try:
        when = dt.datetime.fromtimestamp(float(seconds), dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return when.isoformat()


def _empty(source: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "source": source, "updated": now_iso(),
            "posts": {}}


class ForeignManifestError(MosaicError):
    """The folder holds a ``manifest.json`` that photo-mosaic did not write."""


def _foreign(path: Path, why: str = "") -> ForeignManifestError:
    return ForeignManifestError(f"{path} is not a photo-mosaic manifest{why}; choose another "
                                "`out` folder")


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of ``out_dir``; an empty one when there is none.

    Returns
    -------
    dict
        Keys ``format``, ``version``, ``source``, ``updated`` and ``posts`` (code -> entry).

    Raises
    ------
    ForeignManifestError
        ``manifest.json`` exists but is not one of ours (not JSON, another format) or
        cannot be read: it is the user's, and must be neither ignored nor replaced.
    """
    path = manifest_path(out_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _empty({})
    except IsADirectoryError:
        raise _foreign(path, " (it is a folder)") from None
    except OSError as exc:
        raise _foreign(path, f" (cannot read it: {exc.strerror})") from None
    except UnicodeDecodeError:
        raise _foreign(path) from None
    try:
        data = json.loads(text)
    except ValueError:
        raise _foreign(path) from None
    if (not isinstance(data, dict) or data.get("format") != FORMAT
            or not isinstance(data.get("posts", {}), dict)):
        raise _foreign(path)
    data.setdefault("posts", {})
    return data


def check_manifest(out_dir: str | os.PathLike[str]) -> None:
    """Refuse ``out_dir`` if it holds a ``manifest.json`` that is not ours.

    Call before anything is downloaded or imported into the folder.

    Raises
    ------
    ForeignManifestError
        One line naming the file and asking for another ``--out`` folder.
    """
    read_manifest(out_dir)


@contextlib.contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    key = str(out_dir.resolve())
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        fd = os.open(out_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def update_posts(out_dir: str | os.PathLike[str], entries: Mapping[str, PostEntry],
                 source: dict[str, Any] | None = None) -> None:
    """Add or replace post entries, rewriting ``manifest.json`` atomically.

    Parameters
    ----------
    out_dir : path-like
        The output folder (it must exist).
    entries : dict
        Post key -> entry (``status``, ``images`` ...).
    source : dict, optional
        Describes where the photos come from (kind, user name, site); kept when omitted.

    Raises
    ------
    ForeignManifestError
        The folder's ``manifest.json`` is not ours; it is left as it is.
    """
    folder = Path(out_dir)
    with _locked(folder):
        data = read_manifest(folder)
        if source is not None:
            data["source"] = source
        data["posts"].update(entries)
        data["updated"] = now_iso()
        with atomic_path(manifest_path(folder)) as tmp:
            tmp.write_text(dumps(data), encoding="utf-8")


_lines: dict[str, tuple[dict[str, Any], str]] = {}
"""Post key -> (entry, its JSON line) last written: unchanged entries are not re-encoded."""


def _line(key: str, entry: dict[str, Any]) -> str:
    cached = _lines.get(key)
    if cached is not None and cached[0] == entry:
        return cached[1]
    line = json.dumps(key, ensure_ascii=False) + ": " + json.dumps(entry, ensure_ascii=False)
    _lines[key] = (entry, line)
    return line


def dumps(data: dict[str, Any]) -> str:
    """The manifest as JSON with one post a line: readable, and fast to rewrite.

    The manifest is rewritten after every image, so encoding must not grow costly with the
    number of posts: indented JSON goes through the pure-Python encoder, and entries that
    did not change are taken from a cache of their encoded lines. Callers hold the lock.
    """
    head = {key: value for key, value in data.items() if key != "posts"}
    lines = [_line(key, entry) for key, entry in data["posts"].items()]
    body = ",\n".join(lines)
    return (json.dumps(head, ensure_ascii=False)[:-1] + ', "posts": {\n' + body
            + ("\n" if lines else "") + "}}\n")


def entry_is_complete(out_dir: str | os.PathLike[str], entry: Mapping[str, Any] | None
                      ) -> bool:
    """Whether a post entry is finished and every file it names is still in ``out_dir``."""
    if not entry or entry.get("status") not in FINISHED_STATUSES:
        return False
    return all((Path(out_dir) / image["file"]).is_file() for image in entry.get("images", []))


def finished_entry(out_dir: str | os.PathLike[str], key: str) -> PostEntry | None:
    """The manifest entry of post ``key`` if it needs no more work, else None."""
    entry = read_manifest(out_dir)["posts"].get(key)
    return cast(PostEntry, entry) if entry_is_complete(out_dir, entry) else None
