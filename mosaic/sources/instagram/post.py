"""One post end to end: its page fetched politely, its images saved, its manifest entry.

Images are saved by :mod:`mosaic.sources.download.images`; ``manifest.json`` records each
post as it completes (and after every image), so a rerun fetches only what is missing.

Gone is not failed: when a size answers 404/410 the next smaller one is tried; an image
none of whose sizes is left is *gone*, and so is a post whose page answers 404/410. Such
posts are recorded as ``gone`` (or ``partly-gone`` when some of their images were saved)
and count as finished; 403 (an expired signed URL) stays a failure.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from mosaic.sources import manifest
from mosaic.sources.download.errors import PermanentFetchError, is_gone
from mosaic.sources.download.fetch import fetch_page, make_session
from mosaic.sources.download.hosts import AllowList
from mosaic.sources.download.images import download_image
from mosaic.sources.download.stop import check_stop
from mosaic.sources.instagram.errors import LoginRequiredError
from mosaic.sources.instagram.parse import ImageRef, PostMedia, parse_post_page
from mosaic.sources.instagram.politeness import login_wall_seen, note_login_wall, polite_wait
from mosaic.sources.instagram.settings import ScrapeSettings
from mosaic.sources.instagram.urls import is_login_url, login_wall_message, post_code

log = logging.getLogger("mosaic.instagram")


def _image_key(url: str) -> str:
    """Identify an image across page loads: CDN URLs keep their path, not their signature."""
    return urlsplit(url).path


def _post(url: str, media: PostMedia) -> manifest.Post:
    """What the manifest says of a post whose page was read."""
    return manifest.Post(media.code, url, media.date, media.found_by, media.skipped_videos,
                         caption=media.caption)


def _result(code: str, entry: manifest.PostEntry, new: int, retries: int, reused: bool
            ) -> dict[str, Any]:
    return {"code": code, "entry": entry, "new_images": new, "retries": retries,
            "reused": reused}


def scrape_post(url: str, out_dir: str | os.PathLike[str], settings: ScrapeSettings,
                run_key: str | None = None) -> dict[str, Any]:
    """Fetch one post and save its images into ``out_dir``; record it in the manifest.

    A post the manifest already records as finished, with its files present, is not
    fetched again; images saved before an interruption are not downloaded again. A post
    whose page answers 404/410 (or says it isn't available), or whose images answer
    404/410 on every size, is recorded as ``gone`` (``partly-gone`` when some images were
    saved) and returned, not raised: it is finished.

    Parameters
    ----------
    url : str
        The post URL (``.../p/CODE/``).
    out_dir : path-like
        The output folder (it must exist).
    settings : ScrapeSettings
        Site, hosts, cookies, delay and fetch settings.
    run_key : str, optional
        Identifies the run: once one post of a run meets the login wall, the others stop
        without a request.

    Returns
    -------
    dict
        ``code``, ``entry`` (the manifest entry), ``new_images`` (files added),
        ``retries`` (HTTP requests repeated after a fault), ``reused`` (True when the
        manifest already had the post).

    Raises
    ------
    LoginRequiredError
        The site asks to log in.
    FetchError
        The page or an image could not be fetched (a 403 or another permanent fault, or
        a transient one after the retries).
    StopRequested
        The run is being stopped.
    """
    check_stop()
    code = post_code(url)
    done = manifest.finished_entry(out_dir, code)
    if done is not None:
        return _result(code, done, 0, 0, True)
    if login_wall_seen(run_key):
        raise LoginRequiredError(login_wall_message(settings.base_url))
    with make_session(settings.fetch, settings.cookies) as session:
        try:
            media, retries = _fetch_media(session, url, code, settings, run_key)
        except PermanentFetchError as exc:
            if not is_gone(exc):
                raise
            entry = _record_gone_page(out_dir, url, code, f"the post page answers HTTP "
                                                          f"{exc.status}")
            return _result(code, entry, 0, 0, False)
        if media.found_by == "unavailable":
            entry = _record_gone_page(out_dir, url, code, "the post page says it isn't "
                                                          "available")
            return _result(code, entry, 0, retries, False)
        if media.is_video:
            entry = manifest.video_entry(_post(url, media))
            manifest.update_posts(out_dir, {code: entry})
            return _result(code, entry, 0, retries, False)
        if not media.images:
            raise PermanentFetchError(f"no image found in the page of post {code}", url)
        entry, new, image_retries = _save_images(session, url, media, out_dir, settings)
    return _result(code, entry, new, retries + image_retries, False)


def _fetch_media(session: requests.Session, url: str, code: str, settings: ScrapeSettings,
                 run_key: str | None) -> tuple[PostMedia, int]:
    """Load a post page politely and read it; return its media and the retries it took."""
    polite_wait(urlsplit(settings.base_url).netloc, settings.delay)
    page = fetch_page(session, url, settings.page_hosts(), settings.fetch)
    try:
        if is_login_url(page.url):
            raise LoginRequiredError(login_wall_message(settings.base_url))
        return parse_post_page(page.text, code, page.url), page.attempts - 1
    except LoginRequiredError:
        note_login_wall(run_key)
        raise


def _record_gone_page(out_dir: str | os.PathLike[str], url: str, code: str, reason: str
                      ) -> manifest.PostEntry:
    """Record a post whose page is gone, keeping images an interrupted run had saved."""
    previous = manifest.read_manifest(out_dir)["posts"].get(code) or {}
    images = [image for image in previous.get("images", [])
              if (Path(out_dir) / image["file"]).is_file()]
    post = manifest.Post.from_previous(code, url, previous)
    entry = (manifest.partly_gone_entry(post, images, reason) if images
             else manifest.gone_entry(post, reason))
    manifest.update_posts(out_dir, {code: entry})
    return entry


@dataclass(frozen=True)
class _Download:
    """How fetching one image (in any of its sizes) went."""

    record: manifest.ImageRecord | None
    """The manifest record of the size saved; None when every size is gone."""
    new: bool = False
    retries: int = 0
    gone_statuses: tuple[int, ...] = ()
    """The 404/410 statuses the larger sizes (or all of them) answered."""


def _download_any_size(session: requests.Session, code: str, ref: ImageRef,
                       out_dir: str | os.PathLike[str], allow: AllowList,
                       settings: ScrapeSettings) -> _Download:
    """Save the largest size of ``ref`` the site still has.

    A size that answers 404/410 gives way to the next smaller one; any other error
    (a 403, a transient fault after its retries) is raised: a rerun tries again.
    """
    statuses: list[int] = []
    for size in ref.sizes():
        try:
            image = download_image(session, size.url, out_dir, allow, settings.fetch)
        except PermanentFetchError as exc:
            if not is_gone(exc) or exc.status is None:
                raise
            statuses.append(exc.status)
            continue
        if statuses:
            log.info("post %s: saved a smaller size of an image (%d larger sizes answer "
                     "HTTP %s)", code, len(statuses), "/".join(map(str, sorted(set(statuses)))))
        record = {"url": size.url, "sha256": image.sha256, "file": image.file,
                  "bytes": image.bytes, "width": size.width, "height": size.height}
        return _Download(record, image.new, image.attempts - 1, tuple(statuses))
    return _Download(None, gone_statuses=tuple(statuses))


def _progress_entry(post: manifest.Post, images: list[manifest.ImageRecord], gone: list[str],
                    total: int, statuses: Iterable[int]) -> manifest.PostEntry:
    """The entry of a post once ``images`` are saved and ``gone`` found gone, of ``total``."""
    error = _gone_reason(len(gone), total, statuses) if gone else None
    if len(images) + len(gone) < total:
        return manifest.partial_entry(post, images, gone, error)
    if error is None:
        return manifest.done_entry(post, images)
    if images:
        return manifest.partly_gone_entry(post, images, error, gone)
    return manifest.gone_entry(post, error, gone)


def _gone_reason(gone: int, total: int, statuses: Iterable[int]) -> str:
    answer = "HTTP " + "/".join(map(str, sorted(set(statuses))))
    if total == 1:
        return f"every size of its image answers {answer}"
    if gone == total:
        return f"every size of its {total} images answers {answer}"
    return f"every size of {gone} of its {total} images answers {answer}"


def _save_images(session: requests.Session, url: str, media: PostMedia,
                 out_dir: str | os.PathLike[str], settings: ScrapeSettings
                 ) -> tuple[manifest.PostEntry, int, int]:
    """Download a post's images, skipping those an interrupted run saved; record each one.

    Returns the post's final manifest entry, how many files are new, and the retries it
    took.
    """
    previous = manifest.read_manifest(out_dir)["posts"].get(media.code) or {}
    saved = {_image_key(image["url"]): image for image in previous.get("images", [])
             if (Path(out_dir) / image["file"]).is_file()}
    allow = settings.image_hosts()
    images: list[manifest.ImageRecord] = []
    gone: list[str] = []
    statuses: list[int] = []
    new = retries = 0
    total = len(media.images)
    post = _post(url, media)
    entry = _progress_entry(post, images, gone, total, statuses)  # before any image
    for ref in media.images:
        check_stop()  # between images: a stop does not wait for the whole carousel
        record = next((saved[key] for key in map(_image_key, (s.url for s in ref.sizes()))
                       if key in saved), None)
        if record is None:
            outcome = _download_any_size(session, media.code, ref, out_dir, allow, settings)
            retries += outcome.retries
            new += int(outcome.new)
            record = outcome.record
            if record is None:
                gone.append(ref.url)
                statuses += outcome.gone_statuses
        if record is not None:
            images.append(record)
        entry = _progress_entry(post, images, gone, total, statuses)
        manifest.update_posts(out_dir, {media.code: entry})
    return entry, new, retries


def record_failure(out_dir: str | os.PathLike[str], url: str, reason: str) -> None:
    """Mark post ``url`` as failed in the manifest, keeping images it had already saved."""
    code = post_code(url)
    previous = manifest.read_manifest(out_dir)["posts"].get(code) or {}
    if previous.get("status") in manifest.FINISHED_STATUSES:
        return
    entry = manifest.failed_entry(manifest.Post.from_previous(code, url, previous), reason,
                                  previous.get("images", []), previous.get("gone_images", []))
    manifest.update_posts(out_dir, {code: entry})
