"""Tasks for problems of any size: block scoring on Dask and the regional method."""

from __future__ import annotations

from typing import Any

from prefect import task

from mosaic import steps_scale
from mosaic.features import Metric
from tasks.caching import CACHED


@task(name="score-blocks", **CACHED)
def score_blocks(thumbs: dict[str, str], tiles: dict[str, str], metric: Metric, workdir: str,
                 request: steps_scale.ScaleRequest) -> dict[str, Any]:
    """The dense cost matrix in blocks; see :func:`mosaic.steps_scale.score_blocks`."""
    return steps_scale.score_blocks(thumbs, tiles, metric, workdir, request)


@task(name="arrange-regional", **CACHED)
def arrange_regional(thumbs: dict[str, str], tiles: dict[str, str], metric: Metric,
                     grid: tuple[int, int], workdir: str, weights: dict[str, str] | None,
                     request: steps_scale.ScaleRequest, regions: int | None
                     ) -> dict[str, Any]:
    """The regional method; see :func:`mosaic.steps_scale.arrange_regional`."""
    return steps_scale.arrange_regional(thumbs, tiles, metric, grid, workdir, weights,
                                        request, regions)
