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
