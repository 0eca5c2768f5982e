"""The scrape flow: an Instagram profile (or a list of post URLs) -> photos + manifest.json.

The same flow runs from ``mosaic scrape`` and as the deployment ``scrape-instagram/nightly``
(``prefect.yaml``); its one parameter is a
:class:`~mosaic.sources.instagram.options.ScrapeOptions`, so the Prefect UI draws its form.
One task lists the posts (headless Chromium on the profile), then one mapped task per post
fetches its page and images, with retries for network faults and a cache on the post URL,
so rerunning (or retrying) a failed run fetches only the posts that failed. A markdown
artifact summarises the run (with a few of the photos), a table artifact times its stages
and a progress artifact follows it as posts finish.

Posts deleted from the site (404/410 on the page, or on every size of every image) are
*gone*, not failed: they are named in one warning and in the artifact, recorded in the
manifest, and the run completes. A profile that shows fewer posts than it states (guests
see about a dozen) is one warning too, in the log and atop the artifact, naming the
parameters that log in (``cookies``, ``cookies_from_browser``). Cookies come from
``tasks.cookies``: a file, a browser profile on the worker, a Secret block or a variable.
A stop (Ctrl-C, SIGTERM, a cancelled run) reaching the flow asks every fetch of the
process to stop at once (``download.request_stop``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
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
from mosaic.outputs import prepare_run_folder
from mosaic.processes import reclaim_stop_signals
from mosaic.sources import manifest
from mosaic.sources.download.stop import clear_stop, request_stop
from mosaic.sources.instagram.errors import LoginRequiredError
from mosaic.sources.instagram.options import ScrapeOptions
from mosaic.sources.instagram.post import record_failure
from mosaic.sources.instagram.settings import ScrapeSettings
from mosaic.sources.instagram.summary import (
    failure_reason,
    gone_warning,
    hidden_posts_warning,
    summarise,
    summary_markdown,
)
from mosaic.sources.instagram.urls import login_wall_message
from tasks import scrape as tasks
from tasks.cookies import cookies_file

log = logging.getLogger("mosaic.scrape")

WORKERS = 4
"""Posts fetched at once; page loads still keep ``delay`` apart (a shared schedule)."""


class ScrapeIncompleteError(RuntimeError):
    """Some posts could not be fetched; ``summary`` says which and why."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


@flow(name="scrape-instagram", persist_result=False,
      task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def scrape_instagram(options: ScrapeOptions) -> dict[str, Any]:
    """Download the photos of a profile (or of listed posts) into ``options.out``.

    Parameters
    ----------
    options : ScrapeOptions
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
    artifacts.route_logs()
    reclaim_stop_signals()  # the command line's SIGTERM, not the engine's (see there)
    options = options.resolved()
    clear_stop()  # a stop of an earlier run in this process is not this run's
    try:
        with cookies_file(options.cookies, options.cookies_secret, options.cookies_env,
                          browser=options.cookies_from_browser,
                          browser_profile=options.browser_profile,
                          base_url=options.base_url) as cookies:
            log.info("scraping %s into %s", _source(options), options.out)
            return _scrape(options, options.settings(cookies))
    except BaseException as exc:
        if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM, a cancelled run
            request_stop()  # the post tasks in other threads stop at their next wait
        raise


def _source(options: ScrapeOptions) -> str:
    return f"@{options.username}" if options.username else "post list"


def _scrape(options: ScrapeOptions, settings: ScrapeSettings) -> dict[str, Any]:
    """The body of :func:`scrape_instagram`: list, fetch, record, summarise."""
    started = time.perf_counter()
    out_dir = options.out or ""
    stale = _prepare_output(options, settings.base_url)
    host_limit = tasks.host_rate_limit()
    if options.username:
        listing = tasks.list_posts(options.username, settings, options.workdir,
                                   options.max_posts, host_limit)
    else:
        listing = {"posts": list(options.post_urls), "reels": list(options.reels)}
    listed = time.perf_counter()
    post_task = tasks.scrape_post.with_options(
        result_storage=Path(options.workdir or "") / "prefect-results",
        retries=options.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=options.retry_delay))
    results, failures, cached = _fetch_posts(post_task, listing["posts"], out_dir, settings,
                                             host_limit)
    fetched = time.perf_counter()
    _complete_manifest(out_dir, results.values())
    _record_failures(out_dir, failures)
    summary = summarise(_source(options), out_dir, listing, results, failures, cached, stale,
                        time.perf_counter() - started, with_cookies=bool(settings.cookies))
    hidden = hidden_posts_warning(summary)
    if hidden is not None:
        log.warning("%s", hidden)  # passed whole: the command line words it with flags
    warning = gone_warning(summary)
    if warning:
        log.warning("%s", warning)
    preview = artifacts.photos_preview(out_dir, (r["entry"] for r in results.values()))
    create_markdown_artifact(markdown=summary_markdown(summary) + preview,
                             key="instagram-scrape",
                             description=artifacts.scrape_description(summary))
    artifacts.publish_scrape_timings({"list posts": listed - started,
                                      "fetch posts": fetched - listed},
                                     time.perf_counter() - started)
    _raise_for_failures(summary, failures, settings.base_url)
    return summary


def run_scrape(options: ScrapeOptions, return_state: bool = False) -> Any:
    """Run :func:`scrape_instagram` keeping Prefect's results in the run's work folder.

    Without this, Prefect would store a failed run's exception under ``~/.prefect``.

    Parameters
    ----------
    options : ScrapeOptions
        The scrape.
    return_state : bool
        Return the final Prefect state instead of the summary (and do not raise).

    Returns
    -------
    dict or prefect.State
        The summary, or the state.
    """
    options = options.resolved()
    storage = Path(options.workdir or "") / "prefect-results"
    flow_run = scrape_instagram.with_options(result_storage=storage)
    return flow_run(options, return_state=return_state)


def _prepare_output(options: ScrapeOptions, site: str) -> int:
    """Check and create the folders, drop a killed run's partial files, note the source.

    A ``manifest.json`` there that is not ours stops the run before anything is touched.
    """
    prepare_run_folder(Path(options.workdir or ""))
    out_dir = options.out or ""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    manifest.check_manifest(out_dir)
    stale = len(remove_stale_temporaries(out_dir))
    source = ({"kind": "instagram", "username": options.username, "site": site}
              if options.username else {"kind": "instagram-posts", "site": site})
    manifest.update_posts(out_dir, {}, source)
    return stale


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


def _record_failures(out_dir: str, failures: dict[str, BaseException]) -> None:
    for url, error in failures.items():
        record_failure(out_dir, url, failure_reason(error))


def _complete_manifest(out_dir: str, results: Iterable[dict[str, Any]]) -> None:
    """Add entries served from Prefect's cache that the manifest lacks (it was deleted)."""
    known = manifest.read_manifest(out_dir)["posts"]
    missing = {r["code"]: r["entry"] for r in results if r["code"] not in known}
    if missing:
        manifest.update_posts(out_dir, missing)


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


__all__ = ["ScrapeIncompleteError", "run_scrape", "scrape_instagram"]
