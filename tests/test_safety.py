"""A build never destroys the user's files, stops when told, and leaves nothing running.

Real processes and real signals: each test runs `mosaic build` as a child process (or
through the CLI runner where no run starts) on real JPEGs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import command as app
from mosaic.outputs import prepare_run_folder, run_folder_lock
from tests.conftest import ROOT, SAMPLES, in_mount_namespace
from tests.fixtures.prefect_db import seed_prefect_home

FAST = ("--weights", "none", "--no-compare", "--crops", "1", "--quiet")


def _env(**extra: str) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), **extra}


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", "build", *args]


def _build(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args), cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _one_line_error(result, *fragments: str) -> str:
    code = getattr(result, "exit_code", getattr(result, "returncode", None))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("mosaic: error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _cli(*args: str):
    return CliRunner().invoke(app, ["build", *args, "--quiet"])


def _temporaries(folder: Path) -> list[Path]:
    return [path for path in folder.rglob(".mosaic-tmp.*")]


# --- the user's files ----------------------------------------------------------------------


def test_the_target_and_the_photos_survive_an_out_that_points_at_them(photo_dir, tmp_path):
    target = tmp_path / "me.jpg"
    shutil.copy(SAMPLES / "targets" / "grace_hopper.jpg", target)
    photo = sorted(photo_dir.glob("*.jpg"))[0]
    linked = tmp_path / "elsewhere.jpg"
    os.link(photo, linked)  # the same file under another name, outside the folder
    before = {path: path.read_bytes() for path in (target, photo)}
    cases = [
        (["--out", str(target)], "is the target picture"),
        (["--out", str(photo)], "inside the photo folder"),
        (["--out", str(photo_dir / "new-mosaic.jpg")], "inside the photo folder"),
        (["--out", str(linked)], "is one of the photos"),
        (["--out", str(tmp_path / "o.jpg"), "--metrics", str(photo_dir / "m.json")],
         "--metrics"),
        (["--out", str(tmp_path / "o.jpg"), "--workdir", str(photo_dir / "run")],
         "--workdir"),
    ]
    for extra, fragment in cases:
        result = _cli("--photos", str(photo_dir), "--target", str(target), *extra)
        _one_line_error(result, fragment)
    assert {path: path.read_bytes() for path in before} == before
    assert not (photo_dir / "new-mosaic.jpg").exists() and not (photo_dir / "run").exists()


def test_files_mosaic_did_not_write_are_never_replaced(photo_dir, portrait, tmp_path):
    holiday = tmp_path / "holiday.jpg"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(holiday)
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}\n')
    users_folder = tmp_path / "Documents"
    users_folder.mkdir()
    (users_folder / "thesis.docx").write_text("chapter one")
    cases = [
        (["--out", str(holiday)], "exists and was not written by mosaic"),
        (["--out", str(tmp_path / "o.jpg"), "--metrics", str(notes)],
         "exists and was not written by mosaic"),
        (["--out", str(tmp_path / "o.jpg"), "--workdir", str(users_folder)],
         "is a folder mosaic did not make"),
    ]
    for extra, fragment in cases:
        result = _cli("--photos", str(photo_dir), "--target", str(portrait), *extra)
        _one_line_error(result, fragment)
    assert notes.read_text() == '{"mine": true}\n'
    assert sorted(p.name for p in users_folder.iterdir()) == ["thesis.docx"]
    with Image.open(holiday) as image:
        assert image.getpixel((0, 0))[0] > 150


def test_report_stays_in_the_run_folder_and_dot_files_survive(prefect_api, photo_dir,
                                                              portrait, tmp_path):
    out_dir, docs, run = tmp_path / "out", tmp_path / "docs", tmp_path / "run"
    out_dir.mkdir()
    docs.mkdir()
    dot_files = {out_dir / ".thesis.part2.docx": b"thesis", out_dir / ".notes.partial": b"n",
                 out_dir / ".mosaic.abc123.part.jpg": b"not ours either",
                 docs / "report.md": b"# my own report\n", docs / "comparison.jpg": b"mine"}
    for path, data in dot_files.items():
        path.write_bytes(data)
    args = ("--photos", str(photo_dir), "--target", str(portrait), "--out",
            str(out_dir / "mosaic.jpg"), "--metrics", str(docs / "run-metrics.json"),
            "--workdir", str(run), "--tiles", "40", "--tile-px", "16", *FAST)
    for _ in range(2):  # the second run replaces its own outputs
        result = _build(*args)
        assert result.returncode == 0, result.stderr
    assert {path: path.read_bytes() for path in dot_files} == dot_files
    assert sorted(p.name for p in docs.iterdir()) == ["comparison.jpg", "report.md",
                                                      "run-metrics.json"]
    assert (run / "report.md").is_file() and (run / "comparison.jpg").is_file()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [".mosaic.abc123.part.jpg", ".notes.partial", ".thesis.part2.docx", "mosaic.jpg"])


def test_two_builds_into_one_output_folder_both_succeed(prefect_api, photo_dir, portrait,
                                                        tmp_path):
    out_dir = tmp_path / "posters"
    runs = [subprocess.Popen(
        _command("--photos", str(photo_dir), "--target", str(portrait), "--out",
                 str(out_dir / f"{name}.jpg"), "--workdir", str(tmp_path / name), "--tiles",
                 "60", "--tile-px", "40", *FAST),
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("first", "second")]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["first.jpg", "second.jpg"]


def test_a_second_build_on_a_run_folder_in_use_stops_in_one_line(prefect_api, photo_dir,
                                                                 portrait, tmp_path):
    run = prepare_run_folder(tmp_path / "run")
    with run_folder_lock(run):  # as a build in this process would hold it
        result = _build("--photos", str(photo_dir), "--target", str(portrait), "--out",
                        str(tmp_path / "o.jpg"), "--workdir", str(run), *FAST)
    _one_line_error(result, "is in use by another build", f"pid {os.getpid()}")
    assert not (tmp_path / "o.jpg").exists()


def test_a_fifo_among_the_photos_does_not_hang_the_build(prefect_api, photo_dir, portrait,
                                                         tmp_path):
    os.mkfifo(photo_dir / "x.jpg")
    result = _build("--photos", str(photo_dir), "--target", str(portrait), "--out",
                    str(tmp_path / "o.jpg"), "--workdir", str(tmp_path / "run"), "--tiles",
                    "40", "--tile-px", "16", *FAST, timeout=120)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "x.jpg" in warnings[0]


def test_impossible_posters_and_formats_are_refused_before_any_work(photo_dir, portrait,
                                                                    tmp_path):
    base = ("--photos", str(photo_dir), "--target", str(portrait), "--workdir",
            str(tmp_path / "run"))
    out = str(tmp_path / "o.jpg")
    _one_line_error(_cli(*base, "--out", out, "--size", "1000x1000cm", "--dpi", "2400"),
                    "over JPEG's limit of 65,500 px a side")
    _one_line_error(_cli(*base, "--out", str(tmp_path / "o.png"), "--size", "1000x1000cm",
                         "--dpi", "2400"), "of memory, over the budget")
    _one_line_error(_cli(*base, "--out", out, "--grid", "1x60", "--tile-px", "4096"),
                    "245,760 x 4,096 px, over JPEG's limit")
    assert not list((tmp_path / "run").glob("score"))  # nothing was computed


# --- signals and children ------------------------------------------------------------------


def _solved(run: Path) -> bool:
    return any(run.glob("assign/*/assignment.json"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_render_within_5_s_and_leaves_no_partial_output(
        prefect_api, portrait, tmp_path, signum):
    run, out = tmp_path / "run", tmp_path / "poster.jpg"
    build = subprocess.Popen(
        _command("--photos", str(SAMPLES / "photos"), "--target", str(portrait), "--out",
                 str(out), "--workdir", str(run), "--grid", "20x20", "--tile-px", "440", *FAST),
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not _solved(run) and build.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert build.poll() is None, build.stderr.read() if build.stderr else ""
    sent = time.monotonic()
    build.send_signal(signum)
    _, stderr = build.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert build.returncode == 128 + signum
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"mosaic: stopped by {signal.Signals(signum).name}")
    assert "Traceback" not in stderr
    assert not out.exists() and not _temporaries(tmp_path)


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0].decode())
    return table


def _descendants(root: int) -> set[int]:
    """Processes started by ``root`` (any depth), and the groups they lead."""
    table = _proc_table()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _, _) in table.items() if ppid in frontier} - found
        found |= frontier
    groups = {table[pid][1] for pid in found if pid in table}
    return found | {pid for pid, (_, group, _) in table.items() if group in groups}


def _alive(pids: set[int]) -> set[int]:
    table = _proc_table()
    return {pid for pid in pids if pid in table and table[pid][2] not in {"Z", "X"}}


@pytest.mark.timeout(240)
def test_after_sigkill_no_child_outlives_the_build_and_a_rerun_resumes(prefect_api, photo_dir,
                                                                       portrait, tmp_path):
    """Without a Prefect API the build starts its own server: SIGKILL must not orphan it."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"),
               XDG_STATE_HOME=str(tmp_path / "state"), MOSAIC_PREFECT_PORT="1")
    seed_prefect_home(tmp_path / "prefect-home")  # its server skips the migrations
    args = _command("--photos", str(photo_dir), "--target", str(portrait), "--out",
                    str(tmp_path / "o.jpg"), "--workdir", str(tmp_path / "run"), "--tiles",
                    "40", "--tile-px", "16", *FAST)
    build = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    children: set[int] = set()
    while time.monotonic() < deadline and not any((tmp_path / "run").glob("library")):
        children |= _descendants(build.pid)  # the server, its workers, the guardian
        time.sleep(0.05)
    children |= _descendants(build.pid)
    assert len(children) >= 2, "the build should have started a server and a guardian"
    build.kill()
    build.wait()
    deadline = time.monotonic() + 10
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(children)
    rerun = _build(*args[4:], timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert (tmp_path / "o.jpg").is_file() and not _temporaries(tmp_path)


def test_a_render_killed_midway_resumes_from_its_rows_and_draws_the_same_poster(
        prefect_api, portrait, tmp_path):
    run, out = tmp_path / "run", tmp_path / "poster.jpg"
    args = ("--photos", str(SAMPLES / "photos"), "--target", str(portrait), "--out", str(out),
            "--workdir", str(run), "--grid", "20x20", "--tile-px", "300", *FAST)
    fresh = tmp_path / "fresh.jpg"  # the same build, never interrupted, in its own run folder
    # It shares nothing with the other two, so it runs beside them, on the second core.
    uninterrupted = subprocess.Popen(
        _command(*[str(fresh) if a == str(out) else str(tmp_path / "run2") if a == str(run)
                   else a for a in args]),
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _kill_midway_and_resume(run, out, args)
        _, stderr = uninterrupted.communicate(timeout=300)
    finally:
        if uninterrupted.poll() is None:
            uninterrupted.kill()
            uninterrupted.communicate()
    assert uninterrupted.returncode == 0, stderr
    assert out.read_bytes() == fresh.read_bytes()


def _kill_midway_and_resume(run: Path, out: Path, args: tuple[str, ...]) -> None:
    """SIGKILL the build once it has drawn 3 rows, then run it again to the end."""
    build = subprocess.Popen(_command(*args), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while (len(list(run.glob("render-rows/*/row-*.rgb"))) < 3 and build.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.01)
    build.kill()
    build.wait()
    kept = sorted(path.name for path in run.glob("render-rows/*/row-*.rgb"))
    assert len(kept) >= 3 and not out.exists()
    assert _build(*args).returncode == 0
    assert not list(run.glob("render-rows/*/row-*.rgb"))  # removed once the poster is written


# --- full disks and read-only folders --------------------------------------------------------


@pytest.mark.parametrize(("mount", "fragment"), [
    ("size=600k", "not enough disk space in"),
    ("ro,size=4m", "Read-only file system"),
])
def test_a_full_or_read_only_run_folder_is_one_line_and_exit_2(prefect_api, photo_dir,
                                                                portrait, tmp_path, mount,
                                                                fragment):
    disk = tmp_path / "disk"
    disk.mkdir()
    command = _command("--photos", str(photo_dir), "--target", str(portrait), "--out",
                       str(tmp_path / "o.jpg"), "--workdir", str(disk / "run"), *FAST)
    result = in_mount_namespace(mount, [str(disk), *command], _env(), timeout=120)
    _one_line_error(result, str(disk / "run"), fragment)
    assert not (tmp_path / "o.jpg").exists()


def test_a_disk_that_fills_up_during_the_build_is_one_line_and_exit_2(prefect_api, photo_dir,
                                                                      portrait, tmp_path):
    """The disk is fine when the build starts; another program fills it meanwhile."""
    disk = tmp_path / "disk"
    disk.mkdir()
    filler = (f'(while [ ! -d "{disk}/run/library" ]; do sleep 0.02; done; '
              f'cat /dev/zero > "{disk}/filler" 2>/dev/null) & exec "$@"')
    command = ["sh", "-c", filler, "sh",
               *_command("--photos", str(photo_dir), "--target", str(portrait), "--out",
                         str(tmp_path / "o.jpg"), "--workdir", str(disk / "run"), "--tiles",
                         "100", "--tile-px", "16", "--weights", "none", "--quiet")]
    result = in_mount_namespace("size=48m", [str(disk), *command], _env(), timeout=180)
    line = _one_line_error(result, "the disk is full")
    assert str(disk) in line
    assert not (tmp_path / "o.jpg").exists()
