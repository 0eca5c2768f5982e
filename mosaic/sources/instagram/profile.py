"""A profile in headless Chromium: loaded, scrolled until no new post links appear, listed.

Its ``/p/<code>/`` links are collected after every scroll (``/reel/`` links are videos
and skipped); the login wall, a missing profile and a private one end the listing with
one line. Instagram shows guests only the newest posts (about a dozen) and sends them to
a login dialog (or the login page) when they scroll for more: a wall met after some posts
were collected ends the scrolling instead of the listing, which says how many of the posts
the profile states it saw (:attr:`ProfileListing.short`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from mosaic.sources.download.errors import TransientFetchError
from mosaic.sources.download.stop import pause
from mosaic.sources.instagram.browser import (
    add_browser_cookies,
    browser_errors,
    browser_get,
    open_browser,
)
from mosaic.sources.instagram.errors import LoginRequiredError, ProfileError
from mosaic.sources.instagram.politeness import polite_wait
from mosaic.sources.instagram.settings import ScrapeSettings
from mosaic.sources.instagram.urls import is_login_url, link_kind, login_wall_message, post_url

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

log = logging.getLogger("mosaic.instagram")

_POSTS_COUNT_RE = re.compile(r"([\d][\d,.\u202f\u00a0]*)\s*([KkMm]?)\s+Posts?\b")
_LINKS_JS = "return Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href'));"
_SCROLL_JS = "window.scrollTo(0, document.body.scrollHeight);"
_LOGIN_PROMPT_JS = ("return document.querySelector("
                    "'[role=\"dialog\"] a[href*=\"/accounts/login\"]') !== null;")
"""A dialog over the page asking to log in: how Instagram ends what guests may scroll."""
_POLL_SECONDS = 0.1


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
    found: int = 0
    """Post and reel links seen (before ``max_posts`` is applied)."""
    login_wall: bool = False
    """The login wall ended the scrolling (guests see only the newest posts)."""
    short: bool = False
    """Fewer posts were seen than the profile states (and than ``max_posts`` asked for)."""


def _page_state(url: str, html: str) -> str:
    """``"login"``, ``"missing"``, ``"private"``, ``"profile"`` or ``"error"``."""
    if is_login_url(url):
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
                               "pass `cookies`")
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
        found = link_kind(str(href), base_url)
        if found is not None and found[1] not in seen:
            seen[found[1]] = found[0]
            new += 1
    return new


def _walled(driver: WebDriver, settings: ScrapeSettings, seen: dict[str, str]) -> bool:
    """Whether the login wall is up: the login page, or a login prompt over the grid.

    Raises
    ------
    LoginRequiredError
        The wall came before any post link.
    """
    if not is_login_url(driver.current_url) and not driver.execute_script(_LOGIN_PROMPT_JS):
        return False
    if not seen:
        raise LoginRequiredError(login_wall_message(settings.base_url))
    return True


def _scroll_and_collect(driver: WebDriver, settings: ScrapeSettings, max_posts: int | None,
                        expected: int | None) -> tuple[dict[str, str], int, bool]:
    """Scroll until enough links, none new for a while, or the login wall.

    Returns code -> kind, the scrolls, and whether the login wall ended them.
    """
    seen: dict[str, str] = {}
    scrolls = 0
    last_new = time.monotonic()
    while True:
        if not is_login_url(driver.current_url) and _collect(driver, settings.base_url, seen):
            last_new = time.monotonic()
            polite_wait(urlsplit(settings.base_url).netloc, settings.delay)
        posts = sum(kind == "p" for kind in seen.values())
        if ((max_posts is not None and posts >= max_posts)
                or (expected is not None and len(seen) >= expected)
                or time.monotonic() - last_new > settings.idle_timeout
                or scrolls >= settings.max_scrolls):
            return seen, scrolls, False
        if _walled(driver, settings, seen):
            return seen, scrolls, True
        driver.execute_script(_SCROLL_JS)
        scrolls += 1
        pause(_POLL_SECONDS)


def list_profile_posts(username: str, settings: ScrapeSettings, work_dir: str | os.PathLike[str],
                       max_posts: int | None = None) -> ProfileListing:
    """Scroll a profile in headless Chromium and collect its post links.

    Scrolling stops when the profile's stated post count is reached, when ``max_posts``
    posts are found, when no new link has appeared for ``settings.idle_timeout`` seconds,
    after ``settings.max_scrolls`` scrolls, or when the login wall comes up after some
    posts (what guests see). Links are collected after every scroll, so a page that drops
    old posts from its DOM loses none.

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
        The site shows its login wall before any post.
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
        seen, scrolls, walled = _scroll_and_collect(driver, settings, max_posts, expected)
    if scrolls >= settings.max_scrolls:
        log.warning("profile %s: stopped after %d scrolls", username, scrolls)
    posts = [post_url(base, code) for code, kind in seen.items() if kind == "p"]
    # The caller says so in one line (the scrape's summary): not a warning here too.
    short = (expected is not None and len(seen) < expected
             and (max_posts is None or len(posts) < max_posts))
    if short:
        log.info("profile %s states %d posts; %d were seen%s", username, expected, len(seen),
                 " before the login wall" if walled else "")
    if max_posts is not None:
        posts = posts[:max_posts]
    reels = tuple(f"{base}/reel/{code}/" for code, kind in seen.items() if kind == "reel")
    return ProfileListing(tuple(posts), reels, expected, scrolls, len(seen), walled, short)
