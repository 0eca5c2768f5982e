"""``mosaic runs``: recent flow runs with their state, duration and output.

Everything is read from the Prefect API: the server of ``make ui`` / ``mosaic server
start`` when it runs (or ``PREFECT_API_URL``), otherwise a temporary server over the same
database. A run's output is the description of its report artifact (``mosaic-report`` or
``instagram-scrape``: the mosaic or the photo folder, and what it holds); a failed run
without a report shows why it failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Optional
from uuid import UUID

import typer

from cli.common import IncompleteError, ensure_prefect_api, fail, wait_for_prefect_api

REPORT_KEYS = ("mosaic-report", "instagram-scrape")
"""Artifact keys whose description says what a run produced."""
STATE_TYPES = ("scheduled", "pending", "running", "completed", "failed", "cancelled",
               "crashed", "paused", "cancelling")


@dataclass(frozen=True)
class RunRow:
    """One line of ``mosaic runs``."""

    started: dt.datetime | None
    flow: str
    name: str
    state: str
    seconds: float | None
    output: str


def format_seconds(seconds: float | None) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``1 h 02 min``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _labels(client: Any, runs: Sequence[Any]) -> dict[UUID, str]:
    """Flow run id -> ``flow/deployment`` (or the flow's name alone)."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowFilter,
        FlowFilterId,
    )

    flow_ids = list({run.flow_id for run in runs})
    flows = {flow.id: flow.name for flow in client.read_flows(
        flow_filter=FlowFilter(id=FlowFilterId(any_=flow_ids)))}
    deployment_ids = list({run.deployment_id for run in runs if run.deployment_id})
    deployments = {d.id: d.name for d in client.read_deployments(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)))
    } if deployment_ids else {}
    labels = {}
    for run in runs:
        flow = flows.get(run.flow_id, "?")
        deployment = deployments.get(run.deployment_id) if run.deployment_id else None
        labels[run.id] = f"{flow}/{deployment}" if deployment else flow
    return labels


def _outputs(client: Any, runs: Sequence[Any]) -> dict[UUID, str]:
    """Flow run id -> the description of its latest report artifact."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
            any_=[run.id for run in runs]), key=ArtifactFilterKey(any_=list(REPORT_KEYS))),
        sort=ArtifactSort.CREATED_DESC)
    outputs: dict[UUID, str] = {}
    for artifact in artifacts:
        if artifact.flow_run_id is not None and artifact.flow_run_id not in outputs:
            outputs[artifact.flow_run_id] = artifact.description or ""
    return outputs


def _seconds(run: Any) -> float | None:
    """Time spent running: the total for a finished run, the estimate for a running one."""
    if run.state is not None and run.state.is_final():
        return run.total_run_time.total_seconds()
    if run.start_time is None:
        return None
    return run.estimated_run_time.total_seconds()


def _output(run: Any, outputs: dict[UUID, str]) -> str:
    if run.id in outputs:
        return outputs[run.id]
    state = run.state
    if state is not None and (state.is_failed() or state.is_crashed()) and state.message:
        return state.message.splitlines()[0]
    return ""


def recent_runs(limit: int = 20, flow: str | None = None, state: str | None = None
                ) -> list[RunRow]:
    """The latest flow runs that have started or were due (newest first).

    Parameters
    ----------
    limit : int
        Runs to return at most.
    flow : str, optional
        Only runs of this flow (``build-mosaic``, ``scrape-instagram``).
    state : str, optional
        Only runs in this state type (``completed``, ``failed``, ``running``...).

    Returns
    -------
    list of RunRow
        One per run.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    run_filter = FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(
        before_=dt.datetime.now(dt.UTC)))
    if state is not None:
        run_filter.state = FlowRunFilterState(type=FlowRunFilterStateType(
            any_=[StateType(state.upper())]))
    flow_filter = FlowFilter(name=FlowFilterName(any_=[flow])) if flow else None
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=flow_filter, flow_run_filter=run_filter,
                                     sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=limit)
        if not runs:
            return []
        labels = _labels(client, runs)
        outputs = _outputs(client, runs)
    return [RunRow(run.start_time or run.expected_start_time, labels[run.id], run.name,
                   run.state.name if run.state else "-", _seconds(run), _output(run, outputs))
            for run in runs]


def render_table(rows: Iterable[RunRow]) -> str:
    """The runs as aligned text columns, local times, one line each."""
    header = ("STARTED", "FLOW/DEPLOYMENT", "RUN", "STATE", "DURATION", "OUTPUT")
    lines = [header]
    for row in rows:
        started = (row.started.astimezone().strftime("%Y-%m-%d %H:%M")
                   if row.started else "-")
        lines.append((started, row.flow, row.name, row.state, format_seconds(row.seconds),
                      row.output))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths,
                                                                        strict=False))
                     + "  " + line[-1] for line in lines).rstrip() + "\n"


def runs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="Runs to show.")] = 20,
    flow: Annotated[Optional[str], typer.Option(
        help="Only this flow: build-mosaic or scrape-instagram.")] = None,
    state: Annotated[Optional[str], typer.Option(
        help="Only runs in this state: completed, failed, running, scheduled...")] = None,
) -> None:
    """Recent runs (builds, scrapes) with state, duration and output, from the Prefect API."""
    if limit < 1:
        fail("--limit must be at least 1")
    if state is not None and state.lower() not in STATE_TYPES:
        fail(f"--state {state!r}: choose one of {', '.join(STATE_TYPES)}")
    ensure_prefect_api()
    wait_for_prefect_api(quiet=False, what="no server is running: reading the runs through "
                         "a temporary one, about 15 s")
    try:
        rows = recent_runs(limit, flow, state)
    except Exception as exc:  # the API is unreachable or answers with an error
        raise IncompleteError(f"cannot read the runs from the Prefect API "
                              f"({type(exc).__name__}: {exc})") from None
    if not rows:
        typer.echo("no runs yet")
        return
    typer.echo(render_table(rows), nl=False)


__all__ = ["RunRow", "format_seconds", "recent_runs", "render_table", "runs"]
