"""``bounded.open_regular``: the one way the runner opens a file it made and someone else could
have replaced (the journal, the run's lock, a step's approval files, what ``read_file`` reads)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runner.bounded import NotTheRunnersFile, open_regular


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_regular_file_is_opened_and_made_for_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    handle, status = open_regular(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    try:
        assert stat.S_ISREG(status.st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0
        assert os.get_inheritable(handle) is False
    finally:
        os.close(handle)


def test_a_link_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "bashrc"
    target.write_text("kept\n")
    link = tmp_path / ".lock"
    link.symlink_to(target)
    before = _open_descriptors()
    with pytest.raises(NotTheRunnersFile) as refused:
        open_regular(link, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    assert refused.value.link and refused.value.what == "a symbolic link"
    assert target.read_text() == "kept\n"
    assert _open_descriptors() == before
    # where the caller allows links (a workflow the user named), the target is opened
    handle, _ = open_regular(link, os.O_RDONLY, follow=True)
    os.close(handle)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_or_a_folder_is_refused_without_blocking_or_leaking(tmp_path: Path) -> None:
    fifo = tmp_path / "request.json"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    before = _open_descriptors()
    for path in (fifo, folder):
        with pytest.raises(NotTheRunnersFile) as refused:
            open_regular(path, os.O_RDONLY | os.O_NONBLOCK)
        assert not refused.value.link and refused.value.what == "not a regular file"
    assert _open_descriptors() == before


def test_other_failures_are_os_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing", os.O_RDONLY)
