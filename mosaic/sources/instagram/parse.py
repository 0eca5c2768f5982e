"""Post pages read without any network: which images a post holds, in which sizes.

Each post page is read with BeautifulSoup; regular expressions find the JSON embedded in
its scripts (plain, assigned to a variable, or escaped inside a JavaScript string) and the
image URLs are taken, by preference, from that JSON (``image_versions2.candidates``: the
largest; ``display_url``; every child of a carousel), then from ``<img srcset>`` (the
largest candidate), then from ``og:image`` (a thumbnail, with a warning). Videos, and
video children of carousels, are skipped whole. The other sizes a page offers are kept,
largest first, as alternatives of each image.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from bs4 import BeautifulSoup

from mosaic.sources.instagram.errors import LoginRequiredError
from mosaic.sources.instagram.urls import login_wall_message
from mosaic.sources.manifest import timestamp_iso

log = logging.getLogger("mosaic.instagram")

_MEDIA_KEYS = ("image_versions2", "display_url", "carousel_media", "edge_sidecar_to_children",
               "video_versions", "display_resources")
_MEDIA_MARKER_RE = re.compile(
    r"image_versions2|display_url|carousel_media|edge_sidecar_to_children|video_versions")
_JSON_START_RE = re.compile(r"[\[{]\s*[\"{\[]")
_STRING_LITERAL_RE = re.compile(r"\"((?:[^\"\\\n]|\\.)*)\"|'((?:[^'\\\n]|\\.)*)'", re.DOTALL)
_JS_ESCAPE_RE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_JS_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v",
                      "0": "\0"}


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
