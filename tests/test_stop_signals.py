"""A stop signal is a stop however a library reports it (unit level; real signals in
``test_safety.py`` and ``test_scrape_signals.py``)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from prefect.exceptions import TerminationSignal

from mosaic import processes

ROOT = Path(__file__).resolve().parents[1]


def _raised_during(cause: BaseException) -> ValueError:
    """A ValueError raised while ``cause`` was being handled, as Prefect's crash report does."""
    try:
        try:
            raise cause
        except BaseException:
            raise ValueError("Task run is not set") from None
    except ValueError as error:
        error.__suppress_context__ = False
        return error


def test_a_stop_disguised_by_a_library_error_is_still_a_stop():
    assert processes.stop_signal_of(_raised_during(TerminationSignal(signal.SIGTERM))) == 15
    assert processes.stop_signal_of(_raised_during(processes.Stopped(signal.SIGINT))) == 2
    assert processes.stop_signal_of(processes.Stopped(signal.SIGTERM)) == 15


def test_an_error_without_a_stop_behind_it_is_not_a_stop():
    assert processes.stop_signal_of(ValueError("bad")) is None
    assert processes.stop_signal_of(_raised_during(OSError(9, "Bad file descriptor"))) is None
    assert processes.stop_signal_of(_raised_during(TerminationSignal(signal.SIGHUP))) is None


PROBE = """
import signal
from prefect import flow
from mosaic import processes

@flow(persist_result=False)
def probe():
    processes.reclaim_stop_signals()
    return signal.getsignal(signal.SIGTERM) is processes._stop_handler

processes.stop_on_signals(lambda signum: "stopped")
print(probe(), signal.getsignal(signal.SIGTERM) is processes._stop_handler)
"""


def test_a_flow_run_from_the_command_line_keeps_its_sigterm_handler(prefect_api):
    from prefect.settings import PREFECT_API_URL

    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["True", "True"]
