"""Progress bars on stderr for the command line (rich)."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RichReporter:
    """A :class:`mosaic.progress.Reporter` drawing one bar per stage."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        self._tasks: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._progress.start()

    def start(self, name: str, total: int) -> None:
        """Add a bar for stage ``name``."""
        with self._lock:
            total = max(total, 1)
            self._tasks[name] = (self._progress.add_task(name, total=total), total)

    def advance(self, name: str, done: int) -> None:
        """Move the bar of ``name`` on by ``done``."""
        with self._lock:
            if name in self._tasks:
                self._progress.advance(self._tasks[name][0], done)

    def finish(self, name: str) -> None:
        """Complete the bar of ``name``."""
        with self._lock:
            entry = self._tasks.pop(name, None)
            if entry is not None:
                self._progress.update(entry[0], completed=entry[1])

    def close(self) -> None:
        """Stop drawing."""
        self._progress.stop()
