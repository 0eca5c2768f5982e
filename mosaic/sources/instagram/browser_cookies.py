"""The site's session cookies, read from a browser profile on this machine (Chromium, Firefox).

``browser-cookie3`` reads the cookie database and decrypts Chromium's values (with the key
in the desktop's keyring, or Chromium's built-in one when it has none). The database is
first copied, with its write-ahead log, into a private folder (mode 0700, deleted by the
guardian if this process dies): a running browser keeps it locked, and browser-cookie3's
own copy would go to the shared temporary folder with the default permissions. Only the
cookies of the site are kept, in memory; no value is ever logged or put in a message.
"""

from __future__ import annotations

import contextlib
import functools
import http.cookiejar
import shutil
import sqlite3
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from mosaic import processes
from mosaic.sources.instagram.errors import BrowserCookiesError

Browser = Literal["chromium", "firefox"]
"""The browsers whose profiles can be read."""
BROWSERS: tuple[Browser, ...] = ("chromium", "firefox")
SESSION_COOKIE = "sessionid"
"""The cookie that holds an Instagram login."""

_NAMES = {"chromium": "Chromium", "firefox": "Firefox"}
_DATABASES = {"chromium": ("Cookies", "Network/Cookies", "Default/Cookies",
                           "Default/Network/Cookies"),
              "firefox": ("cookies.sqlite",)}
"""Where a cookie database sits in a profile folder (or a Chromium user-data folder)."""
_TABLES = {"chromium": "cookies", "firefox": "moz_cookies"}
_SIDE_FILES = ("-wal", "-journal")
"""SQLite's logs beside a database: the newest cookies may still be in them."""
_LOCK = threading.Lock()
"""browser-cookie3 is adjusted (see :func:`_contained`) for one read at a time."""


def site_domain(base_url: str) -> str:
    """The domain of the site's cookies: ``https://www.instagram.com`` -> ``instagram.com``."""
    host = urlsplit(base_url).hostname or ""
    return host.removeprefix("www.")


def cookie_database(browser: Browser, profile: str | None) -> Path:
    """The cookie database of a browser profile.

    Parameters
    ----------
    browser : {"chromium", "firefox"}
        The browser.
    profile : str, optional
        The database itself, or a folder holding it (a profile folder; for Chromium also
        its user-data folder). Default: the browser's default profile.

    Returns
    -------
    pathlib.Path
        The database file.

    Raises
    ------
    BrowserCookiesError
        No database there, or no default profile.
    """
    if profile is None:
        return _default_database(browser)
    path = Path(profile).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise BrowserCookiesError(f"`browser_profile` {profile}: not found")
    for name in _DATABASES[browser]:
        if (path / name).is_file():
            return path / name
    raise BrowserCookiesError(f"`browser_profile` {profile}: no {_NAMES[browser]} cookie "
                              f"database in this folder ({' or '.join(_DATABASES[browser])})")


def _default_database(browser: Browser) -> Path:
    """The database of the browser's default profile, found as browser-cookie3 finds it."""
    import browser_cookie3

    with _contained(None):
        try:
            finder = (browser_cookie3.Chromium if browser == "chromium"
                      else browser_cookie3.Firefox)(domain_name="-")
        except browser_cookie3.BrowserCookieError:
            raise BrowserCookiesError(
                f"`cookies_from_browser` {browser}: no {_NAMES[browser]} profile found on this "
                "machine; give its folder with `browser_profile`") from None
    return Path(finder.cookie_file)


@contextlib.contextmanager
def _contained(folder: Path | None) -> Iterator[Any]:
    """browser-cookie3 with its temporary copies in ``folder``, and a keyring that may fail.

    Its Firefox reader copies the database to a temporary file first; the copy goes into
    our private folder instead of the shared one. Its keyring lookup raises when the
    desktop has no session bus (browser_cookie3 issue #206); Chromium then uses its
    built-in key, so that key is what the lookup gives instead.
    """
    import browser_cookie3

    manager = browser_cookie3._LinuxPasswordManager
    lookup = manager.get_password

    def password(self: Any, name: str) -> bytes:
        try:
            return lookup(self, name)
        except Exception:  # no bus, no keyring daemon: Chromium used its own key then
            return browser_cookie3.CHROMIUM_DEFAULT_PASSWORD

    copies = types.SimpleNamespace(NamedTemporaryFile=functools.partial(
        tempfile.NamedTemporaryFile, dir=folder))
    with _LOCK:
        saved = browser_cookie3.tempfile
        manager.get_password = password
        if folder is not None:
            browser_cookie3.tempfile = copies
        try:
            yield browser_cookie3
        finally:
            manager.get_password = lookup
            browser_cookie3.tempfile = saved


def _private_copy(browser: Browser, database: Path, folder: Path) -> Path:
    """Copy the database and its logs into ``folder`` and fold the logs in; return the copy.

    Raises
    ------
    BrowserCookiesError
        It cannot be read, or is not a cookie database of ``browser``.
    """
    copy = folder / database.name
    try:
        shutil.copyfile(database, copy)
        for suffix in _SIDE_FILES:
            side = database.with_name(database.name + suffix)
            if side.is_file():
                shutil.copyfile(side, copy.with_name(copy.name + suffix))
        # Opening the copy replays its log; leaving WAL mode writes it into the file itself,
        # which is all that browser-cookie3 reads (or copies).
        with contextlib.closing(sqlite3.connect(copy)) as connection:
            tables = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            connection.execute("PRAGMA journal_mode=DELETE")
    except OSError as exc:
        raise BrowserCookiesError(f"`cookies_from_browser` {browser}: cannot read {database} "
                                  f"({exc.strerror or type(exc).__name__})") from None
    except sqlite3.Error as exc:
        raise BrowserCookiesError(f"`cookies_from_browser` {browser}: cannot read {database} "
                                  f"({exc})") from None
    if _TABLES[browser] not in tables:
        raise BrowserCookiesError(f"`cookies_from_browser` {browser}: {database} is not a "
                                  f"{_NAMES[browser]} cookie database")
    return copy


def _load(browser: Browser, copy: Path, domain: str, folder: Path) -> http.cookiejar.CookieJar:
    """Every cookie of ``domain`` (and its subdomains) in the copy, decrypted."""
    with _contained(folder) as browser_cookie3:
        reader = browser_cookie3.chromium if browser == "chromium" else browser_cookie3.firefox
        try:
            loaded = reader(cookie_file=str(copy), domain_name=domain)
        except sqlite3.Error as exc:
            raise BrowserCookiesError(f"`cookies_from_browser` {browser}: cannot read its "
                                      f"cookie database ({exc})") from None
        except (browser_cookie3.BrowserCookieError, ValueError):  # a wrong key: bad padding
            raise BrowserCookiesError(
                f"`cookies_from_browser` {browser}: cannot decrypt the cookies (the key is in a "
                "keyring this process cannot reach); export them to a cookies.txt and pass "
                "`cookies`") from None
    jar = http.cookiejar.CookieJar()
    now = time.time()
    for cookie in loaded:
        bare = cookie.domain.lstrip(".")
        in_domain = bare == domain or bare.endswith("." + domain)
        # A tab or line break would break the cookies.txt the run passes them in.
        sendable = not any(c in f"{cookie.name}{cookie.value}" for c in "\t\r\n")
        if in_domain and sendable and not cookie.is_expired(now):
            jar.set_cookie(cookie)
    return jar


def read_browser_cookies(browser: Browser, profile: str | None, base_url: str
                         ) -> http.cookiejar.CookieJar:
    """The site's cookies in a browser profile, which must hold a login (``sessionid``).

    Parameters
    ----------
    browser : {"chromium", "firefox"}
        The browser.
    profile : str, optional
        Its profile folder or cookie database (see :func:`cookie_database`).
    base_url : str
        The site: cookies of its domain (``instagram.com``) and its subdomains are read.

    Returns
    -------
    http.cookiejar.CookieJar
        The cookies, in memory only (the private copy is deleted before this returns).

    Raises
    ------
    BrowserCookiesError
        The profile cannot be found or read, its cookies cannot be decrypted, or it holds
        no live session of the site. No message holds a cookie value.
    """
    database = cookie_database(browser, profile)
    domain = site_domain(base_url)
    folder = processes.private_dir("browser-cookies")
    try:
        jar = _load(browser, _private_copy(browser, database, folder), domain, folder)
    finally:
        processes.remove_private_dir(folder)
    if not any(cookie.name == SESSION_COOKIE for cookie in jar):
        raise BrowserCookiesError(
            f"`cookies_from_browser` {browser}: no {domain} session in {database} (no live "
            f"{SESSION_COOKIE} cookie): log in to the site in that browser, then run again")
    return jar


def netscape_text(jar: http.cookiejar.CookieJar) -> str:
    """The cookies as the text of a Netscape ``cookies.txt`` (session cookies expire at 0)."""
    lines = ["# Netscape HTTP Cookie File"]
    for cookie in jar:
        dotted = "TRUE" if cookie.domain.startswith(".") else "FALSE"
        secure = "TRUE" if cookie.secure else "FALSE"
        prefix = "#HttpOnly_" if cookie.has_nonstandard_attr("HTTPOnly") else ""
        lines.append("\t".join((prefix + cookie.domain, dotted, cookie.path or "/", secure,
                                str(int(cookie.expires or 0)), cookie.name, cookie.value or "")))
    return "\n".join(lines) + "\n"


__all__ = ["BROWSERS", "SESSION_COOKIE", "Browser", "cookie_database", "netscape_text",
           "read_browser_cookies", "site_domain"]
