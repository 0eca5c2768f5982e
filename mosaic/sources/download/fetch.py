"""HTTP requests: settings, sessions, redirects checked hop by hop, retries, HTML pages.

Every request goes through :func:`open_response`, which follows redirects by hand so
that each hop is checked against an :class:`~mosaic.sources.download.hosts.AllowList`;
:func:`with_retries` retries what is worth retrying: a 429 waits for its
``Retry-After``; 5xx answers, connection resets, timeouts and truncated bodies wait an
exponential back-off with jitter; 403, 404 and other client errors fail at once.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urljoin

import requests

from mosaic.sources.download.cookies import load_cookie_jar
from mosaic.sources.download.errors import (
    FetchError,
    PermanentFetchError,
    RateLimitedError,
    TransientFetchError,
)
from mosaic.sources.download.hosts import AllowList
from mosaic.sources.download.stop import check_stop, pause

log = logging.getLogger("mosaic.download")

USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Safari/537.36")
"""A desktop browser's user agent: Instagram serves its regular pages to browsers."""

CHUNK = 64 * 1024
"""Bytes read at a time from a response body."""

_MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient faults.

    Attributes
    ----------
    attempts : int
        Tries in all, the first included.
    backoff : float
        Seconds before the first retry; doubled for each further retry.
    max_backoff : float
        Upper bound of one back-off.
    jitter : float
        Each back-off is stretched by a random factor in ``[1, 1 + jitter]``.
    max_retry_after : float
        Longest ``Retry-After`` honoured; a longer one fails the request (retry later).
    """

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: float = 0.5
    max_retry_after: float = 300.0

    def delay(self, retry: int, error: FetchError) -> float:
        """Seconds to wait before retry number ``retry`` (0-based) after ``error``."""
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return error.retry_after
        base = min(self.max_backoff, self.backoff * 2**retry)
        return base * (1.0 + self.jitter * random.random())


@dataclass(frozen=True)
class FetchSettings:
    """Timeouts, size caps and retries for every request.

    Attributes
    ----------
    connect_timeout, read_timeout : float
        Seconds to connect, and at most between two received bytes.
    max_image_bytes, max_page_bytes : int
        Larger answers are refused.
    retry : RetryPolicy
        Retries of transient faults.
    user_agent : str
        The ``User-Agent`` header.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_image_bytes: int = 50 * 1024 * 1024
    max_page_bytes: int = 20 * 1024 * 1024
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = USER_AGENT

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` for requests."""
        return (self.connect_timeout, self.read_timeout)


@dataclass(frozen=True)
class FetchedPage:
    """A downloaded HTML page."""

    url: str
    """Where the page was finally found (after redirects)."""
    text: str
    attempts: int



def make_session(settings: FetchSettings, cookies: str | None = None) -> requests.Session:
    """A requests session with browser-like headers and, optionally, the user's cookies.

    Parameters
    ----------
    settings : FetchSettings
        Supplies the user agent.
    cookies : str, optional
        Path of a Netscape cookies file.

    Returns
    -------
    requests.Session
        Close it when done (or use it as a context manager).
    """
    session = requests.Session()
    session.headers.update({
        "User-Agent": settings.user_agent,
        "Accept-Language": "en-US,en;q=0.9",
    })
    if cookies:
        session.cookies.update(load_cookie_jar(cookies))
    return session


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def _classify(response: requests.Response, url: str) -> FetchError | None:
    """The error an HTTP status stands for, or None for success (2xx)."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    if status == 429:
        wait = _retry_after(response.headers.get("Retry-After"))
        return RateLimitedError(f"HTTP 429 Too Many Requests from {url}", url, wait)
    if status >= 500 or status == 408:
        return TransientFetchError(f"HTTP {status} from {url}", url)
    return PermanentFetchError(f"HTTP {status} from {url}", url, status)


@contextlib.contextmanager
def open_response(session: requests.Session, url: str, allow: AllowList,
                  settings: FetchSettings, accept: str) -> Iterator[requests.Response]:
    """One attempt: GET ``url`` following allowed redirects; yield the open 2xx response.

    Parameters
    ----------
    session : requests.Session
        Carries headers and cookies.
    url : str
        What to fetch.
    allow : AllowList
        Hosts ``url`` and every redirect may be on.
    settings : FetchSettings
        Timeouts.
    accept : str
        The ``Accept`` header.

    Yields
    ------
    requests.Response
        The streamed 2xx answer; it is closed when the block ends.

    Raises
    ------
    FetchError
        A host refused, a network fault, an error status or too many redirects.
    """
    current = url
    for _ in range(_MAX_REDIRECTS + 1):
        allow.check(current)
        try:
            response = session.get(current, timeout=settings.timeout, stream=True,
                                   allow_redirects=False, headers={"Accept": accept})
        except requests.Timeout as exc:
            raise TransientFetchError(f"timed out fetching {current}", current) from exc
        except requests.RequestException as exc:
            raise TransientFetchError(
                f"network error fetching {current}: {type(exc).__name__}", current) from exc
        with response:
            if response.status_code in _REDIRECTS and "Location" in response.headers:
                current = urljoin(current, response.headers["Location"])
                continue
            error = _classify(response, current)
            if error is not None:
                raise error
            yield response
            return
    raise PermanentFetchError(f"too many redirects from {url}", url)


def with_retries(action: Callable[[], _T], policy: RetryPolicy, what: str) -> tuple[_T, int]:
    """Run ``action`` until it succeeds, retrying transient :class:`FetchError` s.

    Parameters
    ----------
    action : callable
        Makes one attempt; raises :class:`FetchError` on failure.
    policy : RetryPolicy
        Attempts and back-off.
    what : str
        Describes the request in log messages.

    Returns
    -------
    tuple
        ``(result, attempts)``.

    Raises
    ------
    FetchError
        The last error, when it is permanent or the attempts are used up.
    StopRequested
        The run is being stopped (checked before each attempt and during each wait).
    """
    for attempt in range(1, policy.attempts + 1):
        check_stop()
        try:
            return action(), attempt
        except FetchError as exc:
            if not exc.retryable or attempt == policy.attempts:
                raise
            wait = policy.delay(attempt - 1, exc)
            if wait > policy.max_retry_after:
                raise RateLimitedError(
                    f"{exc} asks to wait {wait:.0f} s, more than {policy.max_retry_after:.0f} s;"
                    " try again later", exc.url, wait) from exc
            log.info("retrying %s in %.1f s (attempt %d of %d): %s", what, wait, attempt + 1,
                     policy.attempts, exc)
            pause(wait)
    raise AssertionError("unreachable")


def _read_capped(response: requests.Response, cap: int, url: str) -> bytes:
    """The whole body, refusing more than ``cap`` bytes and detecting truncation."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise PermanentFetchError(f"{url} is {int(declared)} bytes, over the {cap} cap", url)
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > cap:
                raise PermanentFetchError(f"{url} is over the {cap}-byte cap", url)
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise TransientFetchError(f"connection broke while reading {url}", url) from exc
    if declared and declared.isdigit() and size != int(declared):
        raise TransientFetchError(f"{url} truncated: {size} of {declared} bytes", url)
    return b"".join(chunks)


def _cut_short(response: requests.Response, body: bytes) -> bool:
    """Whether an HTML body whose end the protocol cannot vouch for stops early.

    A body with a ``Content-Length`` or in chunks is checked by urllib3; one delimited
    only by the connection closing is complete when it ends with ``</html>``.
    """
    headers = response.headers
    if "Content-Length" in headers or "chunked" in headers.get("Transfer-Encoding", ""):
        return False
    if "html" not in headers.get("Content-Type", ""):
        return False
    return b"</html" not in body[-2048:].lower()


def fetch_page(session: requests.Session, url: str, allow: AllowList,
               settings: FetchSettings) -> FetchedPage:
    """Download an HTML page with retries.

    Parameters
    ----------
    session : requests.Session
        Carries headers and cookies.
    url : str
        The page.
    allow : AllowList
        Hosts the page and its redirects may be on.
    settings : FetchSettings
        Timeouts, size cap and retries.

    Returns
    -------
    FetchedPage
        The text, the final URL after redirects and the attempts it took.

    Raises
    ------
    FetchError
        Permanent failure, or transient failures beyond the retry policy.
    """

    def attempt() -> FetchedPage:
        with open_response(session, url, allow, settings, "text/html,*/*;q=0.8") as response:
            body = _read_capped(response, settings.max_page_bytes, url)
            encoding = response.encoding or "utf-8"
            final = response.url
            if _cut_short(response, body):
                raise TransientFetchError(f"{url} truncated: the page stops before </html>", url)
        return FetchedPage(final, body.decode(encoding, errors="replace"), 0)

    page, attempts = with_retries(attempt, settings.retry, url)
    return FetchedPage(page.url, page.text, attempts)

