"""Stage 5a: every photo scored against every tile (MSE in [0, 1]), for the dense methods.

:func:`score` writes the dense tiles x photos cost matrix and each pair's winning crop in
blocks (local Dask threads or a cluster) into memory-mapped ``.npy`` files; for the
regional method, which never builds that matrix, it writes nothing.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from mosaic.blocks import BlockRunner, Features, dask_client, score_to_memmap
from mosaic.cost import thumb_features
from mosaic.features import Metric
from mosaic.files import FileRef, atomic_path
from mosaic.options import ScaleRequest
from mosaic.pipeline import stage_folder
from mosaic.pipeline.results import AssignPlan, LibraryResult, ScoreResult, TargetResult
from mosaic.progress import stage
from mosaic.scoring import for_scoring


def features(library: LibraryResult, target: TargetResult, metric: Metric,
             shift: float = 0.0) -> Features:
    """The tiles' and photos' features in ``metric``, centred for block scoring.

    With ``shift`` (the ``--color-correct`` strength) above 0 the costs are those left
    after the render moves each tile's mean colour that part of the way to its cell's.
    """
    return thumb_features(np.load(target.tiles.path, allow_pickle=False),
                          np.load(library.thumbs.path, mmap_mode="r", allow_pickle=False),
                          metric, mean_kept=1.0 - shift)


def score(chosen: AssignPlan, library: LibraryResult, target: TargetResult, metric: Metric,
          workdir: str, request: ScaleRequest, shift: float = 0.0) -> ScoreResult:
    """The dense cost matrix and winning crops, in blocks; nothing for regional.

    Blocks run on local Dask threads, or on the cluster at ``request.dask_address``; the
    blocks in flight stay within the memory budget (the files are memory-mapped). The
    budget and the cluster change where and how fast, never the scores.
    """
    where = request.dask_address or "local threads"
    if not chosen.dense:
        return ScoreResult(None, None, 0.0, where)
    started = time.perf_counter()  # features and their rotation count as scoring
    scored = features(library, target, metric, shift)
    # Large problems with crops score coarse-to-fine: the same costs, about 2x faster.
    scoring = for_scoring(scored)
    folder = stage_folder(workdir, "score", library.thumbs.sha256, target.tiles.sha256, metric,
                          *([shift] if shift else []))  # unshifted runs keep their folders
    with_crops = scored.n_crops > 1
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(dask_client(request.dask_address))
        advance = stack.enter_context(stage("score", scored.n_tiles))
        cost_tmp = stack.enter_context(atomic_path(folder / "cost.npy"))
        crop_tmp = (stack.enter_context(atomic_path(folder / "best_crop.npy"))
                    if with_crops else None)
        cost, crop = score_to_memmap(scoring, cost_tmp, request.budget(), BlockRunner(client),
                                     with_crops=with_crops, crop_path=crop_tmp,
                                     progress=advance)
        del cost, crop  # flushed and closed before the files are renamed
    return ScoreResult(FileRef.of(folder / "cost.npy"),
                       FileRef.of(folder / "best_crop.npy") if with_crops else None,
                       time.perf_counter() - started, where)


__all__ = ["features", "score"]
