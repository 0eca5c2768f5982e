"""The assignment as a linear programme, solved with HiGHS.

Two builds of the same model: "one photo per tile, each photo at most once, minimise
total (weighted) cost".

- :func:`assign_lp_highs`: the model in matrix form passed straight to ``highspy``. The
  assignment polytope is integral, so the LP optimum is a 0/1 vertex; this is the form
  that accepts side constraints later.
- :func:`assign_lp_pulp`: the source blog's 0/1 model written with PuLP, solved by HiGHS
  (or CBC, the blog's solver, for benchmarks). Slow to build; meant for small problems
  and as a cross-check.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator

import highspy
import numpy as np
import pulp

from mosaic.assign.result import Assignment, check_problem, evaluate
from mosaic.errors import MosaicError

MAX_LP_VARIABLES = 4_000_000
"""Above this many (tile, photo) pairs the LP methods refuse: use ``optimal``."""


_banner_lock = threading.Lock()
_banner_shown = False


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null (C++ code prints there, not to sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def new_highs() -> highspy.Highs:
    """A silent HiGHS instance (the first one in a process prints a banner to stdout)."""
    global _banner_shown
    with _banner_lock:
        if not _banner_shown:
            with _stdout_silenced():
                solver = highspy.Highs()
            _banner_shown = True
        else:
            solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    return solver


def _check_size(cost: np.ndarray, method: str) -> None:
    pairs = cost.shape[0] * cost.shape[1]
    if pairs > MAX_LP_VARIABLES:
        raise MosaicError(
            f"`method` {method} builds one variable per (tile, photo) pair: {pairs:,} is over "
            f"the {MAX_LP_VARIABLES:,} limit; use `method` optimal (same optimum, faster)"
        )


def _round_solution(values: np.ndarray, tiles: int, photos: int, method: str) -> np.ndarray:
    x = values.reshape(tiles, photos)
    photo_of_tile = x.argmax(axis=1)
    if not np.allclose(x[np.arange(tiles), photo_of_tile], 1.0, atol=1e-6):
        raise RuntimeError(f"{method}: the LP solution is not integral")
    return photo_of_tile.astype(np.int64)


def assign_lp_highs(cost: np.ndarray, weights: np.ndarray | None = None,
                    time_limit: float | None = None) -> Assignment:
    """Solve the assignment LP in matrix form with HiGHS (dual simplex).

    Variables ``x[t, p]`` in [0, 1], row-major; rows 0..T-1 say ``sum_p x[t, p] = 1``,
    rows T..T+P-1 say ``sum_t x[t, p] <= 1``.

    Parameters
    ----------
    cost : ndarray, shape (T, P)
    weights : ndarray, shape (T,), optional
    time_limit : float, optional
        Seconds HiGHS may take; past it a ``TimeoutError`` is raised.

    Returns
    -------
    Assignment
        Status "optimal", gap from HiGHS's dual objective.
    """
    w = check_problem(cost, weights)
    _check_size(cost, "lp")
    started = time.perf_counter()
    tiles, photos = cost.shape
    n = tiles * photos
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = tiles + photos
    lp.col_cost_ = (cost.astype(np.float64) * w[:, None]).ravel()
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.ones(n)
    lp.row_lower_ = np.concatenate([np.ones(tiles), np.zeros(photos)])
    lp.row_upper_ = np.ones(tiles + photos)
    matrix = highspy.HighsSparseMatrix()
    matrix.format_ = highspy.MatrixFormat.kColwise
    matrix.num_col_ = n
    matrix.num_row_ = tiles + photos
    matrix.start_ = np.arange(0, 2 * n + 1, 2, dtype=np.int32)
    index = np.empty(2 * n, dtype=np.int32)
    index[0::2] = np.repeat(np.arange(tiles, dtype=np.int32), photos)
    index[1::2] = tiles + np.tile(np.arange(photos, dtype=np.int32), tiles)
    matrix.index_ = index
    matrix.value_ = np.ones(2 * n)
    lp.a_matrix_ = matrix
    solver = new_highs()
    if time_limit is not None:
        solver.setOptionValue("time_limit", float(time_limit))
    solver.passModel(lp)
    solver.run()
    status = solver.getModelStatus()
    if status == highspy.HighsModelStatus.kTimeLimit:
        raise TimeoutError(f"HiGHS did not finish within {time_limit} s")
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"HiGHS stopped with status {solver.modelStatusToString(status)}")
    photo_of_tile = _round_solution(np.asarray(solver.getSolution().col_value), tiles, photos,
                                    "HiGHS")
    info = solver.getInfo()
    seconds = time.perf_counter() - started
    result = evaluate(cost, photo_of_tile, weights, "lp", seconds, "optimal",
                      message="HiGHS LP (matrix form, dual simplex)")
    bound = float(info.objective_function_value)
    result.gap = max(0.0, (result.objective - bound) / max(abs(result.objective), 1e-12))
    return result


def cbc_backend() -> pulp.LpSolver:
    """CBC for PuLP: the binary bundled with PuLP 3, else a ``cbc`` on the PATH.

    PuLP 4 (what Python 3.12 gets) no longer bundles CBC.

    Raises
    ------
    MosaicError
        No CBC binary is available.
    """
    try:
        from pulp.apis import coin_api
    except ImportError:  # PuLP >= 4
        backend = pulp.COIN_CMD(msg=False)
    else:
        backend = pulp.COIN_CMD(path=coin_api.pulp_cbc_path, msg=False)
    if not backend.available():
        raise MosaicError("the CBC solver is not available (PuLP 4 does not bundle it): "
                          "install the cbc program (Debian: coinor-cbc), or use HiGHS")
    return backend


def assign_lp_pulp(cost: np.ndarray, weights: np.ndarray | None = None,
                   solver: str = "highs") -> Assignment:
    """The source blog's 0/1 programme, built with PuLP.

    Parameters
    ----------
    cost : ndarray, shape (T, P)
    weights : ndarray, shape (T,), optional
    solver : {"highs", "cbc"}
        HiGHS through highspy, or PuLP's bundled CBC (the blog's solver).

    Returns
    -------
    Assignment
    """
    w = check_problem(cost, weights)
    _check_size(cost, "lp")
    started = time.perf_counter()
    tiles, photos = cost.shape
    weighted = cost.astype(np.float64) * w[:, None]
    problem = pulp.LpProblem("mosaic", pulp.LpMinimize)
    x = [[problem.add_variable(f"x_{t}_{p}", cat=pulp.LpBinary) for p in range(photos)]
         for t in range(tiles)]
    problem += pulp.LpAffineExpression(
        (x[t][p], float(weighted[t, p])) for t in range(tiles) for p in range(photos))
    for t in range(tiles):
        problem += pulp.lpSum(x[t]) == 1, f"tile_{t}"
    for p in range(photos):
        problem += pulp.lpSum(x[t][p] for t in range(tiles)) <= 1, f"photo_{p}"
    if solver == "highs":
        new_highs()  # keep the banner of the first HiGHS instance off stdout
        backend = pulp.HiGHS(msg=False)
    elif solver == "cbc":
        backend = cbc_backend()
    else:
        raise ValueError(f"unknown solver {solver!r}; choose 'highs' or 'cbc'")
    problem.solve(backend)
    if pulp.LpStatus[problem.status] != "Optimal":
        raise RuntimeError(f"PuLP/{solver} stopped with status {pulp.LpStatus[problem.status]}")
    values = np.array([[x[t][p].varValue or 0.0 for p in range(photos)] for t in range(tiles)])
    photo_of_tile = _round_solution(values, tiles, photos, f"PuLP/{solver}")
    seconds = time.perf_counter() - started
    return evaluate(cost, photo_of_tile, weights, "lp", seconds, "optimal", gap=0.0,
                    message=f"PuLP 0/1 model, {solver.upper()}")
