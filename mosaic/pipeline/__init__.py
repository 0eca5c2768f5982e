"""A build, stage by stage: pure functions from typed inputs to typed results.

In the order a build runs them (:mod:`flows.build_mosaic` wires them as Prefect tasks):

1. :mod:`~mosaic.pipeline.library`: list and hash the photos, decode their thumbnails.
2. :mod:`~mosaic.pipeline.people`: find the faces and people of the target.
3. :mod:`~mosaic.pipeline.target`: plan the grid, crop the target, cut its tiles.
4. :mod:`~mosaic.pipeline.weights`: per-tile weights from the faces and people.
5. :mod:`~mosaic.pipeline.score` and :mod:`~mosaic.pipeline.assign`: choose the method,
   score every pair (dense methods), solve (dense or regional).
6. :mod:`~mosaic.pipeline.render`: draw the poster.
7. :mod:`~mosaic.pipeline.report`: measure it, write ``metrics.json`` and the report.

Each stage writes its files under the run folder, in a folder named after the hash of
its inputs (:func:`stage_folder`), so runs with other inputs never overwrite them, and
returns a result of :mod:`mosaic.pipeline.results`. Nothing here knows about Prefect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mosaic.files import hash_jsonable


def stage_folder(workdir: str | Path, stage: str, *inputs: Any) -> Path:
    """The folder of a stage's outputs: ``WORKDIR/STAGE/<16 hex digits of the inputs>``."""
    return Path(workdir) / stage / hash_jsonable(inputs)[:16]
