"""The scrape's tasks: list a profile's posts, then fetch each post.

Retries use exponential back-off with jitter and only happen for network faults and rate
limits (``retry_condition_fn``), never for a 404 or a login wall, and never once the run
is being stopped (a Ctrl-C, SIGTERM or cancellation is not a fault to retry). ``scrape-post`` caches
on its inputs (the post URL and the output folder), so rerunning a failed flow run
fetches only the posts that failed.

Every page load from the site (the profile, each post) first takes a slot of the global
concurrency limit :data:`HOST_RATE_LIMIT` when the Prefect server has one (``make deploy``
creates it, with a slot decay: a rate limit), so scrapes running at once on any number of
workers share one polite request rate.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
from prefect import Task, task
from prefect.cache_policies import INPUTS, NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State, TaskRun
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound
from prefect.tasks import exponential_backoff

from mosaic.sources import manifest
from mosaic.sources.download.errors import is_retryable
from mosaic.sources.download.stop import stop_requested
from mosaic.sources.instagram import post, profile, urls
from mosaic.sources.instagram.settings import ScrapeSettings

log = logging.getLogger("mosaic.scrape")

HOST_RATE_LIMIT = "instagram-requests"
"""Name of the global concurrency limit (with slot decay) shared by every scrape's page loads."""

POST_CACHE_POLICY = INPUTS - "settings" - "run_key" - "host_limit"
"""A post's result is keyed on its URL and the output folder only: politeness, timeouts
and the run's identity do not change what a post holds."""


def host_rate_limit(name: str = HOST_RATE_LIMIT) -> str | None:
    """The global concurrency limit page loads take a slot of, if the server has it.

    Parameters
    ----------
    name : str
        The limit's name.

    Returns
    -------
    str or None
        ``name`` when the limit exists, None otherwise (only the run's own ``delay``
        spaces the requests then).
    """
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            log.info("no global concurrency limit %r on this Prefect server: only this "
                     "run's delay spaces its requests (`make deploy` creates the limit)", name)
            return None
    return name


def take_slot(host_limit: str | None) -> None:
    """Wait for a slot of the site's rate limit (nothing to wait for without one).

    Asks the server directly, sleeping as its ``Retry-After`` says while the limit is
    full, and emits Prefect's ``prefect.concurrency-limit.acquired`` event (the UI lists
    it under the limit and the run). ``prefect.concurrency.sync.rate_limit`` would do the
    same through one background queue per process, one acquisition after the other;
    each is a database write, which took up to 2 s on SQLite while task runs were being
    recorded, so four posts fetched at once waited for each other's acquisitions.

    Parameters
    ----------
    host_limit : str or None
        The global concurrency limit (with slot decay), or None for no limit.
    """
    if not host_limit:
        return
    with get_client(sync_client=True) as client:
        while True:
            try:
                response = client.increment_concurrency_slots(names=[host_limit], slots=1,
                                                              mode="rate_limit")
                break
            except httpx.HTTPStatusError as error:
                if error.response.status_code != httpx.codes.LOCKED:
                    raise
                time.sleep(float(error.response.headers.get("Retry-After", "1")))
    for limit in response.json():
        emit_event("prefect.concurrency-limit.acquired", resource={
            "prefect.resource.id": f"prefect.concurrency-limit.{limit['id']}",
            "prefect.resource.name": limit["name"], "slots-acquired": "1",
            "limit": str(limit["limit"])})


def retry_on_network_faults(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry a failed task run only for network faults and rate limits (not 404s).

    Parameters
    ----------
    task, task_run : object
        The task and its run (unused; part of Prefect's signature).
    state : prefect.State
        The failed state; its exception decides.

    Returns
    -------
    bool
        True when the exception is transient (see ``download.is_retryable``); False for
        everything else, for a ``KeyboardInterrupt`` or other ``BaseException`` that is
        not an ``Exception`` (a stop, whatever the engine does with it), and for any
        error once a stop was requested (``download.request_stop``).
    """
    del task, task_run
    if stop_requested():
        return False
    error = state.result(raise_on_failure=False)
    return isinstance(error, Exception) and is_retryable(error)


@task(name="list-posts", retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5),
      retry_jitter_factor=0.5, retry_condition_fn=retry_on_network_faults,
      cache_policy=NO_CACHE, persist_result=False)
def list_posts(username: str, settings: ScrapeSettings, workdir: str, max_posts: int | None,
               host_limit: str | None = None) -> dict[str, Any]:
    """Scroll the profile and list its posts; see ``profile.list_profile_posts``."""
    take_slot(host_limit)
    listing = profile.list_profile_posts(username, settings, workdir, max_posts)
    return {"posts": list(listing.posts), "reels": list(listing.reels),
            "expected": listing.expected, "scrolls": listing.scrolls, "found": listing.found,
            "login_wall": listing.login_wall, "short": listing.short}


@task(name="scrape-post", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_jitter_factor=0.5, retry_condition_fn=retry_on_network_faults,
      cache_policy=POST_CACHE_POLICY, persist_result=True, result_serializer="json",
      task_run_name="scrape-post-{post_url}")
def scrape_post(post_url: str, out_dir: str, settings: ScrapeSettings, run_key: str,
                host_limit: str | None = None) -> dict[str, Any]:
    """Fetch one post and save its images; see ``post.scrape_post``."""
    if manifest.finished_entry(out_dir, urls.post_code(post_url)) is None:
        take_slot(host_limit)  # a post the folder already holds loads no page
    return post.scrape_post(post_url, out_dir, settings, run_key)
