"""The host allow-list: every request, and every redirect hop, must be on it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from mosaic.errors import MosaicError
from mosaic.sources.download.errors import PermanentFetchError

DEFAULT_ALLOWED_HOSTS = ("cdninstagram.com", "fbcdn.net")
"""Image hosts allowed by default: Instagram's and Facebook's CDNs (and their subdomains)."""


@dataclass(frozen=True)
class HostRule:
    """One allow-list entry: ``host`` (and its subdomains), on ``port`` if given.

    Without a port, only the scheme's default port (80 for http, 443 for https) matches.
    """

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> HostRule:
        """Parse ``HOST`` or ``HOST:PORT``.

        Raises
        ------
        MosaicError
            The entry is not a host name or IP address with an optional port.
        """
        entry = text.strip().lower().rstrip(".")
        host, _, port_text = entry.rpartition(":") if ":" in entry else (entry, "", "")
        if not host or any(c in host for c in "/@?#[] ") or host.startswith("."):
            raise MosaicError(f"`allow_host` {text!r}: give HOST or HOST:PORT, "
                              "such as cdninstagram.com or 127.0.0.1:8081")
        port = None
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise MosaicError(f"`allow_host` {text!r}: port must be 1..65535")
            port = int(port_text)
        return cls(host, port)

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        """Whether a URL with this scheme, host and port falls under the rule."""
        default = 443 if scheme == "https" else 80
        if (port or default) != (self.port or default):
            return False
        return host == self.host or host.endswith("." + self.host)

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class AllowList:
    """The hosts that may be downloaded from; everything else is refused."""

    rules: tuple[HostRule, ...]

    @classmethod
    def parse(cls, entries: tuple[str, ...] | list[str]) -> AllowList:
        """Build an allow-list from ``HOST[:PORT]`` strings (see :class:`HostRule`)."""
        return cls(tuple(HostRule.parse(entry) for entry in entries))

    def allows(self, url: str) -> bool:
        """Whether ``url`` is http(s) on an allowed host and port."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            return False
        try:
            port = parts.port
        except ValueError:
            return False
        return any(rule.matches(parts.scheme, parts.hostname, port) for rule in self.rules)

    def check(self, url: str) -> None:
        """Raise :class:`PermanentFetchError` unless ``url`` is allowed."""
        if not self.allows(url):
            host = urlsplit(url).netloc or url
            raise PermanentFetchError(
                f"host {host} is not on the allow-list ({self}); refused", url)

    def __str__(self) -> str:
        return ", ".join(str(rule) for rule in self.rules) or "empty"

