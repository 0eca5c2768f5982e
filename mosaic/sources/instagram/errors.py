"""What stops a scrape, and how its warnings are worded.

The login wall, a missing or private profile, an unreachable site, unreadable browser
cookies; :class:`ScrapeWarning` words a warning as errors are (parameters in backticks).
"""

from __future__ import annotations

from dataclasses import dataclass

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


class BrowserCookiesError(MosaicError):
    """A browser profile's cookies cannot be read, or hold no Instagram session."""


@dataclass(frozen=True)
class ScrapeWarning:
    """A one-line warning naming parameters in backticks, as a :class:`MosaicError` does.

    ``str()`` names them as the Prefect UI does (``cookies``), :meth:`for_command_line`
    by their flags (``--cookies``); :attr:`message` keeps the backticks (for markdown).
    """

    message: str

    def __str__(self) -> str:
        return str(MosaicError(self.message))

    def for_command_line(self) -> str:
        """The warning with every parameter named by its flag."""
        return MosaicError(self.message).for_command_line()
