"""``runner.steps.scratch``: each step's script and file-command files live in a private folder
of the run process on a memory file system (or, without one, in the state folder as before), are
new, empty and the owner's only for each attempt, and the folder goes when the run does."""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import run_helpers
from helpers.run_helpers import Workspace

from runner.engine.start import RunRequest, start_run
from runner.logs.text import TextLog
from runner.options import RunOptions
from runner.prepare import prepare
from runner.steps import scratch
from runner.steps.base import Detached, StepContext, StepResult
from runner.steps.scratch import Scratch, safe_parent
from runner.steps.script import run_script_step

#: what a step shows of its files: ``<step>:<what>=<value>`` lines
SHOW = """\
        echo "$ID:script=$0"
        echo "$ID:output=$GITHUB_OUTPUT"
        echo "$ID:folder=$(stat -c %a "$(dirname "$GITHUB_OUTPUT")")"
        echo "$ID:fs=$(stat -f -c %T "$GITHUB_OUTPUT")"
        echo "$ID:files=$(ls "$(dirname "$0")" | wc -l)"
        echo "$ID:private=$(stat -c %a "$(dirname "$0")"/*functions.sh)"
        for f in "$0" "$GITHUB_OUTPUT" "$GITHUB_ENV" "$GITHUB_PATH" "$GITHUB_STEP_SUMMARY" \\
            "$RUNNER_OCTOPUS_VARIABLES"; do
          echo "$ID:mode=$(stat -c %a "$f")"
        done
        for f in "$GITHUB_OUTPUT" "$GITHUB_ENV" "$GITHUB_PATH" "$GITHUB_STEP_SUMMARY" \\
            "$RUNNER_OCTOPUS_VARIABLES"; do
          echo "$ID:size=$(stat -c %s "$f")"
        done
"""


def shows(step_id: str, extra: str = "", **keys: str) -> str:
    lines = [f"  - id: {step_id}", f"    name: {step_id}"]
    lines += [f"    {key.replace('_', '-')}: {value}" for key, value in keys.items()]
    lines += ["    env:", f"      ID: {step_id}", "    run: |", SHOW.rstrip("\n")]
    lines += [f"        {line}" for line in extra.splitlines()]
    return "\n".join(lines) + "\n"


def facts(lines: list[str], step_id: str, what: str) -> list[str]:
    prefix = f"  {step_id}:{what}="
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


def in_memory() -> bool:
    """Whether this machine has a ``/dev/shm`` the runner would use, and it is a tmpfs."""
    if not safe_parent(scratch.SHARED_MEMORY) or not os.access(scratch.SHARED_MEMORY, os.W_OK):
        return False
    kind = subprocess.run(
        ["stat", "-f", "-c", "%T", scratch.SHARED_MEMORY], capture_output=True, text=True
    )
    return kind.stdout.strip() == "tmpfs"


needs_shm = pytest.mark.skipif(not in_memory(), reason="no tmpfs /dev/shm on this machine")


@pytest.fixture
def no_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)


@pytest.fixture
def no_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_runtime_dir: None) -> None:
    """A machine without a usable memory file system."""
    monkeypatch.setattr(scratch, "SHARED_MEMORY", str(tmp_path / "no-shm"))


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private ``$XDG_RUNTIME_DIR`` of the test's own."""
    folder = tmp_path / "xdg"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    return folder


def state_files(workspace: Workspace) -> list[str]:
    return sorted(str(p.relative_to(workspace.state_dir)) for p in workspace.state_dir.rglob("*"))


@needs_shm
def test_the_files_are_in_a_private_folder_in_memory_not_in_the_state_folder(
    workspace: Workspace, no_runtime_dir: None
) -> None:
    outcome = workspace.run("name: mem\nsteps:\n" + shows("first") + shows("second"))
    assert outcome.code == 0, outcome.err
    lines = outcome.lines()
    scripts = facts(lines, "first", "script") + facts(lines, "second", "script")
    folder = Path(scripts[0]).parent
    assert folder.parent == Path(scratch.SHARED_MEMORY) and folder.name.startswith("runner-")
    assert [Path(s).parent for s in scripts] == [folder, folder]
    assert facts(lines, "first", "fs") == ["tmpfs"]
    assert facts(lines, "first", "folder") == ["700"]
    assert facts(lines, "first", "mode") == ["600"] * 6
    assert facts(lines, "first", "size") == ["0"] * 5
    # its script, set_octopusvariable's file and five file-command files: the first step's
    # are gone when the second runs
    assert facts(lines, "first", "files") == facts(lines, "second", "files") == ["7"]
    assert facts(lines, "first", "private") == ["600"]
    # the run's folder in the state folder holds the record only: no steps/<id>/ for a script
    assert not (workspace.state_dir / "runs" / "run-1" / "steps").exists()
    assert not [name for name in state_files(workspace) if "attempt" in name]
    assert not folder.exists()


def test_xdg_runtime_dir_is_used_first_and_emptied_at_the_end(
    workspace: Workspace, runtime_dir: Path
) -> None:
    outcome = workspace.run("name: xdg\nsteps:\n" + shows("only"))
    assert outcome.code == 0, outcome.err
    [script] = facts(outcome.lines(), "only", "script")
    assert Path(script).parent.parent == runtime_dir
    assert Path(script).name == "1-only-1-script.sh"
    assert facts(outcome.lines(), "only", "folder") == ["700"]
    assert list(runtime_dir.iterdir()) == []


def test_without_a_memory_file_system_the_files_go_to_the_state_folder(
    workspace: Workspace, no_memory: None
) -> None:
    outcome = workspace.run("name: disk\nsteps:\n" + shows("only"))
    assert outcome.code == 0, outcome.err
    lines = outcome.lines()
    attempt = workspace.state_dir / "runs" / "run-1" / "steps" / "only" / "attempt-1"
    assert facts(lines, "only", "script") == [str(attempt / "script.sh")]
    assert facts(lines, "only", "output") == [str(attempt / "output")]
    assert facts(lines, "only", "mode") == ["600"] * 6
    # removed at the step's end, as before
    assert list(attempt.iterdir()) == []


@pytest.mark.parametrize(
    "mode, used",
    [(0o700, True), (0o755, True), (0o1777, True), (0o777, False), (0o770, False)],
)
def test_a_parent_others_could_rename_things_in_is_not_used(
    tmp_path: Path, mode: int, used: bool
) -> None:
    folder = tmp_path / "parent"
    folder.mkdir()
    folder.chmod(mode)
    assert safe_parent(str(folder)) is used
    assert (scratch.candidates({"XDG_RUNTIME_DIR": str(folder)})[:1] == [str(folder)]) is used


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder of another user needs root")
def test_a_parent_of_another_user_is_not_used(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    assert not safe_parent(str(folder))


def test_a_relative_or_missing_runtime_dir_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for value in ("relative", str(tmp_path / "missing"), str(tmp_path / "file"), ""):
        assert str(value) not in scratch.candidates({"XDG_RUNTIME_DIR": value})


def test_attempts_from_many_threads_share_one_folder_and_never_a_name(
    tmp_path: Path, runtime_dir: Path
) -> None:
    files = Scratch({"XDG_RUNTIME_DIR": str(runtime_dir)})
    got: list[Any] = []

    def attempts() -> None:
        for attempt in (1, 2, 3):
            got.append(files.attempt(tmp_path / "steps" / "same", attempt))

    threads = [threading.Thread(target=attempts) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({f.folder for f in got}) == 1
    assert len({f.path("output") for f in got}) == 24
    [folder] = runtime_dir.iterdir()
    assert folder.stat().st_mode & 0o777 == 0o700
    files.close()
    assert list(runtime_dir.iterdir()) == []


def test_each_step_and_attempt_gets_new_empty_files(
    workspace: Workspace, runtime_dir: Path
) -> None:
    # the first attempt writes to every file and fails; the second must find them new and empty
    fail_first = """\
if [ ! -e tried ]; then
  touch tried
  for f in "$GITHUB_OUTPUT" "$GITHUB_ENV" "$GITHUB_PATH" "$GITHUB_STEP_SUMMARY" \\
      "$RUNNER_OCTOPUS_VARIABLES"; do echo "left=1" >> "$f"; done
  exit 1
fi
echo "kept=2" >> "$GITHUB_OUTPUT"
"""
    outcome = workspace.run(
        "name: attempts\nsteps:\n"
        + shows("flaky", fail_first, retry="{attempts: 2}")
        + shows("next")
    )
    assert outcome.code == 0, outcome.err
    lines = outcome.lines()
    outputs = facts(lines, "flaky", "output") + facts(lines, "next", "output")
    assert len(set(outputs)) == 3
    assert facts(lines, "flaky", "size") == ["0"] * 10
    assert facts(lines, "next", "size") == ["0"] * 5
    assert outcome.step("flaky").outputs == {"kept": "2"}
    assert list(runtime_dir.iterdir()) == []


LEFT_BEHIND = """\
  - id: first
    name: first
    run: |
      # holds its GITHUB_OUTPUT open (and knows its name) after the step has ended
      (
        exec 3>>"$GITHUB_OUTPUT"
        while [ ! -e go ]; do sleep 0.02; done
        echo "leaked=open" >&3
        echo "leaked=named" >> "$GITHUB_OUTPUT"
        touch done
      ) </dev/null >/dev/null 2>&1 &
  - id: second
    name: second
    run: |
      touch go
      while [ ! -e done ]; do sleep 0.02; done
      echo "mine=$(cat "$GITHUB_OUTPUT")"
      echo "own=1" >> "$GITHUB_OUTPUT"
"""


@pytest.mark.parametrize("where", ["memory", "state folder"])
def test_a_process_left_behind_by_a_step_cannot_write_into_the_next_ones_outputs(
    workspace: Workspace, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "state folder":
        monkeypatch.delenv("XDG_RUNTIME_DIR")
        monkeypatch.setattr(scratch, "SHARED_MEMORY", str(runtime_dir / "none"))
    outcome = workspace.run("name: left\nsteps:\n" + LEFT_BEHIND)
    assert outcome.code == 0, outcome.err
    assert "  mine=" in outcome.lines()
    assert outcome.step("second").outputs == {"own": "1"}
    assert outcome.step("first").outputs == {}


def test_a_folder_removed_under_the_run_is_made_again(
    workspace: Workspace, runtime_dir: Path
) -> None:
    """The system removes ``$XDG_RUNTIME_DIR``'s content at its user's logout: a run waiting
    that long goes on in a new folder."""
    outcome = workspace.run(
        "name: lost\nsteps:\n"
        + shows("first", 'rm -rf "$(dirname "$GITHUB_OUTPUT")"')
        + shows("second", 'echo "ok=1" >> "$GITHUB_OUTPUT"')
    )
    assert outcome.code == 0, outcome.err
    lines = outcome.lines()
    [first], [second] = facts(lines, "first", "script"), facts(lines, "second", "script")
    assert Path(first).parent != Path(second).parent
    assert Path(second).parent.parent == runtime_dir
    assert outcome.step("second").outputs == {"ok": "1"}
    assert list(runtime_dir.iterdir()) == []


def test_the_folder_is_removed_when_a_step_fails(workspace: Workspace, runtime_dir: Path) -> None:
    outcome = workspace.run(
        "name: fails\nsteps:\n" + shows("bad", "exit 3") + shows("cleanup", **{"if": "always()"})
    )
    assert outcome.code == 1
    assert facts(outcome.lines(), "cleanup", "fs")
    assert list(runtime_dir.iterdir()) == []


def test_the_folder_is_removed_when_the_run_detaches(
    tmp_path: Path, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    (root / ".git").mkdir(parents=True)
    (root / "deploy.yml").write_text("name: detach\nsteps:\n" + shows("before") + shows("wait"))
    monkeypatch.chdir(root)
    environ = {k: v for k, v in os.environ.items() if k not in run_helpers.CI_VARIABLES}
    log = io.StringIO()
    run = start_run(
        RunRequest(
            prepared=prepare("deploy.yml", "staging", (), (), environ),
            run_id="d1",
            state_dir=root / "state",
            log=TextLog(log),
            environ=environ,
            options=RunOptions(),
        )
    )

    def detach_at_wait(ctx: StepContext) -> StepResult:
        if ctx.step.id == "wait":
            # what a manual step does under --detach-on-wait, once its folder has files in it
            assert ctx.scratch.folder is not None
            assert os.listdir(ctx.scratch.folder) == [scratch.OWNER]
            raise Detached(ctx.step.id)
        return run_script_step(ctx)

    run.kinds = {**run.kinds, "run": detach_at_wait}
    assert run.execute() == 75
    assert log.getvalue().count("before:fs=") == 1
    assert list(runtime_dir.iterdir()) == []
    # $RUNNER_TEMP too: a detach ends the job, and the resume is another
    assert (root / "state" / "runs" / "d1").is_dir()
    assert not (root / "state" / "runs" / "d1" / "tmp").exists()


def test_the_folder_is_removed_on_ctrl_c(workspace: Workspace, runtime_dir: Path) -> None:
    proc = workspace.spawn(
        "name: interrupted\nsteps:\n"
        + shows("long", 'echo "$GITHUB_OUTPUT" > where\nsleep 60')
        + shows("after", **{"if": "always()"}),
        env={"XDG_RUNTIME_DIR": str(runtime_dir)},
    )
    try:
        where = workspace.root / "where"
        run_helpers.wait_for(lambda: where.exists() and where.read_text(), what="the step to start")
        assert Path(where.read_text().strip()).parent.parent == runtime_dir
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        run_helpers.kill_quietly(proc.pid)
    assert proc.returncode == 130, out + err
    assert "  after:fs=" in out.replace("\r", "")
    assert list(runtime_dir.iterdir()) == []


def unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return done.returncode == 0


ENOSPC = """\
name: full
steps:
  - id: big
    name: big
    run: head -c 1048576 /dev/zero >> "$GITHUB_STEP_SUMMARY"
  - id: filler
    name: filler
    if: always()
    run: head -c 1048576 /dev/zero > "$(dirname "$GITHUB_OUTPUT")/filler" || true
  - id: starved
    name: starved
    if: always()
    run: |
      echo "should not run"
      # three pages of script, where the filler's script freed one: PADDING
"""


@pytest.mark.skipif(not unshare_works(), reason="no user namespaces here to mount a small tmpfs")
def test_a_full_memory_file_system_fails_the_step_not_the_run(
    workspace: Workspace, tmp_path: Path
) -> None:
    """A tmpfs of 64 KiB as ``$XDG_RUNTIME_DIR`` (a user namespace of the test's own mounts
    it): the step whose own write fills it fails with the shell's message; the step that
    finds it full fails with the runner's, and the run ends as a failed run does (exit 1)."""
    small = tmp_path / "small"
    small.mkdir(mode=0o700)
    path = workspace.write(ENOSPC.replace("PADDING", "x" * 9000))
    argv = workspace.argv(path, [], "staging", "full-1")
    mount = (
        'mount -t tmpfs -o size=64k,mode=0700 tmpfs "$XDG_RUNTIME_DIR" || exit 99; '
        '"$@"; code=$?; echo "left: $(ls -A "$XDG_RUNTIME_DIR")"; exit $code'
    )
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", mount, "sh", str(run_helpers.RUNNER), *argv],
        cwd=workspace.root,
        env=workspace.environ({"XDG_RUNTIME_DIR": str(small), "NO_COLOR": "1"}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "No space left on device" in done.stdout
    assert "should not run" not in done.stdout
    assert "could not create the step's files in " in done.stdout
    assert done.stdout.rstrip().endswith("left:")
    outcome = run_helpers.Outcome(0, "", "", workspace.state_dir, "full-1")
    assert outcome.statuses() == {"big": "failure", "filler": "success", "starved": "failure"}
    assert "No space left on device" in (outcome.step("starved").error or "")


# -- folders of runs killed with SIGKILL --------------------------------------------------------


def aged(folder: Path, seconds: float = 2 * scratch.SWEEP_AFTER) -> Path:
    """``folder`` as if its last file was made ``seconds`` ago."""
    os.utime(folder, (os.path.getmtime(folder) - seconds,) * 2)
    return folder


def test_the_folder_of_a_killed_run_goes_with_the_next_run_and_a_live_ones_stays(
    workspace: Workspace, runtime_dir: Path
) -> None:
    """A runner killed with SIGKILL leaves its folder (the step's script, secrets substituted in
    it, included); the next run of the same user removes it, and never the folder of a run that
    is still going."""

    def waiting(marker: str) -> tuple[subprocess.Popen[str], Path]:
        proc = workspace.spawn(
            f"name: {marker}\nsteps:\n"
            + shows(marker, f'echo "$GITHUB_OUTPUT" > {marker}\necho secret-{marker}\nsleep 60'),
            env={"XDG_RUNTIME_DIR": str(runtime_dir)},
            run_id=marker,
        )
        where = workspace.root / marker
        run_helpers.wait_for(lambda: where.exists() and where.read_text(), what="the step to start")
        return proc, Path(where.read_text().strip()).parent

    killed, killed_folder = waiting("killed")
    live, live_folder = waiting("live")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=60)
        run_helpers.kill_quietly(killed.pid)  # its step, which SIGKILL did not reach
        assert any(p.name.endswith("script.sh") for p in killed_folder.iterdir())
        aged(killed_folder), aged(live_folder)
        assert workspace.run("name: next\nsteps:\n" + shows("next")).code == 0
        assert not killed_folder.exists()
        assert live_folder.is_dir() and any(live_folder.iterdir())
    finally:
        live.send_signal(signal.SIGINT)
        live.communicate(timeout=60)
        run_helpers.kill_quietly(live.pid)
    assert live.returncode == 130
    assert list(runtime_dir.iterdir()) == []


def test_a_sweep_takes_only_abandoned_folders_of_ours(tmp_path: Path) -> None:
    parent = tmp_path / "shm"
    parent.mkdir()

    def folder(name: str, mode: int = 0o700, owner: bool = True, old: bool = True) -> Path:
        path = parent / name
        path.mkdir()
        (path / "1-a-1-script.sh").write_text("secret")
        if owner:
            (path / scratch.OWNER).touch()
        path.chmod(mode)
        return aged(path) if old else path

    abandoned = folder("runner-abandoned")
    no_owner = folder("runner-no-owner", owner=False)
    young = folder("runner-young", owner=False, old=False)
    shared = folder("runner-shared", mode=0o755)
    other = folder("other-abandoned")
    held = folder("runner-held")
    (parent / "runner-link").symlink_to(abandoned)
    (parent / "runner-file").write_text("x")
    handle = os.open(held / scratch.OWNER, os.O_RDWR)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another open file: a live runner's lock
        swept = scratch.sweep(str(parent))
    finally:
        os.close(handle)
    assert swept == [str(abandoned)]
    left = sorted(p.name for p in parent.iterdir())
    # no owner file: an earlier runner's, which takes no lock and may still be running
    kept = [p.name for p in (no_owner, young, shared, other, held)]
    assert left == sorted([*kept, "runner-file", "runner-link"])
    assert scratch.sweep(str(parent)) == [str(held)]  # its run has ended since


@needs_shm
def test_a_step_beside_another_cannot_swap_the_function_file_it_reads_by_a_known_name(
    workspace: Workspace, no_runtime_dir: None
) -> None:
    """An attack on one shared ``set_octopusvariable`` file (tried as a speed-up, taken out):
    a step started beside another rewrote the file the other read at its first call, and the
    other's ``-sensitive`` value was recorded and shown in clear. Each attempt has its own."""
    workflow = """
name: beside
steps:
  - id: victim
    name: victim
    run: |
      sleep 0.3
      set_octopusvariable ApiToken "tok-$((6 * 7))-secret" -sensitive
  - id: evil
    name: evil
    start: with-previous
    run: |
      for f in "$(dirname "$RUNNER_OUTPUT")"/octopus-functions.sh; do
        echo 'set_octopusvariable() { echo "$1 $2" | base64 >> /dev/null; }' > "$f"
      done
  - id: later
    name: later
    run: |
      echo "later sees #{Octopus.Action[victim].Output.ApiToken}"
"""
    outcome = workspace.run(workflow)
    assert outcome.code == 0, outcome.out + outcome.err
    assert "tok-42-secret" not in outcome.out + outcome.record_text
    assert "later sees ***" in outcome.out
