"""``runner.steps.script.shell_command``: the argv a script step runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import StepError
from runner.steps.script import shell_command


def test_a_shell_found_once_and_removed_since_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``PATH`` search found is reused only while the file is still there."""
    shell = tmp_path / "bin" / "myshell"
    shell.parent.mkdir()
    shell.write_text("#!/bin/sh\n")
    shell.chmod(0o755)
    monkeypatch.setenv("PATH", str(shell.parent))
    script = tmp_path / "script.sh"
    assert shell_command("myshell -e {0}", script) == ["myshell", "-e", str(script)]
    shell.unlink()
    with pytest.raises(StepError, match="shell 'myshell' is not installed on this machine"):
        shell_command("myshell -e {0}", script)
    shell.write_text("#!/bin/sh\n")
    shell.chmod(0o755)
    assert shell_command("myshell -e {0}", script) == ["myshell", "-e", str(script)]


@pytest.mark.parametrize("mknod", ["works", "refused"])
def test_an_empty_file_is_new_and_the_owners_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mknod: str
) -> None:
    """`mknod` makes each of a step's empty files in one call; where it is refused (macOS,
    a sandbox) they are opened and closed as before. Either way a file left by a killed runner
    is replaced by a new inode (a process holding the old one cannot write into it)."""
    import os
    import stat

    from runner.steps import script

    if mknod == "refused":

        def refuse(*args: object, **kwargs: object) -> None:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(script.os, "mknod", refuse)
    path = tmp_path / "1-step-1-output"
    path.write_text("left behind")
    old = path.stat().st_ino
    with path.open("a") as holder:
        script._make_empty(str(path))
        holder.write("written by a process left behind")
    status = path.stat()
    assert stat.S_ISREG(status.st_mode) and status.st_size == 0
    assert status.st_ino != old
    assert stat.S_IMODE(status.st_mode) & 0o077 == 0
    fresh = tmp_path / "2-step-1-env"
    script._make_empty(str(fresh))
    assert fresh.read_bytes() == b"" and stat.S_IMODE(fresh.stat().st_mode) & 0o077 == 0
    assert os.access(fresh, os.R_OK | os.W_OK)
