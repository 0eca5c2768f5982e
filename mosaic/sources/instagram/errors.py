"""What stops a scrape: the login wall, a missing or private profile, an unreachable site."""

from __future__ import annotations

from mosaic.errors import MosaicError
from mosaic.sources.download.errors import FetchError


class LoginRequiredError(MosaicError):
    """Instagram answered with its login wall."""


class ProfileError(MosaicError):
    """The profile does not exist or is private."""


class SiteUnreachableError(FetchError):
    """The browser cannot reach the site at all: refused, no such host, offline, bad TLS.

    Not retried within a run (the answer comes at once, and the same every time); the
    command line says to run again later.
    """
