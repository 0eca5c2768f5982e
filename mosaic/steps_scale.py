"""Build steps for problems of any size: block scoring with Dask and the regional method.

Like :mod:`mosaic.steps`, pure functions from files to files returning small JSON-ready
dicts; ``tasks/`` wraps them. The dense path scores the tiles x photos matrix in blocks
(local Dask threads, or the workers of a cluster) straight into a memory-mapped ``.npy``
file; the regional path (:mod:`mosaic.assign.regional`) never builds that matrix.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mosaic.assign.auto import choose_method, smallest_budget
from mosaic.assign.regional import STAGES, assign_regional
from mosaic.blocks import (
    BlockRunner,
    dask_client,
    default_max_memory,
    format_bytes,
    parse_memory,
    prepare_features,
    score_to_memmap,
)
from mosaic.errors import MosaicError
from mosaic.features import Metric, to_features
from mosaic.files import atomic_path, save_npy_atomic, write_json_atomic
from mosaic.progress import stage
from mosaic.steps import file_ref, step_key

logger = logging.getLogger("mosaic.scale")

#: Methods that :func:`choose_assignment` resolves by size ("optimal" is checked too).
SIZED_METHODS = ("auto", "optimal", "regional")


@dataclass(frozen=True)
class ScaleRequest:
    """How large problems run: the memory budget, the regions and where Dask runs.

    Attributes
    ----------
    max_memory : str or None
        Budget such as ``"4GB"`` (default: a third of the RAM, at most 8 GB).
    regions : int or None
        Regions of the regional method (default: about 3,200 tiles each).
    dask_address : str or None
        Scheduler of an existing Dask cluster (``tcp://host:8786``); local threads if None.
    """

    max_memory: str | None = None
    regions: int | None = None
    dask_address: str | None = None

    def check(self) -> None:
        """Fail on nonsense before any work starts."""
        if self.max_memory is not None:
            parse_memory(self.max_memory)
        if self.regions is not None and self.regions < 1:
            raise MosaicError(f"--regions {self.regions}: must be at least 1")
        if self.dask_address is not None and "://" not in self.dask_address:
            raise MosaicError(f"--dask-address {self.dask_address!r}: give a scheduler "
                              "address such as tcp://scheduler:8786")

    def budget(self) -> int:
        """The memory budget in bytes."""
        return parse_memory(self.max_memory) if self.max_memory else default_max_memory()


def choose_assignment(method: str, tiles: int, photos: int, crops: int, feature_size: int,
                      request: ScaleRequest, check_minimum: bool = True) -> dict[str, Any]:
    """Resolve ``--method auto`` (and check "optimal" and "regional") for this size.

    Parameters
    ----------
    method : str
        What the user asked for; other methods (greedy, lp, ...) are returned unchanged.
    tiles, photos, crops, feature_size : int
        Problem size.
    request : ScaleRequest
    check_minimum : bool
        Refuse a budget below :func:`~mosaic.assign.auto.smallest_budget` (off when the
        sizes are estimates, before the photos are read).

    Returns
    -------
    dict
        ``method`` (the one to run), ``requested``, ``reason``, ``regions`` (regional
        only), ``max_memory_bytes`` and ``dense_bytes``.

    Raises
    ------
    MosaicError
        "optimal" asked for a matrix over the memory budget, or a budget too small to
        build at full quality.
    """
    budget = request.budget()
    if method not in SIZED_METHODS:
        return {"method": method, "requested": method, "reason": f"{method}, as asked",
                "regions": None, "max_memory_bytes": budget, "dense_bytes": None}
    feature_bytes = 4 * 3 * feature_size**2 * (tiles + photos * crops)
    smallest = smallest_budget(tiles, photos, crops, request.regions, feature_bytes=feature_bytes)
    if check_minimum and budget < smallest:
        raise MosaicError(f"--max-memory {format_bytes(budget)} is too small for {tiles:,} "
                          f"tiles and {photos:,} photos: the smallest budget that works is "
                          f"{_rounded_up(smallest)}")
    choice = choose_method(tiles, photos, crops, budget, method, request.regions,
                           feature_bytes=feature_bytes)
    return {"method": choice.method, "requested": method, "reason": choice.reason,
            "regions": choice.regions, "max_memory_bytes": budget,
            "dense_bytes": choice.dense_bytes}


def _rounded_up(size: int) -> str:
    """A size as the next "N.N MB" or "N.N GB" above it, so that giving it is enough."""
    if size >= 1e9:
        return f"{math.ceil(size / 1e8) / 10:.1f}GB"
    return f"{math.ceil(size / 1e5) / 10:.1f}MB"


def _features(thumbs: dict[str, str], tiles: dict[str, str], metric: Metric) -> Any:
    tile_features = to_features(np.load(tiles["path"], allow_pickle=False), metric)
    photo_features = to_features(np.load(thumbs["path"], allow_pickle=False), metric)
    return prepare_features(tile_features, photo_features)


def score_blocks(thumbs: dict[str, str], tiles: dict[str, str], metric: Metric, workdir: str,
                 request: ScaleRequest) -> dict[str, Any]:
    """The dense cost matrix (and winning crops), scored in blocks into ``.npy`` files.

    Blocks run on local Dask threads, or on the cluster at ``request.dask_address``; the
    blocks in flight stay within the memory budget (the files are memory-mapped).
    """
    features = _features(thumbs, tiles, metric)
    folder = Path(workdir) / "score" / step_key(thumbs["sha256"], tiles["sha256"], metric)
    with_crops = features.n_crops > 1
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(dask_client(request.dask_address))
        advance = stack.enter_context(stage("score", features.n_tiles))
        cost_tmp = stack.enter_context(atomic_path(folder / "cost.npy"))
        crop_tmp = (stack.enter_context(atomic_path(folder / "best_crop.npy"))
                    if with_crops else None)
        cost, crop = score_to_memmap(features, cost_tmp, request.budget(), BlockRunner(client),
                                     with_crops=with_crops, crop_path=crop_tmp,
                                     progress=advance)
        del cost, crop  # flushed and closed before the files are renamed
    return {"cost": file_ref(folder / "cost.npy"),
            "best_crop": file_ref(folder / "best_crop.npy") if with_crops else None,
            "seconds": time.perf_counter() - started,
            "where": request.dask_address or "local threads"}


def arrange_regional(thumbs: dict[str, str], tiles: dict[str, str], metric: Metric,
                     grid: tuple[int, int], workdir: str, weights: dict[str, str] | None,
                     request: ScaleRequest, regions: int | None) -> dict[str, Any]:
    """Solve with the regional method, without the dense matrix; save the assignment.

    Returns
    -------
    dict
        Like :func:`mosaic.steps.arrange`, plus ``tile_crop`` (each tile's winning crop
        candidate, a ``.npy`` file), ``lower_bound``, ``score_seconds`` (the passes over
        all tiles x photos) and ``regional`` (the stage report).
    """
    features = _features(thumbs, tiles, metric)
    tile_weight = np.load(weights["path"], allow_pickle=False) if weights else None
    label = "regional" if weights is not None else "regional, unweighted"
    with (dask_client(request.dask_address) as client,
          stage(f"solve ({label}, {len(STAGES)} stages)", len(STAGES)) as advance):
        runner = BlockRunner(client)
        result = assign_regional(features, grid, tile_weight, regions, request.budget(),
                                 runner, log=logger.info, progress=advance)
    assignment, report = result.assignment, result.report
    folder = Path(workdir) / "assign" / step_key(thumbs["sha256"], tiles["sha256"], metric, grid,
                                             "regional", regions,
                                             weights["sha256"] if weights else None)
    write_json_atomic(folder / "assignment.json", assignment.to_dict())
    save_npy_atomic(folder / "tile_crop.npy", result.best_crop)
    passes = ("c-transform pass", "reduced-cost pass")
    score_seconds = sum(report.seconds.get(name, 0.0) for name in passes)
    logger.info("regional: %s; peak memory %s", assignment.message,
                format_bytes(report.peak_memory_bytes))
    return {
        "assignment": file_ref(folder / "assignment.json"),
        "tile_crop": file_ref(folder / "tile_crop.npy"),
        "method": label,
        "objective": assignment.objective,
        "mean_cost": assignment.mean_cost,
        "seconds": assignment.seconds - score_seconds,
        "score_seconds": score_seconds,
        "status": assignment.status,
        "gap": assignment.gap,
        "lower_bound": report.lower_bound,
        "message": assignment.message,
        "regional": report.to_dict(),
        "where": request.dask_address or "local threads",
    }
