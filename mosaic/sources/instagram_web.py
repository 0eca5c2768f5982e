"""Photos from Instagram's web site: profile -> post URLs -> image URLs -> files.

* The profile is rendered by headless Chromium (Selenium, the system ``chromium`` and
  ``chromedriver``; no driver download), scrolled until no new post links appear, and
  its ``/p/<code>/`` links collected (``/reel/`` links are videos and skipped).
* Each post page is fetched with requests and read with BeautifulSoup; regular expressions
  find the JSON embedded in its scripts (plain, assigned to a variable, or escaped inside
  a JavaScript string) and the image URLs are taken, by preference, from that JSON
  (``image_versions2.candidates``: the largest; ``display_url``; every child of a carousel),
  then from ``<img srcset>`` (the largest candidate), then from ``og:image`` (a thumbnail,
  with a warning). Videos, and video children of carousels, are skipped whole. The other
  sizes a page offers are kept, largest first, as alternatives of each image.
* Images are saved by :mod:`mosaic.sources.download`; ``manifest.json`` records each post
  as it completes, so a rerun fetches only what is missing.
* Gone is not failed: when a size answers 404/410 the next smaller one is tried; an
  image none of whose sizes is left is *gone*, and so is a post whose page answers
  404/410. Such posts are recorded as ``gone`` (or ``partly-gone`` when some of their
  images were saved) and count as finished; 403 (an expired signed URL) stays a failure.

Chromium runs from a private folder outside the run folder (mode 0700; its profile, the
home, config and cache folders it writes to, its crash handler's database), with
chromedriver in a session of its own: a Ctrl-C at the terminal reaches only this program,
which quits the browser. If this program dies, SIGKILL included, the guardian of
:mod:`mosaic.processes` stops the browser and deletes the folder. Selenium's errors
become one-line errors (:class:`SiteUnreachableError` when the site cannot be reached).

Cookies passed with ``--cookies`` are sent with requests and added to the browser; they
are never logged nor written anywhere but that private folder, which is deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
from bs4 import BeautifulSoup

from mosaic import processes
from mosaic.errors import MosaicError
from mosaic.sources import manifest
from mosaic.sources.download import (
    DEFAULT_ALLOWED_HOSTS,
    AllowList,
    FetchError,
    FetchSettings,
    PermanentFetchError,
    TransientFetchError,
    check_stop,
    download_image,
    fetch_page,
    is_gone,
    load_cookie_jar,
    make_session,
    pause,
)

if TYPE_CHECKING:
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.remote.webdriver import WebDriver

log = logging.getLogger("mosaic.instagram")

DEFAULT_BASE_URL = "https://www.instagram.com"
CHROMIUM = os.environ.get("MOSAIC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MOSAIC_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--window-size=1280,1000", "--lang=en-US",
                  "--blink-settings=imagesEnabled=false")
"""Headless, quiet, and without loading images: only the post links are needed.

``--disable-breakpad`` and ``--disable-crash-reporter`` do not stop Chromium 156 from
starting its crash handler (the Debian launcher enables it); :func:`_browser_env` keeps
the handler's files in the private folder instead."""
_CHROMIUM_PREFS = {"profile.managed_default_content_settings.images": 2}
_LEGACY_PROFILE_PREFIX = "chromium-profile-"
"""Browser profiles earlier versions kept in the run folder (they may hold cookies)."""
_UNREACHABLE = frozenset({
    "ERR_CONNECTION_REFUSED", "ERR_NAME_NOT_RESOLVED", "ERR_NAME_RESOLUTION_FAILED",
    "ERR_ADDRESS_UNREACHABLE", "ERR_ADDRESS_INVALID", "ERR_INTERNET_DISCONNECTED",
    "ERR_UNSAFE_PORT", "ERR_BLOCKED_BY_ADMINISTRATOR", "ERR_PROXY_CONNECTION_FAILED",
    "ERR_TUNNEL_CONNECTION_FAILED", "ERR_DISALLOWED_URL_SCHEME"})
"""Chromium's network errors that mean the site cannot be reached at all; certificate
and TLS errors (``ERR_CERT_*``, ``ERR_SSL_*``) count too. Others (resets, timeouts) are
transient."""
_SOCKET_PATH_MAX = 108
"""Bytes in a Unix socket address (``sun_path``), its final NUL included."""
_SINGLETON_SOCKET_CHARS = len("/org.chromium.Chromium.XXXXXX/SingletonSocket")
_NET_ERROR_RE = re.compile(r"\b(?:net::)?(ERR_[A-Z0-9_]+)\b")
_ERROR_PAGE_JS = ("const code = document.querySelector('.error-code');"
                  "return [location.href, code ? code.textContent : ''];")

INSTAGRAM_HOSTS = frozenset({"instagram.com", "www.instagram.com", "m.instagram.com",
                             "instagr.am", "www.instagr.am"})
USERNAME_RE = re.compile(r"^[A-Za-z0-9._]{1,30}$")
_POST_PATH_RE = re.compile(r"^(?:/[A-Za-z0-9._]{1,30})?/(p|reel|reels|tv)/([A-Za-z0-9_-]{4,64})/?$")
_LOGIN_PATHS = ("/accounts/login", "/challenge", "/accounts/suspended")
_MEDIA_KEYS = ("image_versions2", "display_url", "carousel_media", "edge_sidecar_to_children",
               "video_versions", "display_resources")
_MEDIA_MARKER_RE = re.compile(
    r"image_versions2|display_url|carousel_media|edge_sidecar_to_children|video_versions")
_JSON_START_RE = re.compile(r"[\[{]\s*[\"{\[]")
_STRING_LITERAL_RE = re.compile(r"\"((?:[^\"\\\n]|\\.)*)\"|'((?:[^'\\\n]|\\.)*)'", re.DOTALL)
_JS_ESCAPE_RE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_JS_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v",
                      "0": "\0"}
_POSTS_COUNT_RE = re.compile(r"([\d][\d,.\u202f\u00a0]*)\s*([KkMm]?)\s+Posts?\b")
_LINKS_JS = "return Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href'));"
_SCROLL_JS = "window.scrollTo(0, document.body.scrollHeight);"
_POLL_SECONDS = 0.1


class LoginRequiredError(MosaicError):
    """Instagram answered with its login wall."""


class ProfileError(MosaicError):
    """The profile does not exist or is private."""


class SiteUnreachableError(FetchError):
    """The browser cannot reach the site at all: refused, no such host, offline, bad TLS.

    Not retried within a run (the answer comes at once, and the same every time); the
    command line says to run again later.
    """


@dataclass(frozen=True)
class ScrapeSettings:
    """Where to scrape and how politely.

    Attributes
    ----------
    base_url : str
        The site (``https://www.instagram.com``; a test site in tests).
    allow_hosts : tuple of str
        ``HOST[:PORT]`` entries images may be downloaded from.
    cookies : str or None
        Path of a Netscape ``cookies.txt``; the values are never logged or stored.
    delay : float
        Seconds between page loads (post pages, profile scrolls).
    fetch : FetchSettings
        Timeouts, size caps and retries of each request.
    idle_timeout : float
        Stop scrolling the profile after this long without new post links.
    max_scrolls : int
        Hard bound on profile scrolls.
    page_load_timeout : float
        Seconds Chromium may take to load the profile.
    """

    base_url: str = DEFAULT_BASE_URL
    allow_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    cookies: str | None = None
    delay: float = 2.0
    fetch: FetchSettings = field(default_factory=FetchSettings)
    idle_timeout: float = 10.0
    max_scrolls: int = 2000
    page_load_timeout: float = 60.0

    def image_hosts(self) -> AllowList:
        """The allow-list for image downloads."""
        return AllowList.parse(self.allow_hosts)

    def page_hosts(self) -> AllowList:
        """The allow-list for pages: the site's own host and port."""
        return AllowList.parse((urlsplit(self.base_url).netloc,))


@dataclass(frozen=True)
class ImageRef:
    """One image found in a post page: its largest URL, with its size when the page gives it.

    Attributes
    ----------
    url : str
        The preferred (largest) size.
    width, height : int or None
        Its size, when the page states it.
    alternatives : tuple of ImageRef
        The other sizes the page offers for the same picture, largest first (without
        alternatives of their own): tried in turn when a larger one answers 404/410.
    """

    url: str
    width: int | None = None
    height: int | None = None
    alternatives: tuple[ImageRef, ...] = ()

    def sizes(self) -> tuple[ImageRef, ...]:
        """Every size of the image, largest first: this one, then the alternatives."""
        return (ImageRef(self.url, self.width, self.height), *self.alternatives)


@dataclass(frozen=True)
class PostMedia:
    """What a post page holds.

    Attributes
    ----------
    code : str
        The post's short code.
    images : tuple of ImageRef
        The best image of every photo (each child of a carousel), in order.
    skipped_videos : int
        Video children of a carousel (skipped), or 1 for a video post.
    is_video : bool
        The post is a video: nothing to download.
    found_by : str
        ``"json"``, ``"srcset"``, ``"og:image"``, ``"none"``, or ``"unavailable"`` (the
        page says the post isn't available: it was deleted).
    date : str or None
        When it was posted (ISO 8601, UTC).
    caption : str or None
        The post's text.
    """

    code: str
    images: tuple[ImageRef, ...]
    skipped_videos: int
    is_video: bool
    found_by: str
    date: str | None = None
    caption: str | None = None


@dataclass(frozen=True)
class ProfileListing:
    """The posts found on a profile, newest first."""

    posts: tuple[str, ...]
    """Post URLs (``/p/<code>/``)."""
    reels: tuple[str, ...]
    """Reel URLs: videos, skipped."""
    expected: int | None
    """The post count the profile states, when it states one exactly."""
    scrolls: int


# --- URLs ---------------------------------------------------------------------------------

def normalise_base_url(text: str) -> str:
    """Check and normalise ``--base-url``: ``scheme://host[:port]`` without a trailing slash.

    Raises
    ------
    MosaicError
        Not an http(s) URL with a host, or with a path, query or fragment.
    """
    parts = urlsplit(text.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise MosaicError(f"--base-url {text!r}: give an http(s) URL such as {DEFAULT_BASE_URL}")
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise MosaicError(f"--base-url {text!r}: give only the site, without a path")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise MosaicError(f"--base-url {text!r}: bad port") from None
    return f"{parts.scheme}://{parts.netloc.lower()}"


def check_username(username: str) -> str:
    """Return ``username`` without a leading ``@`` if it is a valid Instagram user name.

    Raises
    ------
    MosaicError
        Not 1-30 letters, digits, dots and underscores.
    """
    name = username.strip().removeprefix("@")
    if not USERNAME_RE.match(name):
        raise MosaicError(f"{username!r} is not an Instagram user name "
                          "(1-30 letters, digits, '.' and '_')")
    return name


def post_url(base_url: str, code: str) -> str:
    """The canonical URL of post ``code`` on ``base_url``."""
    return f"{base_url}/p/{code}/"


def post_code(url: str) -> str:
    """The short code of a post URL.

    Raises
    ------
    MosaicError
        ``url`` is not a post URL.
    """
    match = _POST_PATH_RE.match(urlsplit(url).path)
    if not match:
        raise MosaicError(f"{url} is not an Instagram post URL (…/p/CODE/)")
    return match.group(2)


def _link_kind(href: str, base_url: str) -> tuple[str, str] | None:
    """``("p" | "reel", code)`` for a post or reel link on the site, else None."""
    target = urlsplit(urljoin(base_url + "/", href))
    if target.netloc.lower() != urlsplit(base_url).netloc.lower():
        return None
    match = _POST_PATH_RE.match(target.path)
    if not match:
        return None
    kind = "p" if match.group(1) == "p" else "reel"
    return kind, match.group(2)


def parse_post_reference(text: str, base_url: str) -> tuple[str, str] | None:
    """Read one line of a post list: ``("p" | "reel", code)``, or None if it is not one.

    Accepts ``https://www.instagram.com/p/CODE/`` and its variants: no scheme, ``m.`` or
    ``instagr.am`` hosts, a user name before ``/p/``, ``/reel/`` and ``/tv/``, query
    strings such as ``?igsh=...``; and the same paths on ``base_url``'s host.
    """
    line = text.strip()
    if "://" not in line:
        line = "https://" + line.lstrip("/")
    parts = urlsplit(line)
    hosts = INSTAGRAM_HOSTS | {urlsplit(base_url).netloc.lower()}
    if parts.netloc.lower() not in hosts:
        return None
    match = _POST_PATH_RE.match(parts.path)
    if not match:
        return None
    return ("p" if match.group(1) == "p" else "reel"), match.group(2)


def read_post_list(path: str | os.PathLike[str], base_url: str
                   ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Read a file of post URLs, one a line (blank lines and ``#`` comments ignored).

    Parameters
    ----------
    path : path-like
        The list.
    base_url : str
        The site the posts are fetched from.

    Returns
    -------
    tuple
        ``(posts, reels)``: canonical post URLs on ``base_url`` without duplicates, in
        file order, and the reel URLs (videos, skipped).

    Raises
    ------
    MosaicError
        Missing or unreadable file, a line that is not a post URL, or no post at all.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise MosaicError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MosaicError(f"{path}: cannot read the list ({exc})") from None
    posts: dict[str, None] = {}
    reels: dict[str, None] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = parse_post_reference(line, base_url)
        if found is None:
            raise MosaicError(f"{path} line {number}: {line.strip()[:80]!r} is not an "
                              "Instagram post URL (https://www.instagram.com/p/CODE/)")
        kind, code = found
        target = posts if kind == "p" else reels
        target[f"{base_url}/{'p' if kind == 'p' else 'reel'}/{code}/"] = None
    if not posts and not reels:
        raise MosaicError(f"{path}: no post URLs in the file")
    return tuple(posts), tuple(reels)


def _is_login_url(url: str) -> bool:
    return urlsplit(url).path.startswith(_LOGIN_PATHS)


def login_wall_message(base_url: str) -> str:
    """The one-line explanation shown when Instagram asks to log in."""
    host = urlsplit(base_url).netloc
    return (f"{host} shows a login wall: log in and pass --cookies (a Netscape cookies.txt "
            "exported from the logged-in browser)")


# --- politeness and the login wall ----------------------------------------------------------

_gate_lock = threading.Lock()
_next_turn: dict[str, float] = {}
_login_walls: set[str] = set()


def polite_wait(key: str, delay: float) -> None:
    """Wait until at least ``delay`` seconds have passed since the last page load of ``key``.

    Threads share the schedule, so parallel post tasks still load pages one per ``delay``.

    Raises
    ------
    StopRequested
        The run is being stopped (the wait ends at once).
    """
    check_stop()
    if delay <= 0:
        return
    with _gate_lock:
        now = time.monotonic()
        turn = max(now, _next_turn.get(key, now))
        _next_turn[key] = turn + delay
    if turn > now:
        pause(turn - now)


def note_login_wall(run_key: str | None) -> None:
    """Remember that run ``run_key`` hit the login wall, so its other posts stop at once."""
    if run_key:
        with _gate_lock:
            _login_walls.add(run_key)


def login_wall_seen(run_key: str | None) -> bool:
    """Whether run ``run_key`` has hit the login wall."""
    with _gate_lock:
        return bool(run_key) and run_key in _login_walls


# --- the profile, in Chromium -----------------------------------------------------------------

def remove_legacy_profiles(work_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete the browser profiles earlier versions left in a run folder (they may hold cookies).

    Returns
    -------
    list of pathlib.Path
        The folders removed.
    """
    folder = Path(work_dir)
    removed = []
    if folder.is_dir():
        for stale in folder.glob(f"{_LEGACY_PROFILE_PREFIX}*"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
                removed.append(stale)
    return removed


def _socket_fits(folder: Path) -> bool:
    """Whether Chromium's singleton socket fits a Unix socket address in ``folder``.

    The socket is ``FOLDER/org.chromium.Chromium.XXXXXX/SingletonSocket``; when it does
    not fit, Chromium does not start ("Socket path too long").
    """
    return len(os.fsencode(folder)) + _SINGLETON_SOCKET_CHARS < _SOCKET_PATH_MAX


def _scratch_dir(private: Path) -> Path | None:
    """Chromium's ``TMPDIR``: its singleton socket (and shared memory) go there.

    Inside ``private`` when the socket path fits; else (a long ``$XDG_RUNTIME_DIR``) a
    second folder named the same way in the system's temporary folder, watched by the
    guardian too; None when even that is too long (Chromium keeps ``$TMPDIR`` then).
    """
    inside = private / "tmp"
    if _socket_fits(inside):
        inside.mkdir(mode=0o700)
        return inside
    prefix = f"mosaic-chromium-{processes.owner_tag()}-"
    for root in dict.fromkeys((tempfile.gettempdir(), "/tmp")):
        if Path(root).is_dir() and _socket_fits(Path(root) / f"{prefix}XXXXXXXX"):
            return processes.private_dir("chromium", root=Path(root))
    return None


def _browser_env(private: Path, scratch: Path | None) -> dict[str, str]:
    """The environment of chromedriver: everything Chromium writes goes inside ``private``.

    Its crash handler (``chrome_crashpad_handler``) leaves the browser's session; with
    its database in here its command line names the folder, so the guardian finds it.
    ``TMPDIR`` is ``scratch`` (see :func:`_scratch_dir`).
    """
    env = dict(os.environ)
    for name, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "config"),
                      ("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data"),
                      ("XDG_RUNTIME_DIR", "run")):  # dconf writes in $XDG_RUNTIME_DIR
        folder = private / sub
        folder.mkdir(mode=0o700, exist_ok=True)
        env[name] = str(folder)
    if scratch is not None:
        env["TMPDIR"] = str(scratch)
    return env


def _guarded_service(private: Path, scratch: Path | None) -> Service:
    """A chromedriver service in a session of its own, watched by the guardian at once."""
    from selenium.webdriver.chrome.service import Service

    class GuardedService(Service):
        def _start_process(self, path: str) -> None:
            super()._start_process(path)
            # Watched the moment it exists: a SIGKILL one instant later still stops it.
            processes.watch_group(self.process.pid)

    # Its own session: a Ctrl-C at the terminal must not kill the browser under us;
    # this program quits it (or the guardian stops it).
    return GuardedService(CHROMEDRIVER, log_output=subprocess.DEVNULL,
                          popen_kw={"start_new_session": True},
                          env=_browser_env(private, scratch))


def _service_group(service: Service) -> int | None:
    process = getattr(service, "process", None)
    return process.pid if process is not None else None


def _stop_browser(driver: WebDriver | None, service: Service) -> None:
    """Quit the browser, then stop whatever is left of chromedriver's process group."""
    if driver is not None:
        with contextlib.suppress(Exception):  # a dead browser must not hide the real error
            driver.quit()
    group = _service_group(service)
    if group is not None:
        processes.stop_group(group, timeout=2.0)


def _first_line(exc: BaseException) -> str:
    text = (getattr(exc, "msg", None) or str(exc) or type(exc).__name__).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def open_browser(work_dir: str | os.PathLike[str], page_load_timeout: float = 60.0,
                 allow_port: int | None = None) -> Iterator[WebDriver]:
    """Start headless Chromium in a private temporary folder; quit it and delete it after.

    The folder (:func:`mosaic.processes.private_dir`, mode 0700, outside the run folder)
    holds the profile and every file Chromium writes; it is deleted on every exit, and by
    the guardian if this process is killed. chromedriver runs in a session of its own and
    its process group is stopped after ``driver.quit()``.

    Parameters
    ----------
    work_dir : path-like
        The run's work folder: browser profiles an earlier version left there (they may
        hold cookies) are deleted.
    page_load_timeout : float
        Seconds a page may take to load.
    allow_port : int, optional
        A port Chromium blocks by default (such as 9 or 6000) that the site is on.

    Yields
    ------
    selenium.webdriver.remote.webdriver.WebDriver
        The driver.

    Raises
    ------
    MosaicError
        Chromium or chromedriver is missing or does not start.
    """
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException

    for program in (CHROMIUM, CHROMEDRIVER):
        if not Path(program).is_file():
            raise MosaicError(f"{program} not found: install the Debian packages chromium "
                              "and chromium-driver")
    remove_legacy_profiles(work_dir)
    private = processes.private_dir("chromium")
    scratch = None
    try:
        scratch = _scratch_dir(private)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={private / 'profile'}",
                 f"--disk-cache-dir={private / 'cache' / 'disk'}"]
        if allow_port is not None:
            flags.append(f"--explicitly-allowed-ports={allow_port}")
        for flag in flags:
            options.add_argument(flag)
        options.add_experimental_option("prefs", _CHROMIUM_PREFS)
        service = _guarded_service(private, scratch)
        driver = None
        try:
            try:
                driver = webdriver.Chrome(service=service, options=options)
                driver.set_page_load_timeout(page_load_timeout)
            except WebDriverException as exc:
                raise MosaicError(f"could not start Chromium: {_first_line(exc)}") from None
            yield driver
        finally:
            _stop_browser(driver, service)
    finally:
        processes.remove_private_dir(private)
        if scratch is not None and not scratch.is_relative_to(private):
            processes.remove_private_dir(scratch)


def _site(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def browser_network_error(url: str, text: str) -> FetchError:
    """The error for a page Chromium could not load, from its message or error page.

    Parameters
    ----------
    url : str
        The page.
    text : str
        Chromium's error (``net::ERR_CONNECTION_REFUSED``, or the code on its error page).

    Returns
    -------
    FetchError
        :class:`SiteUnreachableError` when the site cannot be reached at all,
        :class:`TransientFetchError` for other network faults (resets, timeouts).
    """
    match = _NET_ERROR_RE.search(text)
    if match is None:
        return TransientFetchError(f"the browser could not load {url}: {text or 'no answer'}",
                                   url)
    code = match.group(1)
    if code in _UNREACHABLE or code.startswith(("ERR_CERT_", "ERR_SSL_")):
        return SiteUnreachableError(f"cannot reach {_site(url)} (net::{code})", url)
    return TransientFetchError(f"network error loading {url} in the browser (net::{code})", url)


def browser_get(driver: WebDriver, url: str) -> None:
    """Load ``url`` in the browser; a page that did not load raises a one-line error.

    Raises
    ------
    SiteUnreachableError
        The site cannot be reached (refused, no such host, offline, TLS).
    TransientFetchError
        A timeout, or another network fault.
    """
    from selenium.common.exceptions import TimeoutException, WebDriverException

    try:
        driver.get(url)
    except TimeoutException:
        raise TransientFetchError(f"timed out loading {url} in the browser", url) from None
    except WebDriverException as exc:  # chromedriver reports some errors (DNS) itself
        raise browser_network_error(url, _first_line(exc)) from None
    location, code = driver.execute_script(_ERROR_PAGE_JS) or ("", "")
    if str(location).startswith("chrome-error:"):  # Chromium's own error page
        raise browser_network_error(url, str(code))


@contextlib.contextmanager
def browser_errors(url: str) -> Iterator[None]:
    """Turn any other Selenium error (a crashed browser...) into a one-line fetch error.

    Raises
    ------
    TransientFetchError
        Naming ``url`` and the first line of Selenium's message (no stack trace).
    """
    import urllib3
    from selenium.common.exceptions import WebDriverException

    try:
        yield
    except WebDriverException as exc:
        raise TransientFetchError(f"the browser failed while reading {url}: "
                                  f"{_first_line(exc)}", url) from None
    except (urllib3.exceptions.HTTPError, ConnectionError):
        # Selenium lets these through when chromedriver itself is gone.
        raise TransientFetchError(f"the browser stopped answering while reading {url} "
                                  "(chromedriver is gone)", url) from None


@contextlib.contextmanager
def _quiet_selenium() -> Iterator[None]:
    """Silence Selenium's debug log, which would print cookie values sent to the browser."""
    logger = logging.getLogger("selenium.webdriver.remote.remote_connection")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def add_browser_cookies(driver: WebDriver, settings: ScrapeSettings) -> int:
    """Give the browser the cookies of ``settings.cookies`` that belong to the site.

    Returns
    -------
    int
        How many cookies were added.

    Raises
    ------
    SiteUnreachableError, TransientFetchError
        The site did not answer (the cookies are set on one of its pages).
    MosaicError
        The browser refused a cookie (the message names it, never its value).
    """
    from selenium.common.exceptions import InvalidCookieDomainException, UnableToSetCookieException

    if not settings.cookies:
        return 0
    host = urlsplit(settings.base_url).hostname or ""
    added = 0
    with _quiet_selenium():
        browser_get(driver, f"{settings.base_url}/robots.txt")
        for cookie in load_cookie_jar(settings.cookies):
            domain = cookie.domain.lstrip(".")
            if host != domain and not host.endswith("." + domain):
                continue
            entry: dict[str, Any] = {"name": cookie.name, "value": cookie.value or "",
                                     "path": cookie.path or "/", "secure": bool(cookie.secure)}
            if cookie.domain.startswith(".") and domain != host:
                entry["domain"] = cookie.domain
            try:
                driver.add_cookie(entry)
            except (InvalidCookieDomainException, UnableToSetCookieException):
                raise MosaicError(f"--cookies {settings.cookies}: the browser refused the "
                                  f"cookie named {cookie.name!r}") from None
            added += 1
    return added


def _page_state(url: str, html: str) -> str:
    """``"login"``, ``"missing"``, ``"private"``, ``"profile"`` or ``"error"``."""
    if _is_login_url(url):
        return "login"
    soup = BeautifulSoup(html, "html.parser")
    text = soup.get_text(" ", strip=True)
    if soup.select_one("input[name=password]") is not None:
        return "login"
    if "this page isn't available" in text.lower() or "page not found" in text.lower():
        return "missing"
    if "this account is private" in text.lower():
        return "private"
    og_type = soup.select_one('meta[property="og:type"]')
    if og_type is not None and og_type.get("content") == "profile":
        return "profile"
    if soup.select_one('a[href*="/p/"], a[href*="/reel/"]') is not None:
        return "profile"
    return "error"


def stated_post_count(html: str) -> int | None:
    """The exact post count a profile page states ("1,234 Posts"), or None."""
    soup = BeautifulSoup(html, "html.parser")
    texts = [str(meta.get("content", "")) for meta in soup.select(
        'meta[name="description"], meta[property="og:description"]')]
    for text in texts:
        match = _POSTS_COUNT_RE.search(text)
        if match and not match.group(2):
            digits = re.sub(r"\D", "", match.group(1))
            if digits:
                return int(digits)
    return None


def _load_profile(driver: WebDriver, url: str, settings: ScrapeSettings) -> str:
    """Open the profile, retrying error pages and network faults; return its HTML.

    A site that cannot be reached at all, and a stop, end it at once.
    """
    policy = settings.fetch.retry
    for attempt in range(policy.attempts):
        polite_wait(urlsplit(settings.base_url).netloc, settings.delay)
        try:
            browser_get(driver, url)
        except TransientFetchError as exc:
            state, html, why = "error", "", str(exc)
        else:
            html = driver.page_source
            state, why = _page_state(driver.current_url, html), "an error page"
        if state == "profile":
            return html
        if state == "login":
            raise LoginRequiredError(login_wall_message(settings.base_url))
        if state == "missing":
            raise ProfileError(f"{url}: no such profile (the page isn't available)")
        if state == "private":
            raise ProfileError(f"{url}: the account is private; log in as a follower and "
                               "pass --cookies")
        if attempt + 1 == policy.attempts:
            break
        wait = policy.delay(attempt, TransientFetchError(url))
        log.info("profile %s did not load (%s); retrying in %.1f s", url, why, wait)
        pause(wait)
    raise TransientFetchError(f"profile {url} did not load after {policy.attempts} tries "
                              f"({why})", url)


def _collect(driver: WebDriver, base_url: str, seen: dict[str, str]) -> int:
    """Add the post and reel links now in the page to ``seen``; return how many were new."""
    hrefs = driver.execute_script(_LINKS_JS) or []
    new = 0
    for href in hrefs:
        found = _link_kind(str(href), base_url)
        if found is not None and found[1] not in seen:
            seen[found[1]] = found[0]
            new += 1
    return new


def _check_wall(driver: WebDriver, settings: ScrapeSettings) -> None:
    if _is_login_url(driver.current_url):
        raise LoginRequiredError(login_wall_message(settings.base_url))


def _scroll_and_collect(driver: WebDriver, settings: ScrapeSettings, max_posts: int | None,
                        expected: int | None) -> tuple[dict[str, str], int]:
    """Scroll until enough links, or none new for a while; return code -> kind, and scrolls."""
    seen: dict[str, str] = {}
    scrolls = 0
    last_new = time.monotonic()
    while True:
        _check_wall(driver, settings)
        if _collect(driver, settings.base_url, seen):
            last_new = time.monotonic()
            polite_wait(urlsplit(settings.base_url).netloc, settings.delay)
        posts = sum(kind == "p" for kind in seen.values())
        if ((max_posts is not None and posts >= max_posts)
                or (expected is not None and len(seen) >= expected)
                or time.monotonic() - last_new > settings.idle_timeout
                or scrolls >= settings.max_scrolls):
            return seen, scrolls
        driver.execute_script(_SCROLL_JS)
        scrolls += 1
        pause(_POLL_SECONDS)


def list_profile_posts(username: str, settings: ScrapeSettings, work_dir: str | os.PathLike[str],
                       max_posts: int | None = None) -> ProfileListing:
    """Scroll a profile in headless Chromium and collect its post links.

    Scrolling stops when the profile's stated post count is reached, when ``max_posts``
    posts are found, when no new link has appeared for ``settings.idle_timeout`` seconds,
    or after ``settings.max_scrolls`` scrolls. Links are collected after every scroll, so
    a page that drops old posts from its DOM loses none.

    Parameters
    ----------
    username : str
        The profile.
    settings : ScrapeSettings
        Site, cookies, delay and bounds.
    work_dir : path-like
        The run's work folder (the temporary browser profile goes there).
    max_posts : int, optional
        Stop after this many posts (newest first). Default: all.

    Returns
    -------
    ProfileListing
        Post and reel URLs, newest first.

    Raises
    ------
    LoginRequiredError
        The site shows its login wall.
    ProfileError
        No such profile, or a private one.
    SiteUnreachableError
        The site cannot be reached.
    TransientFetchError
        The profile did not load after the retries, or the browser failed.
    StopRequested
        The run is being stopped (the browser is quit on the way out).
    """
    base = settings.base_url
    with (open_browser(work_dir, settings.page_load_timeout, urlsplit(base).port) as driver,
          browser_errors(f"{base}/{username}/")):
        add_browser_cookies(driver, settings)
        html = _load_profile(driver, f"{base}/{username}/", settings)
        expected = stated_post_count(html)
        seen, scrolls = _scroll_and_collect(driver, settings, max_posts, expected)
    if scrolls >= settings.max_scrolls:
        log.warning("profile %s: stopped after %d scrolls", username, scrolls)
    if expected is not None and len(seen) < expected and max_posts is None:
        log.warning("profile %s states %d posts but only %d were found", username, expected,
                    len(seen))
    posts = [post_url(base, code) for code, kind in seen.items() if kind == "p"]
    if max_posts is not None:
        posts = posts[:max_posts]
    reels = tuple(f"{base}/reel/{code}/" for code, kind in seen.items() if kind == "reel")
    return ProfileListing(tuple(posts), reels, expected, scrolls)


# --- post pages -------------------------------------------------------------------------------

def unescape_js_string(body: str) -> str:
    r"""Decode the body of a JavaScript string literal (``\"``, ``\/``, ``\u0026`` ...).

    Surrogate pairs written as two ``\uXXXX`` escapes become one character.
    """
    def replace(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape.startswith("u{"):
            return chr(int(escape[2:-1], 16))
        if escape[0] in "ux" and len(escape) > 1:
            return chr(int(escape[1:], 16))
        if escape == "\n":
            return ""
        return _JS_SIMPLE_ESCAPES.get(escape, escape)

    text = _JS_ESCAPE_RE.sub(replace, body)
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _raw_decode_all(text: str) -> Iterator[tuple[int, int, Any]]:
    """Every JSON object or array embedded in ``text``: ``(start, end, value)``."""
    decoder = json.JSONDecoder()
    position = 0
    while True:
        match = _JSON_START_RE.search(text, position)
        if match is None:
            return
        start = match.start()
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        if isinstance(value, dict | list) and value:
            yield start, end, value
        position = max(end, start + 1)


def embedded_json(text: str, depth: int = 0) -> Iterator[Any]:
    """Every JSON value found in a script: plain, assigned, or escaped in a string literal.

    Parameters
    ----------
    text : str
        A script's source (or a decoded string literal).
    depth : int
        Nesting of string-in-string escapes decoded so far (bounded at 3).

    Yields
    ------
    dict or list
        Decoded values, outermost first.
    """
    spans: list[tuple[int, int]] = []
    for start, end, value in _raw_decode_all(text):
        spans.append((start, end))
        yield value
    if depth >= 3 or not _MEDIA_MARKER_RE.search(text):
        return
    for match in _STRING_LITERAL_RE.finditer(text):
        if any(start <= match.start() < end for start, end in spans):
            continue
        body = match.group(1) if match.group(1) is not None else match.group(2)
        if "\\" not in body or not _MEDIA_MARKER_RE.search(body):
            continue
        yield from embedded_json(unescape_js_string(body), depth + 1)


def _walk(value: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every dict inside ``value``, outermost first; JSON held in strings is decoded too."""
    if depth > 60:
        return
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _walk(child, depth + 1)
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child, depth + 1)
    elif (isinstance(value, str) and value[:1] in "{[" and len(value) > 20
          and _MEDIA_MARKER_RE.search(value)):
        with contextlib.suppress(ValueError):
            yield from _walk(json.loads(value), depth + 1)


def _node_code(node: dict[str, Any]) -> str | None:
    code = node.get("code", node.get("shortcode"))
    return code if isinstance(code, str) else None


def find_media_node(values: Iterable[Any], code: str) -> dict[str, Any] | None:
    """The media object of post ``code`` among decoded JSON values.

    The object whose ``code``/``shortcode`` is ``code`` wins; failing that, the first media
    object that names no code at all (one that names another code belongs to another post,
    such as "more posts from" suggestions).
    """
    anonymous = None
    for value in values:
        for node in _walk(value):
            if not any(key in node for key in _MEDIA_KEYS):
                continue
            node_code = _node_code(node)
            if node_code == code:
                return node
            if node_code is None and anonymous is None:
                anonymous = node
    return anonymous


def _is_video_node(node: dict[str, Any]) -> bool:
    return (node.get("media_type") == 2 or node.get("is_video") is True
            or bool(node.get("video_versions"))
            or node.get("__typename") in {"GraphVideo", "XDTGraphVideo"}
            or node.get("product_type") in {"clips", "igtv"})


def _as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _by_size(candidates: Iterable[ImageRef]) -> list[ImageRef]:
    """The candidates largest first (ties keep their order), each URL once."""
    unique: dict[str, ImageRef] = {}
    for candidate in candidates:
        unique.setdefault(candidate.url, candidate)
    return sorted(unique.values(), key=lambda r: -(r.width or 0) * (r.height or 0))


def _offering(best: ImageRef, others: Iterable[ImageRef]) -> ImageRef:
    """``best`` with the other sizes as its alternatives, largest first."""
    rest = [ref for ref in _by_size(others) if ref.url != best.url]
    return ImageRef(best.url, best.width, best.height, tuple(rest))


def best_image(node: dict[str, Any]) -> ImageRef | None:
    """The largest image a media object offers, with its other sizes as alternatives.

    ``image_versions2.candidates`` (largest width x height), else ``display_resources``,
    else ``display_url`` (``display_src`` in old pages); every size any of them offers
    is an alternative, largest first.
    """
    versions = node.get("image_versions2")
    candidates = versions.get("candidates") if isinstance(versions, dict) else None
    groups = [
        [ImageRef(c["url"], _as_int(c.get("width")), _as_int(c.get("height")))
         for c in candidates or [] if isinstance(c, dict) and isinstance(c.get("url"), str)],
        [ImageRef(r["src"], _as_int(r.get("config_width")), _as_int(r.get("config_height")))
         for r in node.get("display_resources") or []
         if isinstance(r, dict) and isinstance(r.get("src"), str)],
    ]
    url = node.get("display_url") or node.get("display_src")
    if isinstance(url, str):
        dims = node.get("dimensions") if isinstance(node.get("dimensions"), dict) else {}
        groups.append([ImageRef(url, _as_int(dims.get("width")), _as_int(dims.get("height")))])
    preferred = next((group for group in groups if group), None)
    if preferred is None:
        return None
    return _offering(_by_size(preferred)[0], (ref for group in groups for ref in group))


def _children(node: dict[str, Any]) -> list[dict[str, Any]]:
    children = node.get("carousel_media")
    if isinstance(children, list) and children:
        return [child for child in children if isinstance(child, dict)]
    sidecar = node.get("edge_sidecar_to_children")
    if isinstance(sidecar, dict):
        return [edge["node"] for edge in sidecar.get("edges", [])
                if isinstance(edge, dict) and isinstance(edge.get("node"), dict)]
    return []


def _caption(node: dict[str, Any]) -> str | None:
    caption = node.get("caption")
    if isinstance(caption, dict) and isinstance(caption.get("text"), str):
        return caption["text"]
    edges = (node.get("edge_media_to_caption") or {}).get("edges") or []
    if edges and isinstance(edges[0], dict):
        text = (edges[0].get("node") or {}).get("text")
        return text if isinstance(text, str) else None
    return None


def media_from_json(node: dict[str, Any], code: str) -> PostMedia:
    """Read a post's images from its JSON media object (carousel children included)."""
    from mosaic.sources.manifest import timestamp_iso

    date = timestamp_iso(node.get("taken_at", node.get("taken_at_timestamp")))
    caption = _caption(node)
    children = _children(node)
    if not children:
        if _is_video_node(node):
            return PostMedia(code, (), 1, True, "json", date, caption)
        image = best_image(node)
        return PostMedia(code, (image,) if image else (), 0, False, "json", date, caption)
    images, videos = [], 0
    for child in children:
        if _is_video_node(child):
            videos += 1
        elif (image := best_image(child)) is not None:
            images.append(image)
    return PostMedia(code, tuple(images), videos, not images and videos > 0, "json", date,
                     caption)


def parse_srcset(srcset: str) -> list[ImageRef]:
    """The candidates of an ``srcset`` attribute (URLs may contain commas).

    ``w`` descriptors become widths; ``x`` descriptors are kept as relative sizes in
    ``width`` so that the largest still sorts last.
    """
    refs: list[ImageRef] = []
    position, size = 0, len(srcset)
    while position < size:
        while position < size and (srcset[position].isspace() or srcset[position] == ","):
            position += 1
        start = position
        while position < size and not srcset[position].isspace():
            position += 1
        url, descriptor = srcset[start:position], ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            comma = srcset.find(",", position)
            comma = size if comma < 0 else comma
            descriptor, position = srcset[position:comma].strip(), comma + 1
        if not url:
            continue
        width = None
        if match := re.fullmatch(r"(\d+)w", descriptor):
            width = int(match.group(1))
        elif match := re.fullmatch(r"(\d+(?:\.\d+)?)x", descriptor):
            width = round(float(match.group(1)) * 1000)
        refs.append(ImageRef(url, width, 1 if width is not None else None))
    return refs


def media_from_html(soup: BeautifulSoup, code: str, page_url: str) -> PostMedia:
    """Read a post's images from its markup: ``<img srcset>``, then ``og:image``."""
    root = soup.select_one("article") or soup.select_one("main") or soup
    videos = len(root.select("video"))
    og_video = soup.select_one('meta[property="og:video"], meta[property="og:video:url"]')
    og_type = soup.select_one('meta[property="og:type"]')
    video_page = og_video is not None or (
        og_type is not None and str(og_type.get("content", "")).startswith("video"))
    time_tag = root.select_one("time[datetime]")
    date = str(time_tag["datetime"]) if time_tag is not None else None
    images: list[ImageRef] = []
    for img in root.select("img[srcset]"):
        if "profile picture" in str(img.get("alt", "")).lower():
            continue
        sizes = [ImageRef(urljoin(page_url, ref.url), ref.width, ref.height)
                 for ref in _by_size(parse_srcset(str(img["srcset"])))]
        if img.get("src"):
            sizes.append(ImageRef(urljoin(page_url, str(img["src"]))))
        if sizes:
            best = sizes[0]
            # srcset heights are only there to sort by; the record keeps the width.
            ref = _offering(ImageRef(best.url, best.width),
                            (ImageRef(other.url, other.width) for other in sizes[1:]))
            if all(ref.url != image.url for image in images):
                images.append(ref)
    if images:
        return PostMedia(code, tuple(images), videos, False, "srcset", date)
    if videos or video_page:
        return PostMedia(code, (), max(videos, 1), True, "srcset", date)
    og_image = soup.select_one('meta[property="og:image"]')
    if og_image is not None and og_image.get("content"):
        log.warning("post %s: only the og:image thumbnail was found; saving it (low resolution)",
                    code)
        return PostMedia(code, (ImageRef(urljoin(page_url, str(og_image["content"]))),), 0,
                         False, "og:image", date)
    return PostMedia(code, (), 0, False, "none", date)


def parse_post_page(html: str, code: str, page_url: str) -> PostMedia:
    """Find the images of post ``code`` in its page.

    Parameters
    ----------
    html : str
        The post page.
    code : str
        The post's short code (selects its media among suggestions of other posts).
    page_url : str
        The page's URL, for relative links.

    Returns
    -------
    PostMedia
        Images in order of preference of the source: embedded JSON, then ``srcset``, then
        ``og:image``.

    Raises
    ------
    LoginRequiredError
        The page is a login form.
    """
    soup = BeautifulSoup(html, "html.parser")
    values: list[Any] = []
    for script in soup.find_all("script"):
        text = script.string or script.get_text()
        if text and ("{" in text or "[" in text):
            values.extend(embedded_json(text))
    node = find_media_node(values, code)
    if node is not None:
        media = media_from_json(node, code)
        if media.images or media.is_video:
            return media
    media = media_from_html(soup, code, page_url)
    if media.found_by == "none" and soup.select_one("input[name=password]") is not None:
        raise LoginRequiredError(login_wall_message(page_url))
    if media.found_by == "none" and _says_unavailable(soup):
        return PostMedia(code, (), 0, False, "unavailable", media.date)
    return media


def _says_unavailable(soup: BeautifulSoup) -> bool:
    """Whether a page is Instagram's "Sorry, this page isn't available" (a deleted post)."""
    text = soup.get_text(" ", strip=True).lower().replace("\u2019", "'")
    return "this page isn't available" in text or "page not found" in text


# --- one post, end to end -------------------------------------------------------------------

def _image_key(url: str) -> str:
    """Identify an image across page loads: CDN URLs keep their path, not their signature."""
    return urlsplit(url).path


def _entry(url: str, media: PostMedia, images: list[dict[str, Any]], status: str,
           gone: Iterable[str] = (), error: str | None = None) -> dict[str, Any]:
    return {"code": media.code, "url": url, "date": media.date, "caption": media.caption,
            "status": status, "found_by": media.found_by, "images": images,
            "skipped_videos": media.skipped_videos, "error": error, "gone_images": list(gone)}


def _result(code: str, entry: dict[str, Any], new: int, retries: int, reused: bool
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
            entry = _entry(url, media, [], manifest.VIDEO)
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
        if _is_login_url(page.url):
            raise LoginRequiredError(login_wall_message(settings.base_url))
        return parse_post_page(page.text, code, page.url), page.attempts - 1
    except LoginRequiredError:
        note_login_wall(run_key)
        raise


def _record_gone_page(out_dir: str | os.PathLike[str], url: str, code: str, reason: str
                      ) -> dict[str, Any]:
    """Record a post whose page is gone, keeping images an interrupted run had saved."""
    previous = manifest.read_manifest(out_dir)["posts"].get(code) or {}
    images = [image for image in previous.get("images", [])
              if (Path(out_dir) / image["file"]).is_file()]
    entry = {"code": code, "url": url, "date": previous.get("date"),
             "caption": previous.get("caption"),
             "status": manifest.PARTLY_GONE if images else manifest.GONE,
             "found_by": previous.get("found_by"), "images": images,
             "skipped_videos": previous.get("skipped_videos", 0), "error": reason,
             "gone_images": []}
    manifest.update_posts(out_dir, {code: entry})
    return entry


@dataclass(frozen=True)
class _Download:
    """How fetching one image (in any of its sizes) went."""

    record: dict[str, Any] | None
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


def _post_status(saved: int, gone: int, total: int) -> str:
    if saved + gone < total:
        return manifest.PARTIAL
    if not gone:
        return manifest.DONE
    return manifest.PARTLY_GONE if saved else manifest.GONE


def _gone_reason(gone: int, total: int, statuses: Iterable[int]) -> str:
    answer = "HTTP " + "/".join(map(str, sorted(set(statuses))))
    if total == 1:
        return f"every size of its image answers {answer}"
    if gone == total:
        return f"every size of its {total} images answers {answer}"
    return f"every size of {gone} of its {total} images answers {answer}"


def _save_images(session: requests.Session, url: str, media: PostMedia,
                 out_dir: str | os.PathLike[str], settings: ScrapeSettings
                 ) -> tuple[dict[str, Any], int, int]:
    """Download a post's images, skipping those an interrupted run saved; record each one.

    Returns the post's final manifest entry, how many files are new, and the retries it
    took.
    """
    previous = manifest.read_manifest(out_dir)["posts"].get(media.code) or {}
    saved = {_image_key(image["url"]): image for image in previous.get("images", [])
             if (Path(out_dir) / image["file"]).is_file()}
    allow = settings.image_hosts()
    images: list[dict[str, Any]] = []
    gone: list[str] = []
    statuses: list[int] = []
    new = retries = 0
    total = len(media.images)
    entry: dict[str, Any] = {}
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
        status = _post_status(len(images), len(gone), total)
        error = _gone_reason(len(gone), total, statuses) if gone else None
        entry = _entry(url, media, images, status, gone, error)
        manifest.update_posts(out_dir, {media.code: entry})
    return entry, new, retries


def record_failure(out_dir: str | os.PathLike[str], url: str, reason: str) -> None:
    """Mark post ``url`` as failed in the manifest, keeping images it had already saved."""
    code = post_code(url)
    previous = manifest.read_manifest(out_dir)["posts"].get(code) or {}
    if previous.get("status") in manifest.FINISHED_STATUSES:
        return
    entry = {"code": code, "url": url, "date": previous.get("date"),
             "caption": previous.get("caption"), "status": manifest.FAILED,
             "found_by": previous.get("found_by"), "images": previous.get("images", []),
             "skipped_videos": previous.get("skipped_videos", 0), "error": reason,
             "gone_images": previous.get("gone_images", [])}
    manifest.update_posts(out_dir, {code: entry})
