"""The result type shared by every assignment method, and the problem checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mosaic.errors import MosaicError


@dataclass
class Assignment:
    """Which photo goes on which tile, and how good that is.

    Attributes
    ----------
    photo_of_tile : ndarray of int64, shape (T,)
        Photo index for each tile; all different.
    objective : float
        ``sum_t weight_t * cost[t, photo_of_tile[t]]`` (weights are 1 when not given).
    tile_cost : ndarray of float32, shape (T,)
        Unweighted cost of each tile's photo.
    method : str
        "greedy", "optimal", "lp", ...
    seconds : float
        Solve time, cost matrix excluded.
    status : str
        "optimal" when proven optimal, "feasible" for heuristics.
    gap : float or None
        Relative gap to a proven lower bound, when known (0 for a proven optimum).
    message : str
        Solver detail for reports.
    """

    photo_of_tile: np.ndarray
    objective: float
    tile_cost: np.ndarray
    method: str
    seconds: float
    status: str
    gap: float | None = None
    message: str = ""

    @property
    def mean_cost(self) -> float:
        """Mean unweighted cost per tile."""
        return float(self.tile_cost.mean()) if self.tile_cost.size else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (the arrays as lists)."""
        return {
            "method": self.method,
            "status": self.status,
            "objective": self.objective,
            "mean_cost": self.mean_cost,
            "seconds": self.seconds,
            "gap": self.gap,
            "message": self.message,
            "photo_of_tile": self.photo_of_tile.tolist(),
            "tile_cost": self.tile_cost.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Assignment:
        """Inverse of :meth:`to_dict`."""
        return cls(
            photo_of_tile=np.asarray(data["photo_of_tile"], dtype=np.int64),
            objective=float(data["objective"]),  # type: ignore[arg-type]
            tile_cost=np.asarray(data["tile_cost"], dtype=np.float32),
            method=str(data["method"]),
            seconds=float(data["seconds"]),  # type: ignore[arg-type]
            status=str(data["status"]),
            gap=None if data.get("gap") is None else float(data["gap"]),  # type: ignore[arg-type]
            message=str(data.get("message", "")),
        )


def check_problem(cost: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Validate a (tiles x photos) cost matrix and return the tile weights.

    Raises
    ------
    MosaicError
        Fewer photos than tiles.
    ValueError
        Bad shapes or values.
    """
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D (tiles x photos), got shape {cost.shape}")
    tiles, photos = cost.shape
    if tiles > photos:
        raise MosaicError(f"{tiles} tiles need {tiles} distinct photos; only {photos} given")
    rows_per_check = max(1, 2**24 // max(1, photos))  # a memory-mapped matrix stays on disk
    if not all(np.isfinite(cost[start:start + rows_per_check]).all()
               for start in range(0, tiles, rows_per_check)):
        raise ValueError("cost matrix holds NaN or infinite values")
    return check_weights(weights, tiles)


def check_weights(weights: np.ndarray | None, tiles: int) -> np.ndarray:
    """The tile weights as float64 (all 1 when not given).

    Raises
    ------
    ValueError
        Not one weight per tile, or a weight that is not finite and positive.
    """
    if weights is None:
        return np.ones(tiles, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (tiles,):
        raise ValueError(f"weights must have shape ({tiles},), got {weights.shape}")
    if not (np.isfinite(weights).all() and (weights > 0).all()):
        raise ValueError("weights must be finite and positive")
    return weights


def evaluate(
    cost: np.ndarray,
    photo_of_tile: np.ndarray,
    weights: np.ndarray | None,
    method: str,
    seconds: float,
    status: str,
    gap: float | None = None,
    message: str = "",
) -> Assignment:
    """Build an :class:`Assignment`, checking that no photo is used twice.

    Raises
    ------
    RuntimeError
        A solver returned an invalid assignment (a photo twice, or out of range).
    """
    photo_of_tile = np.asarray(photo_of_tile, dtype=np.int64)
    tiles, photos = cost.shape
    if photo_of_tile.shape != (tiles,):
        raise RuntimeError(f"{method}: assignment has shape {photo_of_tile.shape}")
    if photo_of_tile.min(initial=0) < 0 or photo_of_tile.max(initial=0) >= photos:
        raise RuntimeError(f"{method}: photo index out of range")
    if np.unique(photo_of_tile).size != tiles:
        raise RuntimeError(f"{method}: a photo is used more than once")
    tile_cost = cost[np.arange(tiles), photo_of_tile].astype(np.float32)
    w = np.ones(tiles) if weights is None else np.asarray(weights, dtype=np.float64)
    objective = float(np.dot(w, tile_cost.astype(np.float64)))
    return Assignment(photo_of_tile, objective, tile_cost, method, seconds, status, gap,
                      message)
