"""Long C calls in a forked child: same results, errors come back, a stop is prompt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from mosaic.errors import MosaicError
from mosaic.forked import run_forked
from tests.conftest import ROOT


def _graph(n: int, k: int, seed: int = 0) -> sparse.csr_matrix:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), k)
    cols = rng.integers(0, n, n * k)
    cols[::k] = np.arange(n)  # a full matching exists
    return sparse.csr_matrix((rng.random(n * k) + 0.01, (rows, cols)), shape=(n, n))


def test_the_childs_matching_is_scipys_even_with_other_threads_running():
    graph = _graph(3000, 8)
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait)  # 3.12 warns on fork with threads
    busy.start()
    try:
        rows, cols = run_forked(lambda: min_weight_full_bipartite_matching(graph))
    finally:
        stop.set()
        busy.join()
    expected_rows, expected_cols = min_weight_full_bipartite_matching(graph)
    assert np.array_equal(rows, expected_rows) and np.array_equal(cols, expected_cols)


def test_scipys_error_comes_back_as_itself():
    no_full_matching = sparse.csr_matrix(([1.0, 2.0], ([0, 1], [0, 0])), shape=(2, 2))
    with pytest.raises(ValueError, match="no full matching exists"):
        run_forked(lambda: min_weight_full_bipartite_matching(no_full_matching))


def test_a_child_that_dies_is_one_clear_error():
    with pytest.raises(MosaicError, match="was killed by SIGKILL"):
        run_forked(lambda: os.kill(os.getpid(), signal.SIGKILL))


def _waiting_parent(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """A process waiting on a forked child that sleeps; returns it and the child's pid."""
    program = textwrap.dedent(f"""
        import os, signal, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignored
        from mosaic.forked import run_forked
        def compute():
            with open({str(tmp_path / "child")!r}, "w") as f:
                f.write(str(os.getpid()))
            time.sleep(120)
        run_forked(compute)
    """)
    parent = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "child").is_file() or not (tmp_path / "child").read_text():
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.02)
    return parent, int((tmp_path / "child").read_text())


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def test_a_stop_signal_is_answered_at_once_and_ends_the_child(tmp_path):
    parent, child = _waiting_parent(tmp_path)
    sent = time.monotonic()
    parent.send_signal(signal.SIGINT)
    _, stderr = parent.communicate(timeout=10)
    assert time.monotonic() - sent < 2 and "KeyboardInterrupt" in stderr
    assert _gone(child, 5)


def test_the_child_dies_with_a_killed_parent(tmp_path):
    parent, child = _waiting_parent(tmp_path)
    parent.kill()
    parent.communicate(timeout=10)
    assert _gone(child, 5)


def test_a_stop_at_any_moment_of_many_forks_ends_parent_and_child():
    """A stop between a fork and the wait once left the child running (3 of 30 stops)."""
    program = textwrap.dedent("""
        import signal, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignored
        from mosaic.forked import run_forked
        print("ready", flush=True)
        for _ in range(2000):
            run_forked(lambda: ())
        run_forked(lambda: (time.sleep(60), ())[1])
    """)
    hung = 0
    for delay in np.linspace(0.0, 0.4, 12):
        parent = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert parent.stdout.readline().strip() == "ready"
        time.sleep(float(delay))
        parent.send_signal(signal.SIGINT)
        try:
            parent.communicate(timeout=8)  # EOF only once the child has gone too
        except subprocess.TimeoutExpired:
            hung += 1
            parent.kill()
            parent.communicate()
    assert hung == 0
