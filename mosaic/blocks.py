"""Scoring in blocks: photo x tile costs without holding more than a memory budget.

The dense cost matrix grows as tiles x photos (50,000 x 50,000 float32 is 10 GB), so
large problems score it in blocks of tiles x photos, fanned out with Dask: local threads
by default, or the workers of a ``distributed.Client`` when a scheduler address is given.
A full matrix is written block by block into a memory-mapped file
(:func:`score_to_memmap`); the regional method (:mod:`mosaic.assign.regional`) instead
runs reductions over the blocks and never stores the whole matrix.

Every block is scored by the kernel of :mod:`mosaic.cost` (:func:`~mosaic.cost.block_cost`)
from features centred once on their global mean (:func:`~mosaic.cost.prepare_features`),
so the cost of a pair does not depend on the block it is computed in up to float32
rounding (about 1e-7). ``Features``, ``prepare_features``, ``block_cost`` and
``pair_cost`` are re-exported here.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
from dask import delayed
from threadpoolctl import threadpool_limits

from mosaic.cost import Features, Index, block_cost, pair_cost, prepare_features
from mosaic.errors import MosaicError
from mosaic.machine import physical_memory, usable_cpus
from mosaic.scoring import Scoring, base_features, scoring_cost

__all__ = [
    "BLOCK_BYTES", "DEFAULT_MEMORY_CAP", "DEFAULT_MEMORY_SHARE", "MAX_BLOCK_TILES",
    "MIN_BLOCK_TILES", "PHOTO_CHUNK", "BlockRunner", "Features", "Index", "block_cost",
    "block_rows",
    "ceil_div", "chunks", "dask_client", "default_max_memory", "dense_bytes", "even_chunks",
    "format_bytes", "pair_cost", "parse_memory", "preallocate", "prepare_features",
    "score_to_memmap",
]

#: Bytes per unit of a memory size ("4GB" is 4 * 10^9 bytes, "4GiB" 4 * 2^30).
_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_MEMORY_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")

#: Default memory budget: this share of the machine's memory ...
DEFAULT_MEMORY_SHARE = 1 / 3
#: ... but at most this many bytes.
DEFAULT_MEMORY_CAP = 8 * 10**9
#: Photos per chunk inside a block: small products stay in cache (about 20% faster than
#: 4096 photos at 16x16 features and 7 crops, measured) and keep temporaries small.
PHOTO_CHUNK = 1024
#: Largest working set of one scoring block, whatever the budget: bigger is no faster.
BLOCK_BYTES = 64 * 10**6
#: Smallest and largest number of tiles in one scoring block.
MIN_BLOCK_TILES = 16
MAX_BLOCK_TILES = 4096


def parse_memory(text: str | int | float) -> int:
    """A memory size in bytes.

    Parameters
    ----------
    text : str or number
        ``"4GB"``, ``"512MB"``, ``"1.5GiB"``, ``"8G"`` or a plain number of bytes. Units
        without "i" are decimal (GB = 10^9 bytes), with "i" binary (GiB = 2^30).

    Returns
    -------
    int
        Bytes.

    Raises
    ------
    MosaicError
        Not a size, an unknown unit, or not positive.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = _MEMORY_PATTERN.match(str(text))
        if not match or match[2].lower() not in _UNITS:
            raise MosaicError(f"`max_memory` {text!r} is not understood: use e.g. 4GB, 512MB, "
                              "1.5GiB or a number of bytes")
        value, unit = float(match[1]), match[2].lower()
    if not math.isfinite(value):
        raise MosaicError(f"`max_memory` {text!r} is not understood: use e.g. 4GB, 512MB, "
                          "1.5GiB or a number of bytes")
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise MosaicError(f"`max_memory` {text!r}: the budget must be positive")
    return size


def default_max_memory() -> int:
    """The memory budget when none is given: a third of the RAM, at most 8 GB."""
    return min(DEFAULT_MEMORY_CAP, int(physical_memory() * DEFAULT_MEMORY_SHARE))


def format_bytes(size: float) -> str:
    """``size`` bytes as a short decimal string ("3.2 GB")."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


class BlockRunner:
    """Runs block tasks with Dask: local threads, or the workers of a distributed Client.

    Parameters
    ----------
    client : distributed.Client, optional
        Run on this cluster; shared arrays are scattered to every worker once.
    threads : int, optional
        Local worker threads (default: the usable CPUs).
    """

    def __init__(self, client: Any | None = None, threads: int | None = None) -> None:
        self.client = client
        self.threads = max(1, threads or usable_cpus())
        self._shared: dict[int, tuple[Any, Any]] = {}

    @property
    def workers(self) -> int:
        """How many tasks run at the same time."""
        if self.client is None:
            return self.threads
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.values()))

    def share(self, value: Any) -> Any:
        """Make ``value`` available to every task (a scattered future on a cluster).

        On a cluster each object is scattered once per runner, under a key of its own, and
        the future is held as long as the runner: sharing the same features again in a
        later stage reuses it (re-scattering under a content key could race with the
        release of the earlier future and lose the data).
        """
        if self.client is None:
            return value
        held = self._shared.get(id(value))
        if held is not None and held[0] is value:
            return held[1]
        future = self.client.scatter(value, broadcast=True, hash=False)
        self._shared[id(value)] = (value, future)
        return future

    def run(self, function: Callable[..., Any], tasks: Sequence[tuple[Any, ...]],
            window: int | None = None) -> Iterator[tuple[int, Any]]:
        """Call ``function(*task)`` for every task; yield ``(index, result)`` as they finish.

        Parameters
        ----------
        function : callable
            A module-level function (it is pickled for a cluster).
        tasks : sequence of tuple
            Arguments of each call (shared values from :meth:`share` included).
        window : int, optional
            At most this many unfinished tasks (and their results) at a time, which
            bounds the memory; all at once when not given.

        Yields
        ------
        (int, object)
            Task index and its result.
        """
        if not tasks:
            return
        window = len(tasks) if window is None else max(1, window)
        if self.client is None:
            yield from self._run_local(function, tasks, window)
        else:
            yield from self._run_cluster(function, tasks, window)

    def _run_local(self, function: Callable[..., Any], tasks: Sequence[tuple[Any, ...]],
                   window: int) -> Iterator[tuple[int, Any]]:
        for start in range(0, len(tasks), window):
            batch = [delayed(function, pure=False)(*task) for task in tasks[start:start + window]]
            # One BLAS thread per task, as on a Dask worker: a block's float32 rounding
            # then does not depend on where it ran, and no threads are oversubscribed
            # (20-30% faster on 2 cores).
            with threadpool_limits(limits=1, user_api="blas"):
                results = dask.compute(*batch, scheduler="threads", num_workers=self.threads)
            yield from enumerate(results, start)

    def _run_cluster(self, function: Callable[..., Any], tasks: Sequence[tuple[Any, ...]],
                     window: int) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        pending = iter(enumerate(tasks))
        index_of: dict[Any, int] = {}
        running = as_completed(loop=self.client.loop)  # not the default client
        for index, task in _take(pending, window):
            future = self.client.submit(function, *task, pure=False)
            index_of[future] = index
            running.add(future)
        for future in running:
            result = future.result()
            index = index_of.pop(future)
            future.release()
            for next_index, task in _take(pending, 1):
                submitted = self.client.submit(function, *task, pure=False)
                index_of[submitted] = next_index
                running.add(submitted)
            yield index, result


def _take(items: Iterator[tuple[int, Any]], count: int) -> list[tuple[int, Any]]:
    taken = []
    for item in items:
        taken.append(item)
        if len(taken) == count:
            break
    return taken


@contextlib.contextmanager
def dask_client(address: str | None) -> Iterator[Any | None]:
    """A ``distributed.Client`` connected to ``address``, closed on exit; None without one.

    Parameters
    ----------
    address : str or None
        Scheduler address such as ``tcp://scheduler:8786``; None runs locally (threads).

    Raises
    ------
    MosaicError
        No scheduler answers at ``address``.
    """
    if not address:
        yield None
        return
    from distributed import Client

    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise MosaicError(f"`dask_address` {address}: no Dask scheduler answered "
                          f"({error})") from error
    try:
        yield client
    finally:
        client.close()


def block_rows(n_photos: int, budget: int, bytes_per_entry: int = 24) -> int:
    """Tiles per block so that a tiles x ``n_photos`` block and its temporaries fit ``budget``.

    Parameters
    ----------
    n_photos : int
        Columns of a block (photos times crop candidates).
    budget : int
        Bytes one block may use.
    bytes_per_entry : int
        Bytes per block entry, temporaries included.
    """
    rows = budget // max(1, n_photos * bytes_per_entry)
    return int(min(MAX_BLOCK_TILES, max(MIN_BLOCK_TILES, rows)))


def _score_block(scoring: Scoring, start: int, stop: int,
                 out: _MatrixFiles | None) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Score tiles ``start:stop`` against every photo; write into ``out`` when local."""
    features = base_features(scoring)
    cost = np.empty((stop - start, features.n_photos), dtype=np.float32)
    crop = (np.empty((stop - start, features.n_photos), dtype=np.uint8)
            if features.n_crops > 1 else None)
    for first in range(0, features.n_photos, PHOTO_CHUNK):
        last = min(first + PHOTO_CHUNK, features.n_photos)
        part, part_crop = scoring_cost(scoring, slice(start, stop), slice(first, last))
        cost[:, first:last] = part
        if crop is not None:
            crop[:, first:last] = part_crop
    if out is None:
        return cost, crop
    out.write(start, cost, crop)
    return None


class _MatrixFiles:
    """Row blocks of the cost matrix (and crops) written into ``.npy`` files with ``pwrite``.

    Written through the file, not a writable memory map, the scored rows sit in the page
    cache rather than in the process's resident memory, so scoring's peak stays the blocks
    in flight; ``pwrite`` at explicit offsets lets worker threads write at once.
    """

    def __init__(self, cost_path: Path, crop_path: Path | None, shape: tuple[int, int]) -> None:
        self.photos = shape[1]
        self._files = [(_create_npy(cost_path, np.float32, shape), 4)]
        if crop_path is not None:
            self._files.append((_create_npy(crop_path, np.uint8, shape), 1))

    def write(self, start: int, cost: np.ndarray, crop: np.ndarray | None) -> None:
        """Store rows ``start:start + len(cost)``."""
        for ((fd, offset), itemsize), rows in zip(self._files, (cost, crop), strict=False):
            if rows is not None:
                _pwrite_all(fd, np.ascontiguousarray(rows), offset + start * self.photos
                            * itemsize)

    def close(self) -> None:
        """Flush to disk and close the files."""
        for (fd, _), _ in self._files:
            os.fsync(fd)
            os.close(fd)
        self._files = []


def _create_npy(path: Path, dtype: type, shape: tuple[int, int]) -> tuple[int, int]:
    """Create a ``.npy`` file of ``shape`` with its blocks reserved; its fd and data offset."""
    header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    offset = int(header.offset)
    del header  # the header is written; rows go through the file
    preallocate(path)
    return os.open(path, os.O_RDWR), offset


def _pwrite_all(fd: int, rows: np.ndarray, offset: int) -> None:
    view = memoryview(rows).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def score_to_memmap(scoring: Scoring, path: str | Path, max_memory: int,
                    runner: BlockRunner | None = None, with_crops: bool = False,
                    crop_path: str | Path | None = None,
                    progress: Callable[[int], None] | None = None
                    ) -> tuple[np.memmap, np.memmap | None]:
    """The full tiles x photos cost matrix, scored in blocks into a ``.npy`` file.

    Parameters
    ----------
    scoring : Features or RefineFeatures
        The features, or the same rotated for coarse-to-fine scoring
        (:func:`mosaic.cost_refine.refine_features`: the same costs, about 2x faster).
    path : str or Path
        The float32 matrix is written here; the winning crops, when asked for, to
        ``crop_path`` (default: ``path`` with ``.crop`` appended).
    max_memory : int
        Bytes the blocks in flight may use together (the file is not counted); blocks
        are never larger than :data:`BLOCK_BYTES`, which is as fast and keeps the peak low.
    runner : BlockRunner, optional
        Where blocks run (default: local threads).
    with_crops : bool
        Also store the winning crop candidate of every pair (photos with candidates).
    crop_path : str or Path, optional
        Where the winning crops go.
    progress : callable, optional
        Called with the number of tiles scored after each block.

    Returns
    -------
    cost : numpy.memmap of float32, shape (T, P)
        Mapped read-only.
    best_crop : numpy.memmap of uint8, shape (T, P), or None
    """
    runner = runner or BlockRunner()
    features = base_features(scoring)
    tiles, photos = features.n_tiles, features.n_photos
    path = Path(path)
    crop_file = (Path(crop_path or str(path) + ".crop")
                 if with_crops and features.n_crops > 1 else None)
    files = _MatrixFiles(path, crop_file, (tiles, photos))
    try:
        rows = _rows_per_block(features, max_memory, runner.workers)
        local = runner.client is None
        shared = runner.share(scoring)
        tasks = [(shared, start, min(start + rows, tiles), files if local else None)
                 for start in range(0, tiles, rows)]
        for index, result in runner.run(_score_block, tasks, window=2 * runner.workers):
            start, stop = tasks[index][1], tasks[index][2]
            if result is not None:
                files.write(start, *result)
            if progress is not None:
                progress(stop - start)
    finally:
        files.close()
    cost = np.load(path, mmap_mode="r", allow_pickle=False)
    crop = np.load(crop_file, mmap_mode="r", allow_pickle=False) if crop_file else None
    return cost, crop


def _rows_per_block(features: Features, max_memory: int, workers: int) -> int:
    """Tiles per block: two blocks per worker in flight within the budget and BLOCK_BYTES."""
    per_block = max(1, min(BLOCK_BYTES, max_memory // (2 * workers)))
    chunk = min(features.n_photos, PHOTO_CHUNK)
    # A row's result (float32 cost + uint8 crop) and its share of one chunk's temporaries:
    # the product over all crops (float32) and the argmin (int64) with its gathered minimum.
    row_bytes = features.n_photos * 5 + chunk * (4 * features.n_crops + 13)
    return max(1, min(block_rows(1, per_block, row_bytes), features.n_tiles))


def preallocate(path: str | os.PathLike[str]) -> None:
    """Reserve a memory-mapped file's blocks on disk now.

    ``open_memmap`` makes a sparse file; writing its pages on a full disk would kill the
    process with SIGBUS. Reserved up front, a full disk is an ``OSError`` (ENOSPC) here.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it
            raise
    finally:
        os.close(fd)


def dense_bytes(tiles: int, photos: int, crops: int = 1) -> int:
    """Memory the dense exact method needs: the float32 matrix plus solver work arrays."""
    solver = 320 * tiles + 48 * photos
    crop = tiles * photos if crops > 1 else 0
    return 4 * tiles * photos + crop + solver


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for positive integers."""
    return -(-a // b)


def chunks(count: int, size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` pairs cutting ``range(count)`` into pieces of at most ``size``."""
    size = max(1, size)
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def even_chunks(count: int, pieces: int) -> list[tuple[int, int]]:
    """``range(count)`` cut into ``pieces`` nearly equal ``(start, stop)`` parts."""
    if count <= 0:
        return []
    pieces = max(1, min(pieces, count))
    edges = [math.floor(i * count / pieces) for i in range(pieces + 1)]
    return list(itertools.pairwise(edges))
