"""What this machine and process have: usable CPUs, memory, peak resident memory; threads."""

from __future__ import annotations

import os
import resource
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def physical_memory() -> int:
    """Bytes of physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def peak_memory_bytes() -> int:
    """Peak resident memory of this process so far (Linux ``ru_maxrss``), in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def map_in_threads(function: Callable[[_Item], _Result], items: Iterable[_Item],
                   workers: int | None = None) -> Iterator[_Result]:
    """``function(item)`` for every item, in order, computed by a pool of threads.

    Unlike ``ThreadPoolExecutor.map``, which queues every item at once and finishes them
    all even when the caller stops (an error, Ctrl-C), this keeps a few items per thread
    in flight and cancels the rest when the loop is left, so an interrupted render or
    load stops within one item per thread.

    Parameters
    ----------
    function : callable
        Applied to each item in a worker thread.
    items : iterable
        The inputs.
    workers : int, optional
        Threads (default: the usable CPUs).

    Yields
    ------
    object
        The results, in the order of ``items``.
    """
    threads = workers or usable_cpus()
    executor = ThreadPoolExecutor(max_workers=threads)
    pending: deque[Future[_Result]] = deque()
    source = iter(items)
    try:
        pending.extend(executor.submit(function, item) for item in islice(source, 4 * threads))
        while pending:
            result = pending.popleft().result()
            pending.extend(executor.submit(function, item) for item in islice(source, 1))
            yield result
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
