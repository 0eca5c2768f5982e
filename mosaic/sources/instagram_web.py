"""Photos from Instagram's web site: profile -> post URLs -> image URLs -> files.

* The profile is rendered by headless Chromium (Selenium, the system ``chromium`` and
  ``chromedriver``; no driver download), scrolled until no new post links appear, and
  its ``/p/<code>/`` links collected (``/reel/`` links are videos and skipped).
* Each post page is fetched with requests and read with BeautifulSoup; regular expressions
  find the JSON embedded in its scripts (plain, assigned to a variable, or escaped inside
  a JavaScript string) and the image URLs are taken, by preference, from that JSON
  (``image_versions2.candidates``: the largest; ``display_url``; every child of a carousel),
  then from ``<img srcset>`` (the largest candidate), then from ``og:image`` (a thumbnail,
  with a warning). Videos, and video children of carousels, are skipped whole.
* Images are saved by :mod:`mosaic.sources.download`; ``manifest.json`` records each post
  as it completes, so a rerun fetches only what is missing.

Cookies passed with ``--cookies`` are sent with requests and added to the browser; they
are never logged nor written anywhere but the temporary browser profile, which is deleted.
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

from mosaic.errors import MosaicError
from mosaic.sources import manifest
from mosaic.sources.download import (
    DEFAULT_ALLOWED_HOSTS,
    AllowList,
    FetchSettings,
    PermanentFetchError,
    TransientFetchError,
    download_image,
    fetch_page,
    load_cookie_jar,
    make_session,
)

if TYPE_CHECKING:
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
_CHROMIUM_PREFS = {"profile.managed_default_content_settings.images": 2}
_PROFILE_PREFIX = "chromium-profile-"
"""Headless, quiet, and without loading images: only the post links are needed."""

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
    """One image URL found in a post page, with its size when the page gives it."""

    url: str
    width: int | None = None
    height: int | None = None


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
        ``"json"``, ``"srcset"``, ``"og:image"`` or ``"none"``.
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
    """
    if delay <= 0:
        return
    with _gate_lock:
        now = time.monotonic()
        turn = max(now, _next_turn.get(key, now))
        _next_turn[key] = turn + delay
    if turn > now:
        time.sleep(turn - now)


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

@contextlib.contextmanager
def open_browser(work_dir: str | os.PathLike[str], page_load_timeout: float = 60.0
                 ) -> Iterator[WebDriver]:
    """Start headless Chromium with a fresh profile inside ``work_dir``; quit and delete it after.

    Profiles that a killed run left in ``work_dir`` (they may hold cookies) are deleted first.

    Parameters
    ----------
    work_dir : path-like
        The run's work folder; the browser profile is a temporary folder inside it.
    page_load_timeout : float
        Seconds a page may take to load.

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
    from selenium.webdriver.chrome.service import Service

    for program in (CHROMIUM, CHROMEDRIVER):
        if not Path(program).is_file():
            raise MosaicError(f"{program} not found: install the Debian packages chromium "
                              "and chromium-driver")
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    for stale in Path(work_dir).glob(f"{_PROFILE_PREFIX}*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    profile = Path(tempfile.mkdtemp(prefix=_PROFILE_PREFIX, dir=work_dir))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--disk-cache-dir={profile / 'cache'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", _CHROMIUM_PREFS)
    service = Service(CHROMEDRIVER, log_output=subprocess.DEVNULL)
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as exc:
        shutil.rmtree(profile, ignore_errors=True)
        first_line = (exc.msg or str(exc)).strip().splitlines()[0]
        raise MosaicError(f"could not start Chromium: {first_line}") from None
    try:
        driver.set_page_load_timeout(page_load_timeout)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


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
    """
    if not settings.cookies:
        return 0
    host = urlsplit(settings.base_url).hostname or ""
    added = 0
    with _quiet_selenium():
        driver.get(f"{settings.base_url}/robots.txt")
        for cookie in load_cookie_jar(settings.cookies):
            domain = cookie.domain.lstrip(".")
            if host != domain and not host.endswith("." + domain):
                continue
            entry: dict[str, Any] = {"name": cookie.name, "value": cookie.value or "",
                                     "path": cookie.path or "/", "secure": bool(cookie.secure)}
            if cookie.domain.startswith(".") and domain != host:
                entry["domain"] = cookie.domain
            driver.add_cookie(entry)
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
    """Open the profile, retrying error pages; return its HTML."""
    from selenium.common.exceptions import TimeoutException

    policy = settings.fetch.retry
    for attempt in range(policy.attempts):
        polite_wait(urlsplit(settings.base_url).netloc, settings.delay)
        try:
            driver.get(url)
        except TimeoutException:
            state, html = "error", ""
        else:
            html = driver.page_source
            state = _page_state(driver.current_url, html)
        if state == "profile":
            return html
        if state == "login":
            raise LoginRequiredError(login_wall_message(settings.base_url))
        if state == "missing":
            raise ProfileError(f"{url}: no such profile (the page isn't available)")
        if state == "private":
            raise ProfileError(f"{url}: the account is private; log in as a follower and "
                               "pass --cookies")
        wait = policy.delay(attempt, TransientFetchError(url))
        log.info("profile %s did not load; retrying in %.1f s", url, wait)
        time.sleep(wait)
    raise TransientFetchError(f"profile {url} did not load after {policy.attempts} tries", url)


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
        time.sleep(_POLL_SECONDS)


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
    """
    base = settings.base_url
    with open_browser(work_dir, settings.page_load_timeout) as driver:
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


def _largest(candidates: Iterable[ImageRef]) -> ImageRef | None:
    best = None
    for candidate in candidates:
        area = (candidate.width or 0) * (candidate.height or 0)
        if best is None or area > (best.width or 0) * (best.height or 0):
            best = candidate
    return best


def best_image(node: dict[str, Any]) -> ImageRef | None:
    """The largest image a media object offers.

    ``image_versions2.candidates`` (largest width x height), else ``display_resources``,
    else ``display_url`` (``display_src`` in old pages).
    """
    versions = node.get("image_versions2")
    candidates = versions.get("candidates") if isinstance(versions, dict) else None
    refs = [ImageRef(c["url"], _as_int(c.get("width")), _as_int(c.get("height")))
            for c in candidates or [] if isinstance(c, dict) and isinstance(c.get("url"), str)]
    if not refs:
        refs = [ImageRef(r["src"], _as_int(r.get("config_width")), _as_int(r.get("config_height")))
                for r in node.get("display_resources") or []
                if isinstance(r, dict) and isinstance(r.get("src"), str)]
    if refs:
        return _largest(refs)
    url = node.get("display_url") or node.get("display_src")
    if isinstance(url, str):
        dims = node.get("dimensions") if isinstance(node.get("dimensions"), dict) else {}
        return ImageRef(url, _as_int(dims.get("width")), _as_int(dims.get("height")))
    return None


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
        best = _largest(parse_srcset(str(img["srcset"])))
        if best is not None:
            ref = ImageRef(urljoin(page_url, best.url), best.width)
            if ref not in images:
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
    return media


# --- one post, end to end -------------------------------------------------------------------

def _image_key(url: str) -> str:
    """Identify an image across page loads: CDN URLs keep their path, not their signature."""
    return urlsplit(url).path


def _entry(url: str, media: PostMedia, images: list[dict[str, Any]], status: str
           ) -> dict[str, Any]:
    return {"code": media.code, "url": url, "date": media.date, "caption": media.caption,
            "status": status, "found_by": media.found_by, "images": images,
            "skipped_videos": media.skipped_videos, "error": None}


def scrape_post(url: str, out_dir: str | os.PathLike[str], settings: ScrapeSettings,
                run_key: str | None = None) -> dict[str, Any]:
    """Fetch one post and save its images into ``out_dir``; record it in the manifest.

    A post the manifest already records as finished, with its files present, is not
    fetched again; images saved before an interruption are not downloaded again.

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
        The page or an image could not be fetched (permanent, or after retries).
    """
    code = post_code(url)
    done = manifest.finished_entry(out_dir, code)
    if done is not None:
        return {"code": code, "entry": done, "new_images": 0, "retries": 0, "reused": True}
    if login_wall_seen(run_key):
        raise LoginRequiredError(login_wall_message(settings.base_url))
    with make_session(settings.fetch, settings.cookies) as session:
        media, retries = _fetch_media(session, url, code, settings, run_key)
        if media.is_video:
            entry = _entry(url, media, [], manifest.VIDEO)
            manifest.update_posts(out_dir, {code: entry})
            return {"code": code, "entry": entry, "new_images": 0, "retries": retries,
                    "reused": False}
        if not media.images:
            raise PermanentFetchError(f"no image found in the page of post {code}", url)
        images, new, image_retries = _save_images(session, url, media, out_dir, settings)
    return {"code": code, "entry": _entry(url, media, images, manifest.DONE),
            "new_images": new, "retries": retries + image_retries, "reused": False}


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


def _save_images(session: requests.Session, url: str, media: PostMedia,
                 out_dir: str | os.PathLike[str], settings: ScrapeSettings
                 ) -> tuple[list[dict[str, Any]], int, int]:
    """Download a post's images, skipping those an interrupted run saved; record each one.

    Returns the image records, how many files are new, and the retries it took.
    """
    previous = manifest.read_manifest(out_dir)["posts"].get(media.code) or {}
    saved = {_image_key(image["url"]): image for image in previous.get("images", [])
             if (Path(out_dir) / image["file"]).is_file()}
    allow = settings.image_hosts()
    images: list[dict[str, Any]] = []
    new = retries = 0
    for ref in media.images:
        record = saved.get(_image_key(ref.url))
        if record is None:
            image = download_image(session, ref.url, out_dir, allow, settings.fetch)
            retries += image.attempts - 1
            new += int(image.new)
            record = {"url": ref.url, "sha256": image.sha256, "file": image.file,
                      "bytes": image.bytes, "width": ref.width, "height": ref.height}
        images.append(record)
        status = manifest.DONE if len(images) == len(media.images) else "partial"
        manifest.update_posts(out_dir, {media.code: _entry(url, media, images, status)})
    return images, new, retries


def record_failure(out_dir: str | os.PathLike[str], url: str, reason: str) -> None:
    """Mark post ``url`` as failed in the manifest, keeping images it had already saved."""
    code = post_code(url)
    previous = manifest.read_manifest(out_dir)["posts"].get(code) or {}
    if previous.get("status") in manifest.FINISHED_STATUSES:
        return
    entry = {"code": code, "url": url, "date": previous.get("date"),
             "caption": previous.get("caption"), "status": manifest.FAILED,
             "found_by": previous.get("found_by"), "images": previous.get("images", []),
             "skipped_videos": previous.get("skipped_videos", 0), "error": reason}
    manifest.update_posts(out_dir, {code: entry})
