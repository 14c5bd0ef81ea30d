"""The suite's temporary folder in memory (tests/helpers/memory_tmp.py): taken only where it is
ours alone, never over a ``TMPDIR`` someone set, and bounded to a few sessions' folders."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from helpers import memory_tmp


@pytest.fixture
def shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "shm"
    folder.mkdir(mode=0o1777)
    folder.chmod(0o1777)
    monkeypatch.setattr(memory_tmp, "SHARED_MEMORY", str(folder))
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(memory_tmp, "MIN_FREE", 0)
    return folder


def test_a_session_gets_a_private_folder_of_its_own(shm: Path) -> None:
    first, second = memory_tmp.choose(), memory_tmp.choose()
    assert first is not None and second is not None and first != second
    root = shm / f"runner-tests-{os.geteuid()}"
    assert first.parent == root and second.parent == root
    assert root.stat().st_mode & 0o777 == 0o700
    assert first.stat().st_mode & 0o777 == 0o700


def test_a_tmpdir_someone_set_is_kept(shm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", "/somewhere/else")
    assert memory_tmp.choose() is None
    assert not (shm / f"runner-tests-{os.geteuid()}").exists()


def test_too_little_free_memory_keeps_the_disk(shm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_tmp, "MIN_FREE", 1 << 60)
    assert memory_tmp.choose() is None


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o707])
def test_a_root_folder_others_can_reach_is_not_used(shm: Path, mode: int) -> None:
    root = shm / f"runner-tests-{os.geteuid()}"
    root.mkdir()
    root.chmod(mode)
    assert memory_tmp.choose() is None
    assert list(root.iterdir()) == []


def test_a_link_in_place_of_the_root_folder_is_not_followed(shm: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (shm / f"runner-tests-{os.geteuid()}").symlink_to(elsewhere)
    assert memory_tmp.choose() is None
    assert list(elsewhere.iterdir()) == []


def test_a_shared_parent_that_others_can_rename_in_is_not_used(shm: Path) -> None:
    shm.chmod(0o777)  # writable by all and not sticky: anyone could swap our folder
    assert memory_tmp.choose() is None


def test_old_sessions_beyond_the_newest_few_are_removed(shm: Path) -> None:
    root = shm / f"runner-tests-{os.geteuid()}"
    root.mkdir(mode=0o700)
    made = [root / f"{memory_tmp.PREFIX}{n}" for n in range(memory_tmp.KEEP + 3)]
    for age, folder in enumerate(made):
        folder.mkdir()
        os.utime(folder, (1_000_000 + age, 1_000_000 + age))
    (made[-1] / "kept.txt").write_text("a failed test's file")
    (root / "not-a-session").mkdir()
    newest = memory_tmp.choose()
    left = sorted(path for path in root.iterdir() if path.name.startswith(memory_tmp.PREFIX))
    assert left == sorted([*made[-(memory_tmp.KEEP - 1) :], newest])
    assert (made[-1] / "kept.txt").is_file()
    assert (root / "not-a-session").is_dir()


def test_use_moves_this_process_and_its_children(shm: Path, tmp_path: Path) -> None:
    folder = tmp_path / "session"
    folder.mkdir()
    before = tempfile.gettempdir()
    try:
        memory_tmp.use(folder)
        assert tempfile.gettempdir() == str(folder)
        assert os.environ["TMPDIR"] == str(folder)
    finally:
        os.environ.pop("TMPDIR")
        tempfile.tempdir = before
