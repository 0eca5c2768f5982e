import numpy as np
import pytest

from mosaic.files import (
    FileRef,
    atomic_path,
    remove_stale_temporaries,
    save_npy_atomic,
    write_json_atomic,
)


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


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / ".cost.abc123.part.npy").write_bytes(b"x")
    (tmp_path / "keep.npy").write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [".cost.abc123.part.npy"]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npy"]


def test_file_ref_detects_changes(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    ref = FileRef.of(path)
    assert ref.is_intact()
    path.write_bytes(b"two")
    assert not ref.is_intact()
    path.unlink()
    assert not ref.is_intact()
