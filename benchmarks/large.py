"""Dense exact or regional from the features, for the benchmarks: ``assign_large``.

Benchmark helper (formerly ``mosaic.assign.auto.assign_large``; the build runs the same
steps through :mod:`mosaic.pipeline.score` and :mod:`mosaic.pipeline.assign`):
:func:`mosaic.assign.auto.choose_method` picks the method; the dense path scores the
matrix in blocks into a memory-mapped file (:func:`mosaic.blocks.score_to_memmap`) and
solves it exactly; the regional path never builds the matrix. Both report the method,
the reason, the peak memory and the gap to a proven lower bound.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mosaic.assign.auto import MethodChoice, choose_method
from mosaic.assign.exact import assign_optimal
from mosaic.assign.regional import RegionalReport, assign_regional
from mosaic.assign.result import Assignment
from mosaic.blocks import BlockRunner, Features, pair_cost, score_to_memmap
from mosaic.machine import peak_memory_bytes


@dataclass
class LargeResult:
    """The outcome of :func:`assign_large`.

    Attributes
    ----------
    assignment : Assignment
    best_crop : ndarray of uint8, shape (T,)
        Winning crop candidate of each tile's photo (0 without candidates).
    choice : MethodChoice
    score_seconds : float
        Time spent scoring (block passes over tiles x photos).
    solve_seconds : float
        Everything else.
    lower_bound : float
        Proven lower bound on the optimum (dual prices).
    peak_memory_bytes : int
        Peak resident memory of this process.
    regional : RegionalReport or None
        Details of a regional solve.
    """

    assignment: Assignment
    best_crop: np.ndarray
    choice: MethodChoice
    score_seconds: float
    solve_seconds: float
    lower_bound: float
    peak_memory_bytes: int
    regional: RegionalReport | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """The fields ``metrics.json`` reports about the assignment."""
        data: dict[str, Any] = {
            "method": self.assignment.method,
            "method_reason": self.choice.reason,
            "max_memory_bytes": self.choice.max_memory,
            "dense_bytes": self.choice.dense_bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "score_seconds": self.score_seconds,
            "solve_seconds": self.solve_seconds,
            "objective": self.assignment.objective,
            "lower_bound": self.lower_bound,
            "gap": self.assignment.gap,
            "gap_to": ("dual lower bound of the exact solver" if self.choice.method == "optimal"
                       else "proven lower bound (global dual prices)"),
        }
        if self.regional is not None:
            data["regional"] = self.regional.to_dict()
        return data


def assign_large(features: Features, grid_shape: tuple[int, int],
                 weights: np.ndarray | None = None, method: str = "auto",
                 max_memory: int | None = None, regions: int | None = None,
                 runner: BlockRunner | None = None, workdir: str | Path | None = None,
                 log: Callable[[str], None] | None = None, **regional_options: Any
                 ) -> LargeResult:
    """Assign photos to tiles at any size: dense exact when it fits, else regional.

    Parameters
    ----------
    features : Features
        From :func:`mosaic.blocks.prepare_features` (tiles row by row).
    grid_shape : (int, int)
        Tile grid (rows, cols).
    weights : ndarray, shape (T,), optional
        Tile importance.
    method : {"auto", "optimal", "regional"}
        "auto" chooses by size and memory (:func:`choose_method`).
    max_memory : int, optional
        Budget in bytes (default :func:`mosaic.blocks.default_max_memory`).
    regions : int, optional
        Region count for "regional".
    runner : BlockRunner, optional
        Local Dask threads (default) or a cluster client.
    workdir : str or Path, optional
        Folder for the memory-mapped matrix of the dense path (default: a temporary one;
        the file is deleted after the solve).
    log : callable, optional
        Receives one line per stage.
    **regional_options
        Passed to :func:`mosaic.assign.regional.assign_regional`.

    Returns
    -------
    LargeResult
    """
    runner = runner or BlockRunner()
    say = log or (lambda _line: None)
    choice = choose_method(features.n_tiles, features.n_photos, features.n_crops, max_memory,
                           method, regions, runner.workers, features.nbytes)
    say(f"method: {choice.reason}")
    if choice.method == "optimal":
        return _assign_dense(features, weights, choice, runner, workdir, say)
    result = assign_regional(features, grid_shape, weights, choice.regions, choice.max_memory,
                             runner, log=say, **regional_options)
    report = result.report
    score = sum(report.seconds.get(k, 0.0) for k in ("c-transform pass", "reduced-cost pass"))
    total = sum(report.seconds.values())
    return LargeResult(result.assignment, result.best_crop, choice, score, total - score,
                       report.lower_bound, peak_memory_bytes(), report)


def _assign_dense(features: Features, weights: np.ndarray | None, choice: MethodChoice,
                  runner: BlockRunner, workdir: str | Path | None,
                  say: Callable[[str], None]) -> LargeResult:
    with tempfile.TemporaryDirectory(dir=workdir, prefix="mosaic-cost-") as folder:
        started = time.perf_counter()
        budget = max(1, choice.max_memory - choice.dense_bytes)
        cost, _ = score_to_memmap(features, Path(folder) / "cost.npy", budget, runner)
        score_seconds = time.perf_counter() - started
        say(f"dense: scored {features.n_tiles:,} x {features.n_photos:,} in "
            f"{score_seconds:.1f} s")
        assignment = assign_optimal(cost, weights)
        del cost
    tiles = np.arange(features.n_tiles)
    _, best_crop = pair_cost(features, tiles, assignment.photo_of_tile)
    gap = assignment.gap or 0.0
    bound = assignment.objective - gap * abs(assignment.objective)
    say(f"dense: solved in {assignment.seconds:.1f} s, gap {gap:.2e}")
    return LargeResult(assignment, best_crop, choice, score_seconds, assignment.seconds, bound,
                       peak_memory_bytes())
