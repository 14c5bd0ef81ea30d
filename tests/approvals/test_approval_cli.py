"""``runner approval new`` and ``runner approval verify`` with real keys and a git trust ref."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers.git_world import git

from runner.approvals.document import instant, parse_body, parse_instant
from runner.approvals.request import FieldSpec, inputs_digest
from runner.cli.main import main

if TYPE_CHECKING:
    from helpers.approval_world import World

WORKFLOW = """\
name: Seed
environments: [production, staging]
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers, revoked-keys: trust/revoked_keys}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}
steps:
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
"""

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``runner ARGS`` in this process; return (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def deployed(world: World) -> Path:
    """The workflow on main, and the request file its waiting run would have written."""
    world.commit_workflow(WORKFLOW)
    request = world.request()
    path = world.root / "request.json"
    path.write_text(json.dumps(request.to_dict(), indent=2) + "\n", encoding="utf-8")
    return world.repo / "deploy.yml"


def new(cli: Cli, world: World, *args: str, key: str = "alice") -> tuple[int, str, str]:
    principal = f"{key}@example.com"
    return cli(
        "approval",
        "new",
        "--request",
        str(world.root / "request.json"),
        "--key",
        str(getattr(world.keys, key).path),
        "--principal",
        principal,
        "--out",
        str(world.root / "out"),
        *args,
    )


def written(world: World, name: str = "gate.alice@example.com.json") -> Path:
    return world.root / "out" / "r1" / name


# -- approval new ------------------------------------------------------------------------------


def test_new_writes_a_canonical_signed_body(
    cli: Cli,
    world: World,
    deployed: Path,
    ssh_keygen_verify: Callable[..., subprocess.CompletedProcess[bytes]],
) -> None:
    request = world.request(fields=(FieldSpec("ticket", "string"),))
    (world.root / "request.json").write_text(json.dumps(request.to_dict()), encoding="utf-8")
    code, out, err = new(
        cli, world, "--decision", "proceed", "--notes", "Desk told", "--field", "ticket=CHG-7"
    )
    assert (code, err) == (0, "")
    path = written(world)
    sig = path.with_name(path.name + ".sig")
    raw = path.read_bytes()
    body = parse_body(raw)
    # what it approves is said first: the request file may have been swapped in the artifact
    assert out == (
        "signed: proceed of run r1, step gate, environment production\n"
        f"  commit {world.head[:12]}, workflow digest {body.workflow_digest[:12]}\n"
        f"  valid until {body.expires_at}\n"
        "check that this is the run you reviewed: the file approves exactly it\n"
        f"wrote {path}\n  and {sig}\n"
        # --out is not in a git repository here: a `git add` would fail, so say what to do
        f"now: {path.parent} is not in a git repository; copy both files into a clone of the "
        "approvals branch (same folder layout), then git add, commit and push them there\n"
    )
    raw = path.read_bytes()
    body = parse_body(raw)
    assert body.encode() == raw  # canonical: what parse_body reads is what encode writes
    request = world.request()
    assert (body.run_id, body.step_id, body.environment) == ("r1", "gate", "production")
    assert (body.workflow_digest, body.commit) == (request.digest, world.head)
    assert (body.decision, body.approver, body.notes) == (
        "proceed",
        "alice@example.com",
        "Desk told",
    )
    assert body.fields == {"ticket": "CHG-7"}
    assert body.format == "runner-approval/v1"
    assert body.expires - body.issued == timedelta(minutes=720)
    checked = ssh_keygen_verify(
        world.root, world.keys.allowed_signers(), "alice@example.com", raw, sig.read_bytes()
    )
    assert checked.returncode == 0, checked.stderr


def test_new_valid_minutes(cli: Cli, world: World, deployed: Path) -> None:
    code, _, _ = new(cli, world, "--decision", "proceed", "--valid-minutes", "30")
    assert code == 0
    body = parse_body(written(world).read_bytes())
    assert body.expires - body.issued == timedelta(minutes=30)
    assert body.notes == ""


@pytest.mark.parametrize("notes", [[], ["--notes", "  "]], ids=["no-notes", "blank-notes"])
def test_new_abort_needs_notes(cli: Cli, world: World, deployed: Path, notes: list[str]) -> None:
    code, out, err = new(cli, world, "--decision", "abort", *notes)
    assert (code, out) == (2, "")
    assert err == "error: an abort needs --notes saying why\n"
    assert not (world.root / "out").exists()


def test_new_abort_with_notes(cli: Cli, world: World, deployed: Path) -> None:
    code, _, _ = new(cli, world, "--decision", "abort", "--notes", "market is closed")
    assert code == 0
    body = parse_body(written(world).read_bytes())
    assert (body.decision, body.notes) == ("abort", "market is closed")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--step", "deploy", "--step deploy does not match the request file (gate)"),
        ("--digest", "b" * 64, f"--digest {'b' * 64} does not match the request file ({'d' * 64})"),
        pytest.param("--run-id", "r2", "--run-id r2 does not match the request file (r1)"),
        pytest.param(
            "--env", "staging", "--env staging does not match the request file (production)"
        ),
    ],
    ids=["step", "digest", "run-id", "env"],
)
def test_new_refuses_options_that_contradict_the_request(
    cli: Cli, world: World, deployed: Path, option: str, value: str, message: str
) -> None:
    code, out, err = new(cli, world, "--decision", "proceed", option, value)
    assert (code, out) == (2, "")
    assert not (world.root / "out").exists()
    assert err == f"error: {message}\n"


def test_new_binds_the_inputs_the_request_shows(cli: Cli, world: World, deployed: Path) -> None:
    """From the request file, or with --inputs-digest as the waiting run prints it; a digest
    that is not of the request's inputs is refused before anything is signed."""
    inputs = {"version": "1.4.2"}
    request = world.request(inputs=inputs)
    (world.root / "request.json").write_text(json.dumps(request.to_dict()), encoding="utf-8")
    code, out, _ = new(cli, world, "--decision", "proceed")
    assert code == 0
    assert parse_body(written(world).read_bytes()).inputs_digest == inputs_digest(inputs)
    # said before it is written (found by an attack pass: another run's request file, swapped
    # into the artifact under the same run id, was signed unseen)
    assert f'  inputs {{"version": "1.4.2"}} (digest {inputs_digest(inputs)[:12]})\n' in out
    code, out, err = new(cli, world, "--decision", "proceed", "--inputs-digest", "a" * 64)
    assert (code, out) == (2, "")
    assert err == f"error: --inputs-digest {'a' * 64} does not match the request file's inputs\n"


@pytest.mark.parametrize("digest", ["", "nothex", "A" * 64, "a" * 63])
def test_new_refuses_an_inputs_digest_that_is_not_one(
    cli: Cli, world: World, deployed: Path, digest: str
) -> None:
    """Signed, such an approval could never count."""
    code, out, err = new(cli, world, "--decision", "proceed", "--inputs-digest", digest)
    assert (code, out) == (2, "")
    assert err.startswith("error: --inputs-digest must be the 64 lower-case hex digits")
    assert not (world.root / "out").exists()


def test_new_without_request_needs_every_binding(cli: Cli, world: World) -> None:
    code, out, err = cli(
        "approval",
        "new",
        "--run-id",
        "r1",
        "--step",
        "gate",
        "--env",
        "production",
        "--decision",
        "proceed",
        "--key",
        str(world.keys.alice.path),
        "--principal",
        "alice@example.com",
        "--out",
        str(world.root / "out"),
    )
    assert (code, out) == (2, "")
    assert err == "error: --digest is required (or --request FILE from the waiting run)\n"


# -- fields: said in the log, judged before signing, by the gate's rule (newcomer pass) -------

TICKET_WORKFLOW = (
    WORKFLOW
    + """\
      fields:
        - name: ticket
          type: string
          pattern: "^CHG-[0-9]+$"
          required: true
"""
)


@pytest.fixture
def waiting(world: World, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A run of a step asking for a ticket, detached at its gate: its log and request file."""
    world.commit_workflow(TICKET_WORKFLOW)
    done = world.here(
        monkeypatch,
        *("run", "deploy.yml", "--env", "production", "--state-dir", "S", "--run-id", "r1"),
        "--detach-on-wait",
    )
    assert done.returncode == 75, done.stderr
    return done.stdout + done.stderr, world.repo / "S/runs/r1/steps/gate/request.json"


def test_the_log_says_which_fields_a_proceed_gives(waiting: tuple[str, Path]) -> None:
    log, _ = waiting
    assert (
        "Fields (a proceed gives them; an abort needs none):\n"
        "  ticket: string, required, matching ^CHG-[0-9]+$\n"
    ) in log
    (command,) = [line for line in log.splitlines() if "via file: runner approval new" in line]
    # the field by name, not a placeholder NAME=VALUE (copied as printed, the run refused it)
    assert " --field ticket=... --branch " in command
    assert "NAME=VALUE" not in command


HINT = (
    "hint: the step's fields: ticket: string, required, matching ^CHG-[0-9]+$ "
    "(give each as --field NAME=VALUE)\n"
)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), "the run will refuse this proceed: field 'ticket' is required"),
        (
            ("--field", "ticket=CHG"),
            "the run will refuse this proceed: field 'ticket' does not match ^CHG-[0-9]+$, "
            "got 'CHG'",
        ),
        (
            ("--field", "ticket=CHG-1", "--field", "tiket=CHG-1"),
            "the run will refuse this proceed: unknown field 'tiket'",
        ),
    ],
    ids=["missing", "not-matching", "unknown"],
)
def test_new_refuses_fields_the_run_refuses(
    cli: Cli, world: World, waiting: tuple[str, Path], args: tuple[str, ...], error: str
) -> None:
    _, request = waiting
    (world.root / "request.json").write_bytes(request.read_bytes())
    code, out, err = new(cli, world, "--decision", "proceed", *args)
    assert (code, out) == (2, "")
    assert err == f"error: {error}\n{HINT}"
    assert not (world.root / "out").exists()


def test_new_signs_what_the_run_accepts(
    cli: Cli, world: World, waiting: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proceed with its ticket, and an abort without one (the gate asks no fields of an
    abort), both count when the run resumes."""
    _, request = waiting
    (world.root / "request.json").write_bytes(request.read_bytes())
    code, _, err = new(cli, world, "--decision", "abort", "--notes", "window open", key="bob")
    assert (code, err) == (0, "")
    code, _, err = new(cli, world, "--decision", "proceed", "--field", "ticket=CHG-12")
    assert (code, err) == (0, "")
    body = parse_body(written(world).read_bytes())
    assert body.fields == {"ticket": "CHG-12"}


def test_new_refuses_the_logs_placeholder(cli: Cli, world: World, deployed: Path) -> None:
    """Without --request the fields cannot be judged; the value the log prints to be filled in
    is refused all the same."""
    code, out, err = new(cli, world, "--decision", "proceed", "--field", "ticket=...")
    assert (code, out) == (2, "")
    assert err == (
        "error: --field ticket=...: `...` is the log's placeholder\n"
        "hint: give the value, --field ticket=VALUE (the log lists what it takes)\n"
    )


def test_new_refuses_fields_of_a_step_that_asks_none(
    cli: Cli, world: World, deployed: Path
) -> None:
    code, out, err = new(cli, world, "--decision", "proceed", "--field", "ticket=CHG-1")
    assert (code, out) == (2, "")
    assert err == (
        "error: the run will refuse this proceed: unknown field 'ticket'\n"
        "hint: the step asks for no fields: leave out --field\n"
    )


def test_verify_says_the_run_will_refuse_its_fields(cli: Cli, world: World, deployed: Path) -> None:
    """Signed without the request file (so unchecked), the file's proof holds but the workflow's
    step refuses its fields: said, and exit 1, before it is pushed."""
    for args in (("--field", "ticket=CHG-1"), ()):
        code, _, err = cli(
            "approval",
            "new",
            *("--run-id", "r1", "--step", "gate", "--env", "production"),
            *("--digest", "d" * 64, "--commit", world.head, "--decision", "proceed", *args),
            *("--key", str(world.keys.alice.path), "--principal", "alice@example.com"),
            *("--out", str(world.root / f"out{len(args)}")),
        )
        assert (code, err) == (0, "")
    workflow = world.commit_workflow(TICKET_WORKFLOW)
    with_ticket = world.root / "out2/r1/gate.alice@example.com.json"
    without = world.root / "out0/r1/gate.alice@example.com.json"
    code, out, _ = verify(cli, with_ticket, workflow)
    assert (code, out.splitlines()[-1]) == (0, "valid")
    code, out, _ = verify(cli, without, workflow)
    assert code == 1
    assert out.splitlines()[0].startswith(f"{without}: signature valid (")
    assert out.splitlines()[-1] == (
        "signature valid, but the run will refuse it: field 'ticket' is required"
    )
    code, out, _ = verify(cli, without, workflow, "--run-id", "r2")
    assert code == 1
    assert out.splitlines()[-1] == (
        "NOT valid: it is for run r1, not r2; the run will refuse it too: "
        "field 'ticket' is required"
    )


# -- --out: a checkout of the approvals branch, never of the deployed one (newcomer pass) -----


def test_new_refuses_to_write_into_the_deployed_branch(
    cli: Cli, world: World, waiting: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default --out, in a clone of main, put the files next to main's own files and printed
    a push to main, where the run never reads them. Refused, with how to check out the
    approvals branch; following the hint, the approval is pushed where the run reads it."""
    log, request = waiting
    world.push({"approvals/README.md": b"signed approvals\n"}, "approvals branch")
    (command,) = [line for line in log.splitlines() if "via file: runner approval new" in line]
    assert command.endswith(" --branch approvals --out ../approvals-branch/approvals")
    assert json.loads(request.read_text())["file_source"] == {
        "remote": "origin",
        "branch": "approvals",
        "path": "approvals",
    }
    monkeypatch.chdir(world.repo)
    # the log's command as printed, filled in
    printed = shlex.split(command.split("via file: ", 1)[1])[1:]
    filled = {
        "...": "ok",
        "ticket=...": "ticket=CHG-1",
        "~/.ssh/id_ed25519": str(world.keys.alice.path),
    }
    sign = [filled.get(arg, arg) for arg in printed] + ["--principal", "alice@example.com"]
    top = git(world.repo, "rev-parse", "--show-toplevel")
    refusal = (
        f"is in the checkout {top}, on branch main; the run reads approvals only from branch "
        "approvals: pushed from here, they would never count (and a push to the deployed "
        "branch may start a deployment)\n"
    )
    # with --out approvals (the default) instead
    code, out, err = cli(*sign, "--out", "approvals")
    assert (code, out) == (2, "")
    assert err == (
        f"error: --out approvals {refusal}"
        "hint: check out branch approvals beside this clone: git fetch origin approvals && "
        "git worktree add ../approvals-branch approvals, then pass --out "
        "../approvals-branch/approvals\n"
    )
    assert not (world.repo / "approvals").exists()
    hint = err.splitlines()[1].removeprefix("hint: check out branch approvals beside this clone: ")
    subprocess.run(hint.split(", then ")[0], shell=True, check=True, capture_output=True)
    # the request file says which branch too; the worktree now there is named
    by_request = ("approval", "new", "--request", str(request), "--decision", "proceed")
    code, _, err = cli(*by_request, *sign[sign.index("--notes") :], "--out", "approvals")
    assert err == (
        f"error: --out approvals {refusal}"
        f"hint: it is checked out in {Path(top).parent / 'approvals-branch'}: pass --out "
        "../approvals-branch/approvals\n"
    )
    code, out, err = cli(*sign)
    assert (code, err) == (0, "")
    publish = out.splitlines()[-1].removeprefix("now: ")
    assert publish.endswith(" push")
    subprocess.run(publish, shell=True, check=True, capture_output=True)
    done = world.here(monkeypatch, "resume", "r1", "--state-dir", "S", "--detach-on-wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "proceed by Alice Martin via file: ok" in done.stdout


def test_without_the_branch_no_push_is_printed(cli: Cli, world: World, deployed: Path) -> None:
    """Nothing says which branch the run reads: the files are written, and the push left to the
    approver with what to check."""
    code, out, err = new(cli, world, "--decision", "proceed", "--out", str(world.repo / "a"))
    assert (code, err) == (0, "")
    folder = world.repo / "a" / "r1"
    assert out.splitlines()[-1] == (
        f"now: git -C {folder} add gate.alice@example.com.json gate.alice@example.com.json.sig "
        f"&& git -C {folder} commit -m 'Approve r1', then push it to the branch the workflow's "
        "`file` source reads (approvals.file.branch; pass --branch, or --request, to have --out "
        "checked)"
    )


# -- approval verify ---------------------------------------------------------------------------


def verify(cli: Cli, path: Path, workflow: Path, *args: str) -> tuple[int, str, str]:
    return cli("approval", "verify", str(path), "--workflow", str(workflow), *args)


def test_verify_a_valid_file(cli: Cli, world: World, deployed: Path) -> None:
    assert new(cli, world, "--decision", "proceed", "--notes", "Desk told")[0] == 0
    path = written(world)
    raw = path.read_bytes()
    body = parse_body(raw)
    code, out, err = verify(cli, path, deployed, "--run-id", "r1")
    assert (code, err) == (0, "")
    assert out == (
        f"{path}: signature valid (ssh-ed25519 {world.keys.alice.fingerprint}, "
        "namespace runner-approval)\n"
        "  who:      alice@example.com = Alice Martin (alice; teams: trading-desk)\n"
        "  decision: proceed: Desk told\n"
        "  run:      r1, step gate, environment production\n"
        f"  workflow: digest {'d' * 64}, commit {world.head}\n"
        f"  valid:    {body.issued_at} to {body.expires_at}\n"
        f"  sha256:   {hashlib.sha256(raw).hexdigest()}\n"
        "valid\n"
    )


def test_verify_the_wrong_run(cli: Cli, world: World, deployed: Path) -> None:
    assert new(cli, world, "--decision", "proceed")[0] == 0
    code, out, _ = verify(cli, written(world), deployed, "--run-id", "r2")
    assert code == 1
    assert out.splitlines()[-1] == "NOT valid: it is for run r1, not r2"


def test_verify_at_times(cli: Cli, world: World, deployed: Path) -> None:
    assert new(cli, world, "--decision", "proceed", "--valid-minutes", "60")[0] == 0
    path = written(world)
    body = parse_body(path.read_bytes())
    issued = parse_instant(body.issued_at, "issued_at")

    before = instant(issued - timedelta(minutes=6))
    code, out, _ = verify(cli, path, deployed, "--at", before)
    assert code == 1
    assert out.splitlines()[-1] == f"NOT valid: approval is issued in the future ({body.issued_at})"

    within_skew = instant(issued - timedelta(minutes=5))
    code, out, _ = verify(cli, path, deployed, "--at", within_skew)
    assert (code, out.splitlines()[-1]) == (0, f"valid as of {within_skew}")

    code, out, _ = verify(cli, path, deployed, "--at", body.expires_at)
    assert code == 1
    assert out.splitlines()[-1] == f"NOT valid: approval expired at {body.expires_at}"

    last_second = instant(issued + timedelta(minutes=60) - timedelta(seconds=1))
    code, out, _ = verify(cli, path, deployed, "--at", last_second)
    assert (code, out.splitlines()[-1]) == (0, f"valid as of {last_second}")


def test_verify_at_needs_a_utc_time(cli: Cli, world: World, deployed: Path) -> None:
    assert new(cli, world, "--decision", "proceed")[0] == 0
    path = written(world)
    code, out, _ = verify(cli, path, deployed, "--at", "2026-01-31 12:00")
    assert code == 1
    assert out == f"{path}: NOT valid: `--at` must be a UTC time like 2026-01-31T12:00:00Z\n"


def test_verify_a_tampered_file(cli: Cli, world: World, deployed: Path) -> None:
    assert new(cli, world, "--decision", "proceed", "--notes", "Desk told")[0] == 0
    path = written(world)
    path.write_bytes(path.read_bytes().replace(b"Desk told", b"Desk sold"))
    code, out, err = verify(cli, path, deployed)
    assert (code, err) == (1, "")
    assert out == f"{path}: NOT valid: signature does not match\n"


def test_verify_a_revoked_key(cli: Cli, world: World, deployed: Path) -> None:
    assert new(cli, world, "--decision", "proceed", key="dave")[0] == 0
    path = written(world, "gate.dave@example.com.json")
    code, out, _ = verify(cli, path, deployed)
    assert code == 1
    assert out == f"{path}: NOT valid: key {world.keys.dave.fingerprint} is revoked\n"


def test_verify_a_missing_signature(cli: Cli, world: World, deployed: Path) -> None:
    assert new(cli, world, "--decision", "proceed")[0] == 0
    path = written(world)
    path.with_name(path.name + ".sig").unlink()
    code, out, err = verify(cli, path, deployed)
    assert (code, out) == (2, "")
    assert err == f"error: cannot read {path}.sig: No such file or directory\n"


def test_verify_refuses_working_tree_trust_without_the_flag(cli: Cli, world: World) -> None:
    workflow = world.commit_workflow(
        WORKFLOW.replace("{ref: refs/remotes/origin/approvals-trust, ", "{"),
        {
            "trust/people.yml": world.PEOPLE_YML,
            "trust/allowed_signers": world.keys.allowed_signers(),
            "trust/revoked_keys": world.keys.revoked_keys(),
        },
    )
    path = world.root / "request.json"
    path.write_text(json.dumps(world.request().to_dict()), encoding="utf-8")
    assert new(cli, world, "--decision", "proceed")[0] == 0
    code, out, err = verify(cli, written(world), workflow)
    assert (code, out) == (2, "")
    assert err == (
        "error: the workflow reads trust from the working tree; set `approvals.trust.ref` or "
        "pass --insecure-local-trust\n"
    )
    code, out, _ = verify(cli, written(world), workflow, "--insecure-local-trust")
    assert (code, out.splitlines()[-1]) == (0, "valid")


@pytest.mark.parametrize(
    ("issued", "expires"),
    [(timedelta(0), timedelta(days=30)), (timedelta(minutes=2), timedelta(minutes=1))],
    ids=["thirty-days", "expires-before-issue"],
)
def test_verify_refuses_a_window_the_runner_refuses(
    cli: Cli, world: World, deployed: Path, issued: timedelta, expires: timedelta
) -> None:
    alice = world.keys.alice
    request = world.request()
    start = parse_instant(request.created, "created")
    body = world.body(
        request, alice, issued_at=instant(start + issued), expires_at=instant(start + expires)
    )
    path = world.root / "gate.json"
    path.write_bytes(body.encode())
    path.with_name("gate.json.sig").write_bytes(world.sign(body.encode(), alice))
    code, out, _ = verify(cli, path, deployed, "--at", instant(start))
    assert out.splitlines()[-1].startswith("NOT valid: ")
    assert code == 1


def test_verify_through_the_installed_command(world: World, deployed: Path) -> None:
    """The same check through the real ``runner`` executable and its exit code."""
    alice = world.keys.alice
    request = world.request()
    raw = world.body(request, alice).encode()
    folder = world.root / "manual"
    folder.mkdir()
    (folder / "gate.json").write_bytes(raw)
    (folder / "gate.json.sig").write_bytes(world.sign(raw, alice))
    runner = str(Path(sys.executable).with_name("runner"))
    done = subprocess.run(
        [runner, "approval", "verify", str(folder / "gate.json"), "--workflow", str(deployed)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "valid"
    done = subprocess.run(
        [
            runner,
            "approval",
            "verify",
            str(folder / "gate.json"),
            "--workflow",
            str(deployed),
            "--run-id",
            "r9",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "NOT valid: it is for run r1, not r9"


# -- guided failure (issue 21) -------------------------------------------------------------------


def test_new_answers_a_failed_step_bound_to_its_attempt(
    cli: Cli, world: World, deployed: Path
) -> None:
    request = world.request(
        id="r1--gate@attempt-2", kind="guided-failure", attempt=2, choices=("retry", "fail")
    )
    (world.root / "request.json").write_text(json.dumps(request.to_dict()), encoding="utf-8")
    code, _, err = new(cli, world, "--decision", "retry")
    assert (code, err) == (0, "")
    body = parse_body(written(world, "gate.attempt-2.alice@example.com.json").read_bytes())
    assert (body.kind, body.attempt, body.decision) == ("guided-failure", 2, "retry")
    code, out, err = new(cli, world, "--decision", "skip")
    assert (code, out, err) == (2, "", "error: a skip needs --notes saying why\n")
    code, out, err = new(cli, world, "--decision", "proceed")
    assert (code, out) == (2, "")
    assert err == (
        "error: --decision proceed does not answer a failed step's question (attempt 2): "
        "choose retry, skip or fail\n"
    )
    code, out, err = new(cli, world, "--decision", "retry", "--attempt", "1")
    assert (code, out) == (2, "")
    assert err == "error: --attempt 1 does not match the request file (2)\n"


def test_new_refuses_a_guided_decision_for_a_manual_step(
    cli: Cli, world: World, deployed: Path
) -> None:
    code, out, err = new(cli, world, "--decision", "retry")
    assert (code, out) == (2, "")
    assert err.startswith("error: --decision retry does not answer a manual step")
    code, _, err = new(cli, world, "--decision", "retry", "--attempt", "3", "--notes", "x")
    assert (code, err) == (
        2,
        "error: --attempt 3: the request file is a manual step's, which a proceed or abort "
        "answers\n",
    )


def test_new_says_and_binds_the_steps_the_run_skips(cli: Cli, world: World, deployed: Path) -> None:
    request = world.request(skipped=("backup",))
    (world.root / "request.json").write_text(json.dumps(request.to_dict()), encoding="utf-8")
    code, out, err = new(cli, world, "--decision", "proceed")
    assert (code, err) == (0, "")
    body = parse_body(written(world).read_bytes())
    assert "  skipping (--skip) backup\n" in out
    assert body.inputs_digest == inputs_digest({}, ("backup",))
    assert body.inputs_digest is not None and body.inputs_digest != inputs_digest({})


@pytest.mark.parametrize("skipped", [5, [{}], "backup", ["../x"]])
def test_new_refuses_a_request_whose_skipped_steps_are_not_step_ids(
    cli: Cli, world: World, deployed: Path, skipped: object
) -> None:
    """A review found `"skipped": 5` an internal error (exit 70), and a text hashed letter by
    letter."""
    data = world.request().to_dict() | {"skipped": skipped}
    (world.root / "request.json").write_text(json.dumps(data), encoding="utf-8")
    code, _, err = new(cli, world, "--decision", "proceed")
    assert code == 2, err
    assert "`skipped` must be a list of step ids" in err


def test_new_takes_the_printed_inputs_digest_beside_a_request_that_skips(
    cli: Cli, world: World, deployed: Path
) -> None:
    """The log's --inputs-digest binds the skipped steps: beside the request file it was
    refused as "does not match the request file's inputs" (review)."""
    request = world.request(inputs={"version": "1.4.2"}, skipped=("backup",))
    (world.root / "request.json").write_text(json.dumps(request.to_dict()), encoding="utf-8")
    printed = inputs_digest(request.inputs, request.skipped)
    assert printed is not None
    code, _, err = new(cli, world, "--decision", "proceed", "--inputs-digest", printed)
    assert (code, err) == (0, "")
    assert parse_body(written(world).read_bytes()).inputs_digest == printed
