"""``manifest.json``: what a download or import put in its output folder.

One entry per post (keyed by the Instagram short code, or an export post's id) with its
date, title, image URLs, file hashes and status, so a rerun fetches only what is missing.
The file is rewritten atomically after every post; concurrent writers in one process are
serialised by a lock, writers in several processes by ``flock`` on the folder itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
FINISHED_STATUSES = frozenset({DONE, VIDEO})

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


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of ``out_dir``; an empty one when there is none (or it is unreadable).

    Returns
    -------
    dict
        Keys ``format``, ``version``, ``source``, ``updated`` and ``posts`` (code -> entry).
    """
    path = manifest_path(out_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _empty({})
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return _empty({})
    data.setdefault("posts", {})
    return data


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


def update_posts(out_dir: str | os.PathLike[str], entries: dict[str, dict[str, Any]],
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


def entry_is_complete(out_dir: str | os.PathLike[str], entry: dict[str, Any] | None) -> bool:
    """Whether a post entry is finished and every file it names is still in ``out_dir``."""
    if not entry or entry.get("status") not in FINISHED_STATUSES:
        return False
    return all((Path(out_dir) / image["file"]).is_file() for image in entry.get("images", []))


def finished_entry(out_dir: str | os.PathLike[str], key: str) -> dict[str, Any] | None:
    """The manifest entry of post ``key`` if it needs no more work, else None."""
    entry = read_manifest(out_dir)["posts"].get(key)
    return entry if entry_is_complete(out_dir, entry) else None
