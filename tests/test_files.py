import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mosaic.files import (
    FileRef,
    OutputError,
    _umask,
    atomic_path,
    forget_temporary,
    is_temporary,
    new_temporary,
    remove_stale_temporaries,
    save_npy_atomic,
    write_json_atomic,
)
from mosaic.processes import owner_tag


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npy"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_writes_replace_whole_files(tmp_path):
    save_npy_atomic(tmp_path / "a.npy", np.arange(3))
    save_npy_atomic(tmp_path / "a.npy", np.arange(5))
    assert np.load(tmp_path / "a.npy").tolist() == [0, 1, 2, 3, 4]
    write_json_atomic(tmp_path / "m.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "m.json"]


def _dead_owner() -> str:
    """The owner tag of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    tag = owner_tag(child.pid)
    child.wait()
    return tag


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = tmp_path / f".mosaic-tmp.{_dead_owner()}.x1y2z3.cost.part.npy"
    dead.write_bytes(b"x")
    live = new_temporary(tmp_path, "mosaic.jpg")  # ours: this process is alive
    users = [".thesis.part2.docx", ".notes.partial", ".cost.abc123.part.npy", "keep.npy",
             ".mosaic-tmp.not-a-tag.part"]
    for name in users:
        (tmp_path / name).write_bytes(b"user data")
    removed = remove_stale_temporaries(tmp_path)
    assert removed == [dead]
    assert live.exists() and all((tmp_path / name).read_bytes() == b"user data"
                                 for name in users)
    forget_temporary(live)
    assert not live.exists()


def test_stale_temporaries_in_sub_folders_only_when_asked(tmp_path):
    (tmp_path / "score").mkdir()
    deep = tmp_path / "score" / f".mosaic-tmp.{_dead_owner()}.abcdef.cost.part.npy"
    deep.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == []
    assert remove_stale_temporaries(tmp_path, recursive=True) == [deep]


def test_temporary_names_and_modes(tmp_path):
    path = new_temporary(tmp_path, "poster.tif")
    assert is_temporary(path.name) and path.name.endswith(".poster.part.tif")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    forget_temporary(path)
    with atomic_path(tmp_path / "out.json") as tmp:
        tmp.write_text("{}")
    assert (tmp_path / "out.json").stat().st_mode & 0o044 == 0o044  # others may read it


def test_full_disk_names_the_file(tmp_path, monkeypatch):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"cannot write .*m\.json: the disk is full"):
        with atomic_path(tmp_path / "m.json") as tmp:
            monkeypatch.setattr(Path, "write_text", full)
            tmp.write_text("{}")
    assert list(tmp_path.iterdir()) == []


def test_file_ref_detects_changes(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    ref = FileRef.of(path)
    assert ref.is_intact()
    path.write_bytes(b"two")
    assert not ref.is_intact()
    path.unlink()
    assert not ref.is_intact()
