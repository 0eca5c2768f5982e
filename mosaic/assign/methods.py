"""Every assignment method by name: what it needs, what it guarantees, and its solver.

The ``--method`` names, the methods that solve an in-memory cost matrix and the ones
resolved by size and memory are all read from :data:`REGISTRY`, so adding a method is
one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from mosaic.assign.auto import choose_method
from mosaic.assign.exact import assign_optimal
from mosaic.assign.greedy import assign_greedy
from mosaic.assign.lp import MAX_LP_VARIABLES, assign_lp_highs, assign_lp_pulp
from mosaic.assign.regional import assign_regional
from mosaic.assign.result import Assignment
from mosaic.errors import MosaicError

Needs = Literal["cost", "features", "size"]


@dataclass(frozen=True)
class Method:
    """One ``--method``.

    Attributes
    ----------
    name : str
        The ``--method`` value.
    needs : {"cost", "features", "size"}
        "cost": a dense tiles x photos cost matrix, ``solver(cost, weights)`` returns an
        :class:`~mosaic.assign.result.Assignment`; "features": block features and the
        tile grid (:func:`~mosaic.assign.regional.assign_regional`), never the dense
        matrix; "size": a chooser, ``solver`` is
        :func:`~mosaic.assign.auto.choose_method`, which picks a method by problem size
        and memory budget.
    solver : callable
        The function that runs it (or chooses, for "size").
    weights : bool
        Honours tile weights.
    proven_bound : bool
        Reports a gap to a proven lower bound (for a chooser: every method it picks does).
    max_pairs : int or None
        Most tiles x photos pairs it accepts (None: limited by memory only).
    by_size : bool
        Checked (or resolved) against the memory budget by
        :func:`~mosaic.assign.auto.choose_method`.
    summary : str
        One line for help texts.
    """

    name: str
    needs: Needs
    solver: Callable[..., Any]
    weights: bool
    proven_bound: bool
    max_pairs: int | None
    by_size: bool
    summary: str

    @property
    def dense(self) -> bool:
        """Solves an in-memory cost matrix (:func:`solve_dense` runs it)."""
        return self.needs == "cost"


#: Every method, in the order ``--method`` lists them.
REGISTRY: dict[str, Method] = {method.name: method for method in (
    Method("auto", "size", choose_method, weights=True, proven_bound=True, max_pairs=None,
           by_size=True,
           summary="dense optimal while the matrix fits `max_memory`, regional beyond"),
    Method("optimal", "cost", assign_optimal, weights=True, proven_bound=True,
           max_pairs=None, by_size=True,
           summary="exact: auction + shortest augmenting paths, dual lower bound"),
    Method("regional", "features", assign_regional, weights=True, proven_bound=True,
           max_pairs=None, by_size=True,
           summary="regions solved exactly, repaired in pairs; gap to a proven bound"),
    Method("greedy", "cost", assign_greedy, weights=True, proven_bound=False,
           max_pairs=None, by_size=False,
           summary="best match first (the source blog), no guarantee"),
    Method("lp", "cost", assign_lp_highs, weights=True, proven_bound=True,
           max_pairs=MAX_LP_VARIABLES, by_size=False,
           summary="the assignment LP in matrix form, HiGHS dual simplex"),
    Method("lp-pulp", "cost", assign_lp_pulp, weights=True, proven_bound=True,
           max_pairs=MAX_LP_VARIABLES, by_size=False,
           summary="the source blog's 0/1 model built with PuLP, solved by HiGHS"),
)}

#: Every ``--method`` name (validation, help texts).
METHOD_NAMES: tuple[str, ...] = tuple(REGISTRY)
#: Methods that solve an in-memory cost matrix (:func:`solve_dense`).
DENSE_METHODS: tuple[str, ...] = tuple(name for name, m in REGISTRY.items() if m.dense)
#: Methods resolved or checked by size and memory (:func:`~mosaic.assign.auto.choose_method`).
SIZED_METHODS: tuple[str, ...] = tuple(name for name, m in REGISTRY.items() if m.by_size)


def get_method(name: str) -> Method:
    """The registry entry of ``name``.

    Raises
    ------
    MosaicError
        Not a method.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise MosaicError(f"`method` {name!r}: choose one of {', '.join(METHOD_NAMES)}"
                          ) from None


def solve_dense(name: str, cost: np.ndarray, weights: np.ndarray | None = None,
                max_uses: int = 1) -> Assignment:
    """Run the dense method ``name`` on an in-memory cost matrix.

    Parameters
    ----------
    name : str
        One of :data:`DENSE_METHODS`.
    cost : ndarray, shape (T, P)
        Cost of photo p on tile t, T <= P * max_uses.
    weights : ndarray, shape (T,), optional
        Tile importance (1 when not given).
    max_uses : int
        Tiles one photo may fill. Above 1 the method solves the matrix with each column
        repeated ``max_uses`` times (each copy one use), so an exact method stays exact:
        the optimum over placements using every photo at most ``max_uses`` times.

    Returns
    -------
    Assignment

    Raises
    ------
    MosaicError
        ``name`` is not a dense method (or the method refuses the problem).
    """
    method = REGISTRY.get(name)
    if method is None or not method.dense:
        raise MosaicError(f"`method` {name!r}: choose one of {', '.join(DENSE_METHODS)}")
    if max_uses == 1:
        return method.solver(cost, weights)
    # Copies side by side: column c of the repeated matrix is photo c // max_uses.
    copies = method.solver(np.repeat(np.asarray(cost), max_uses, axis=1), weights)
    return replace(copies, photo_of_tile=copies.photo_of_tile // max_uses)
