"""Instagram's URLs: the site, user names, post URLs and short codes, lists of posts.

A post list is a file of post URLs, one a line, in any of the forms Instagram shares
(``/p/``, ``/reel/``, ``/tv/``, with or without a user name, ``m.`` and ``instagr.am``
hosts, query strings). The login wall is recognised by its URLs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from mosaic.errors import MosaicError

DEFAULT_BASE_URL = "https://www.instagram.com"
INSTAGRAM_HOSTS = frozenset({"instagram.com", "www.instagram.com", "m.instagram.com",
                             "instagr.am", "www.instagr.am"})
USERNAME_RE = re.compile(r"^[A-Za-z0-9._]{1,30}$")
_POST_PATH_RE = re.compile(r"^(?:/[A-Za-z0-9._]{1,30})?/(p|reel|reels|tv)/([A-Za-z0-9_-]{4,64})/?$")
_LOGIN_PATHS = ("/accounts/login", "/challenge", "/accounts/suspended")


def normalise_base_url(text: str) -> str:
    """Check and normalise ``--base-url``: ``scheme://host[:port]`` without a trailing slash.

    Raises
    ------
    MosaicError
        Not an http(s) URL with a host, or with a path, query or fragment.
    """
    parts = urlsplit(text.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise MosaicError(f"`base_url` {text!r}: give an http(s) URL such as {DEFAULT_BASE_URL}")
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise MosaicError(f"`base_url` {text!r}: give only the site, without a path")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise MosaicError(f"`base_url` {text!r}: bad port") from None
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


def link_kind(href: str, base_url: str) -> tuple[str, str] | None:
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


def is_login_url(url: str) -> bool:
    """Whether ``url`` is one of the site's login, challenge or suspended-account pages."""
    return urlsplit(url).path.startswith(_LOGIN_PATHS)


def login_wall_message(base_url: str) -> str:
    """The one-line explanation shown when Instagram asks to log in."""
    host = urlsplit(base_url).netloc
    return (f"{host} shows a login wall: log in and pass `cookies` (a Netscape cookies.txt "
            "exported from the logged-in browser) or `cookies_from_browser`")
