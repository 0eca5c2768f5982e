"""Headless Chromium for the profile: a private folder, a guarded chromedriver, one-line errors.

The browser is Selenium's, with the system ``chromium`` and ``chromedriver`` (no driver
download). Chromium runs from a private folder outside the run folder (mode 0700; its
profile, the home, config and cache folders it writes to, its crash handler's
database), with chromedriver in a session of its own: a Ctrl-C at the terminal reaches
only this program, which quits the browser. If this program dies, SIGKILL included, the
guardian of :mod:`mosaic.processes` stops the browser and deletes the folder. Selenium's
errors become one-line errors (:class:`~mosaic.sources.instagram.errors.SiteUnreachableError`
when the site cannot be reached).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mosaic import processes
from mosaic.errors import MosaicError
from mosaic.sources.download.cookies import load_cookie_jar
from mosaic.sources.download.errors import FetchError, TransientFetchError
from mosaic.sources.instagram.errors import SiteUnreachableError
from mosaic.sources.instagram.settings import ScrapeSettings

if TYPE_CHECKING:
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.remote.webdriver import WebDriver

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
                raise MosaicError(f"`cookies` {settings.cookies}: the browser refused the "
                                  f"cookie named {cookie.name!r}") from None
            added += 1
    return added
