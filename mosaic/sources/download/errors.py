"""Why a request gave no usable answer, and what that means for retrying.

A 429 or a 5xx answer, a connection reset, a timeout and a truncated body are transient
(worth retrying); 403, 404 and other client errors are permanent. A 404 or 410 means the
thing is gone from the site (:func:`is_gone`), which callers record rather than fail on; a
403 (Instagram's expired signed URLs) stays a failure a rerun retries.
"""

from __future__ import annotations

import requests


class FetchError(Exception):
    """A request that did not give a usable answer.

    Attributes
    ----------
    retryable : bool
        True for faults that may go away (network, 5xx, rate limits, truncation).
    """

    retryable = False

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class TransientFetchError(FetchError):
    """A fault worth retrying: a reset, a timeout, a 5xx, a truncated body."""

    retryable = True


class RateLimitedError(TransientFetchError):
    """HTTP 429; ``retry_after`` is the server's ``Retry-After`` in seconds, if any."""

    def __init__(self, message: str, url: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, url)
        self.retry_after = retry_after


class PermanentFetchError(FetchError):
    """A fault that retrying will not fix: 403, 404, a wrong content type, a host refused."""

    def __init__(self, message: str, url: str = "", status: int | None = None) -> None:
        super().__init__(message, url)
        self.status = status


GONE_STATUSES = frozenset({404, 410})
"""HTTP statuses that mean the page or image was deleted."""


def is_gone(error: BaseException) -> bool:
    """Whether ``error`` is a 404 or 410: what was asked for is gone from the site."""
    return isinstance(error, PermanentFetchError) and error.status in GONE_STATUSES


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` is a network fault or rate limit worth trying again later.

    Parameters
    ----------
    error : BaseException
        An exception raised while fetching.

    Returns
    -------
    bool
        True for :class:`TransientFetchError` (including rate limits) and for requests'
        connection errors and timeouts; False for 403/404 and everything else.
    """
    if isinstance(error, FetchError):
        return error.retryable
    return isinstance(error, requests.ConnectionError | requests.Timeout)

