"""Make it huge: a file a command reads, given as a link to ``/dev/zero`` (or to a file of many
GB), must be refused at its limit, naming the file, not read whole.

A deployed commit can hold such a link (git keeps links) in place of its workflow or a composite
action's ``action.yml``; the request file an approver passes to ``runner approval new`` comes from
the waiting run, that is from the deployer; an auditor's ``approval verify`` reads the file and
its ``.sig`` from a branch anyone may push to. Each was read whole: ``MemoryError``, exit 70 with
a crash log, after the machine's memory (here: under a 1 GiB address-space limit, in a
subprocess, so that the old behaviour shows as the crash it was, quickly).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.memory_limited import limited_runner


#: the address space the command may use: far more than the runner needs, far less than a file
#: read whole from /dev/zero grows to
def runner(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return limited_runner(cwd, *args, timeout=60)


WORKFLOW = """\
name: deploy
environments: [staging]
approvals:
  trust:
    people: trust/people.yml
    allowed-signers: trust/allowed_signers
  file: {}
steps:
  - id: gate
    name: Gate
    manual: {instructions: go}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "allowed_signers").write_text("")
    (tmp_path / "trust" / "people.yml").write_text("people: []\n")
    (tmp_path / "w.yml").write_text(textwrap.dedent(WORKFLOW))
    (tmp_path / "zero.yml").symlink_to("/dev/zero")
    (tmp_path / "actions" / "big").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_workflow_linked_to_dev_zero_is_too_large(folder: Path, command: str) -> None:
    args = ["--env", "staging"] if command == "run" else []
    result = runner(folder, command, "zero.yml", *args)
    shown = result.stdout + result.stderr  # validate reports on stdout, run on stderr
    assert "zero.yml:1:1: file is too large: more than the 8 MiB limit" in shown
    assert result.returncode == (1 if command == "validate" else 2), result.stderr
    assert "internal error" not in result.stderr


def test_an_action_linked_to_a_huge_file_is_too_large(folder: Path) -> None:
    # a regular file (the check for the action's file follows the link): 9 GiB of holes
    huge = folder / "huge"
    with huge.open("wb") as handle:
        handle.truncate(9 * 1024 * 1024 * 1024)
    (folder / "actions" / "big" / "action.yml").symlink_to(huge)
    (folder / "act.yml").write_text(
        "name: deploy\nsteps:\n  - id: act\n    name: Act\n    uses: ./actions/big\n"
    )
    result = runner(folder, "validate", "act.yml")
    assert "action.yml:1:1: file is too large: more than the 8 MiB limit" in result.stdout
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr


def test_a_request_file_linked_to_dev_zero_is_refused(folder: Path) -> None:
    (folder / "key").write_text("not used: the request is refused first")
    result = runner(
        folder,
        *("approval", "new", "--request", "zero.yml", "--decision", "proceed"),
        *("--key", "key", "--out", "out"),
    )
    assert result.returncode == 2, result.stderr
    assert (
        "error: --request zero.yml: the request file is more than the 8 MiB the runner reads"
        in result.stderr
    )
    assert not (folder / "out").exists()


def test_a_context_file_linked_to_dev_zero_is_refused(folder: Path) -> None:
    result = runner(folder, "expr", "1", "--context", "zero.yml")
    assert result.returncode == 2, result.stderr
    assert "error: --context zero.yml: the context file is more than the 8 MiB" in result.stderr


def test_an_approval_file_linked_to_dev_zero_is_not_valid(folder: Path) -> None:
    (folder / "a.json").symlink_to("/dev/zero")
    (folder / "a.json.sig").symlink_to("/dev/zero")
    result = runner(
        folder, "approval", "verify", "a.json", "--workflow", "w.yml", "--insecure-local-trust"
    )
    assert result.returncode == 1, result.stderr
    assert "a.json: NOT valid: " in result.stdout
    assert "internal error" not in result.stderr


def test_hash_files_of_a_file_larger_than_memory(folder: Path) -> None:
    # 1.1 GiB (of holes) under the 1 GiB limit: GitHub's hashFiles streams the file too
    with (folder / "artifact.bin").open("wb") as handle:
        handle.truncate(1100 * 1024 * 1024)
    (folder / "hash.yml").write_text(
        "name: deploy\nsteps:\n  - id: h\n    name: H\n"
        "    run: echo \"h=${{ hashFiles('artifact.bin') }}\"\n"
    )
    result = runner(folder, "run", "hash.yml", "--env", "dev", "--state-dir", "state")
    assert result.returncode == 0, result.stderr
    assert "h=" in result.stdout
    assert "internal error" not in result.stderr


def test_an_action_named_only_in_a_script_is_not_read_whole_on_resume(tmp_path: Path) -> None:
    """A resume asks whether a composite step's actions read JSON, following every `uses:`
    found in their text (a script's too): an action no check loaded was read whole, and one
    linked to /dev/zero grew the resume to a MemoryError. It is read as every action is."""
    (tmp_path / "actions" / "a").mkdir(parents=True)
    (tmp_path / "actions" / "a" / "action.yml").write_text(
        "name: a\nruns:\n  using: composite\n  steps:\n"
        "    - run: echo 'uses: ./actions/z'\n      shell: bash\n",
        encoding="utf-8",
    )
    (tmp_path / "actions" / "z").mkdir()
    (tmp_path / "actions" / "z" / "action.yml").symlink_to("/dev/zero")
    code = (
        "import resource, sys; from pathlib import Path\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from runner.engine.run import _reads_json\n"
        "print(_reads_json(Path(sys.argv[1]), './actions/a'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "True\n"
