"""The scrape flow: an Instagram profile (or a list of post URLs) -> photos + manifest.json.

Wiring only: one task lists the posts (headless Chromium on the profile), then one mapped
task per post fetches its page and images, with retries for network faults and a cache on
the post URL, so rerunning (or retrying) a failed run fetches only the posts that failed.
A markdown artifact summarises the run (with a few of the photos), a table artifact times
its stages and a progress artifact follows it as posts finish.

Posts deleted from the site (404/410 on the page, or on every size of every image) are
*gone*, not failed: they are named in one warning and in the artifact, recorded in the
manifest, and the run completes. A stop (Ctrl-C, SIGTERM, a cancelled run) reaching the
flow asks every fetch of the process to stop at once (``download.request_stop``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, unmapped
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from flows import artifacts
from mosaic.files import OutputError, remove_stale_temporaries
from mosaic.sources import manifest
from mosaic.sources.download import clear_stop, request_stop
from mosaic.sources.instagram_web import (
    LoginRequiredError,
    ScrapeSettings,
    login_wall_message,
    record_failure,
)
from tasks import scrape as tasks

log = logging.getLogger("mosaic.scrape")

WORKERS = 4
"""Posts fetched at once; page loads still keep ``delay`` apart (a shared schedule)."""
NAMED_IN_WARNING = 10
"""Gone posts the warning names (the artifact and the manifest list them all)."""


class ScrapeIncompleteError(RuntimeError):
    """Some posts could not be fetched; ``summary`` says which and why."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class ScrapeRequest:
    """One scrape.

    Attributes
    ----------
    out_dir : str
        Where the photos and ``manifest.json`` go.
    workdir : str
        The run's work folder (task results, the temporary browser profile).
    settings : ScrapeSettings
        Site, image hosts, cookies file, delay, timeouts.
    username : str or None
        The profile to scrape; None when ``post_urls`` are given instead.
    post_urls : tuple of str
        Post URLs to fetch (the ``scrape posts`` mode).
    reels : tuple of str
        Reel URLs from the list: videos, reported as skipped.
    max_posts : int or None
        Newest posts to take from the profile (None: all).
    retries : int
        Task retries per post after the in-request retries.
    retry_delay : float
        Seconds before the first task retry (doubled each time, with jitter).
    """

    out_dir: str
    workdir: str
    settings: ScrapeSettings = field(default_factory=ScrapeSettings)
    username: str | None = None
    post_urls: tuple[str, ...] = ()
    reels: tuple[str, ...] = ()
    max_posts: int | None = None
    retries: int = 3
    retry_delay: float = 2.0


def _gather(futures: list[PrefectFuture[dict[str, Any]]], urls: list[str]
            ) -> tuple[dict[str, dict[str, Any]], dict[str, BaseException], set[str]]:
    """Wait for the post tasks: results and failures by URL, and the URLs served from cache."""
    by_future = {id(future): url for future, url in zip(futures, urls, strict=True)}
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, BaseException] = {}
    cached: set[str] = set()
    progress = create_progress_artifact(progress=0.0, description="posts fetched")
    step = max(1, len(futures) // 20)
    for done, future in enumerate(as_completed(futures), 1):
        url = by_future[id(future)]
        future.wait()
        state = future.state
        value = state.result(raise_on_failure=False)
        if isinstance(value, BaseException):
            failures[url] = value
        else:
            results[url] = value
            if state.name == "Cached":
                cached.add(url)
        if done % step == 0 or done == len(futures):
            update_progress_artifact(progress, 100.0 * done / len(futures))
    return results, failures, cached


def _missing_files(out_dir: str, result: dict[str, Any]) -> bool:
    return not manifest.entry_is_complete(out_dir, result["entry"])


def _summary(request: ScrapeRequest, listing: dict[str, Any],
             results: dict[str, dict[str, Any]], failures: dict[str, BaseException],
             cached: set[str], stale: int, seconds: float) -> dict[str, Any]:
    entries = [result["entry"] for result in results.values()]
    videos = [e for e in entries if e["status"] == manifest.VIDEO]
    with_photos = [e for e in entries if e["status"] in {manifest.DONE, manifest.PARTLY_GONE}]
    return {
        "source": f"@{request.username}" if request.username else "post list",
        "out_dir": request.out_dir,
        "manifest": str(manifest.manifest_path(request.out_dir)),
        "posts_listed": len(listing["posts"]),
        "posts_saved": len(with_photos),
        "video_posts": len(videos),
        "posts_gone": sum(e["status"] == manifest.GONE for e in entries),
        "posts_partly_gone": sum(e["status"] == manifest.PARTLY_GONE for e in entries),
        "gone": _gone(listing["posts"], results, cached),
        "reels_skipped": len(listing["reels"]),
        "video_children_skipped": sum(e["skipped_videos"] for e in with_photos),
        "images": sum(len(e["images"]) for e in entries),
        "new_images": sum(r["new_images"] for url, r in results.items() if url not in cached),
        "posts_reused": sum(bool(r["reused"]) or url in cached for url, r in results.items()),
        "retries": sum(r["retries"] for url, r in results.items() if url not in cached),
        "thumbnails_only": sum(e.get("found_by") == "og:image" for e in entries),
        "failures": [{"url": url, "reason": _reason(error)} for url, error in failures.items()],
        "stale_temporaries_removed": stale,
        "seconds": round(seconds, 1),
    }


def _gone(urls: Iterable[str], results: dict[str, dict[str, Any]], cached: set[str]
          ) -> list[dict[str, Any]]:
    """The posts that are gone from the site (in full or in part), in listing order."""
    done = [(url, results[url]) for url in urls if url in results]
    return [{"url": url, "code": r["code"], "status": r["entry"]["status"],
             "reason": r["entry"].get("error") or "gone",
             "images_saved": len(r["entry"]["images"]),
             "new": not r["reused"] and url not in cached}
            for url, r in done if r["entry"]["status"] in manifest.GONE_STATUSES]


def _warn_gone(summary: dict[str, Any]) -> None:
    """Name, in one warning, the posts this run found gone (earlier runs named the others)."""
    found = [gone for gone in summary["gone"] if gone["new"]]
    if not found:
        return
    named = [f"{g['code']} ({g['reason']}"
             + (f"; {g['images_saved']} saved" if g["images_saved"] else "") + ")"
             for g in found[:NAMED_IN_WARNING]]
    more = len(found) - len(named)
    log.warning("%d post%s gone from the site, recorded as gone in %s and not fetched "
                "again: %s%s", len(found), " is" if len(found) == 1 else "s are",
                summary["manifest"], ", ".join(named),
                f" and {more} more" if more else "")


def _reason(error: BaseException) -> str:
    if isinstance(error, LoginRequiredError):
        return "login wall"
    return str(error) or type(error).__name__


def _markdown(summary: dict[str, Any]) -> str:
    skipped = (summary["video_posts"] + summary["reels_skipped"]
               + summary["video_children_skipped"])
    rows = [
        ("posts listed", summary["posts_listed"]),
        ("posts saved", summary["posts_saved"]),
        ("images", f"{summary['images']} ({summary['new_images']} new this run)"),
        ("skipped videos", f"{skipped} ({summary['video_posts']} video posts, "
                           f"{summary['reels_skipped']} reels, "
                           f"{summary['video_children_skipped']} in carousels)"),
        ("posts already saved", summary["posts_reused"]),
        ("posts gone from the site (404/410)", summary["posts_gone"]),
        ("posts partly gone (some images 404/410)", summary["posts_partly_gone"]),
        ("thumbnails only (og:image)", summary["thumbnails_only"]),
        ("requests retried", summary["retries"]),
        ("failed posts", len(summary["failures"])),
        ("time", f"{summary['seconds']} s"),
    ]
    lines = [f"# Instagram photos: {summary['source']}", "",
             f"Saved in `{summary['out_dir']}` (manifest: `{summary['manifest']}`).", "",
             "| | |", "|---|---|", *[f"| {name} | {value} |" for name, value in rows]]
    if summary["gone"]:
        lines += ["", "## Gone from the site", "",
                  "Deleted posts or images: recorded in the manifest, not fetched again.", "",
                  "| post | status | what is gone | images saved |", "|---|---|---|---|"]
        lines += [f"| {g['url']} | {g['status']} | {g['reason'].replace('|', '/')} | "
                  f"{g['images_saved']} |" for g in summary["gone"]]
    if summary["failures"]:
        lines += ["", "## Failures", "", "| post | reason |", "|---|---|"]
        lines += [f"| {f['url']} | {f['reason'].replace('|', '/')} |"
                  for f in summary["failures"]]
    return "\n".join(lines) + "\n"


def _record_failures(out_dir: str, failures: dict[str, BaseException]) -> None:
    for url, error in failures.items():
        record_failure(out_dir, url, _reason(error))


def _complete_manifest(out_dir: str, results: Iterable[dict[str, Any]]) -> None:
    """Add entries served from Prefect's cache that the manifest lacks (it was deleted)."""
    known = manifest.read_manifest(out_dir)["posts"]
    missing = {r["code"]: r["entry"] for r in results if r["code"] not in known}
    if missing:
        manifest.update_posts(out_dir, missing)


@flow(name="scrape-instagram", persist_result=False,
      task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def scrape_instagram(request: ScrapeRequest) -> dict[str, Any]:
    """Download the photos of a profile (or of listed posts) into ``request.out_dir``.

    Parameters
    ----------
    request : ScrapeRequest
        What to scrape, where to, and how.

    Returns
    -------
    dict
        The run's summary (also the markdown artifact ``instagram-scrape``).

    Raises
    ------
    LoginRequiredError
        The site showed its login wall (posts saved before it are kept).
    ScrapeIncompleteError
        Some posts failed; rerunning fetches only those.
    MosaicError
        The output folder holds a ``manifest.json`` that is not ours, or another input
        error (checked before anything is fetched).
    """
    clear_stop()  # a stop of an earlier run in this process is not this run's
    try:
        return _scrape(request)
    except BaseException as exc:
        if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM, a cancelled run
            request_stop()  # the post tasks in other threads stop at their next wait
        raise


def _scrape(request: ScrapeRequest) -> dict[str, Any]:
    """The body of :func:`scrape_instagram`."""
    started = time.perf_counter()
    out_dir = str(Path(request.out_dir).resolve())
    stale = _prepare_output(out_dir, request)
    workdir = Path(request.workdir).resolve()
    host_limit = tasks.host_rate_limit()
    if request.username:
        listing = tasks.list_posts(request.username, request.settings, str(workdir),
                                   request.max_posts, host_limit)
    else:
        listing = {"posts": list(request.post_urls), "reels": list(request.reels)}
    listed = time.perf_counter()
    post_task = tasks.scrape_post.with_options(
        result_storage=workdir / "prefect-results", retries=request.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=request.retry_delay))
    results, failures, cached = _fetch_posts(post_task, listing["posts"], out_dir,
                                             request.settings, host_limit)
    fetched = time.perf_counter()
    _complete_manifest(out_dir, results.values())
    _record_failures(out_dir, failures)
    summary = _summary(request, listing, results, failures, cached, stale,
                       time.perf_counter() - started)
    summary["out_dir"] = out_dir
    _warn_gone(summary)
    preview = artifacts.photos_preview(out_dir, (r["entry"] for r in results.values()))
    create_markdown_artifact(markdown=_markdown(summary) + preview, key="instagram-scrape",
                             description=artifacts.scrape_description(summary))
    artifacts.publish_scrape_timings({"list posts": listed - started,
                                      "fetch posts": fetched - listed},
                                     time.perf_counter() - started)
    _raise_for_failures(summary, failures, request.settings.base_url)
    return summary


def run_scrape(request: ScrapeRequest, return_state: bool = False) -> Any:
    """Run :func:`scrape_instagram` keeping Prefect's results in the run's work folder.

    Without this, Prefect would store a failed run's exception under ``~/.prefect``.

    Parameters
    ----------
    request : ScrapeRequest
        The scrape.
    return_state : bool
        Return the final Prefect state instead of the summary (and do not raise).

    Returns
    -------
    dict or prefect.State
        The summary, or the state.
    """
    storage = Path(request.workdir).resolve() / "prefect-results"
    flow_run = scrape_instagram.with_options(result_storage=storage)
    return flow_run(request, return_state=return_state)


def _prepare_output(out_dir: str, request: ScrapeRequest) -> int:
    """Check and create the output folder, drop a killed run's partial files, note the source.

    A ``manifest.json`` there that is not ours stops the run before anything is touched.
    """
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    manifest.check_manifest(out_dir)
    stale = len(remove_stale_temporaries(out_dir))
    site = request.settings.base_url
    source = ({"kind": "instagram", "username": request.username, "site": site}
              if request.username else {"kind": "instagram-posts", "site": site})
    manifest.update_posts(out_dir, {}, source)
    return stale


def _fetch_posts(post_task: Any, urls: list[str], out_dir: str, settings: ScrapeSettings,
                 host_limit: str | None = None
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, BaseException], set[str]]:
    """Run one task per post; fetch again the cached posts whose files have gone."""
    run_key = uuid.uuid4().hex
    futures = post_task.map(post_url=urls, out_dir=unmapped(out_dir),
                            settings=unmapped(settings), run_key=unmapped(run_key),
                            host_limit=unmapped(host_limit))
    results, failures, cached = _gather(list(futures), urls)
    stale = [url for url in cached if _missing_files(out_dir, results[url])]
    if stale:
        refreshed = post_task.with_options(refresh_cache=True).map(
            post_url=stale, out_dir=unmapped(out_dir), settings=unmapped(settings),
            run_key=unmapped(run_key), host_limit=unmapped(host_limit))
        again, again_failed, _ = _gather(list(refreshed), stale)
        results.update(again)
        failures.update(again_failed)
        for url in again_failed:
            results.pop(url, None)
        cached -= set(stale)
    return results, failures, cached


def _raise_for_failures(summary: dict[str, Any], failures: dict[str, BaseException],
                        base_url: str) -> None:
    if any(isinstance(error, LoginRequiredError) for error in failures.values()):
        fetched = summary["posts_saved"] + summary["video_posts"]
        raise LoginRequiredError(
            f"{login_wall_message(base_url)} ({fetched} of {summary['posts_listed']} posts "
            "fetched; rerun to continue)")
    disk = next((error for error in failures.values() if isinstance(error, OutputError)), None)
    if disk is not None:  # a full or read-only disk fails every post: one line, not a list
        raise OutputError(f"{disk} ({len(failures)} of {summary['posts_listed']} posts not "
                          "saved; rerun when there is room)")
    if failures:
        first = summary["failures"][0]
        raise ScrapeIncompleteError(
            f"{len(failures)} of {summary['posts_listed']} posts failed (first: "
            f"{first['url']}: {first['reason']}); run the same command again, or retry the "
            "flow run, to fetch only them",
            summary)


__all__ = ["ScrapeIncompleteError", "ScrapeRequest", "run_scrape", "scrape_instagram"]
