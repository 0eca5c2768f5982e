"""Politeness and the login wall, shared by every thread of the process.

Page loads from one site keep ``delay`` seconds apart even when posts are fetched in
parallel; once one post of a run meets the login wall, the run's other posts stop
without a request.
"""

from __future__ import annotations

import threading
import time

from mosaic.sources.download.stop import check_stop, pause

_gate_lock = threading.Lock()
_next_turn: dict[str, float] = {}
_login_walls: set[str] = set()


def polite_wait(key: str, delay: float) -> None:
    """Wait until at least ``delay`` seconds have passed since the last page load of ``key``.

    Threads share the schedule, so parallel post tasks still load pages one per ``delay``.

    Raises
    ------
    StopRequested
        The run is being stopped (the wait ends at once).
    """
    check_stop()
    if delay <= 0:
        return
    with _gate_lock:
        now = time.monotonic()
        turn = max(now, _next_turn.get(key, now))
        _next_turn[key] = turn + delay
    if turn > now:
        pause(turn - now)


def note_login_wall(run_key: str | None) -> None:
    """Remember that run ``run_key`` hit the login wall, so its other posts stop at once."""
    if run_key:
        with _gate_lock:
            _login_walls.add(run_key)


def login_wall_seen(run_key: str | None) -> bool:
    """Whether run ``run_key`` has hit the login wall."""
    with _gate_lock:
        return bool(run_key) and run_key in _login_walls
