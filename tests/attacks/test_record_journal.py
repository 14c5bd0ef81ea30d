"""The run's journal (``events.jsonl``) is as tamper-evident as the sealed record (issue 20).

Each change of a run's record is one line of ``events.jsonl``, MACed with ``RUNNER_RECORD_KEY`` and
chained to the line before; ``record.json`` is a sealed snapshot that says how many lines it holds.
Whoever can replace the state folder between two jobs (the CI artifact) edits, cuts, reorders,
forges or swaps the journal here, as an attacker would, and the resume must refuse, naming the
file and the line, before anything after the gate runs. A runner killed with ``kill -9`` leaves
lines after the snapshot, and a torn last line: those are replayed, and dropped.

What is under attack is the engine's reading of the files, not a process: the runs and resumes
run in this process (``cli_in``: exit code, stdout and stderr as a subprocess gives them; the
steps' bash and git stay real). A real ``runner`` runs where the test needs a process: the run
killed with SIGKILL, and the other job resuming while this one holds the record it read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.approval_world import RUNNER, World, clean_env
from helpers.cli import cli_in
from helpers.clock import FakeClock, fake_time, real_now
from helpers.run_helpers import Workspace, kill_quietly, wait_for

from runner.engine import evidence

KEY = "5f1c" * 16
OTHER_KEY = "a0b1" * 16

WORKFLOW = """\
name: Seed
environments: [production]
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers, revoked-keys: trust/revoked_keys}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}
steps:
  - id: setup
    name: Setup
    run: |
      echo "TIER=gold" >> "$RUNNER_ENV"
      echo "built=yes" >> "$RUNNER_OUTPUT"
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
  - id: after
    name: After
    run: |
      echo "tier=$TIER"
      echo "DEPLOYED"
"""


def detached(world: World, run_id: str, *, key: str = KEY) -> Path:
    """A run detached at its gate (sealed with ``key``); its journal's path."""
    world.commit_workflow(WORKFLOW)
    assert world.monkeypatch is not None
    argv = ("run", "deploy.yml", "--env", "production", "--state-dir", "S", "--run-id", run_id)
    done = world.here(world.monkeypatch, *argv, "--detach-on-wait", env={"RUNNER_RECORD_KEY": key})
    assert done.returncode == 75, done.stdout + done.stderr
    path = world.repo / "S" / "runs" / run_id / "events.jsonl"
    assert path.is_file()
    return path


def resume(world: World, run_id: str) -> subprocess.CompletedProcess[str]:
    """``runner resume RUN_ID`` in this process."""
    assert world.monkeypatch is not None
    argv = ("resume", run_id, "--state-dir", "S", "--detach-on-wait")
    return cli_in(world.monkeypatch, world.repo, clean_env(RUNNER_RECORD_KEY=KEY), *argv)


def resume_elsewhere(world: World, run_id: str) -> subprocess.CompletedProcess[str]:
    """``runner resume RUN_ID`` as a process of its own: another job."""
    return subprocess.run(
        [RUNNER, "resume", run_id, "--state-dir", "S", "--detach-on-wait"],
        cwd=world.repo,
        capture_output=True,
        text=True,
        env=clean_env(RUNNER_RECORD_KEY=KEY),
        timeout=60,
        check=False,
    )


def refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output, output
    assert done.returncode == 5, output
    assert "Traceback" not in output, output
    for word in words:
        assert word in output, output


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def forged(previous: str, number: int, changes: dict[str, object], key: str | None) -> str:
    """A journal line as an attacker writes it: the format copied, the chain recomputed with
    the key the attacker has (another one, or none)."""
    body = f'{{"n": {number}, ' + json.dumps(changes)[1:-1]
    data = f"{previous}\n{body}".encode()
    if key is None:
        mac = "sha256:" + hashlib.sha256(data).hexdigest()
    else:
        mac = "hmac-sha256:" + hmac.new(key.encode(), data, hashlib.sha256).hexdigest()
    return f'{body}, "mac": "{mac}"}}\n'


def last_mac(line: str) -> str:
    return str(json.loads(line)["mac"])


# -- a detached run: the snapshot holds every line ------------------------------------------


def test_an_edited_journal_line_is_refused_naming_the_line(world: World) -> None:
    path = detached(world, "edit")
    text = lines(path)
    number = next(i for i, line in enumerate(text) if '"TIER": "gold"' in line)
    text[number] = text[number].replace('"TIER": "gold"', '"TIER": "platinum"')
    path.write_text("".join(text), encoding="utf-8")
    refused(resume(world, "edit"), f"events.jsonl:{number + 1}", "does not verify")


def test_a_journal_cut_in_the_middle_is_refused(world: World) -> None:
    path = detached(world, "cut")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(resume(world, "cut"), "events.jsonl", "lines were removed")


def test_a_removed_journal_is_refused(world: World) -> None:
    path = detached(world, "gone")
    path.unlink()
    refused(resume(world, "gone"), "events.jsonl is missing")


def test_a_removed_middle_line_is_refused(world: World) -> None:
    path = detached(world, "hole")
    text = lines(path)
    assert len(text) >= 4
    del text[1]
    path.write_text("".join(text), encoding="utf-8")
    refused(resume(world, "hole"), "events.jsonl:2")


def test_reordered_journal_lines_are_refused(world: World) -> None:
    path = detached(world, "order")
    text = lines(path)
    text[1], text[2] = text[2], text[1]
    path.write_text("".join(text), encoding="utf-8")
    refused(resume(world, "order"), "events.jsonl:2")


def test_a_line_forged_with_another_key_or_none_is_refused(world: World) -> None:
    """The line an attacker wants: the gate passed, the steps after it free to run."""
    path = detached(world, "forge")
    honest = path.read_text(encoding="utf-8")
    text = lines(path)
    gate = {"id": "gate", "name": "Approve release", "status": "success"}
    for key in (OTHER_KEY, None):
        line = forged(last_mac(text[-1]), len(text) + 1, {"steps": {"1": gate}}, key)
        path.write_text(honest + line, encoding="utf-8")
        refused(resume(world, "forge"), f"events.jsonl:{len(text) + 1}")


def test_a_journal_copied_from_another_run_is_refused(world: World) -> None:
    """Two runs of the same workflow by the same key: the other run's journal (a run whose
    setup wrote what the attacker wants) does not verify in this one's folder."""
    mine = detached(world, "mine")
    other = detached(world, "other")
    mine.write_bytes(other.read_bytes())
    refused(resume(world, "mine"), "events.jsonl:1", "another run's journal")


def test_the_journal_of_an_honest_detached_run_resumes(world: World) -> None:
    path = detached(world, "honest")
    before = lines(path)
    digest = hashlib.sha256((world.repo / "deploy.yml").read_bytes()).hexdigest()
    request = world.request(run_id="honest", step_id="gate", digest=digest, commit=world.head)
    raw = world.body(request, world.keys.alice).encode()
    world.push_signed(raw, world.keys.alice, run_id="honest", name="gate.alice.json")
    done = resume(world, "honest")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "tier=gold" in output and "DEPLOYED" in output
    after = lines(path)
    assert after[: len(before)] == before  # appended to, never rewritten
    assert len(after) > len(before)
    record = json.loads((path.parent / "record.json").read_text(encoding="utf-8"))
    assert record["journal"] == {"lines": len(after), "mac": last_mac(after[-1])}


# -- a run killed mid-step: lines after the snapshot -----------------------------------------

KILLED = """
name: killed
steps:
  - id: first
    name: First
    run: |
      echo "value=1" >> "$GITHUB_OUTPUT"
      echo "first ran" >> first.log
  - id: second
    name: Second
    run: |
      if [ -f go-on ]; then echo "second again"; exit 0; fi
      echo $$ > second.pid
      sleep 300
  - id: third
    name: Third
    run: echo "third saw ${{ steps.first.outputs.value }}"
"""


def kill_runner(workspace: Workspace) -> int:
    """A run whose runner is killed with SIGKILL in its second step, whose process goes on
    (its own session); that process's pid."""
    proc = workspace.spawn(KILLED, env={"RUNNER_RECORD_KEY": KEY})
    pid_file = workspace.root / "second.pid"
    try:
        wait_for(
            lambda: pid_file.exists() and pid_file.read_text().endswith("\n"),
            what="the second step",
        )
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    except BaseException:
        if pid_file.exists():
            kill_quietly(int(pid_file.read_text()), group=True)
        raise
    return int(pid_file.read_text())


def ended(pid: int) -> bool:
    """Whether ``pid`` has exited: gone, or a zombie nobody has reaped yet (a container's
    first process may never reap an orphan)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def killed(workspace: Workspace) -> Path:
    """A run killed with SIGKILL in its second step, the step's process ended too; its
    journal's path."""
    left = kill_runner(workspace)
    kill_quietly(left, group=True)
    # gone before a resume looks for the run's processes still running
    wait_for(lambda: ended(left), what="the step's process to end")
    (workspace.root / "go-on").write_text("")
    path = workspace.state_dir / "runs" / "run-1" / "events.jsonl"
    snapshot = json.loads((path.parent / "record.json").read_text(encoding="utf-8"))
    assert "journal" not in snapshot  # the snapshot is the first record: every line is newer
    assert [s["status"] for s in snapshot["steps"]] == ["pending", "pending", "pending"]
    return path


def resume_killed(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> subprocess.CompletedProcess[str]:
    """``runner resume`` of the killed run, in this process."""
    argv = ("resume", "run-1", "--state-dir", str(workspace.state_dir), "--rerun-interrupted")
    environ = workspace.environ({"RUNNER_RECORD_KEY": KEY})
    return cli_in(monkeypatch, workspace.root, environ, *argv)


def test_a_run_killed_mid_step_resumes_from_its_journal(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = killed(workspace)
    # a crash of the machine while a line was written: a torn last line
    torn = lines(path)[-1][:40]
    with path.open("a", encoding="utf-8") as out:
        out.write(torn)
    done = resume_killed(workspace, monkeypatch)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "second again" in output and "third saw 1" in output
    assert (workspace.root / "first.log").read_text() == "first ran\n"  # not run again
    text = path.read_text(encoding="utf-8")
    assert torn + "{" not in text  # cut off before the next line was appended
    assert all(line.startswith('{"n": ') for line in text.splitlines())


def test_a_line_forged_after_a_kill_is_refused(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second step marked finished, so that the resume skips it: the MAC gives it away."""
    path = killed(workspace)
    text = lines(path)
    second = {"id": "second", "name": "Second", "status": "success", "conclusion": "success"}
    for key in (OTHER_KEY, None):
        line = forged(last_mac(text[-1]), len(text) + 1, {"steps": {"1": second}}, key)
        path.write_text("".join(text) + line, encoding="utf-8")
        done = resume_killed(workspace, monkeypatch)
        output = done.stdout + done.stderr
        assert done.returncode == 5, output
        assert f"events.jsonl:{len(text) + 1}" in output, output
        assert "second again" not in output and "third saw" not in output


# -- hostile lines --------------------------------------------------------------------------


def test_a_line_nested_deep_is_refused_not_a_crash(world: World) -> None:
    """Without the key the chain is SHA-256, which anyone can extend, and a report without the
    key takes HMAC lines unchecked: a line nested 100,000 deep reached ``json.loads`` and its
    ``RecursionError`` (exit 70) in resume, ``runs show`` and ``runs list``. Journal lines are
    JSON from outside, bounded like the record (64 levels)."""
    assert world.monkeypatch is not None
    path = detached(world, "deep", key="")
    text = lines(path)
    nested = "[" * 100_000 + "]" * 100_000
    for scheme in ("sha256", "hmac-sha256"):
        body = f'{{"n": {len(text) + 1}, "set": {{"inputs": {nested}}}'
        data = f"{last_mac(text[-1])}\n{body}".encode()
        # the SHA-256 chain recomputed; an HMAC of nothing (not checked without the key)
        digest = hashlib.sha256(data).hexdigest() if scheme == "sha256" else "0" * 64
        mac = f"{scheme}:{digest}"
        path.write_text("".join(text) + f'{body}, "mac": "{mac}"}}\n', encoding="utf-8")
        for argv in (
            ("resume", "deep", "--state-dir", "S", "--detach-on-wait"),
            ("runs", "show", "deep", "--state-dir", "S"),
        ):
            done = world.here(world.monkeypatch, *argv)
            output = done.stdout + done.stderr
            assert done.returncode == 5, output
            assert f"events.jsonl:{len(text) + 1}" in output and "nested" in output, output
            assert "internal error" not in output and "Traceback" not in output, output
        listed = world.here(world.monkeypatch, "runs", "list", "--state-dir", "S")
        assert listed.returncode == 0, listed.stdout + listed.stderr


# -- two resumes at once ------------------------------------------------------------------------


def test_a_resume_that_read_the_record_before_another_went_on_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two jobs resume one run. Both read its record; one takes the run's lock first, runs the
    gate's steps to the end and lets go. The other then took the lock and went on from the
    record it had read: it ran the deployment again and, appending where its own copy of the
    journal ended, cut off every line the first had written (a decision the runner had seen
    among them). It must find the record changed under it and stop, losing nothing."""
    path = detached(world, "race")
    digest = hashlib.sha256((world.repo / "deploy.yml").read_bytes()).hexdigest()
    request = world.request(run_id="race", step_id="gate", digest=digest, commit=world.head)
    raw = world.body(request, world.keys.alice).encode()
    world.push_signed(raw, world.keys.alice, run_id="race", name="gate.alice.json")
    first: list[subprocess.CompletedProcess[str]] = []
    checked = evidence.check_record

    def other_job_first(*args: Any, **kwargs: Any) -> None:
        if not first:
            first.append(resume_elsewhere(world, "race"))  # the other job, to its end
        checked(*args, **kwargs)

    monkeypatch.setattr(evidence, "check_record", other_job_first)
    done = world.here(
        monkeypatch,
        "resume",
        "race",
        "--state-dir",
        "S",
        "--detach-on-wait",
        env={"RUNNER_RECORD_KEY": KEY},
    )
    output = done.stdout + done.stderr
    assert first[0].returncode == 0, first[0].stdout + first[0].stderr
    assert "DEPLOYED" in first[0].stdout
    assert done.returncode == 5, output
    assert "DEPLOYED" not in output and "another process" in output, output
    after = lines(path)
    record = json.loads((path.parent / "record.json").read_text(encoding="utf-8"))
    assert record["status"] == "success"
    assert record["journal"] == {"lines": len(after), "mac": last_mac(after[-1])}
    assert resume(world, "race").returncode == 0  # the whole journal still verifies


def test_the_journal_of_another_run_with_the_same_id_is_refused(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployer chooses the run id. A run killed mid-step has every journal line after its
    snapshot (its first record); the journal of another run given the same id, with the same
    key (in another state folder: it ran to the end), chained from the same start when the
    chain began at the run id alone, and replayed over this run's snapshot it made the killed
    deployment read as finished and successful. The chain begins at the run's start too."""
    path = killed(workspace)
    other = workspace.root / "other-state"
    argv = ["run", "deploy.yml", "--env", "staging", "--state-dir", str(other), "--run-id", "run-1"]
    done = cli_in(monkeypatch, workspace.root, workspace.environ({"RUNNER_RECORD_KEY": KEY}), *argv)
    assert done.returncode == 0, done.stdout + done.stderr
    path.write_bytes((other / "runs" / "run-1" / "events.jsonl").read_bytes())
    done = resume_killed(workspace, monkeypatch)
    output = done.stdout + done.stderr
    assert done.returncode == 5, output
    assert "events.jsonl:1" in output and "another run's journal" in output, output


def test_a_huge_or_endless_record_file_is_refused_not_read(world: World) -> None:
    """The state folder's files replaced by a 64 GB sparse file (read whole, it was a
    ``MemoryError``, exit 70, or the machine's memory) or a FIFO (a reader blocks for ever): each
    is refused by ``resume`` and ``runs show``, naming the file, and the honest files put back
    resume as before."""
    journal_path = detached(world, "huge")
    folder = journal_path.parent
    honest = {name: (folder / name).read_bytes() for name in ("events.jsonl", "record.json")}
    for name, what in (("events.jsonl", "journal"), ("record.json", "record")):
        for kind in ("huge", "fifo"):
            target = folder / name
            target.unlink()
            if kind == "huge":
                with open(target, "wb") as handle:
                    handle.truncate(64 << 30)
                why = "more than the 64 MiB"
            else:
                os.mkfifo(target)
                why = "not a regular file"
            refused(resume(world, "huge"), name, what, why)
            assert world.monkeypatch is not None
            show = cli_in(
                world.monkeypatch,
                world.repo,
                clean_env(),
                "runs",
                "show",
                "huge",
                "--state-dir",
                "S",
            )
            assert show.returncode == 5 and why in show.stderr, show.stdout + show.stderr
            target.unlink()
            target.write_bytes(honest[name])
    done = resume(world, "huge")
    assert done.returncode == 75, done.stdout + done.stderr


def test_a_finished_run_put_back_before_its_deployment_asks_its_expired_gate_again(
    world: World,
) -> None:
    """Found by an attack pass: job 1's sealed snapshot with job 2's journal cut just after
    its "gate passed" line (both files genuine, their MACs valid: a snapshot followed by more
    lines is what a killed runner leaves) resumed to run the deployment again, any time later:
    the gate's approval was checked as of when it was decided. The steps only that gate lets
    run have not run there, so its approval must be valid now, and it expired: the gate is
    asked again. (Two hours later: the resume's check and the run's clock, in this process.)"""
    import datetime as dt
    import shutil

    path = detached(world, "splice")
    job1 = world.root / "job1"
    shutil.copytree(world.repo / "S", job1)
    digest = hashlib.sha256((world.repo / "deploy.yml").read_bytes()).hexdigest()
    request = world.request(run_id="splice", step_id="gate", digest=digest, commit=world.head)
    raw = world.body(request, world.keys.alice).encode()  # valid for an hour
    world.push_signed(raw, world.keys.alice, run_id="splice", name="gate.alice.json")
    done = resume(world, "splice")
    assert done.returncode == 0 and "DEPLOYED" in done.stdout, done.stdout + done.stderr
    journal = lines(path)
    passed = next(
        i
        for i, line in enumerate(journal)
        if any(
            s.get("id") == "gate" and s.get("status") == "success"
            for s in json.loads(line).get("steps", {}).values()
        )
    )
    shutil.rmtree(world.repo / "S")
    shutil.copytree(job1, world.repo / "S")
    path.write_text("".join(journal[: passed + 1]), encoding="utf-8")
    later = real_now() + dt.timedelta(hours=2)

    class Later(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Later:
            return cls.fromtimestamp(later.timestamp(), tz)

    assert world.monkeypatch is not None
    world.monkeypatch.setattr(evidence, "datetime", Later)
    fake_time(world.monkeypatch, FakeClock(later))
    done = resume(world, "splice")
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output, output
    assert done.returncode == 75, output
    assert "gate `gate`: its approval is no longer valid" in output, output
    assert "approval expired" in output, output


def test_a_step_still_running_after_its_runner_was_killed_is_not_started_twice(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a newcomer pass: after `kill -9` of the runner, its step (its own session)
    went on running, and `resume --rerun-interrupted` started a second copy beside it: two
    migrations at once. The resume finds the run's processes still on this host and refuses
    until they are gone, then runs the step again."""
    left = kill_runner(workspace)
    try:
        for rerun in (True, False):
            argv = ("resume", "run-1", "--state-dir", str(workspace.state_dir))
            done = cli_in(
                monkeypatch,
                workspace.root,
                workspace.environ({"RUNNER_RECORD_KEY": KEY}),
                *argv,
                *(["--rerun-interrupted"] if rerun else []),
            )
            output = done.stdout + done.stderr
            assert done.returncode == 5, output
            assert "step(s) second were running when the runner stopped, and processes" in output
            assert str(left) in output and "second again" not in output
    finally:
        kill_quietly(left, group=True)
    wait_for(lambda: ended(left), what="the step's process to end")
    (workspace.root / "go-on").write_text("")
    done = resume_killed(workspace, monkeypatch)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "second again" in output and "third saw 1" in output


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_a_resume_never_writes_through_a_link_in_the_state_folder(
    world: World, linked: str
) -> None:
    """The state folder travels as a CI artifact: a link put at the gate's request file
    (``steps/gate/request.json`` -> the resume machine's ``~/.bashrc``, or ``steps/gate`` -> a
    folder of the attacker's choosing) made the resumed run write the request there, over the
    file the link named."""
    journal_path = detached(world, f"link-{linked}")
    step_dir = journal_path.parent / "steps" / "gate"
    victim = world.root / "victim"
    victim.mkdir()
    (victim / "request.json").write_text("precious\n")
    if linked == "file":
        (step_dir / "request.json").unlink()
        (step_dir / "request.json").symlink_to(victim / "request.json")
    else:
        shutil.rmtree(step_dir)
        step_dir.symlink_to(victim, target_is_directory=True)
    done = resume(world, f"link-{linked}")
    assert (victim / "request.json").read_text() == "precious\n"
    assert sorted(p.name for p in victim.iterdir()) == ["request.json"]
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "internal error" not in output, output
    if linked == "file":
        assert done.returncode == 75, output
        assert not (step_dir / "request.json").is_symlink()
    else:  # the gate fails: nothing after it runs
        assert done.returncode == 1, output
        assert "DEPLOYED" not in output, output
        assert f"{step_dir} is a link, not the folder the runner made" in output


@pytest.mark.parametrize("kind", ["a link", "a FIFO"])
def test_a_resume_never_follows_a_link_at_the_runs_lock_file(world: World, kind: str) -> None:
    """The run's ``.lock`` in the state folder artifact replaced by a link to a file of the
    resume machine (one that is not there yet, ``~/.ssh/authorized_keys`` say): the resume made
    the file there and locked it. It is refused as a state folder changed, and nothing runs."""
    journal_path = detached(world, f"lock-{kind[2:]}")
    lock = journal_path.parent / ".lock"
    victim = world.root / "victim"
    victim.mkdir()
    lock.unlink(missing_ok=True)
    if kind == "a link":
        lock.symlink_to(victim / "authorized_keys")
    else:
        os.mkfifo(lock)
    done = resume(world, f"lock-{kind[2:]}")
    refused(done, f"{lock} is" if kind == "a link" else f"{lock} is not a regular file")
    assert list(victim.iterdir()) == []
