"""Child processes and private folders that never outlive the program that made them.

A program that starts a Prefect server, Chromium or chromedriver hands their process
groups to a *guardian*: a tiny Python process that reads a pipe from its parent. When the
parent exits for any reason, SIGKILL included, the kernel closes the pipe; the guardian
then stops every process group (and every process whose command line names a watched
folder, such as Chromium's crash handler) and deletes every watched folder, such as a
browser profile that holds session cookies. A process that exits normally stops its
children itself and unwatches them first, so the guardian only acts after a crash.

This module also identifies processes across pid reuse (pid plus start time), which
names temporary files and folders so that a later run can tell whether their owner is
still alive, and makes SIGINT and SIGTERM stop a program within a few seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

_GUARDIAN = r"""
import os, shutil, signal, sys, time

signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
groups, paths = set(), set()


def naming(folder):
    # Processes whose command line names a watched folder (Chromium's crash handler
    # leaves the browser's session and process group).
    found = []
    needle = os.fsencode(folder)
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if needle in handle.read():
                        found.append(int(entry))
            except OSError:
                pass  # the process ended, or is not ours to read: not one to stop
    return found


def alive():
    left = []
    for group in groups:
        try:
            os.killpg(group, 0)
            left.append(("group", group))
        except OSError:
            pass  # the group is gone
    for folder in paths:
        left += [("pid", pid) for pid in naming(folder)]
    return left


def send(targets, sig):
    for kind, number in targets:
        try:
            (os.killpg if kind == "group" else os.kill)(number, sig)
        except OSError:
            pass  # it ended meanwhile


def clean(*_):
    send(alive(), signal.SIGTERM)
    deadline = time.monotonic() + 3.0
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    send(alive(), signal.SIGKILL)
    time.sleep(0.05)
    for folder in paths:
        shutil.rmtree(folder, ignore_errors=True)
    os._exit(0)


signal.signal(signal.SIGTERM, clean)
for line in iter(sys.stdin.buffer.readline, b""):
    action, kind, value = line.decode("utf-8", "surrogateescape").rstrip("\n").split(" ", 2)
    target = groups if kind == "g" else paths
    value = int(value) if kind == "g" else value
    (target.add if action == "+" else target.discard)(value)
clean()
"""

_lock = threading.Lock()
_guardian: tuple[int, int] | None = None
"""(owner pid, write end of the guardian's pipe)."""


def _start_guardian() -> int:
    """Start the guardian in a session of its own; return the write end of its pipe.

    ``posix_spawn`` rather than ``Popen``: the guardian must outlive the Python objects
    of this process, and our end of the pipe is not inherited by any other child.
    """
    read_end, write_end = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", "-c", _GUARDIAN],
                       os.environ, setsid=True,  # Ctrl-C at the terminal must not reach it
                       file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0),
                                     (os.POSIX_SPAWN_DUP2, devnull, 1),
                                     (os.POSIX_SPAWN_DUP2, devnull, 2)])
    finally:
        os.close(read_end)
        os.close(devnull)
    return write_end


_watched: set[tuple[str, str]] = set()


def _send(action: str, kind: str, value: str) -> None:
    """Tell the guardian (started on first use) to watch or forget something."""
    global _guardian
    with _lock:
        if _guardian is None or _guardian[0] != os.getpid():
            if action == "-":
                return  # nothing was watched by a guardian of this process
            _watched.clear()  # a forked child watches only its own
            _guardian = (os.getpid(), _start_guardian())
        (_watched.add if action == "+" else _watched.discard)((kind, value))
        try:
            os.write(_guardian[1], f"{action} {kind} {value}\n".encode("utf-8", "surrogateescape"))
        except BrokenPipeError:  # the guardian was killed: start another, tell it all
            _guardian = (os.getpid(), _start_guardian())
            lines = "".join(f"+ {k} {v}\n" for k, v in sorted(_watched))
            os.write(_guardian[1], lines.encode("utf-8", "surrogateescape"))


def watch_group(group: int) -> None:
    """Stop process group ``group`` (TERM, then KILL) if this process dies first."""
    _send("+", "g", str(group))


def unwatch_group(group: int) -> None:
    """Forget process group ``group`` (it was stopped, or must outlive us)."""
    _send("-", "g", str(group))


def watch_path(path: str | os.PathLike[str]) -> None:
    """Delete folder ``path``, and stop processes that name it, if this process dies first."""
    _send("+", "p", str(Path(path).resolve()))


def unwatch_path(path: str | os.PathLike[str]) -> None:
    """Forget folder ``path``."""
    _send("-", "p", str(Path(path).resolve()))


def spawn(command: list[str], **popen: object) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own that dies with this process.

    The child is out of reach of the terminal's Ctrl-C (this program decides when it
    stops) and is watched by the guardian. Stop it with :func:`stop_group`.

    Parameters
    ----------
    command : list of str
        The program and its arguments.
    **popen
        Passed to :class:`subprocess.Popen` (``stdout``, ``env``...).

    Returns
    -------
    subprocess.Popen
        The child; its pid is its process group.
    """
    process = subprocess.Popen(command, start_new_session=True, **popen)  # type: ignore[call-overload]
    watch_group(process.pid)
    return process


def group_alive(group: int) -> bool:
    """Whether any process of process group ``group`` is still running.

    A zombie is not running: it has exited and only waits for its parent to collect it.
    The group's orphans (Chromium's, once chromedriver is gone) are collected by the
    machine's init, which some inits (a container's, a micro-VM's) do only every second
    or so, or never; counting them made :func:`stop_group` wait that long for nothing.
    """
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _running_member(group)


def _running_member(group: int) -> bool:
    """Whether ``/proc`` lists a process of ``group`` that is not a zombie (True without it)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc: the group exists, so assume it runs
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state, _, its_group = handle.read().rsplit(b")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
        if int(its_group) == group and state not in (b"Z", b"X"):
            return True
    return False


def stop_group(group: int, timeout: float = 5.0) -> None:
    """Stop process group ``group``: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Parameters
    ----------
    group : int
        The process group (the pid of a child started by :func:`spawn`).
    timeout : float
        Seconds the group has to exit after SIGTERM.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while group_alive(group) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-group, os.WNOHANG)  # reap our own child so it can vanish
            time.sleep(0.05)
        if group_alive(group):
            os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-group, os.WNOHANG)[0] > 0:
            continue  # reap every exited child of the group, none left as a zombie
    unwatch_group(group)


# --- process identity ------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def owner_tag(pid: int | None = None) -> str:
    """``HOST-PID-START`` naming a process uniquely (pid reuse gives another start)."""
    pid = os.getpid() if pid is None else pid
    return f"{_host_tag()}-{pid}-{start_time(pid) or 0}"


def owner_alive(tag: str) -> bool:
    """Whether the process ``tag`` names is still running.

    A tag from another host counts as alive: this machine cannot tell.
    """
    try:
        host, pid_text, start_text = tag.split("-")
        pid, start = int(pid_text), int(start_text)
    except ValueError:
        return True
    if host != _host_tag():
        return True
    now = start_time(pid)
    if now is None:
        return False
    return start in (0, now)


# --- private folders ---------------------------------------------------------------------


def _private_root() -> Path:
    """Where private folders go: $XDG_RUNTIME_DIR (memory, per user) when usable, else TMP."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK | os.X_OK):
        return Path(runtime)
    return Path(tempfile.gettempdir())


def remove_stale_private_dirs(kind: str, root: Path | None = None) -> list[Path]:
    """Delete ``mosaic-KIND-*`` folders of ours whose owner process is gone.

    Parameters
    ----------
    kind : str
        As given to :func:`private_dir`.
    root : pathlib.Path, optional
        Where to look (default: where :func:`private_dir` puts them).

    Returns
    -------
    list of pathlib.Path
        The folders removed.
    """
    removed = []
    prefix = f"mosaic-{kind}-"
    root = root or _private_root()
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
                continue
            tag = "-".join(entry.name[len(prefix):].split("-")[:3])
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == os.getuid() and not owner_alive(tag):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
    return removed


def private_dir(kind: str, root: Path | None = None) -> Path:
    """A new folder only this user can read (mode 0700), deleted if this process dies.

    Folders of the same kind left by a process that died before the guardian could act
    (the machine lost power) are deleted first.

    Parameters
    ----------
    kind : str
        What it holds ("chromium", "cookies"): part of its name.
    root : pathlib.Path, optional
        Where to make it (default: ``$XDG_RUNTIME_DIR`` when usable, else the system's
        temporary folder).

    Returns
    -------
    pathlib.Path
        The folder, named ``mosaic-KIND-<owner>-<random>``. Remove it with
        :func:`remove_private_dir`.
    """
    root = root or _private_root()
    remove_stale_private_dirs(kind, root)
    folder = Path(tempfile.mkdtemp(prefix=f"mosaic-{kind}-{owner_tag()}-", dir=root))
    watch_path(folder)
    return folder


def remove_private_dir(folder: str | os.PathLike[str]) -> None:
    """Delete a folder made by :func:`private_dir` and stop watching it."""
    shutil.rmtree(folder, ignore_errors=True)
    unwatch_path(folder)


# --- stopping on SIGINT and SIGTERM ------------------------------------------------------

_EXIT_CALLBACKS: list[Callable[[], None]] = []
_received: list[int] = []
"""The stop signals received so far (the first decides the exit status)."""
_stop_handler: Callable[[int, object], None] | None = None


class Stopped(KeyboardInterrupt):
    """Raised in the main thread when SIGINT or SIGTERM asks the program to stop.

    A ``KeyboardInterrupt``, so that everything which lets Ctrl-C through (Prefect's
    engine, thread pools, context managers that clean up) lets this through too.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


def at_hard_exit(callback: Callable[[], None]) -> None:
    """Run ``callback`` (quick, never raising) before a stop that cannot wait any longer."""
    _EXIT_CALLBACKS.append(callback)


def _hard_exit(signum: int, message: str) -> None:
    for callback in _EXIT_CALLBACKS:
        with contextlib.suppress(Exception):
            callback()
    with contextlib.suppress(OSError):
        os.write(2, message.encode() + b"\n")
    os._exit(128 + signum)  # children and watched folders: the guardian sees us go


def stop_on_signals(message: Callable[[int], str], grace: float = 3.0) -> None:
    """Make SIGINT and SIGTERM stop this program promptly and cleanly.

    The first signal raises :class:`Stopped` in the main thread, so the program unwinds
    (temporary files removed, children stopped). If it is still running ``grace`` seconds
    later (a thread that does not listen, a library that swallows the interrupt), the
    callbacks of :func:`at_hard_exit` run and the process exits at once with status
    128 + the signal number, printing ``message(signum)``. A second signal does that
    without waiting.

    Parameters
    ----------
    message : callable
        The one line printed on a hard exit, given the signal number.
    grace : float
        Seconds to unwind before the hard exit.
    """
    global _stop_handler

    def handler(signum: int, _frame: object) -> None:
        if _received:
            _hard_exit(signum, message(signum))
        _received.append(signum)
        timer = threading.Timer(grace, _hard_exit, (signum, message(signum)))
        timer.daemon = True
        timer.start()
        raise Stopped(signum)

    _stop_handler = handler
    reclaim_stop_signals()


def reclaim_stop_signals() -> None:
    """Put back the handlers of :func:`stop_on_signals` if a library replaced them.

    Prefect's flow engine swaps SIGTERM for a handler of its own while a flow runs; a
    signal landing while a task run starts then surfaces as an unrelated error from its
    crash report ("Task run is not set", a closed file) and no hard exit is armed. A flow
    run from the command line calls this first; elsewhere (a deployment's worker, whose
    SIGTERM means "cancel") nothing was installed and it does nothing.
    """
    if _stop_handler is None or threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop_handler)


def stop_signal_of(error: BaseException) -> int | None:
    """The stop signal behind ``error``, if one was received or is in its chain, else None.

    A signal raised inside a library's own error handling comes out as another error
    whose ``__context__`` is the stop; any signal this program received counts too.
    """
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        signum = getattr(link, "signum", getattr(link, "signal", None))
        if signum in (signal.SIGINT, signal.SIGTERM):
            return int(signum)
        link = link.__cause__ or link.__context__
    return _received[0] if _received else None
