"""The suite's temporary folder in memory (tests/helpers/memory_tmp.py): taken only where it is
ours alone, never over a ``TMPDIR`` someone set, and bounded to a few sessions' folders."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from helpers import memory_tmp

from runner.steps.scratch import OWNER, abandoned


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
    assert first is not None and second is not None and first.folder != second.folder
    root = shm / f"runner-tests-{os.geteuid()}"
    assert first.folder.parent == root and second.folder.parent == root
    assert root.stat().st_mode & 0o777 == 0o700
    assert first.folder.stat().st_mode & 0o777 == 0o700
    assert not abandoned(first.folder) and not abandoned(second.folder)
    first.end(remove=True)
    second.end(remove=False)
    assert not first.folder.exists()
    assert second.folder.is_dir() and abandoned(second.folder)


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


def _ended(root: Path, names: list[str]) -> list[Path]:
    """Folders of sessions that ended (no lock held), the first the oldest."""
    root.mkdir(mode=0o700, exist_ok=True)
    made = []
    for age, name in enumerate(names):
        folder = root / f"{memory_tmp.PREFIX}{name}"
        folder.mkdir()
        (folder / OWNER).touch()
        os.utime(folder, (1_000_000 + age, 1_000_000 + age))
        made.append(folder)
    return made


def test_ended_sessions_beyond_the_newest_few_are_removed(shm: Path) -> None:
    root = shm / f"runner-tests-{os.geteuid()}"
    made = _ended(root, [str(n) for n in range(memory_tmp.KEEP_ENDED + 3)])
    (made[-1] / "kept.txt").write_text("a failed test's file")
    (root / "not-a-session").mkdir()
    new = memory_tmp.choose()
    assert new is not None
    left = sorted(path for path in root.iterdir() if path.name.startswith(memory_tmp.PREFIX))
    assert left == sorted([*made[-memory_tmp.KEEP_ENDED :], new.folder])
    assert (made[-1] / "kept.txt").is_file()
    assert (root / "not-a-session").is_dir()


def test_a_running_session_is_never_removed_however_old(shm: Path) -> None:
    """Another checkout's suite, or a long one under --pdb, whose folder has not changed for a
    while: its lock keeps it, whatever its age."""
    running = memory_tmp.choose()
    assert running is not None
    os.utime(running.folder, (1, 1))
    root = running.folder.parent
    _ended(root, [str(n) for n in range(memory_tmp.KEEP_ENDED + 2)])
    for _ in range(3):
        later = memory_tmp.choose()
        assert later is not None
        later.end(remove=False)
    assert running.folder.is_dir() and not abandoned(running.folder)
    # what the last one kept, and the last one itself
    ended = [p for p in root.iterdir() if p != running.folder]
    assert len(ended) == memory_tmp.KEEP_ENDED + 1


def test_a_link_named_like_a_session_is_not_followed(shm: Path, tmp_path: Path) -> None:
    root = shm / f"runner-tests-{os.geteuid()}"
    root.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("not ours to remove")
    for n in range(memory_tmp.KEEP_ENDED + 2):
        (root / f"{memory_tmp.PREFIX}link{n}").symlink_to(elsewhere)
    assert memory_tmp.choose() is not None
    assert (elsewhere / "precious.txt").is_file()


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


def test_a_folder_that_cannot_be_made_keeps_the_disk(
    shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(**_: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", full)
    assert memory_tmp.choose() is None


def test_this_session_runs_in_its_locked_memory_folder(tmp_path: Path) -> None:
    """The wiring in tests/conftest.py, seen from a worker: the controller chose the folder,
    holds its lock, and this process and its tmp_path are in it."""
    chosen = os.environ.get("TMPDIR", "")
    root = Path(memory_tmp.SHARED_MEMORY) / f"runner-tests-{os.geteuid()}"
    if Path(chosen).parent != root:
        pytest.skip(f"this session's TMPDIR is {chosen or 'not set'}: not one memory_tmp chose")
    folder = Path(chosen)
    assert folder.name.startswith(memory_tmp.PREFIX)
    assert not abandoned(folder)
    assert tempfile.gettempdir() == chosen
    assert folder in tmp_path.parents
