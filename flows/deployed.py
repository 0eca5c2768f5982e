"""Deployment entrypoints: the build and scrape flows with plain (JSON) parameters.

``prefect.yaml`` deploys these two flows. They are the flows ``build-mosaic`` and
``scrape-instagram`` (same names, so runs started from the CLI and from a deployment sit
together in the UI), taking strings and numbers the UI and ``prefect deployment run -p``
can fill in. Each runs the body of :func:`flows.build_mosaic.build_mosaic` or
:func:`flows.scrape_instagram.scrape_instagram` inside its own flow run (no subflow), so
the tasks and artifacts belong to the deployment's run, and retrying that run takes the
posts that finished from the cache.

Relative paths are relative to the checkout the deployment was made from (the pull step
``set_working_directory`` goes there before the flow starts). ``{username}`` in a path
parameter stands for the run's Instagram account (``username`` of a scrape, ``instagram``
of a build), so one deployment serves any number of accounts, each run in its own folders.

Instagram cookies are never a parameter: a scrape looks them up when it starts, first in
the Prefect Secret block ``cookies_secret`` (the text of a Netscape ``cookies.txt``),
then in the environment variable ``cookies_env`` (a path to such a file, or its text), and
runs without cookies when neither exists. Text is written to a private temporary file
(mode 0600) for the run and deleted afterwards.

:func:`parameter_sets` is the build step ``prefect.yaml`` uses to read the deployments'
parameter sets from ``deployments/params/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.build_mosaic import build_mosaic
from flows.scrape_instagram import WORKERS, ScrapeRequest, scrape_instagram
from mosaic.errors import MosaicError
from mosaic.importance import check_segmenter, check_weights
from mosaic.options import BuildOptions, check_choices
from mosaic.preflight import check_build
from mosaic.sources.download import (
    DEFAULT_ALLOWED_HOSTS,
    AllowList,
    FetchSettings,
    RetryPolicy,
    load_cookie_jar,
)
from mosaic.sources.instagram_web import (
    DEFAULT_BASE_URL,
    ScrapeSettings,
    check_username,
    normalise_base_url,
)
from mosaic.steps import LayoutRequest, WeightRequest

log = logging.getLogger("mosaic.deployed")

RUNS = Path("mosaic-runs")
SAMPLE_PHOTOS = "samples/photos"
SAMPLE_TARGET = "samples/targets/obama.jpg"
COOKIES_SECRET = "instagram-cookies"
COOKIES_ENV = "MOSAIC_INSTAGRAM_COOKIES"
ACCOUNT = "{username}"
"""In a path parameter: the run's account. As a whole parameter set value: the account
named when deploying (``$MOSAIC_INSTAGRAM_USERNAME``)."""


def _route_logs() -> None:
    """Let the ``mosaic`` loggers' INFO records through to the run's logs.

    ``PREFECT_LOGGING_EXTRA_LOGGERS=mosaic`` (set by ``prefect.yaml`` and ``make ui``)
    attaches Prefect's API handler to the ``mosaic`` logger; its level decides what
    reaches the UI, and Python's default (WARNING, from the root logger) would drop the
    progress messages.
    """
    logger = logging.getLogger("mosaic")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def for_account(path: str, account: str | None, parameter: str) -> str:
    """``path`` with :data:`ACCOUNT` replaced by the run's account.

    Raises
    ------
    MosaicError
        The path mentions the account but the run has none.
    """
    if ACCOUNT not in path:
        return path
    if not account:
        raise MosaicError(f"{parameter} {path!r} names {ACCOUNT} but this run has no "
                          "Instagram account (parameter instagram or username)")
    return path.replace(ACCOUNT, account)


def build_options(photos: str, target: str, out: str, workdir: str | None,
                  layout: LayoutRequest, weights: str, method: str, metric: str, crops: int,
                  compare: bool) -> BuildOptions:
    """Check a deployment's build parameters and turn them into :class:`BuildOptions`.

    Raises
    ------
    MosaicError
        A parameter that cannot work (unknown method, missing folder, bad grid...).
    """
    check_choices(method, metric, crops, prefix="")
    layout.check()
    weighting = WeightRequest(mode=weights)
    check_weights(weighting.mode, weighting.face_weight, weighting.person_weight,
                  weighting.falloff)
    if weighting.mode != "none":
        check_segmenter(weighting.segmenter)
    if not Path(photos).is_dir():
        raise MosaicError(f"photos folder {Path(photos).resolve()} does not exist")
    if not Path(target).is_file():
        raise MosaicError(f"target {Path(target).resolve()} does not exist")
    run_dir = Path(workdir) if workdir else Path(out).parent
    options = BuildOptions(photos=photos, target=target, out=out, workdir=str(run_dir),
                           metrics=str(run_dir / "metrics.json"), layout=layout,
                           weighting=weighting, method=method, metric=metric, crops=crops,
                           compare=compare)
    check_build(options)  # the same checks as the command line: nothing of the user's lost
    return options


@flow(name="build-mosaic", log_prints=True, persist_result=False)
def build_mosaic_deployed(
    photos: str = SAMPLE_PHOTOS,
    target: str = SAMPLE_TARGET,
    out: str = "mosaic-runs/on-demand/mosaic.jpg",
    workdir: str | None = None,
    instagram: str | None = None,
    grid: str | None = None,
    tiles: int | None = None,
    size: str | None = None,
    dpi: float | None = None,
    tile_px: int | None = 64,
    method: str = "auto",
    metric: str = "lab",
    crops: int = 1,
    weights: str = "faces+people",
    compare: bool = True,
) -> dict[str, Any]:
    """Build a mosaic; the defaults build the bundled sample.

    Parameters
    ----------
    photos : str
        Folder of photos (searched recursively).
    target : str
        The picture the mosaic reproduces.
    out : str
        The mosaic image (``.jpg``, ``.png``, ``.tif``); ``{username}`` is the account of
        ``instagram``.
    workdir : str, optional
        Run folder for intermediate files, ``metrics.json`` and the report (default: the
        folder of ``out``).
    instagram : str, optional
        Use the photos ``scrape-instagram`` saved for this account (its default folder,
        ``mosaic-runs/instagram-<name>/photos``) instead of ``photos``.
    grid, tiles, size, dpi, tile_px
        The grid and output size, as ``mosaic build`` takes them.
    method, metric, crops, weights, compare
        Assignment method, colour space, crop candidates, tile weighting and whether to
        compare with the baselines, as ``mosaic build`` takes them.

    Returns
    -------
    dict
        The run's metrics (``metrics.json``).
    """
    _route_logs()
    account = check_username(instagram) if instagram else None
    if account:
        photos = str(RUNS / f"instagram-{account}" / "photos")
    out = for_account(out, account, "out")
    workdir = for_account(workdir, account, "workdir") if workdir else None
    options = build_options(photos, target, out, workdir,
                            LayoutRequest(grid, tiles, size, dpi, tile_px), weights, method,
                            metric, crops, compare)
    log.info("building %s from %s (target %s)", Path(out).resolve(), Path(photos).resolve(),
             target)
    return build_mosaic.fn(options)


def _secret_text(name: str) -> str | None:
    """The text held by the Prefect Secret block ``name`` (None when there is no such block)."""
    from prefect.blocks.system import Secret

    try:
        secret = Secret.load(name)
    except ValueError:
        return None
    value = secret.get()
    if not isinstance(value, str):
        raise MosaicError(f"Secret block {name!r} must hold the text of a cookies.txt file")
    return value


@contextlib.contextmanager
def cookies_file(secret: str | None, env: str | None) -> Iterator[str | None]:
    """The cookies file of a scheduled scrape, looked up now; never logged, never kept.

    Parameters
    ----------
    secret : str, optional
        Name of a Prefect Secret block holding the text of a Netscape ``cookies.txt``.
    env : str, optional
        Name of an environment variable holding the path of such a file, or its text.

    Yields
    ------
    str or None
        A path to the cookies (a private temporary file when they came as text), or None
        when neither source has any.

    Raises
    ------
    MosaicError
        The cookies are not in Netscape format (the message holds no cookie value).
    """
    text = _secret_text(secret) if secret else None
    origin = f"Secret block {secret!r}"
    if text is None and env and os.environ.get(env):
        value = os.environ[env]
        if "\t" not in value and Path(value).is_file():
            log.info("cookies: the file named by $%s", env)
            load_cookie_jar(value)
            yield value
            return
        text, origin = value, f"${env}"
    if text is None:
        log.info("no cookies (no Secret block %r, no $%s): scraping without logging in",
                 secret, env)
        yield None
        return
    from mosaic import processes

    # A private folder (0700) the guardian deletes if this process is killed: cookie text
    # never stays on disk after the run, however it ends.
    folder = processes.private_dir("cookies")
    try:
        path = folder / "cookies.txt"
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        try:
            load_cookie_jar(path)
        except MosaicError:
            raise MosaicError(f"the cookies in {origin} are not a Netscape cookies.txt") from None
        log.info("cookies: %s", origin)
        yield str(path)
    finally:
        processes.remove_private_dir(folder)


def scrape_request(username: str | None, out: str | None, workdir: str | None,
                   max_posts: int | None, delay: float, base_url: str,
                   allow_hosts: list[str] | None, retries: int, retry_delay: float,
                   request_attempts: int) -> ScrapeRequest:
    """Check a deployment's scrape parameters and turn them into a :class:`ScrapeRequest`.

    Raises
    ------
    MosaicError
        A bad user name, URL, host or number.
    """
    if not username:
        raise MosaicError("no Instagram account: pass the parameter username (`prefect "
                          "deployment run scrape-instagram/nightly -p username=NAME`), or "
                          "deploy with MOSAIC_INSTAGRAM_USERNAME=NAME make deploy")
    name = check_username(username)
    if max_posts is not None and max_posts < 1:
        raise MosaicError("max_posts must be at least 1")
    if delay < 0 or retry_delay < 0:
        raise MosaicError("delay and retry_delay must be 0 or more seconds")
    if retries < 0 or request_attempts < 1:
        raise MosaicError("retries must be 0 or more and request_attempts at least 1")
    hosts = tuple(allow_hosts) if allow_hosts else DEFAULT_ALLOWED_HOSTS
    AllowList.parse(hosts)
    fetch = FetchSettings(retry=RetryPolicy(attempts=request_attempts))
    settings = ScrapeSettings(base_url=normalise_base_url(base_url), allow_hosts=hosts,
                              delay=delay, fetch=fetch)
    run_dir = Path(for_account(workdir, name, "workdir")) if workdir else RUNS / f"instagram-{name}"
    out_dir = Path(for_account(out, name, "out")) if out else run_dir / "photos"
    for folder in (run_dir, out_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return ScrapeRequest(out_dir=str(out_dir.resolve()), workdir=str(run_dir.resolve()),
                         settings=settings, username=name, max_posts=max_posts,
                         retries=retries, retry_delay=retry_delay)


@flow(name="scrape-instagram", persist_result=False,
      task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def scrape_instagram_deployed(
    username: str | None = None,
    out: str | None = None,
    workdir: str | None = None,
    max_posts: int | None = None,
    delay: float = 2.0,
    base_url: str = DEFAULT_BASE_URL,
    allow_hosts: list[str] | None = None,
    cookies_secret: str | None = COOKIES_SECRET,
    cookies_env: str | None = COOKIES_ENV,
    retries: int = 3,
    retry_delay: float = 2.0,
    request_attempts: int = 5,
) -> dict[str, Any]:
    """Download an Instagram account's photos; a retry fetches only the posts that failed.

    Parameters
    ----------
    username : str
        The account (required; None only so that a deployment can exist before one is
        chosen).
    out : str, optional
        Folder for the photos and ``manifest.json`` (default
        ``mosaic-runs/instagram-{username}/photos``; ``{username}`` is the account).
    workdir : str, optional
        Run folder: cached post results, the temporary browser profile (default
        ``mosaic-runs/instagram-{username}``).
    max_posts : int, optional
        Newest posts to take (default all).
    delay : float
        Seconds between this run's page loads (the global limit ``instagram-requests``
        spaces the loads of all runs together).
    base_url : str
        The site (a test site in tests).
    allow_hosts : list of str, optional
        Image hosts downloads may come from (default Instagram's CDNs).
    cookies_secret : str, optional
        Prefect Secret block with the text of a Netscape ``cookies.txt``.
    cookies_env : str, optional
        Environment variable with the path of a ``cookies.txt``, or its text (used when
        the Secret block does not exist).
    retries, retry_delay : int, float
        Task retries per post, and the seconds before the first one.
    request_attempts : int
        Tries per HTTP request (network faults, 5xx, 429) before a post's task fails.

    Returns
    -------
    dict
        The run's summary (also the markdown artifact ``instagram-scrape``).
    """
    _route_logs()
    request = scrape_request(username, out, workdir, max_posts, delay, base_url, allow_hosts,
                             retries, retry_delay, request_attempts)
    with cookies_file(cookies_secret, cookies_env) as cookies:
        settings = dataclasses.replace(request.settings, cookies=cookies)
        log.info("scraping @%s into %s", request.username, request.out_dir)
        return scrape_instagram.fn(dataclasses.replace(request, settings=settings))


def parameter_sets(folder: str, username: str | None = None) -> dict[str, Any]:
    """Read the deployments' parameter sets: a ``prefect.yaml`` build step.

    Each ``NAME.yaml`` in ``folder`` maps parameter names to values. A value that is
    exactly ``{username}`` becomes ``username``, the account of the scheduled runs; without
    one it is None (a run then needs ``-p``) and the set is incomplete: ``prefect.yaml``
    deploys the schedules of incomplete sets paused. ``{username}`` inside a longer value
    (a path) is left for the flow, which puts the run's own account there.

    Parameters
    ----------
    folder : str
        The folder of the parameter sets (``deployments/params``).
    username : str, optional
        The account (``prefect.yaml`` passes ``$MOSAIC_INSTAGRAM_USERNAME``; empty means
        none).

    Returns
    -------
    dict
        ``NAME`` (dashes as underscores) -> its parameters, and ``complete`` -> ``NAME``
        -> whether every ``{username}`` value could be filled in.

    Raises
    ------
    MosaicError
        A file that is not a YAML mapping, or an invalid user name.
    """
    account = check_username(username) if username else None
    sets: dict[str, Any] = {"complete": {}}
    for path in sorted(Path(folder).glob("*.yaml")):
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise MosaicError(f"{path}: a parameter set is a mapping of names to values")
        key = path.stem.replace("-", "_")
        sets[key] = {field: account if value == ACCOUNT else value
                     for field, value in values.items()}
        sets["complete"][key] = account is not None or ACCOUNT not in values.values()
    return sets


__all__ = ["build_mosaic_deployed", "cookies_file", "parameter_sets",
           "scrape_instagram_deployed"]
