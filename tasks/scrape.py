"""The scrape's tasks: list a profile's posts, then fetch each post.

Retries use exponential back-off with jitter and only happen for network faults and rate
limits (``retry_condition_fn``), never for a 404 or a login wall. ``scrape-post`` caches
on its inputs (the post URL and the output folder), so rerunning a failed flow run
fetches only the posts that failed.
"""

from __future__ import annotations

from typing import Any

from prefect import Task, task
from prefect.cache_policies import INPUTS, NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff

from mosaic.sources import instagram_web
from mosaic.sources.download import is_retryable
from mosaic.sources.instagram_web import ScrapeSettings

POST_CACHE_POLICY = INPUTS - "settings" - "run_key"
"""A post's result is keyed on its URL and the output folder only: politeness, timeouts
and the run's identity do not change what a post holds."""


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
        True when the exception is transient (see ``download.is_retryable``).
    """
    del task, task_run
    error = state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_retryable(error)


@task(name="list-posts", retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5),
      retry_jitter_factor=0.5, retry_condition_fn=retry_on_network_faults,
      cache_policy=NO_CACHE, persist_result=False)
def list_posts(username: str, settings: ScrapeSettings, workdir: str, max_posts: int | None
               ) -> dict[str, Any]:
    """Scroll the profile and list its posts; see ``instagram_web.list_profile_posts``."""
    listing = instagram_web.list_profile_posts(username, settings, workdir, max_posts)
    return {"posts": list(listing.posts), "reels": list(listing.reels),
            "expected": listing.expected, "scrolls": listing.scrolls}


@task(name="scrape-post", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_jitter_factor=0.5, retry_condition_fn=retry_on_network_faults,
      cache_policy=POST_CACHE_POLICY, persist_result=True, result_serializer="json",
      task_run_name="scrape-post-{post_url}")
def scrape_post(post_url: str, out_dir: str, settings: ScrapeSettings, run_key: str
                ) -> dict[str, Any]:
    """Fetch one post and save its images; see ``instagram_web.scrape_post``."""
    return instagram_web.scrape_post(post_url, out_dir, settings, run_key)
