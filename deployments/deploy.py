"""``make deploy``: the work pool, the Instagram rate limit, then ``prefect deploy --all``.

Usage::

    .venv/bin/python deployments/deploy.py

1. Finds the Prefect server: ``PREFECT_API_URL``, else the active Prefect profile's, else
   the local one on 127.0.0.1:4200 (``make ui``) when it answers.
2. Creates the work pool ``mosaic`` (type process) if it is missing.
3. Creates the global concurrency limit ``instagram-requests`` if it is missing: a rate
   limit (one slot that decays) that every scrape's page loads share, whichever worker
   runs them, so they are spaced evenly, without bursts.
   ``MOSAIC_INSTAGRAM_REQUESTS_PER_SECOND`` sets its rate (default 0.5: one page every
   two seconds across all scrapes); change it later in the UI (Concurrency).
4. Runs ``prefect --no-prompt deploy --all`` from the checkout, so the deployments'
   pull step points workers at this checkout. ``MOSAIC_INSTAGRAM_USERNAME`` names the
   account of the nightly scrape and weekly poster (see ``deployments/params/``).

No block or variable needs to exist first; cookies are looked up when a scrape runs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

from cli import prefect_server

ROOT = Path(__file__).resolve().parents[1]
POOL = os.environ.get("MOSAIC_POOL", "mosaic")
RATE_ENV = "MOSAIC_INSTAGRAM_REQUESTS_PER_SECOND"


def api_url() -> str | None:
    """The server to deploy to (None when none is configured and none answers locally)."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    configured = prefect_server.profile_api_url()
    if configured:
        return configured
    return prefect_server.API_URL if prefect_server.is_running() else None


def requests_per_second() -> float:
    """The Instagram page-load rate for the limit (``MOSAIC_INSTAGRAM_REQUESTS_PER_SECOND``).

    Raises
    ------
    ValueError
        Not a positive number.
    """
    rate = float(os.environ.get(RATE_ENV, "0.5"))
    if not rate > 0 or math.isinf(rate):
        raise ValueError(f"{RATE_ENV} must be a positive number of requests per second")
    return rate


def ensure_pool_and_limit(rate: float) -> list[str]:
    """Create the work pool and the rate limit when missing; say what was done.

    Raises
    ------
    RuntimeError
        A pool of that name exists with another type.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    from tasks.scrape import HOST_RATE_LIMIT

    done: list[str] = []
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(POOL)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=POOL, type="process",
                base_job_template=ProcessWorker.get_default_base_job_template()))
            done.append(f"created work pool {POOL!r} (process)")
        else:
            if pool.type != "process":
                raise RuntimeError(f"work pool {POOL!r} exists with type {pool.type!r}; "
                                   "the deployments need a process pool")
        try:
            client.read_global_concurrency_limit_by_name(HOST_RATE_LIMIT)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
                name=HOST_RATE_LIMIT, limit=1, slot_decay_per_second=rate))
            done.append(f"created rate limit {HOST_RATE_LIMIT!r} ({rate:g} page loads/s "
                        "across all scrapes)")
    return done


def deploy() -> int:
    """Run ``prefect --no-prompt deploy --all`` in the checkout; return its exit status."""
    env = {**os.environ, "PWD": str(ROOT)}
    command = [str(Path(sys.executable).with_name("prefect")), "--no-prompt", "deploy",
               "--all"]
    return subprocess.call(command, cwd=ROOT, env=env)


def main() -> int:
    """Set up the pool and the limit, then deploy; 0 on success."""
    url = api_url()
    if url is None:
        print(f"error: no Prefect server answers at {prefect_server.UI_URL} and none is "
              "configured (PREFECT_API_URL); start one with `make ui`", file=sys.stderr)
        return 1
    os.environ["PREFECT_API_URL"] = url
    try:
        for line in ensure_pool_and_limit(requests_per_second()):
            print(line)
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return deploy()


if __name__ == "__main__":
    sys.exit(main())
