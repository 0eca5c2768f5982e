"""Long C calls that hold the interpreter lock, run in a forked child so a stop stays prompt.

The regional method's global sparse solve (OR-Tools' min-cost flow, before it SciPy's
:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`) keeps the interpreter
lock for its whole run (15 s at 100,000 photos; SciPy's took minutes there):
a Python signal handler cannot run meanwhile, so Ctrl-C and SIGTERM would wait for it, and
a thread does not help (it holds the lock there too). :func:`run_forked` runs such a call in
a ``fork`` of this process (the arrays are shared copy-on-write, nothing is pickled or
re-imported), while this process waits in ``os.read``, which a signal interrupts: the stop
handler runs at once, and the child is killed. The child dies with this process too
(``PR_SET_PDEATHSIG``), so ``kill -9`` leaves no solver running.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import signal
import struct
import warnings
from collections.abc import Callable

import numpy as np

from mosaic.errors import MosaicError

_PR_SET_PDEATHSIG = 1
_OK, _FAILED = b"K", b"E"
_STOPS = {signal.SIGINT, signal.SIGTERM}


def run_forked(compute: Callable[[], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """``compute()`` in a forked child; its arrays come back through a pipe.

    Parameters
    ----------
    compute : callable
        Returns a tuple of arrays. It runs in the child: it must not log, print or start
        threads (the child's copies of other threads' locks may be held).

    Returns
    -------
    tuple of ndarray
        What ``compute`` returned.

    Raises
    ------
    ValueError
        ``compute`` raised one (as SciPy's "no full matching exists"), with its message.
    MosaicError
        The child died or failed otherwise.
    """
    parent = os.getpid()
    read_end, write_end = os.pipe()
    # A stop signal between the fork and the try below would leave the child running
    # (measured: 3 of 30 stops hung): stops wait, blocked, until the try.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        with warnings.catch_warnings():
            # Python 3.12 warns on every fork of a process with threads. The child runs
            # only NumPy, SciPy or OR-Tools C code (glibc's malloc is fork-safe), then _exit.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # the child: never returns into the caller's stack
        os.close(read_end)
        _child(compute, write_end, parent, mask)
    os.close(write_end)
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending stop is raised here
        payload = _read_all(read_end)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # a stop signal: the solver's work is not needed
        raise
    finally:
        os.close(read_end)
        status = _reap(pid)
    return _unpack(payload, status)


def _child(compute: Callable[[], tuple[np.ndarray, ...]], out: int, parent: int,
           mask: set[signal.Signals]) -> None:
    """Run ``compute`` and send its arrays (or its error) to ``out``; then ``_exit``."""
    code = 1
    try:
        for signum in _STOPS:
            signal.signal(signum, signal.SIG_DFL)  # a stop ends the child, not a handler
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)
        try:
            message = _OK + _pack(compute())
        except ValueError as exc:
            message = _FAILED + str(exc).encode("utf-8", "replace")
        view = memoryview(message)
        while view:
            view = view[os.write(out, view):]
        code = 0
    finally:
        os._exit(code)


def _pack(arrays: tuple[np.ndarray, ...]) -> bytes:
    """Arrays as length-prefixed ``.npy`` bytes."""
    parts = []
    for array in arrays:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        parts.append(struct.pack("<Q", buffer.tell()) + buffer.getvalue())
    return b"".join(parts)


def _unpack(payload: bytes, status: int) -> tuple[np.ndarray, ...]:
    """The child's arrays, or its error raised here."""
    if payload[:1] == _FAILED:
        raise ValueError(payload[1:].decode("utf-8", "replace"))
    if payload[:1] != _OK or status != 0:
        how = (f"was killed by {signal.Signals(-status).name}" if status < 0
               else f"exited with status {status}")
        raise MosaicError(f"the sparse assignment's process {how} (out of memory?); "
                          "run the build again, or give it more memory")
    arrays, offset = [], 1
    while offset < len(payload):
        (size,) = struct.unpack_from("<Q", payload, offset)
        offset += 8
        arrays.append(np.load(io.BytesIO(payload[offset:offset + size]), allow_pickle=False))
        offset += size
    return tuple(arrays)


def _read_all(fd: int) -> bytes:
    """Everything until the end of the pipe (a signal interrupts the wait)."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _reap(pid: int) -> int:
    """Wait for the child; its exit status, or minus the signal that ended it."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
