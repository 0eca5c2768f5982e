"""Photos from Instagram's "Download your information" ZIP (JSON format).

The export lists the account's posts in ``posts_1.json``, ``posts_2.json``... under
``your_instagram_activity/content/`` (or ``.../media/`` in newer exports, or ``content/``
at the root of older ones). Each post has ``media[]`` entries whose ``uri`` names a file
inside the ZIP (relative to its root), a ``creation_timestamp`` and a ``title``.
Instagram writes the text as UTF-8 bytes escaped as Latin-1 characters ("cafÃ©"); it is
decoded back ("café") for the manifest.

Only images of the posts the JSON lists are imported (videos, stories, reels and profile
photos are not), each saved as ``<sha256>.<ext>`` byte for byte; ``<ext>`` follows the
content (JPEG, PNG, WebP, HEIC or AVIF), not the name in the ZIP. The archive is checked
before anything is read: a member with an absolute path or ``..`` (zip-slip), a symbolic
link, or a member to be read that is larger than the cap (or whose data does not match its
headers) makes the whole import refused, and files it had already written are removed.
An HTML-format export is recognised and refused with a request for the JSON format.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mosaic.errors import MosaicError
from mosaic.files import atomic_path, remove_stale_temporaries
from mosaic.images import sniff_heif
from mosaic.sources import manifest
from mosaic.sources.download.images import sniff_image

log = logging.getLogger("mosaic.instagram_export")

MAX_MEMBER_BYTES = 100 * 1024 * 1024
"""Largest image or JSON member read from the ZIP; a larger one is refused."""

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".webm", ".avi", ".3gp", ".mkv"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".hif",
                            ".avif", ".gif"})
_POSTS_JSON_RE = re.compile(r"^(?P<root>(?:.*/)?)(?:content|media)/posts_(?P<n>\d+)\.json$")
_POSTS_HTML_RE = re.compile(r"^(?:.*/)?(?:content|media)/posts_\d+\.html?$")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 20
_FTYP_BYTES = 512  # enough for the ftyp box and its list of compatible brands


@dataclass
class ImportSummary:
    """What an import did."""

    zip: str
    out_dir: str
    layout: str
    """``"your_instagram_activity"`` (current exports) or ``"root"`` (older ones)."""
    posts: int = 0
    images: int = 0
    new_files: int = 0
    skipped_videos: int = 0
    missing: list[str] = field(default_factory=list)
    """Media the JSON lists but the ZIP lacks, or that are not readable images."""

    def to_dict(self) -> dict[str, Any]:
        """The summary as a plain dict."""
        return dict(self.__dict__)


def fix_mojibake(text: str) -> str:
    """Undo Instagram's export encoding: UTF-8 bytes written as Latin-1 code points.

    Text that is not mojibake (it has characters beyond Latin-1, or its bytes are not
    UTF-8) is returned unchanged.
    """
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def unsafe_member_reason(info: zipfile.ZipInfo) -> str | None:
    """Why a ZIP member is hostile (absolute path, ``..``, symlink), or None if it is not."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or _DRIVE_RE.match(name):
        return "has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "climbs out of the archive with '..'"
    if "\x00" in name:
        return "has a NUL character in its name"
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    return None


def check_archive(archive: zipfile.ZipFile, zip_path: str | os.PathLike[str]) -> None:
    """Refuse an archive holding a zip-slip path, an absolute path or a symbolic link.

    Raises
    ------
    MosaicError
        Naming the first hostile member.
    """
    for info in archive.infolist():
        reason = unsafe_member_reason(info)
        if reason is not None:
            raise MosaicError(f"{zip_path}: refused: member {info.filename!r} {reason}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int,
                 zip_path: str | os.PathLike[str]) -> bytes:
    """A member's bytes, refusing one larger than ``cap`` (declared or actual)."""
    if info.file_size > cap:
        raise MosaicError(f"{zip_path}: refused: member {info.filename!r} is "
                          f"{info.file_size / 1e6:.0f} MB, over the {cap / 1e6:.0f} MB cap")
    chunks, size = [], 0
    try:
        with archive.open(info) as handle:
            while chunk := handle.read(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise MosaicError(f"{zip_path}: refused: member {info.filename!r} "
                                      f"unpacks to more than the {cap / 1e6:.0f} MB cap")
                chunks.append(chunk)
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise MosaicError(f"{zip_path}: member {info.filename!r} is damaged ({exc})") from None
    return b"".join(chunks)


def _find_posts_files(archive: zipfile.ZipFile, zip_path: str | os.PathLike[str]
                      ) -> list[tuple[str, zipfile.ZipInfo]]:
    """``(root prefix, member)`` of every ``posts_N.json``, in order of N."""
    found = []
    for info in archive.infolist():
        match = _POSTS_JSON_RE.match(info.filename)
        if match and not info.is_dir():
            found.append((int(match["n"]), match["root"], info))
    if found:
        return [(root, info) for _, root, info in sorted(found, key=lambda t: (t[1], t[0]))]
    if any(_POSTS_HTML_RE.match(info.filename) for info in archive.infolist()):
        raise MosaicError(f"{zip_path} is an HTML-format export; request a new one in JSON "
                          "format (Download your information > Format: JSON)")
    raise MosaicError(f"{zip_path}: no posts_1.json found; is this an Instagram "
                      "\"Download your information\" export?")


def _post_list(data: Any) -> list[dict[str, Any]]:
    """The post entries of a ``posts_N.json`` (a list, or a dict holding one)."""
    if isinstance(data, dict):
        lists = [value for value in data.values() if isinstance(value, list)]
        data = lists[0] if lists else []
    if not isinstance(data, list):
        return []
    return [entry for entry in data if isinstance(entry, dict) and isinstance(
        entry.get("media"), list)]


def _read_json(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int,
               zip_path: str | os.PathLike[str]) -> Any:
    raw = _read_member(archive, info, cap, zip_path)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MosaicError(f"{zip_path}: {info.filename} is not valid JSON") from None


def _check_uri(uri: str, source: str, zip_path: str | os.PathLike[str]) -> str:
    normalised = uri.replace("\\", "/")
    if (normalised.startswith("/") or _DRIVE_RE.match(normalised) or "://" in normalised
            or ".." in PurePosixPath(normalised).parts):
        raise MosaicError(f"{zip_path}: refused: {source} names a media path outside the "
                          f"archive: {uri!r}")
    return normalised


class _Importer:
    """Imports the posts of one export into one folder."""

    def __init__(self, archive: zipfile.ZipFile, zip_path: Path, out_dir: Path, cap: int,
                 summary: ImportSummary) -> None:
        self.archive, self.zip_path, self.out_dir, self.cap = archive, zip_path, out_dir, cap
        self.summary = summary
        self.members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
        self.entries: dict[str, manifest.PostEntry] = {}
        self.created: list[Path] = []

    def member(self, uri: str, root: str) -> zipfile.ZipInfo | None:
        return self.members.get(uri) or self.members.get(root + uri)

    def check_sizes(self, listed: list[tuple[dict[str, Any], str, str]]) -> None:
        """Refuse the archive before writing anything if a listed image is over the cap."""
        for post, root, source in listed:
            for item in post["media"]:
                if not isinstance(item, dict) or not isinstance(item.get("uri"), str):
                    continue
                uri = _check_uri(item["uri"], source, self.zip_path)
                if PurePosixPath(uri).suffix.lower() in VIDEO_SUFFIXES:
                    continue
                info = self.member(uri, root)
                if info is not None and info.file_size > self.cap:
                    raise MosaicError(
                        f"{self.zip_path}: refused: member {info.filename!r} is "
                        f"{info.file_size / 1e6:.0f} MB, over the {self.cap / 1e6:.0f} MB cap")

    def save(self, info: zipfile.ZipInfo, uri: str) -> manifest.ImageRecord | None:
        data = _read_member(self.archive, info, self.cap, self.zip_path)
        kind = sniff_image(data[:16]) or sniff_heif(data[:_FTYP_BYTES])
        if kind is None:
            log.warning("%s: %s is not a JPEG, PNG, WebP, HEIC or AVIF image; skipped",
                        self.zip_path, uri)
            self.summary.missing.append(uri)
            return None
        sha = hashlib.sha256(data).hexdigest()
        final = self.out_dir / f"{sha}.{kind}"
        if not final.is_file():
            with atomic_path(final) as tmp:
                tmp.write_bytes(data)
            self.created.append(final)
            self.summary.new_files += 1
        self.summary.images += 1
        return {"uri": uri, "sha256": sha, "file": final.name, "bytes": len(data)}

    def add_post(self, post: dict[str, Any], root: str, source: str) -> None:
        media = [m for m in post["media"] if isinstance(m, dict) and isinstance(m.get("uri"), str)]
        if not media:
            return
        first = media[0]
        title = fix_mojibake(str(post.get("title") or first.get("title") or "")) or None
        stamp = post.get("creation_timestamp", first.get("creation_timestamp"))
        key = f"export:{_check_uri(first['uri'], source, self.zip_path)}"
        if key in self.entries:
            return
        images, videos = [], 0
        for item in media:
            uri = _check_uri(item["uri"], source, self.zip_path)
            suffix = PurePosixPath(uri).suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                videos += 1
                continue
            info = self.member(uri, root)
            if info is None or suffix not in IMAGE_SUFFIXES:
                log.warning("%s: %s is listed in %s but %s; skipped", self.zip_path, uri,
                            source, "missing" if info is None else "not an image")
                self.summary.missing.append(uri)
                continue
            saved = self.save(info, uri)
            if saved is not None:
                saved["title"] = fix_mojibake(str(item.get("title") or "")) or None
                images.append(saved)
        self.summary.skipped_videos += videos
        self.summary.posts += 1
        about = manifest.Post(key, None, manifest.timestamp_iso(stamp), "export", videos,
                              title=title, exported=True)
        if images:
            self.entries[key] = manifest.done_entry(about, images)
        elif videos:
            self.entries[key] = manifest.video_entry(about)
        else:
            self.entries[key] = manifest.failed_entry(about, "no readable image in the ZIP")


def import_instagram_export(zip_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                            max_member_bytes: int = MAX_MEMBER_BYTES) -> ImportSummary:
    """Import the post images of an Instagram data export into ``out_dir``.

    Parameters
    ----------
    zip_path : path-like
        The export ZIP (JSON format).
    out_dir : path-like
        Where the images go (created if missing), with ``manifest.json``.
    max_member_bytes : int
        Cap on any one member read from the ZIP.

    Returns
    -------
    ImportSummary
        Posts, images, new files, skipped videos and missing media.

    Raises
    ------
    MosaicError
        Not a ZIP, an HTML export, no posts list, unreadable JSON, or a hostile archive
        (zip-slip or absolute path, symbolic link, member over the cap); or ``out_dir``
        holds a ``manifest.json`` that is not photo-mosaic's (nothing is written then).
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise MosaicError(f"{zip_path}: file not found")
    if not zipfile.is_zipfile(zip_path):
        raise MosaicError(f"{zip_path} is not a ZIP file")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MosaicError(f"`out` {out}: cannot create the folder ({exc.strerror})") from None
    manifest.check_manifest(out)  # before anything is written: another tool's file stays
    remove_stale_temporaries(out)
    with zipfile.ZipFile(zip_path) as archive:
        check_archive(archive, zip_path)
        posts_files = _find_posts_files(archive, zip_path)
        roots = {root for root, _ in posts_files}
        layout = "root" if roots == {""} else "your_instagram_activity"
        summary = ImportSummary(str(zip_path), str(out), layout)
        importer = _Importer(archive, zip_path, out, max_member_bytes, summary)
        listed = [(post, root, info.filename) for root, info in posts_files
                  for post in _post_list(_read_json(archive, info, max_member_bytes, zip_path))]
        importer.check_sizes(listed)
        try:
            for post, root, source in listed:
                importer.add_post(post, root, source)
        except BaseException:
            for path in importer.created:  # refused: leave the folder as it was
                path.unlink(missing_ok=True)
            raise
    manifest.update_posts(out, importer.entries,
                          {"kind": "instagram-export", "zip": zip_path.name})
    return summary
