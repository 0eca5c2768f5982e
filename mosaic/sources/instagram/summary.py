"""A scrape's summary: counts, the posts gone from the site, failures, and its markdown.

Pure functions over the post results of a run (each ``{"code", "entry", "new_images",
"reused", "retries"}`` as the ``scrape-post`` task returns them); the scrape flow publishes
the markdown as its artifact and returns the summary. A profile that showed fewer posts
than it states (Instagram shows guests about a dozen) is one warning, in the log and at
the top of the artifact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mosaic.sources import manifest
from mosaic.sources.instagram.errors import LoginRequiredError, ScrapeWarning

NAMED_IN_WARNING = 10
"""Gone posts the warning names (the artifact and the manifest list them all)."""


def failure_reason(error: BaseException) -> str:
    """One short reason for a post that failed."""
    if isinstance(error, LoginRequiredError):
        return "login wall"
    return str(error) or type(error).__name__


def summarise(source: str, out_dir: str, listing: dict[str, Any],
              results: dict[str, dict[str, Any]], failures: dict[str, BaseException],
              cached: set[str], stale: int, seconds: float, with_cookies: bool = False
              ) -> dict[str, Any]:
    """The run's summary.

    Parameters
    ----------
    source : str
        ``@name`` or ``post list``.
    out_dir : str
        The photo folder.
    listing : dict
        ``posts`` and ``reels`` URLs as listed; for a profile also ``expected`` (the post
        count it states), ``found``, ``login_wall`` and ``short`` (see
        ``profile.ProfileListing``).
    results, failures : dict
        Post results and errors by URL.
    cached : set of str
        URLs whose result came from the cache.
    stale : int
        Temporary files of killed runs removed.
    seconds : float
        Wall time.
    with_cookies : bool
        The run had cookies (a login).

    Returns
    -------
    dict
        Counts, the gone posts, the failures, the posts the profile hid, and the time.
    """
    entries = [result["entry"] for result in results.values()]
    videos = [e for e in entries if e["status"] == manifest.VIDEO]
    with_photos = [e for e in entries if e["status"] in {manifest.DONE, manifest.PARTLY_GONE}]
    return {
        "source": source,
        "out_dir": out_dir,
        "manifest": str(manifest.manifest_path(out_dir)),
        "posts_listed": len(listing["posts"]),
        "posts_saved": len(with_photos),
        "video_posts": len(videos),
        "posts_gone": sum(e["status"] == manifest.GONE for e in entries),
        "posts_partly_gone": sum(e["status"] == manifest.PARTLY_GONE for e in entries),
        "gone": gone_posts(listing["posts"], results, cached),
        "reels_skipped": len(listing["reels"]),
        "video_children_skipped": sum(e["skipped_videos"] for e in with_photos),
        "images": sum(len(e["images"]) for e in entries),
        "new_images": sum(r["new_images"] for url, r in results.items() if url not in cached),
        "posts_reused": sum(bool(r["reused"]) or url in cached for url, r in results.items()),
        "retries": sum(r["retries"] for url, r in results.items() if url not in cached),
        "thumbnails_only": sum(e.get("found_by") == "og:image" for e in entries),
        "failures": [{"url": url, "reason": failure_reason(error)}
                     for url, error in failures.items()],
        "posts_stated": listing.get("expected"),
        "hidden_posts": hidden_posts(listing, with_cookies),
        "stale_temporaries_removed": stale,
        "seconds": round(seconds, 1),
    }


def gone_posts(urls: Iterable[str], results: dict[str, dict[str, Any]], cached: set[str]
               ) -> list[dict[str, Any]]:
    """The posts that are gone from the site (in full or in part), in listing order."""
    done = [(url, results[url]) for url in urls if url in results]
    return [{"url": url, "code": r["code"], "status": r["entry"]["status"],
             "reason": r["entry"].get("error") or "gone",
             "images_saved": len(r["entry"]["images"]),
             "new": not r["reused"] and url not in cached}
            for url, r in done if r["entry"]["status"] in manifest.GONE_STATUSES]


def hidden_posts(listing: dict[str, Any], with_cookies: bool) -> dict[str, Any] | None:
    """How many of the posts a profile states it showed, when it showed fewer (else None)."""
    if not listing.get("short"):
        return None
    return {"visible": listing["found"], "stated": listing["expected"],
            "login_wall": bool(listing.get("login_wall")), "with_cookies": with_cookies}


def hidden_posts_warning(summary: dict[str, Any]) -> ScrapeWarning | None:
    """One line when the profile showed fewer posts than it states, saying what to do.

    Parameters are named in backticks: ``str()`` gives the line as the Prefect UI names
    them, ``for_command_line()`` with the command line's flags.
    """
    hidden = summary.get("hidden_posts")
    if not hidden:
        return None
    counted = f"{hidden['visible']} of {hidden['stated']} posts"
    export = "or import your data export (mosaic import instagram-export)"
    if not hidden["with_cookies"]:
        return ScrapeWarning(f"{counted} visible without login: pass `cookies` or "
                             f"`cookies_from_browser`, {export}")
    if hidden["login_wall"]:
        return ScrapeWarning(f"{counted} visible: the login wall came up although cookies "
                             "were given (the session may have expired); pass fresh "
                             f"`cookies` or `cookies_from_browser`, {export}")
    return ScrapeWarning(f"{counted} found: the profile stopped showing more; run again "
                         f"later, {export}")


def gone_warning(summary: dict[str, Any]) -> str | None:
    """One line naming the posts this run found gone (earlier runs named the others)."""
    found = [gone for gone in summary["gone"] if gone["new"]]
    if not found:
        return None
    named = [f"{g['code']} ({g['reason']}"
             + (f"; {g['images_saved']} saved" if g["images_saved"] else "") + ")"
             for g in found[:NAMED_IN_WARNING]]
    more = len(found) - len(named)
    return (f"{len(found)} post{' is' if len(found) == 1 else 's are'} gone from the site, "
            f"recorded as gone in {summary['manifest']} and not fetched again: "
            f"{', '.join(named)}{f' and {more} more' if more else ''}")


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as the markdown of the run's ``instagram-scrape`` artifact."""
    skipped = (summary["video_posts"] + summary["reels_skipped"]
               + summary["video_children_skipped"])
    hidden = summary.get("hidden_posts")
    stated = summary.get("posts_stated")
    visible = f" ({hidden['visible']} visible)" if hidden else ""
    rows = [
        *([("posts the profile states", f"{stated}{visible}")] if stated is not None else []),
        ("posts listed", summary["posts_listed"]),
        ("posts saved", summary["posts_saved"]),
        ("images", f"{summary['images']} ({summary['new_images']} new this run)"),
        ("skipped videos", f"{skipped} ({summary['video_posts']} video posts, "
                           f"{summary['reels_skipped']} reels, "
                           f"{summary['video_children_skipped']} in carousels)"),
        ("posts already saved", summary["posts_reused"]),
        ("posts gone from the site (404/410)", summary["posts_gone"]),
        ("posts partly gone (some images 404/410)", summary["posts_partly_gone"]),
        ("thumbnails only (og:image)", summary["thumbnails_only"]),
        ("requests retried", summary["retries"]),
        ("failed posts", len(summary["failures"])),
        ("time", f"{summary['seconds']} s"),
    ]
    warning = hidden_posts_warning(summary)
    lines = [f"# Instagram photos: {summary['source']}", "",
             # As written: in markdown its backticks show the parameters as code.
             *([f"> **Warning:** {warning.message}", ""] if warning else []),
             f"Saved in `{summary['out_dir']}` (manifest: `{summary['manifest']}`).", "",
             "| | |", "|---|---|", *[f"| {name} | {value} |" for name, value in rows]]
    if summary["gone"]:
        lines += ["", "## Gone from the site", "",
                  "Deleted posts or images: recorded in the manifest, not fetched again.", "",
                  "| post | status | what is gone | images saved |", "|---|---|---|---|"]
        lines += [f"| {g['url']} | {g['status']} | {g['reason'].replace('|', '/')} | "
                  f"{g['images_saved']} |" for g in summary["gone"]]
    if summary["failures"]:
        lines += ["", "## Failures", "", "| post | reason |", "|---|---|"]
        lines += [f"| {f['url']} | {f['reason'].replace('|', '/')} |"
                  for f in summary["failures"]]
    return "\n".join(lines) + "\n"


__all__ = ["NAMED_IN_WARNING", "failure_reason", "gone_posts", "gone_warning", "hidden_posts",
           "hidden_posts_warning", "summarise", "summary_markdown"]
