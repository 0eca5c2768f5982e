"""Downloads over HTTP: timeouts, retries, a host allow-list, size caps and atomic files.

Every request goes through :func:`fetch`, which follows redirects by hand so that each hop
is checked against an :class:`AllowList`, and retries what is worth retrying: a 429 waits
for its ``Retry-After``; 5xx answers, connection resets, timeouts and truncated bodies wait
an exponential back-off with jitter; 403, 404 and other client errors fail at once. A
404 or 410 means the thing is gone from the site (:func:`is_gone`), which callers record
rather than fail on; a 403 (Instagram's expired signed URLs) stays a failure a rerun
retries.

A run being stopped (Ctrl-C, SIGTERM, a cancelled flow run) calls :func:`request_stop`:
retry waits and polite waits then end at once with :class:`StopRequested`, so no thread
goes on fetching, nor retrying, once the user asked to stop.

Images are streamed to a hidden temporary file (this tool's own prefix) in the output
folder while they are hashed, checked (content type, magic bytes, size, completeness)
and only then renamed to ``<sha256>.<ext>``: the bytes are kept exactly as downloaded,
and no empty or partial file is ever left under a final name.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.cookiejar
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import requests

from mosaic.errors import MosaicError
from mosaic.files import forget_temporary, new_temporary

log = logging.getLogger("mosaic.download")

DEFAULT_ALLOWED_HOSTS = ("cdninstagram.com", "fbcdn.net")
"""Image hosts allowed by default: Instagram's and Facebook's CDNs (and their subdomains)."""

USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Safari/537.36")
"""A desktop browser's user agent: Instagram serves its regular pages to browsers."""

IMAGE_CONTENT_TYPES = {"image/jpeg": "jpg", "image/jpg": "jpg", "image/pjpeg": "jpg",
                       "image/png": "png", "image/webp": "webp"}
"""Content types accepted for images, and the file extension each is saved under."""

_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}
_T = TypeVar("_T")


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


class StopRequested(KeyboardInterrupt):
    """The run is being stopped: give up now, retry nothing.

    A ``KeyboardInterrupt`` so that nothing catching ``Exception`` (Prefect's task retries
    among them) mistakes it for a failure worth retrying.
    """


_stop = threading.Event()


def request_stop() -> None:
    """Ask every fetch of this process to stop at its next wait (thread-safe)."""
    _stop.set()


def clear_stop() -> None:
    """Forget a stop request (a new run starts in this process)."""
    _stop.clear()


def stop_requested() -> bool:
    """Whether :func:`request_stop` was called (and not cleared since)."""
    return _stop.is_set()


def check_stop() -> None:
    """Raise :class:`StopRequested` if the run is being stopped."""
    if _stop.is_set():
        raise StopRequested("stopped")


def pause(seconds: float) -> None:
    """Sleep ``seconds``, or less if a stop is requested meanwhile (then raise it).

    Raises
    ------
    StopRequested
        A stop was requested before or during the wait.
    """
    if _stop.wait(max(0.0, seconds)):
        raise StopRequested("stopped")


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


@dataclass(frozen=True)
class HostRule:
    """One allow-list entry: ``host`` (and its subdomains), on ``port`` if given.

    Without a port, only the scheme's default port (80 for http, 443 for https) matches.
    """

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> HostRule:
        """Parse ``HOST`` or ``HOST:PORT``.

        Raises
        ------
        MosaicError
            The entry is not a host name or IP address with an optional port.
        """
        entry = text.strip().lower().rstrip(".")
        host, _, port_text = entry.rpartition(":") if ":" in entry else (entry, "", "")
        if not host or any(c in host for c in "/@?#[] ") or host.startswith("."):
            raise MosaicError(f"--allow-host {text!r}: give HOST or HOST:PORT, "
                              "such as cdninstagram.com or 127.0.0.1:8081")
        port = None
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise MosaicError(f"--allow-host {text!r}: port must be 1..65535")
            port = int(port_text)
        return cls(host, port)

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        """Whether a URL with this scheme, host and port falls under the rule."""
        default = 443 if scheme == "https" else 80
        if (port or default) != (self.port or default):
            return False
        return host == self.host or host.endswith("." + self.host)

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class AllowList:
    """The hosts that may be downloaded from; everything else is refused."""

    rules: tuple[HostRule, ...]

    @classmethod
    def parse(cls, entries: tuple[str, ...] | list[str]) -> AllowList:
        """Build an allow-list from ``HOST[:PORT]`` strings (see :class:`HostRule`)."""
        return cls(tuple(HostRule.parse(entry) for entry in entries))

    def allows(self, url: str) -> bool:
        """Whether ``url`` is http(s) on an allowed host and port."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            return False
        try:
            port = parts.port
        except ValueError:
            return False
        return any(rule.matches(parts.scheme, parts.hostname, port) for rule in self.rules)

    def check(self, url: str) -> None:
        """Raise :class:`PermanentFetchError` unless ``url`` is allowed."""
        if not self.allows(url):
            host = urlsplit(url).netloc or url
            raise PermanentFetchError(
                f"host {host} is not on the allow-list ({self}); refused", url)

    def __str__(self) -> str:
        return ", ".join(str(rule) for rule in self.rules) or "empty"


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


@dataclass(frozen=True)
class SavedImage:
    """An image saved as ``<sha256>.<ext>`` in the output folder."""

    url: str
    sha256: str
    file: str
    """File name inside the output folder."""
    bytes: int
    content_type: str
    attempts: int
    new: bool
    """False when a file with the same content was already there."""


def _netscape_cookie(line: str) -> http.cookiejar.Cookie | None:
    """One cookie from a ``cookies.txt`` line; None for comments and blank lines.

    Raises
    ------
    ValueError
        The line does not have the seven tab-separated fields.
    """
    http_only = line.startswith("#HttpOnly_")
    if http_only:
        line = line.removeprefix("#HttpOnly_")
    elif not line.strip() or line.lstrip().startswith("#"):
        return None
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 7 or not fields[0] or not fields[5]:
        raise ValueError("not 7 tab-separated fields")
    domain, _, path, secure, expires, name, value = fields
    if expires.strip() and not expires.strip().lstrip("-").isdigit():
        raise ValueError("the expiry is not a number")
    stamp = int(expires) if expires.strip() else 0
    dotted = domain.startswith(".")
    return http.cookiejar.Cookie(
        version=0, name=name, value=value, port=None, port_specified=False, domain=domain,
        domain_specified=dotted, domain_initial_dot=dotted, path=path or "/",
        path_specified=True, secure=secure.upper() == "TRUE",
        expires=stamp if stamp > 0 else None, discard=stamp <= 0, comment=None,
        comment_url=None, rest={"HttpOnly": ""} if http_only else {})


def load_cookie_jar(path: str | os.PathLike[str]) -> http.cookiejar.CookieJar:
    """Read cookies exported in Netscape ``cookies.txt`` format.

    An expiry of 0 (how exporters write session cookies) makes a session cookie;
    cookies that have expired are left out; ``#HttpOnly_`` lines are read.

    Parameters
    ----------
    path : path-like
        The cookies file (as written by browser extensions such as "Get cookies.txt").

    Returns
    -------
    http.cookiejar.CookieJar
        The cookies.

    Raises
    ------
    MosaicError
        The file is missing, unreadable, not in Netscape format or holds no live cookie.
        The message never contains a cookie value.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise MosaicError(f"--cookies {path}: file not found") from None
    except (OSError, UnicodeDecodeError):
        raise MosaicError(f"--cookies {path}: cannot be read as text") from None
    jar = http.cookiejar.CookieJar()
    now = time.time()
    for number, line in enumerate(lines, 1):
        try:
            cookie = _netscape_cookie(line)
        except ValueError as exc:
            raise MosaicError(f"--cookies {path} line {number}: not a Netscape-format "
                              f"cookies.txt file ({exc})") from None
        if cookie is not None and not cookie.is_expired(now):
            jar.set_cookie(cookie)
    if not len(jar):
        raise MosaicError(f"--cookies {path}: holds no cookies (or only expired ones)")
    return jar


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
def _open(session: requests.Session, url: str, allow: AllowList, settings: FetchSettings,
          accept: str) -> Iterator[requests.Response]:
    """One attempt: GET ``url`` following allowed redirects; yield the open 2xx response."""
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
        for chunk in response.iter_content(_CHUNK):
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
        with _open(session, url, allow, settings, "text/html,*/*;q=0.8") as response:
            body = _read_capped(response, settings.max_page_bytes, url)
            encoding = response.encoding or "utf-8"
            final = response.url
            if _cut_short(response, body):
                raise TransientFetchError(f"{url} truncated: the page stops before </html>", url)
        return FetchedPage(final, body.decode(encoding, errors="replace"), 0)

    page, attempts = with_retries(attempt, settings.retry, url)
    return FetchedPage(page.url, page.text, attempts)


def sniff_image(head: bytes) -> str | None:
    """The image type from its first bytes: ``"jpg"``, ``"png"``, ``"webp"`` or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def image_is_complete(kind: str, head: bytes, tail: bytes, size: int) -> bool:
    """Whether an image's bytes end where its format says they should.

    JPEG ends with the EOI marker (allowing a little trailing padding), PNG with its
    ``IEND`` chunk, WebP at the length its RIFF header gives.
    """
    if kind == "jpg":
        return b"\xff\xd9" in tail[-32:]
    if kind == "png":
        return tail.endswith(b"IEND\xaeB`\x82")
    if kind == "webp":
        return int.from_bytes(head[4:8], "little") + 8 == size
    return False


class _Stream:
    """Streams a response into a hidden temporary file while hashing and checking it."""

    def __init__(self, folder: Path, cap: int, url: str) -> None:
        self.cap, self.url = cap, url
        self.path = new_temporary(folder, "download")
        self.handle = open(self.path, "wb")  # closed by the caller, or by discard()
        self.digest = hashlib.sha256()
        self.head = b""
        self.tail = b""
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise PermanentFetchError(f"{self.url} is over the {self.cap}-byte cap", self.url)
        if len(self.head) < 16:
            self.head = (self.head + chunk)[:16]
            if len(self.head) >= 12 and sniff_image(self.head) is None:
                raise PermanentFetchError(
                    f"{self.url} does not start like a JPEG, PNG or WebP image", self.url)
        self.tail = (self.tail + chunk)[-64:]
        self.digest.update(chunk)
        self.handle.write(chunk)

    def discard(self) -> None:
        self.handle.close()
        forget_temporary(self.path)


def _content_type(response: requests.Response, url: str) -> str:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in IMAGE_CONTENT_TYPES:
        raise PermanentFetchError(
            f"{url} is {content_type or 'of no content type'}, not a JPEG, PNG or WebP image",
            url)
    return content_type


def _stream_to_file(response: requests.Response, folder: Path, cap: int, url: str
                    ) -> tuple[_Stream, str]:
    """Save a response body in a temporary file; return the stream and the image type."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise PermanentFetchError(f"{url} is {int(declared)} bytes, over the {cap} cap", url)
    stream = _Stream(folder, cap, url)
    try:
        try:
            for chunk in response.iter_content(_CHUNK):
                stream.write(chunk)
        except requests.RequestException as exc:
            raise TransientFetchError(f"connection broke while downloading {url}", url) from exc
        stream.handle.close()
        if declared and declared.isdigit() and stream.size != int(declared):
            raise TransientFetchError(f"{url} truncated: {stream.size} of {declared} bytes", url)
        kind = sniff_image(stream.head)
        if kind is None:
            raise PermanentFetchError(f"{url} is empty or not an image", url)
        if not image_is_complete(kind, stream.head, stream.tail, stream.size):
            raise TransientFetchError(f"{url} truncated: the {kind} data is incomplete", url)
    except BaseException:
        stream.discard()
        raise
    return stream, kind


_rename_lock = threading.Lock()


def download_image(session: requests.Session, url: str, out_dir: str | os.PathLike[str],
                   allow: AllowList, settings: FetchSettings) -> SavedImage:
    """Download one image into ``out_dir`` as ``<sha256>.<ext>``, exactly as served.

    Parameters
    ----------
    session : requests.Session
        The HTTP session.
    url : str
        The image; it and every redirect must be on an allowed host.
    out_dir : path-like
        Where the image goes (it must exist).
    allow : AllowList
        Allowed image hosts.
    settings : FetchSettings
        Timeouts, size cap and retries.

    Returns
    -------
    SavedImage
        Hash, file name, size and whether the file is new.

    Raises
    ------
    FetchError
        Refused (host, type, size), not found, or still failing after the retries.
    """
    folder = Path(out_dir)

    def attempt() -> SavedImage:
        with _open(session, url, allow, settings, "image/jpeg,image/webp,image/png;q=0.9"
                   ) as response:
            content_type = _content_type(response, url)
            stream, kind = _stream_to_file(response, folder, settings.max_image_bytes, url)
        sha = stream.digest.hexdigest()
        final = folder / f"{sha}.{kind}"
        with _rename_lock:
            new = not final.is_file()
            if new:
                os.replace(stream.path, final)
            forget_temporary(stream.path)
        return SavedImage(url, sha, final.name, stream.size, content_type, 0, new)

    saved, attempts = with_retries(attempt, settings.retry, url)
    return SavedImage(saved.url, saved.sha256, saved.file, saved.bytes, saved.content_type,
                      attempts, saved.new)
