"""Stop requests: once a run is being stopped, no thread goes on fetching nor retrying.

A run being stopped (Ctrl-C, SIGTERM, a cancelled flow run) calls :func:`request_stop`:
retry waits and polite waits then end at once with :class:`StopRequested`.
"""

from __future__ import annotations

import threading


class StopRequested(KeyboardInterrupt):
    """The run is being stopped: give up now, retry nothing.

    A ``KeyboardInterrupt`` so that nothing catching ``Exception`` (Prefect's task retries
    among them) mistakes it for a failure worth retrying.
    """


_stop = threading.Event()


def request_stop() -> None:
    """Ask every fetch of this process to stop at its next wait (thread-safe)."""
    _stop.set()


def clear_stop() -> None:
    """Forget a stop request (a new run starts in this process)."""
    _stop.clear()


def stop_requested() -> bool:
    """Whether :func:`request_stop` was called (and not cleared since)."""
    return _stop.is_set()


def check_stop() -> None:
    """Raise :class:`StopRequested` if the run is being stopped."""
    if _stop.is_set():
        raise StopRequested("stopped")


def pause(seconds: float) -> None:
    """Sleep ``seconds``, or less if a stop is requested meanwhile (then raise it).

    Raises
    ------
    StopRequested
        A stop was requested before or during the wait.
    """
    if _stop.wait(max(0.0, seconds)):
        raise StopRequested("stopped")

