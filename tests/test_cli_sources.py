"""`mosaic scrape` and `mosaic import`: bad input, post lists, login walls, a SIGKILLed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.scrape import fetch_instagram_photos
from mosaic.errors import MosaicError
from mosaic.files import sha256_bytes
from mosaic.sources import manifest
from tests.conftest import in_mount_namespace
from tests.fixtures.export_zips import build_export, build_hostile_export, build_html_export
from tests.fixtures.fake_browsers import YEAR, firefox_profile
from tests.fixtures.fake_instagram import FakeInstagram, make_posts
from tests.fixtures.logs import captured_logs, restored_mosaic_logger

ROOT = Path(__file__).resolve().parents[1]

RUN_MOSAIC = "from cli.main import main; main()"
"""Runs `mosaic`."""


def _app() -> click.Command:
    from cli.main import command

    return command


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    with restored_mosaic_logger():
        yield CliRunner()


def _assert_one_line_error(result, *fragments: str, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("mosaic: error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[-1]
    return lines[-1]


def _site_args(site: FakeInstagram) -> list[str]:
    return ["--delay", "0", "--base-url", site.base_url, "--allow-host", site.image_host]


@pytest.mark.parametrize(("args", "message"), [
    (["instagram", "bad name!", "--out", "o"], "not an Instagram user name"),
    (["instagram", "someone", "--out", "o", "--base-url", "ftp://x"], "--base-url"),
    (["instagram", "someone", "--out", "o", "--allow-host", "a/b"], "--allow-host"),
    (["instagram", "someone", "--out", "o", "--cookies", "missing.txt"], "file not found"),
    (["instagram", "someone", "--out", "o", "--delay", "-1"], "--delay"),
    (["instagram", "someone", "--out", "o", "--max-posts", "0"], "--max-posts"),
    (["instagram", "someone", "--out", "o", "--cookies-from-browser", "safari"],
     "--cookies-from-browser 'safari': choose one of 'chromium', 'firefox'"),
    (["instagram", "someone", "--out", "o", "--browser-profile", "ff"],
     "--browser-profile needs --cookies-from-browser"),
    (["instagram", "someone", "--out", "o", "--cookies-from-browser", "firefox",
      "--browser-profile", "nowhere"], "nowhere: not found"),
    (["instagram", "someone", "--out", "o", "--cookies-from-browser", "firefox",
      "--browser-profile", "ff"], "--cookies-from-browser firefox: no instagram.com session"),
    (["instagram", "someone", "--out", "o", "--cookies-from-browser", "chromium",
      "--browser-profile", "ff"], "no Chromium cookie database in this folder"),
    (["instagram", "someone", "--out", "file.txt"], "is a file"),
    (["posts", "urls.txt", "--out", "o"], "line 2"),
    (["posts", "nothing.txt", "--out", "o"], "file not found"),
])
def test_bad_input_is_one_line_and_status_2(runner, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    Path("file.txt").write_text("x")
    Path("urls.txt").write_text("https://www.instagram.com/p/AAAAA/\nhttps://evil.example/p/x\n")
    firefox_profile(Path("ff"), [(".instagram.com", "csrftoken", "x", 2**31)]).close()
    result = runner.invoke(_app(), ["scrape", *args])
    _assert_one_line_error(result, message)
    assert not Path("o").exists() and not Path("mosaic-runs").exists()


def test_build_from_instagram_reads_the_browser_profile_first(runner, tmp_path, monkeypatch,
                                                               prefect_api):
    monkeypatch.chdir(tmp_path)
    firefox_profile(Path("ff"), [(".instagram.com", "csrftoken", "x", 2**31)]).close()
    target = tmp_path / "t.jpg"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(target)
    result = runner.invoke(_app(), ["build", "--instagram", "someone", "--target", str(target),
                                    "--out", "o.jpg", "--cookies-from-browser", "firefox",
                                    "--browser-profile", "ff"])
    _assert_one_line_error(result, "--cookies-from-browser firefox: no instagram.com session")
    assert not Path("o.jpg").exists()


@pytest.mark.parametrize("content", ['{"name": "my-package", "version": "1.0"}', "not json",
                                     '["a", "list"]'])
def test_a_manifest_that_is_not_ours_is_refused_before_anything(runner, tmp_path, content):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "manifest.json").write_text(content)
    export = build_export(tmp_path / "export.zip")
    for args in (["import", "instagram-export", str(export.path), "--out", str(out)],
                 ["scrape", "instagram", "someone", "--out", str(out), "--workdir",
                  str(tmp_path / "run"), "--base-url", "http://127.0.0.1:9"]):
        result = runner.invoke(_app(), args)
        line = _assert_one_line_error(result, "manifest.json is not a photo-mosaic manifest",
                                      "choose another --out folder")
        assert str(out / "manifest.json") in line
        assert (out / "manifest.json").read_text() == content  # untouched
        assert [p.name for p in out.iterdir()] == ["manifest.json"]  # nothing added


def test_import_command(runner, tmp_path):
    export = build_export(tmp_path / "export.zip")
    result = runner.invoke(_app(), ["import", "instagram-export", str(export.path), "--out",
                                    str(tmp_path / "photos")])
    assert result.exit_code == 0, result.output
    assert f"{len(export.expected)} images from" in result.stdout
    assert len(list((tmp_path / "photos").glob("*.jpg"))) == len(
        {sha256_bytes(d) for d in export.expected.values()})
    html = build_html_export(tmp_path / "html.zip")
    result = runner.invoke(_app(), ["import", "instagram-export", str(html), "--out",
                                    str(tmp_path / "other")])
    _assert_one_line_error(result, "HTML-format export", "JSON")
    slip = build_hostile_export(tmp_path / "slip.zip", "zip-slip")
    result = runner.invoke(_app(), ["import", "instagram-export", str(slip), "--out",
                                    str(tmp_path / "other")])
    _assert_one_line_error(result, "refused")


def test_post_list_login_wall_then_cookies(prefect_api, tmp_path):
    """The list mode end to end; the login wall is one plain line; cookies get past it."""
    posts = make_posts(9, carousels=2, videos=2, reels=1, seed=41, og_every=4)
    with FakeInstagram(posts, login_wall_after=2) as site:
        lines = ["# posts I like", ""]
        for post in posts:
            kind = "reel" if post.kind == "reel" else "p"
            lines.append(f"https://www.instagram.com/{kind}/{post.code}/?igsh=x")
        lines.append(f"instagram.com/{site.username}/p/{posts[-1].code}")  # a duplicate
        (tmp_path / "urls.txt").write_text("\n".join(lines) + "\n")
        args = ["scrape", "posts", "urls.txt", "--out", "photos", *_site_args(site)]
        result = _run(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("mosaic: error: ")
        assert "login wall" in errors[0] and "log in and pass --cookies" in errors[0]
        assert "2 of 8 posts fetched" in errors[0]
        photos = tmp_path / "photos"
        saved = {code for code, e in manifest.read_manifest(photos)["posts"].items()
                 if e["status"] in {"done", "video"}}
        assert len(saved) == 2

        name, secret = site.session_cookie
        (tmp_path / "cookies.txt").write_text(
            f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\t{name}\t{secret}\n")
        before = site.requested("page")
        result = _run(*args, "--cookies", "cookies.txt", "--verbose", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert secret not in result.stdout + result.stderr
        after = site.requested("page")
        assert all(after[f"/p/{code}/"] == before[f"/p/{code}/"] for code in saved)
        expected = site.expected_downloads()
        assert f"{len(expected)} images from" in result.stdout and "manifest:" in result.stdout
        assert {p.name for p in photos.iterdir()} == {
            f"{sha256_bytes(d)}.jpg" for d in expected.values()} | {"manifest.json"}
        assert set(site.downloads()) == set(expected)
        assert all(n == 1 for n in site.downloads().values())
        reel = next(p for p in posts if p.kind == "reel")
        assert not site.requested("page")[f"/reel/{reel.code}/"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "cookies.txt", "mosaic-runs", "photos", "urls.txt"]
        assert [p.name for p in (tmp_path / "mosaic-runs").iterdir()] == [
            "instagram-posts-urls"]
        assert secret not in "".join(p.read_bytes().decode("latin-1")
                                     for p in (tmp_path / "mosaic-runs").rglob("*")
                                     if p.is_file())


def test_fetch_for_build_uses_what_it_could_save(prefect_api, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    posts = make_posts(8, carousels=1, videos=1, reels=0, seed=47)
    with FakeInstagram(posts, login_wall_after=4) as site:
        with captured_logs() as records:
            out = fetch_instagram_photos(site.username, tmp_path / "photos", site.base_url,
                                         [site.image_host], None, None, 0.0)
        assert out == tmp_path / "photos" and list(out.glob("*.jpg"))
        assert any("building with the" in r.getMessage() for r in records)
        with pytest.raises(MosaicError, match="log in and pass cookies"):
            fetch_instagram_photos(site.username, tmp_path / "empty", site.base_url,
                                   [site.image_host], None, None, 0.0)


def test_gone_posts_are_a_warning_and_the_scrape_succeeds(prefect_api, tmp_path):
    posts = make_posts(5, carousels=1, videos=0, reels=0, seed=43, og_every=0)
    gone, deleted = posts[0], posts[1]
    with FakeInstagram(posts) as site:
        for photo in gone.photos:
            site.remove_image(photo)
        site.remove_post(deleted, status=410)
        (tmp_path / "urls.txt").write_text(
            "".join(f"https://www.instagram.com/p/{p.code}/\n" for p in posts))
        result = _run("scrape", "posts", "urls.txt", "--out", "photos", *_site_args(site),
                      cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("mosaic: warning: 2 posts are gone")
        assert gone.code in lines[0] and deleted.code in lines[0]
        assert "2 posts gone from the site" in result.stdout
        entries = manifest.read_manifest(tmp_path / "photos")["posts"]
        assert {entries[gone.code]["status"], entries[deleted.code]["status"]} == {"gone"}
        served = site.requested("image")
        again = _run("scrape", "posts", "urls.txt", "--out", "photos", *_site_args(site),
                     "--quiet", cwd=tmp_path)
        assert again.returncode == 0 and again.stderr == "", again.stderr
        assert site.requested("image") == served


def test_a_full_disk_under_the_photos_is_one_line_and_exit_2(prefect_api, tmp_path):
    posts = make_posts(8, carousels=0, videos=0, reels=0, seed=44, og_every=0)
    with FakeInstagram(posts) as site:
        (tmp_path / "urls.txt").write_text(
            "".join(f"https://www.instagram.com/p/{p.code}/\n" for p in posts))
        disk = tmp_path / "disk"
        disk.mkdir()
        from prefect.settings import PREFECT_API_URL

        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
        command = [str(disk), sys.executable, "-m", "cli", "scrape", "posts", "urls.txt",
                   "--out", str(disk / "photos"), "--workdir", str(tmp_path / "run"),
                   *_site_args(site)]
        result = in_mount_namespace("size=12k", command, env, timeout=240, cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("mosaic: error: cannot write") and "the disk is full" in lines[0]
    assert "Traceback" not in result.stderr


def test_an_unreachable_site_is_one_line_without_a_traceback(prefect_api, tmp_path):
    (tmp_path / "cookies.txt").write_text(
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsessionid\tx-1\n")
    result = _run("scrape", "instagram", "someone", "--base-url", "http://127.0.0.1:9",
                  "--allow-host", "127.0.0.1:9", "--cookies", "cookies.txt", "--out", "DIR",
                  cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == ("mosaic: error: cannot reach http://127.0.0.1:9 "
                        "(net::ERR_CONNECTION_REFUSED); run the same command again later")
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == 1  # as for every fetch error: a rerun later may work


def _mosaic(*args: str, cwd: Path) -> subprocess.Popen:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", RUN_MOSAIC, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    process = _mosaic(*args, cwd=cwd)
    stdout, stderr = process.communicate(timeout=240)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _recorded_paths(photos: Path) -> set[str]:
    """URL paths of the images the manifest says are saved."""
    from urllib.parse import urlsplit

    posts = manifest.read_manifest(photos)["posts"].values()
    return {urlsplit(image["url"]).path for entry in posts for image in entry["images"]}


def test_sigkilled_scrape_resumes_without_downloading_again(prefect_api, tmp_path):
    # Two pages of the profile: 10 posts saved before the kill, about as many after it.
    posts = make_posts(24, carousels=4, videos=2, reels=1, seed=31)
    photos = tmp_path / "photos"
    with FakeInstagram(posts, image_drip=0.3) as site:
        args = ["scrape", "instagram", site.username, "--out", "photos", *_site_args(site),
                "--quiet"]
        first = _mosaic(*args, cwd=tmp_path)
        deadline = time.monotonic() + 180
        try:
            while time.monotonic() < deadline and first.poll() is None:
                done = [e for e in manifest.read_manifest(photos)["posts"].values()
                        if e["status"] == "done"]
                if len(done) >= 10 and list(photos.glob(".*.part")):
                    break
                time.sleep(0.01)
            assert first.poll() is None, first.communicate()
            first.send_signal(signal.SIGKILL)
        finally:
            first.communicate(timeout=30)
        assert list(photos.glob(".*.part")), "the kill should leave a partial download"
        recorded = _recorded_paths(photos)
        done_before = {code for code, e in manifest.read_manifest(photos)["posts"].items()
                       if e["status"] == "done"}
        served_before = site.downloads()
        pages_before = site.requested("page")

        second = _mosaic(*args, cwd=tmp_path)
        stdout, stderr = second.communicate(timeout=240)
        assert second.returncode == 0, stderr
        assert stdout.strip() == str(photos)

        expected = site.expected_downloads()
        served = site.downloads()
        assert not list(photos.glob(".*.part"))
        assert {p.name for p in photos.iterdir()} == {
            f"{sha256_bytes(d)}.jpg" for d in expected.values()} | {"manifest.json"}
        assert all(served[path] == served_before[path] for path in recorded)
        again = {path for path in expected if served[path] > 1}
        assert not again & recorded
        assert len(again) <= 4  # at most the downloads in flight at the kill (4 workers)
        assert all(served[path] >= 1 for path in expected)
        pages = site.requested("page")
        assert all(pages[f"/p/{code}/"] == pages_before[f"/p/{code}/"] for code in done_before)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mosaic-runs", "photos"]
        work = tmp_path / "mosaic-runs" / f"instagram-{site.username}"
        assert not list(work.glob("chromium-profile-*"))
        saved = json.loads((photos / "manifest.json").read_text())
        assert saved["source"] == {"kind": "instagram", "username": site.username,
                                   "site": site.base_url}


def test_guests_are_told_in_one_line_and_a_browser_profile_logs_in(prefect_api, tmp_path):
    posts = make_posts(20, carousels=2, videos=1, reels=1, seed=53, og_every=0)
    with FakeInstagram(posts, guest_posts=12) as site:
        args = ["scrape", "instagram", site.username, "--out", "photos", *_site_args(site)]
        result = _run(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines == ["mosaic: warning: 12 of 20 posts visible without login: pass --cookies "
                         "or --cookies-from-browser, or import your data export (mosaic import "
                         "instagram-export)"]
        seen = [p for p in posts[:12] if p.kind in {"image", "carousel"}]
        assert f"from {len(seen)} posts" in result.stdout  # the newest, all a guest sees

        name, secret = site.session_cookie
        connection = firefox_profile(tmp_path / "firefox", [
            ("127.0.0.1", name, secret, int(time.time()) + YEAR)])
        try:
            result = _run(*args, "--cookies-from-browser", "firefox", "--browser-profile",
                          "firefox", "--verbose", cwd=tmp_path)
        finally:
            connection.close()
        assert result.returncode == 0, result.stderr
        assert "posts visible" not in result.stderr and "warning" not in result.stderr
        assert secret not in result.stdout + result.stderr
        assert set(site.downloads()) == set(site.expected_downloads())
        assert f"from {sum(p.kind in {'image', 'carousel'} for p in posts)} posts" in result.stdout
        assert secret not in "".join(p.read_bytes().decode("latin-1")
                                     for p in (tmp_path / "mosaic-runs").rglob("*")
                                     if p.is_file())
