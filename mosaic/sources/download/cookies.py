"""The user's cookies, from a Netscape ``cookies.txt`` file; their values are never logged."""

from __future__ import annotations

import http.cookiejar
import os
import time
from pathlib import Path

from mosaic.errors import MosaicError


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
        raise MosaicError(f"`cookies` {path}: file not found") from None
    except (OSError, UnicodeDecodeError):
        raise MosaicError(f"`cookies` {path}: cannot be read as text") from None
    jar = http.cookiejar.CookieJar()
    now = time.time()
    for number, line in enumerate(lines, 1):
        try:
            cookie = _netscape_cookie(line)
        except ValueError as exc:
            raise MosaicError(f"`cookies` {path} line {number}: not a Netscape-format "
                              f"cookies.txt file ({exc})") from None
        if cookie is not None and not cookie.is_expired(now):
            jar.set_cookie(cookie)
    if not len(jar):
        raise MosaicError(f"`cookies` {path}: holds no cookies (or only expired ones)")
    return jar

