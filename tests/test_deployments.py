"""Running as a service: prefect.yaml, a real server and process worker, artifacts, retries.

The module shares one server + worker (``tests/fixtures/prefect_service.py``, started the
way ``make ui`` and ``make deploy`` do) on a free port with a private ``PREFECT_HOME``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import stat
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from flows.parameter_sets import parameter_sets
from mosaic.errors import MosaicError
from mosaic.files import sha256_bytes
from mosaic.options import BuildOptions
from mosaic.sources.instagram.options import ScrapeOptions, for_account, scrape_options
from tasks.cookies import cookies_file
from tests.fixtures.fake_instagram import FakeInstagram, make_posts
from tests.fixtures.logs import restored_mosaic_logger
from tests.fixtures.prefect_service import PREFECT, ROOT, PrefectService, service_for_module

PARAMS = ROOT / "deployments" / "params"
DEPLOYMENTS = {"scrape-instagram/nightly", "build-mosaic/weekly", "build-mosaic/on-demand"}
WHOLE_SET = re.compile(r"^\{\{ sets\.(?P<set>\w+) \}\}$")


@pytest.fixture(scope="module")
def prefect_service(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectService]:
    yield from service_for_module(request, tmp_path_factory)


def _prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))


# --- the files, without a server --------------------------------------------------------------

def test_prefect_yaml_takes_every_parameter_from_its_set():
    config = _prefect_yaml()
    assert config["pull"] == [{"prefect.deployments.steps.set_working_directory": {
        "directory": "{{ $PWD }}"}}]
    sets = {path.stem.replace("-", "_"): yaml.safe_load(path.read_text(encoding="utf-8"))
            for path in PARAMS.glob("*.yaml")}
    used = set()
    for deployment in config["deployments"]:
        assert deployment["work_pool"]["name"] == "mosaic"
        # Each flow itself, its one parameter the whole set (validated as the UI does).
        model = {"flows/build_mosaic.py:build_mosaic": BuildOptions,
                 "flows/scrape_instagram.py:scrape_instagram": ScrapeOptions
                 }[deployment["entrypoint"]]
        (name,) = [WHOLE_SET.match(deployment["parameters"]["options"])["set"]]
        assert set(deployment["parameters"]) == {"options"}
        model(**{key: "someone" if value == "{username}" else value
                 for key, value in sets[name].items()})
        used.add(name)
        for schedule in deployment["schedules"]:
            assert schedule["active"] == f"{{{{ sets.complete.{name} }}}}"
    assert used == set(sets)
    text = (ROOT / "prefect.yaml").read_text() + "".join(
        p.read_text() for p in PARAMS.glob("*.yaml"))
    assert "sessionid" not in text and "/work/" not in text


def test_parameter_sets_fill_in_the_account():
    named = parameter_sets(str(PARAMS), "some.one")
    assert named["scrape_nightly"]["username"] == "some.one"
    assert named["scrape_nightly"]["out"] == "mosaic-runs/instagram-{username}/photos"
    assert named["build_weekly"]["instagram"] == "some.one"
    assert named["build_on_demand"]["photos"] == "samples/photos"
    assert all(named["complete"].values())
    nobody = parameter_sets(str(PARAMS), "")
    assert nobody["scrape_nightly"]["username"] is None
    assert nobody["scrape_nightly"]["delay"] == 2.0
    assert nobody["complete"] == {"build_on_demand": True, "build_weekly": False,
                                  "scrape_nightly": False}
    with pytest.raises(MosaicError, match="not an Instagram user name"):
        parameter_sets(str(PARAMS), "not a name!")


def test_paths_follow_the_account_of_the_run(tmp_path):
    options = scrape_options(username="other.one",
                             out=str(tmp_path / "instagram-{username}" / "photos"),
                             workdir=str(tmp_path / "work-{username}")).resolved()
    assert options.out == str(tmp_path / "instagram-other.one" / "photos")
    assert options.workdir == str(tmp_path / "work-other.one")
    assert options.settings(None).fetch.retry.attempts == 5
    with pytest.raises(MosaicError, match="no Instagram account"):
        scrape_options().resolved()
    with pytest.raises(MosaicError, match=re.escape("delay -1.0: must be at least 0")):
        scrape_options(username="me", delay=-1.0)
    assert for_account("posters/{username}.jpg", "me", "out") == "posters/me.jpg"
    with pytest.raises(MosaicError, match=re.escape("out 'posters/{username}.jpg' names")):
        for_account("posters/{username}.jpg", None, "out")


COOKIE_TEXT = ("# Netscape HTTP Cookie File\n"
               "127.0.0.1\tFALSE\t/\tFALSE\t0\tsessionid\tnot-to-be-logged\n")


def test_cookies_from_the_environment_are_private_and_temporary(monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_COOKIES", COOKIE_TEXT)
    with cookies_file(None, None, "TEST_COOKIES") as path:
        assert path is not None and Path(path).read_text() == COOKIE_TEXT
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert not Path(path).is_relative_to(tmp_path)
    assert not Path(path).exists() and not Path(path).parent.exists()
    saved = tmp_path / "cookies.txt"
    saved.write_text(COOKIE_TEXT)
    monkeypatch.setenv("TEST_COOKIES", str(saved))
    with cookies_file(None, None, "TEST_COOKIES") as path:
        assert path == str(saved)
    assert saved.exists()
    monkeypatch.setenv("TEST_COOKIES", "sessionid=not-to-be-logged")
    with pytest.raises(MosaicError) as error, cookies_file(None, None, "TEST_COOKIES"):
        pass
    assert "not-to-be-logged" not in str(error.value) and "$TEST_COOKIES" in str(error.value)
    monkeypatch.delenv("TEST_COOKIES")
    with cookies_file(None, None, "TEST_COOKIES") as path:
        assert path is None
    with cookies_file(str(saved), "no-such-block", "TEST_COOKIES") as path:
        assert path == str(saved)  # the file the user named comes first


# --- a real server and worker ----------------------------------------------------------------

def _artifacts(service: PrefectService, run_id: UUID) -> list[Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.sorting import ArtifactSort

    with service.client() as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])),
            sort=ArtifactSort.CREATED_DESC)


def _latest(artifacts: list[Any], kind: str, key: str | None = None) -> Any:
    return next(a for a in artifacts if a.type == kind and (key is None or a.key == key))


def _logs(service: PrefectService, run_id: UUID) -> list[Any]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with service.client() as client:
        return client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
            any_=[run_id])))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_make_deploy_creates_the_pool_the_limit_and_the_deployments(prefect_service):
    from prefect.client.schemas.filters import DeploymentFilter

    with prefect_service.client() as client:
        pool = client.read_work_pool("mosaic")
        limit = client.read_global_concurrency_limit_by_name("instagram-requests")
        deployments = client.read_deployments(deployment_filter=DeploymentFilter())
        flows = {flow.id: flow.name for flow in client.read_flows()}
    assert pool.type == "process"
    assert limit.slot_decay_per_second == 50 and limit.limit == 1
    by_name = {f"{flows[d.flow_id]}/{d.name}": d for d in deployments}
    assert set(by_name) == DEPLOYMENTS
    for deployment in by_name.values():
        assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {
            "directory": str(ROOT)}}]
        assert deployment.job_variables["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == "mosaic"
    nightly = by_name["scrape-instagram/nightly"]
    assert [s.schedule.cron for s in nightly.schedules] == ["0 3 * * *"]
    assert not nightly.schedules[0].active  # no account was named when deploying
    assert nightly.parameters["options"]["username"] is None
    assert nightly.parameters["options"]["cookies_secret"] == "instagram-cookies"
    assert [s.active for s in by_name["build-mosaic/weekly"].schedules] == [False]
    on_demand = by_name["build-mosaic/on-demand"]
    assert on_demand.schedules == []
    assert on_demand.parameters["options"]["photos"] == "samples/photos"


def _cookie_secret(service: PrefectService, text: str) -> None:
    from prefect.client.schemas.actions import BlockDocumentCreate

    with service.client() as client:
        block_type = client.read_block_type_by_slug("secret")
        schema = client.get_most_recent_block_schema_for_block_type(block_type.id)
        client.create_block_document(BlockDocumentCreate(
            name="instagram-cookies", data={"value": text}, block_type_id=block_type.id,
            block_schema_id=schema.id))


def _task_states(service: PrefectService, run_id: UUID, since: float) -> Counter[str]:
    """State names of the post tasks of a flow run that started after ``since`` (epoch s)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with service.client() as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[run_id])))
    return Counter(run.state.name for run in runs if run.name.startswith("scrape-post-")
                   and run.expected_start_time.timestamp() >= since)


def _rate_limit_slots(service: PrefectService, run_id: UUID, expected: int) -> int:
    """Slots of ``instagram-requests`` the flow run took (waits for the events to land)."""
    query = json.dumps({"filter": {
        "event": {"name": ["prefect.concurrency-limit.acquired"]},
        "related": {"id": [f"prefect.flow-run.{run_id}"]},
        "occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": 50}).encode()
    deadline = time.monotonic() + 30
    while True:
        request = urllib.request.Request(f"{service.api_url}/events/filter", data=query,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            events = json.loads(response.read())["events"]
        slots = sum(e["resource"]["prefect.resource.name"] == "instagram-requests"
                    for e in events)
        if slots >= expected or time.monotonic() > deadline:
            return slots
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_retrying_a_failed_scrape_fetches_only_the_failed_posts(prefect_service, tmp_path):
    posts = make_posts(8, carousels=2, videos=1, reels=0, seed=5, variants=("v1",), og_every=0)
    images = [post for post in posts if post.kind == "image"]
    gone, flaky = images[0], images[1]
    with FakeInstagram(posts, login_wall_after=1) as site:
        name, secret = site.session_cookie
        _cookie_secret(prefect_service, "# Netscape HTTP Cookie File\n"
                       f"127.0.0.1\tFALSE\t/\tFALSE\t0\t{name}\t{secret}\n")
        site.remove_post(gone, status=403)  # its page answers 403 (a failure, not retried)
        flaky_image = site.image_path(flaky.photos[0], 1080)
        site.force_faults(flaky_image, ["500"] * 10)  # fails its only try
        out = tmp_path / "photos"
        run_id = prefect_service.run_deployment("scrape-instagram/nightly", {
            "username": site.username, "base_url": site.base_url,
            "allow_hosts": [site.image_host], "delay": 0.0, "out": str(out),
            "workdir": str(tmp_path / "work"), "retries": 0, "request_attempts": 1})
        first = prefect_service.wait(run_id)
        assert first.state.is_failed()
        assert "2 of 8 posts failed" in first.state.message
        pages = site.requested("page")
        assert [pages[f"/p/{post.code}/"] for post in posts] == [1] * 8
        assert pages[f"/{site.username}/"] == 1
        assert "login" not in {hit.outcome for hit in site.hits}  # the Secret's cookies
        artifacts = _artifacts(prefect_service, run_id)
        report = _latest(artifacts, "markdown", "instagram-scrape")
        assert "## Failures" in report.data and "2 posts failed" in report.description
        assert f"/p/{gone.code}/" in report.data and f"/p/{flaky.code}/" in report.data
        assert "## Preview" in report.data and "data:image/jpeg;base64," in report.data
        assert _latest(artifacts, "progress").data == 100
        timings = _latest(artifacts, "table", "instagram-timings")
        assert "fetch posts" in str(timings.data)

        site.restore_post(gone)
        site.force_faults(flaky_image, [])
        before = site.requested("page")
        retried_at = time.time()
        retry = prefect_service.run(PREFECT, "flow-run", "retry", str(run_id), timeout=120)
        assert "scheduled for retry" in retry.stdout
        second = prefect_service.wait(run_id, run_count=2)
        assert second.state.is_completed(), second.state.message
        after = site.requested("page")
        fetched = {path: after[path] - before[path] for path in after
                   if after[path] != before[path]}
        assert {path for path in fetched if path.startswith("/p/")} == {
            f"/p/{gone.code}/", f"/p/{flaky.code}/"}
        assert fetched[f"/{site.username}/"] == 1  # the profile is listed again
        assert _task_states(prefect_service, run_id, retried_at) == Counter(
            {"Cached": 6, "Completed": 2})
        assert _rate_limit_slots(prefect_service, run_id, 12) == 12  # 2 profiles + 10 posts
        saved = {path.name for path in out.iterdir()}
        assert {f"{sha256_bytes(data)}.jpg" for data in site.expected_downloads().values()
                } | {"manifest.json"} == saved
        logs = _logs(prefect_service, run_id)
    assert any(log.name == "mosaic.scrape" and "Secret block" in log.message for log in logs)
    texts = [log.message for log in logs] + [str(a.data) for a in _artifacts(
        prefect_service, run_id)]
    assert not [text for text in texts if secret in text]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_on_demand_build_publishes_a_self_contained_report_and_timings(prefect_service):
    run_id = prefect_service.build_run()
    out = prefect_service.root / "on-demand" / "mosaic.jpg"
    assert out.is_file()
    metrics = json.loads((out.parent / "metrics.json").read_text())
    artifacts = _artifacts(prefect_service, run_id)
    report = _latest(artifacts, "markdown", "mosaic-report")
    assert str(out) in report.description and str(out) in report.data
    assert report.data.startswith("# Mosaic report")
    assert "| method | optimal" in report.data and "## Timings" in report.data
    uris = re.findall(r"!\[[^\]]*\]\((data:image/(?:jpeg|png);base64,[^)]+)\)", report.data)
    assert len(uris) == 3  # target and mosaic, tile costs, tile weights
    preview = Image.open(io.BytesIO(base64.b64decode(uris[0].split(",", 1)[1])))
    assert preview.format == "JPEG" and max(preview.size) <= 480
    assert len(report.data) < 120_000  # a few tens of KB, not the full-size images
    assert "](comparison.jpg)" not in report.data
    timings = _latest(artifacts, "table", "mosaic-timings")
    rows = json.loads(timings.data) if isinstance(timings.data, str) else timings.data
    stages = [row["stage"] for row in rows]
    assert {"library", "score", "solve", "render", "report", "total"} <= set(stages)
    assert stages[-1] == "total" and all(row["seconds"] >= 0 for row in rows)
    assert rows[-1]["seconds"] >= metrics["timings"]["total"]
    logs = _logs(prefect_service, run_id)
    assert any(log.name == "mosaic.build" and str(out) in log.message for log in logs)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mosaic_runs_reads_state_duration_and_output_from_the_api(prefect_service,
                                                                   monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from cli import common
    from cli.main import command as app

    prefect_service.build_run()
    monkeypatch.setenv("PREFECT_API_URL", prefect_service.api_url)
    monkeypatch.setattr(common, "_temporary_server", None)  # an earlier test's, if any
    with restored_mosaic_logger(), temporary_settings({PREFECT_API_URL:
                                                       prefect_service.api_url}):
        everything = CliRunner().invoke(app, ["runs"])
        builds = CliRunner().invoke(app, ["runs", "--flow", "build-mosaic", "-n", "5"])
        bad = CliRunner().invoke(app, ["runs", "--state", "sleepy"])
    assert everything.exit_code == 0, everything.output
    header, *lines = everything.stdout.splitlines()
    assert header.split() == ["STARTED", "FLOW/DEPLOYMENT", "RUN", "STATE", "DURATION",
                              "OUTPUT"]
    build = next(line for line in lines if "build-mosaic/on-demand" in line)
    out = prefect_service.root / "on-demand" / "mosaic.jpg"
    assert "Completed" in build and f"{out} (" in build
    assert re.search(r"\d+\.\d s|\d+ min \d\d s", build)
    for scrape in [line for line in lines if "scrape-instagram/nightly" in line]:
        assert "Completed" in scrape and "images of @fake.user" in scrape  # after its retry
    assert builds.exit_code == 0 and all("build-mosaic" in line
                                         for line in builds.stdout.splitlines()[1:])
    assert bad.exit_code == 2 and "--state 'sleepy'" in bad.stderr


def test_a_scrape_run_given_only_an_account_is_the_nightly_set():
    # `-p options='{"username": ...}'` replaces the whole set: the defaults must be the set.
    nightly = yaml.safe_load((PARAMS / "scrape-nightly.yaml").read_text(encoding="utf-8"))
    from_set = ScrapeOptions(**{**nightly, "username": "some.one"}).resolved()
    assert from_set == ScrapeOptions(username="some.one").resolved()
