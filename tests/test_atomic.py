"""baselines_her.atomic: the target holds the old or the new content, never a partial write."""
import os

import pytest

from baselines_her.atomic import atomic_open, atomic_path, atomic_write_bytes


def test_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "policy.pkl"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["policy.pkl"]


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="writer died"):
        with atomic_open(target, "w") as f:
            f.write("half of the new cont")
            raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_path_keeps_extension_for_format_detection(tmp_path):
    target = tmp_path / "video.mp4"
    with atomic_path(target) as tmp:
        assert tmp.endswith("video.mp4") and os.path.dirname(tmp) == str(tmp_path)
        assert not target.exists()
        with open(tmp, "wb") as f:
            f.write(b"frames")
    assert target.read_bytes() == b"frames"
    assert os.listdir(tmp_path) == ["video.mp4"]


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "x.bin", b"")


def test_written_file_has_the_permissions_open_would_give(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "policy.pkl", b"x")
    finally:
        os.umask(umask)
    assert os.stat(tmp_path / "policy.pkl").st_mode & 0o777 == 0o644
