"""Progress reporting for long steps, without tying the library to a user interface.

Library functions call :func:`stage` to announce a step with a known amount of work and
get back a function to report items done. The command line installs a reporter that
draws progress bars; by default nothing is shown.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Protocol


class Reporter(Protocol):
    """Receives progress events."""

    def start(self, name: str, total: int) -> None:
        """A stage named ``name`` with ``total`` items begins."""

    def advance(self, name: str, done: int) -> None:
        """``done`` more items of stage ``name`` are finished."""

    def finish(self, name: str) -> None:
        """Stage ``name`` is over."""


class _Silent:
    def start(self, name: str, total: int) -> None:
        del name, total

    def advance(self, name: str, done: int) -> None:
        del name, done

    def finish(self, name: str) -> None:
        del name


_lock = threading.Lock()
_reporter: Reporter = _Silent()


def set_reporter(reporter: Reporter | None) -> None:
    """Install ``reporter`` for the whole process (None restores silence)."""
    global _reporter
    with _lock:
        _reporter = reporter if reporter is not None else _Silent()


@contextlib.contextmanager
def stage(name: str, total: int) -> Iterator[Callable[[int], None]]:
    """Announce a stage of ``total`` items; yield a function taking items finished."""
    reporter = _reporter
    reporter.start(name, total)
    try:
        yield lambda done: reporter.advance(name, done)
    finally:
        reporter.finish(name)
