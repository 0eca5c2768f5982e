"""The build flow: photos + target -> mosaic, metrics and report.

Wiring only: each step is a task of :mod:`tasks.build` around one stage of
:mod:`mosaic.pipeline`; between tasks travel typed results holding file references. This
is the flow the command line runs and the one ``prefect.yaml`` deploys.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow

from flows.artifacts import publish_build_artifacts, route_logs
from mosaic.files import FileRef, remove_stale_temporaries
from mosaic.options import BuildOptions
from mosaic.outputs import run_folder_lock
from mosaic.pipeline.assign import baselines
from mosaic.preflight import check_build
from mosaic.processes import reclaim_stop_signals
from tasks import build as tasks

logger = logging.getLogger("mosaic.build")


@flow(name="build-mosaic", log_prints=True, persist_result=False)
def build_mosaic(options: BuildOptions) -> dict[str, Any]:
    """Build a photo mosaic; returns the run's metrics (also written to ``metrics.json``).

    The checks of :func:`mosaic.preflight.check_build` run first; one build at a time
    holds the run folder.
    """
    route_logs()
    reclaim_stop_signals()  # the command line's SIGTERM, not the engine's (see there)
    options = options.resolved()
    logger.info("building %s from %s (target %s)", Path(options.out).resolve(),
                Path(str(options.photos)).resolve(), options.target)
    check_build(options)
    workdir = str(Path(str(options.workdir)).resolve())
    with run_folder_lock(workdir):
        remove_stale_temporaries(workdir, recursive=True)
        remove_stale_temporaries(Path(options.out).parent)
        return _recipe(options, workdir)


def _recipe(options: BuildOptions, workdir: str) -> dict[str, Any]:
    ledger = tasks.Ledger()
    target_file = FileRef.of(options.target)
    photos = tasks.scan_photos(str(options.photos))
    options = options.with_crops_for(len(photos))  # the default depends on the library's size
    library = ledger.run("library", tasks.load_library, on_cached=tasks.name_skipped,
                         photos=photos, workdir=workdir,
                         feature_size=options.feature_size, crops=options.crops,
                         max_pixels=options.max_pixels,
                         tile_aspect=options.layout.tile_shape)
    people = (ledger.run("people", tasks.detect, target_file=target_file, workdir=workdir,
                         request=options.weighting, max_pixels=options.max_pixels)
              if options.weights != "none" else None)
    target = ledger.run("target", tasks.prepare_target, target_file=target_file,
                        photos=library.photos, workdir=workdir, request=options.layout,
                        feature_size=options.feature_size, max_pixels=options.max_pixels,
                        found=people)
    weights = ledger.run("weights", tasks.weigh, found=people, prepared=target,
                         request=options.weighting, workdir=workdir)
    plan = tasks.plan_assignment(options, library, target)
    solve = {"loaded": library, "prepared": target, "metric": options.metric,
             "workdir": workdir, "request": options.scale, "shift": options.color_correct}
    scored = ledger.run("score", tasks.score, chosen=plan, **solve)
    compared = [ledger.run("solve", tasks.arrange, chosen=plan, method=plan.method,
                           scored=scored, tile_weights=weights.applied, **solve)]
    for method, weighted in baselines(plan, not weights.uniform, options.compare):
        compared.append(ledger.run(f"{method} baseline", tasks.arrange, chosen=plan,
                                   method=method, scored=scored,
                                   tile_weights=weights.applied if weighted else None, **solve))
    rendered = ledger.run("render", tasks.render_poster, chosen=compared[0], loaded=library,
                          prepared=target, out=str(Path(options.out).resolve()),
                          dpi=options.dpi, workdir=workdir, bleed_px=options.bleed_px,
                          deep_zoom=options.format == "dzi",
                          color_correct=options.color_correct)
    reported = tasks.write_report(options, target_file, library, people, target, weights,
                                  plan, compared, rendered, ledger.times())
    publish_build_artifacts(reported, ledger.times())
    return reported.metrics
