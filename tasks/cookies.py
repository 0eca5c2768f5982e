"""Where a scrape's Instagram cookies come from when it starts.

Cookies are never a parameter: a run uses the file the user named, or reads them from
the browser profile the user named (on the machine the run runs on), or looks them up,
first in a Prefect Secret block (the text of a Netscape ``cookies.txt``), then in an
environment variable (a path to such a file, or its text), and runs without cookies when
neither exists. Text is written to a private temporary folder (mode 0700) that the
guardian process deletes even if this process is killed, and that is removed after the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from mosaic import processes
from mosaic.errors import MosaicError
from mosaic.sources.download.cookies import load_cookie_jar
from mosaic.sources.instagram.browser_cookies import (
    Browser,
    netscape_text,
    read_browser_cookies,
)
from mosaic.sources.instagram.urls import DEFAULT_BASE_URL

log = logging.getLogger("mosaic.scrape")


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
def _private_cookies(text: str, origin: str) -> Iterator[str]:
    """``text`` in a private temporary cookies file, deleted on the way out, however it ends.

    Raises
    ------
    MosaicError
        The text is not a Netscape cookies.txt (the message holds no cookie value).
    """
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


@contextlib.contextmanager
def cookies_file(path: str | None, secret: str | None, env: str | None, *,
                 browser: Browser | None = None, browser_profile: str | None = None,
                 base_url: str = DEFAULT_BASE_URL) -> Iterator[str | None]:
    """The cookies file of a scrape, looked up now; never logged, never kept.

    Parameters
    ----------
    path : str, optional
        A cookies file the user named (the command line's ``--cookies``): used as it is.
    browser : {"chromium", "firefox"}, optional
        Read the site's cookies from this browser's profile instead (``browser_profile``,
        or its default one); they must hold a login.
    browser_profile : str, optional
        The profile folder or cookie database of ``browser``.
    base_url : str
        The site whose cookies are read from the browser.
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
        The cookies are not in Netscape format, or the browser profile cannot be read or
        holds no session (the message holds no cookie value).
    """
    if path is not None:
        yield path
        return
    if browser is not None:
        jar = read_browser_cookies(browser, browser_profile, base_url)
        with _private_cookies(netscape_text(jar), f"the {browser} profile") as cookies:
            yield cookies
        return
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
    with _private_cookies(text, origin) as cookies:
        yield cookies


__all__ = ["cookies_file"]
