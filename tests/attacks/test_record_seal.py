"""A rewritten record does not run its writer's code on resume, and a sealed record cannot be
rewritten at all (#17).

The state folder travels between CI jobs as an artifact; the resume job holds the production
secrets. A record's environment (what steps set through ``RUNNER_ENV`` / ``RUNNER_PATH`` before
the gate) is given to every later step, so a rewritten one could set ``BASH_ENV``,
``LD_PRELOAD``, an exported bash function or a ``PATH`` entry into the state folder. Each test
starts a real run (real git, real ``ssh-keygen`` signatures) that detaches at a gate, has alice
approve it, rewrites the record, and resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from helpers.approval_world import World, clean_env
from helpers.cli import cli_in

KEY = "5f1c" * 16  # what `openssl rand -hex 32` gives
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
      echo "key=${RUNNER_RECORD_KEY:-none}"
      echo "TIER=gold" >> "$RUNNER_ENV"
      echo "/usr/local/sbin" >> "$RUNNER_PATH"
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
  - id: after
    name: After
    run: |
      echo "tier=$TIER"
      uname >/dev/null
      echo "DEPLOYED"
"""


def approve(world: World, run_id: str, step_id: str, key: Any, digest: str) -> None:
    request = world.request(run_id=run_id, step_id=step_id, digest=digest, commit=world.head)
    raw = world.body(request, key).encode()
    world.push_signed(raw, key, run_id=run_id, name=f"{step_id}.{key.principal}.json")


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output, output
    assert done.returncode == 5, output
    for word in words:
        assert word in output, output


def step(record: dict[str, Any], step_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in record["steps"] if s["id"] == step_id)
    return found


def start(world: World, run_id: str, env: dict[str, str] | None = None) -> None:
    """A run detached at its gate, which alice then approved."""
    path = world.commit_workflow(WORKFLOW)
    assert world.monkeypatch is not None
    argv = ("run", "deploy.yml", "--env", "production", "--state-dir", "S")
    done = world.here(world.monkeypatch, *argv, "--run-id", run_id, "--detach-on-wait", env=env)
    assert done.returncode == 75, done.stdout + done.stderr
    assert KEY not in done.stdout + done.stderr
    approve(world, run_id, "gate", world.keys.alice, digest_of(path))


def run(
    world: World, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``runner run deploy.yml ARGS`` in this process, started by carol (``World.here``)."""
    assert world.monkeypatch is not None
    argv = ("run", "deploy.yml", "--env", "production", "--state-dir", "S")
    return world.here(world.monkeypatch, *argv, *args, env=env)


def resume(world: World, run_id: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``runner resume`` in this process (as the CLI runs it, without an interpreter to start)."""
    assert world.monkeypatch is not None
    argv = ("resume", run_id, "--state-dir", "S", "--detach-on-wait")
    return cli_in(world.monkeypatch, world.repo, clean_env(**env), *argv)


def record_path(world: World, run_id: str) -> Path:
    return world.repo / "S" / "runs" / run_id / "record.json"


def rewrite(world: World, run_id: str, **fields: object) -> None:
    """Replace top-level fields of an unsealed record (as an attacker would)."""
    path = record_path(world, run_id)
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(fields)
    path.write_text(json.dumps(data), encoding="utf-8")


def attacker_files(world: World, run_id: str) -> tuple[Path, Path]:
    """A script of the attacker's in the state folder, and the file it leaves when it runs."""
    marker = world.repo.parent / f"pwned-{run_id}"
    folder = world.repo / "S" / "runs" / run_id / "kit"
    folder.mkdir()
    script = folder / "evil.sh"
    script.write_text(f"echo PWNED > {marker}\n", encoding="utf-8")
    return folder, marker


def not_run(done: subprocess.CompletedProcess[str], marker: Path) -> None:
    assert not marker.exists(), "the attacker's code ran in the resume job"
    refused(done, "not sealed", "RUNNER_RECORD_KEY")


# -- an unsealed record: no code of its writer's runs -----------------------------------------


def test_bash_env_from_a_rewritten_record_does_not_run(world: World) -> None:
    start(world, "be")
    folder, marker = attacker_files(world, "be")
    rewrite(world, "be", env={"TIER": "gold", "BASH_ENV": str(folder / "evil.sh")})
    not_run(resume(world, "be"), marker)


def test_an_exported_bash_function_from_a_rewritten_record_does_not_run(world: World) -> None:
    start(world, "bf")
    _, marker = attacker_files(world, "bf")
    function = f"() {{ builtin echo PWNED > {marker}; }}"
    rewrite(world, "bf", env={"TIER": "gold", "BASH_FUNC_echo%%": function})
    not_run(resume(world, "bf"), marker)


def test_ld_preload_from_a_rewritten_record_does_not_run(world: World, tmp_path: Path) -> None:
    start(world, "ld")
    folder, marker = attacker_files(world, "ld")
    source = tmp_path / "evil.c"
    source.write_text(
        "#include <stdio.h>\n"
        "__attribute__((constructor)) static void pwn(void) {\n"
        f'  FILE *f = fopen("{marker}", "w"); if (f) {{ fputs("PWNED", f); fclose(f); }}\n'
        "}\n",
        encoding="utf-8",
    )
    library = folder / "evil.so"
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler builds the attacker's library"
    subprocess.run([gcc, "-shared", "-fPIC", "-o", library, source], check=True)
    rewrite(world, "ld", env={"TIER": "gold", "LD_PRELOAD": str(library)})
    not_run(resume(world, "ld"), marker)


@pytest.mark.parametrize("where", ["state", "relative"])
def test_a_path_entry_of_a_rewritten_record_does_not_run(world: World, where: str) -> None:
    run_id = f"path-{where}"
    start(world, run_id)
    folder, marker = attacker_files(world, run_id)
    tool = folder / "uname"
    tool.write_text(f"#!/bin/sh\necho PWNED > {marker}\n", encoding="utf-8")
    tool.chmod(0o755)
    entry = str(folder) if where == "state" else f"S/runs/{run_id}/kit"
    rewrite(world, run_id, path=[entry, "/usr/local/sbin"])
    not_run(resume(world, run_id), marker)


def test_path_set_as_a_variable_of_a_rewritten_record_does_not_run(world: World) -> None:
    start(world, "pv")
    folder, marker = attacker_files(world, "pv")
    tool = folder / "uname"
    tool.write_text(f"#!/bin/sh\necho PWNED > {marker}\n", encoding="utf-8")
    tool.chmod(0o755)
    rewrite(world, "pv", env={"TIER": "gold", "PATH": f"{folder}:/usr/bin:/bin"})
    not_run(resume(world, "pv"), marker)


def test_an_unsealed_record_resumes_in_ci_with_one_warning(world: World) -> None:
    start(world, "ci")
    done = resume(world, "ci", CI="true")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "tier=gold" in output and "DEPLOYED" in output
    assert output.count("record is not sealed") == 1, output
    assert "RUNNER_RECORD_KEY" in output


# -- a sealed record -----------------------------------------------------------------------------


def test_an_honest_sealed_record_resumes_and_the_key_never_shows(world: World) -> None:
    start(world, "ok", env={"RUNNER_RECORD_KEY": KEY})
    text = record_path(world, "ok").read_text(encoding="utf-8")
    assert '"seal": "hmac-sha256:' in text
    done = resume(world, "ok", RUNNER_RECORD_KEY=KEY, CI="true")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "tier=gold" in output and "DEPLOYED" in output
    assert "not sealed" not in output
    assert KEY not in output
    for path in (world.repo / "S").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert '"seal": "hmac-sha256:' in record_path(world, "ok").read_text(encoding="utf-8")


def edit_line(text: str, name: str, value: object) -> str:
    """Replace one field's line of a record, keeping every other line, its seal included."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.startswith(f' "{name}": '):
            comma = "," if line.endswith(",") else ""
            lines[index] = f' "{name}": {json.dumps(value)}{comma}'
            return "\n".join(lines)
    raise AssertionError(f"no field {name}")


EDITS: list[tuple[str, object]] = [
    ("started_by", {"id": "u-mallory", "username": "mallory", "display_name": "", "email": ""}),
    ("started_at", "2020-01-01T00:00:00.000Z"),
    ("env", {"TIER": "platinum"}),
    ("path", ["/opt/other"]),
    ("inputs", {"version": "9.9.9"}),
    ("skip", ["gate"]),
]


@pytest.mark.parametrize(("name", "value"), EDITS, ids=[name for name, _ in EDITS])
def test_a_sealed_record_edited_in_any_field_is_refused(
    world: World, name: str, value: object
) -> None:
    run_id = f"edit-{name.replace('_', '-')}"
    start(world, run_id, env={"RUNNER_RECORD_KEY": KEY})
    path = record_path(world, run_id)
    path.write_text(edit_line(path.read_text(encoding="utf-8"), name, value), encoding="utf-8")
    refused(resume(world, run_id, RUNNER_RECORD_KEY=KEY), "seal does not verify")


def test_a_sealed_records_step_outputs_cannot_be_edited(world: World) -> None:
    start(world, "outs", env={"RUNNER_RECORD_KEY": KEY})
    path = record_path(world, "outs")
    text = path.read_text(encoding="utf-8")
    assert '"outputs": {}' in text
    path.write_text(text.replace('"outputs": {}', '"outputs": {"x": "1"}', 1), encoding="utf-8")
    refused(resume(world, "outs", RUNNER_RECORD_KEY=KEY), "seal does not verify")


def test_a_record_without_its_seal_or_sealed_with_another_key_is_refused(world: World) -> None:
    start(world, "seal", env={"RUNNER_RECORD_KEY": KEY})
    path = record_path(world, "seal")
    rewrite(world, "seal", env={"TIER": "gold"})  # re-encoded: the seal line is gone
    refused(resume(world, "seal", RUNNER_RECORD_KEY=KEY), "has no seal")
    start_other = run(
        world, "--run-id", "other", "--detach-on-wait", env={"RUNNER_RECORD_KEY": OTHER_KEY}
    )
    assert start_other.returncode == 75
    text = record_path(world, "other").read_text(encoding="utf-8").replace('"other"', '"seal"')
    path.write_text(text, encoding="utf-8")
    refused(resume(world, "seal", RUNNER_RECORD_KEY=KEY), "seal does not verify")


def test_an_unsealed_record_is_refused_when_the_resume_has_the_key(world: World) -> None:
    start(world, "late")
    refused(resume(world, "late", RUNNER_RECORD_KEY=KEY), "has no seal")


def test_a_sealed_record_does_not_take_a_path_entry_in_the_state_folder(world: World) -> None:
    """A sealed record's own steps may add a folder of the state folder to PATH, but its files
    travel unsealed: the resume refuses it rather than run what the artifact holds."""
    workflow = WORKFLOW.replace(
        'echo "/usr/local/sbin" >> "$RUNNER_PATH"', 'echo "$RUNNER_TEMP" >> "$RUNNER_PATH"'
    )
    path = world.commit_workflow(workflow)
    done = run(world, "--run-id", "tmp", "--detach-on-wait", env={"RUNNER_RECORD_KEY": KEY})
    assert done.returncode == 75, done.stdout + done.stderr
    approve(world, "tmp", "gate", world.keys.alice, digest_of(path))
    refused(resume(world, "tmp", RUNNER_RECORD_KEY=KEY), "inside the state folder")
    assert step(world.record("tmp"), "after")["status"] == "pending"


def test_a_short_key_is_refused(world: World) -> None:
    world.commit_workflow(WORKFLOW)
    done = run(world, "--run-id", "short", env={"RUNNER_RECORD_KEY": "s3cr3tXYZ"})
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "at least 32" in output and "s3cr3tXYZ" not in output


# -- what only a sealed record can show --------------------------------------------------------


def test_an_unsealed_record_cannot_name_who_started_a_self_approval_gated_run(
    world: World,
) -> None:
    """alice starts the run; the rewritten record says bob did, so that alice's own approval
    would pass a gate that prevents self-approval."""
    workflow = WORKFLOW.replace(
        "      teams: [trading-desk]\n",
        "      teams: [trading-desk]\n      prevent-self-approval: true\n",
    )
    path = world.commit_workflow(workflow)
    done = run(world, "--run-id", "self", "--detach-on-wait", env={"GITHUB_ACTOR": "alice-gh"})
    assert done.returncode == 75, done.stdout + done.stderr
    approve(world, "self", "gate", world.keys.alice, digest_of(path))
    rewrite(
        world,
        "self",
        started_by={"id": "u-bob", "username": "bob", "display_name": "Bob Stone", "email": ""},
    )
    refused(resume(world, "self", CI="true"), "unsealed record", "prevents self-approval")


def test_an_unsealed_record_cannot_say_a_gate_proceeded_on_timeout(world: World) -> None:
    workflow = WORKFLOW.replace(
        "      teams: [trading-desk]\n",
        "      teams: [trading-desk]\n      timeout-minutes: 60\n      on-timeout: proceed\n",
    )
    world.commit_workflow(workflow)
    done = run(world, "--run-id", "late", "--detach-on-wait")
    assert done.returncode == 75, done.stdout + done.stderr
    path = record_path(world, "late")
    data = json.loads(path.read_text(encoding="utf-8"))
    gate = step(data, "gate")
    gate.update(status="success", outcome="success", conclusion="success")
    gate["approval"] = {**(gate["approval"] or {}), "state": "proceeded-on-timeout"}
    path.write_text(json.dumps(data), encoding="utf-8")
    refused(
        resume(world, "late", CI="true"), "unsealed record", "gate `gate` is recorded as passed"
    )


def test_a_step_that_rewrites_the_git_config_never_gets_the_record_key(world: World) -> None:
    """A step cannot read the key (it is not in its environment), but it can write
    ``.git/config``: a program named there (here the ``upload-pack`` git starts for the local
    origin; ``core.sshCommand`` or a credential helper for a real remote) is started by the
    runner's own git calls at the gate, with the runner's environment. With the key, the step's
    code could seal a record of its own and resume past a gate nobody approved."""
    leak = world.repo.parent / "leaked-env"
    spy = world.repo.parent / "spy.sh"
    spy.write_text(f'#!/bin/sh\nenv >> {leak}\nexec git-upload-pack "$@"\n', encoding="utf-8")
    spy.chmod(0o755)
    workflow = WORKFLOW.replace(
        '      echo "key=${RUNNER_RECORD_KEY:-none}"\n',
        f'      git config remote.origin.uploadpack "{spy}"\n',
    )
    path = world.commit_workflow(workflow)
    assert world.monkeypatch is not None
    argv = ("run", "deploy.yml", "--env", "production", "--state-dir", "S", "--run-id", "spy")
    done = world.here(world.monkeypatch, *argv, "--detach-on-wait", env={"RUNNER_RECORD_KEY": KEY})
    assert done.returncode == 75, done.stdout + done.stderr
    approve(world, "spy", "gate", world.keys.alice, digest_of(path))
    done = resume(world, "spy", RUNNER_RECORD_KEY=KEY, CI="true")
    assert done.returncode == 0, done.stdout + done.stderr
    # the spy did run (the attack is real): git started it with the runner's environment
    assert leak.is_file() and "RUNNER_RUN_ID" not in leak.read_text(encoding="utf-8")
    assert "HOME=" in leak.read_text(encoding="utf-8")
    assert KEY not in leak.read_text(encoding="utf-8")


def test_a_step_cannot_read_the_record_key_from_the_runners_own_environment() -> None:
    """Steps never get the key in their environment, but one runs as the runner's user, and
    Linux shows a process's starting environment to its user: ``/proc/$PPID/environ`` (and
    ``ptrace``) gave the step the key, with which its code could seal a record of its own. The
    runner, a real process here (as root, which may read any process, it runs as ``nobody``),
    is not dumpable while it holds the key."""
    if not Path("/proc/self/environ").exists():
        pytest.skip("no /proc here")
    runner = Path(sys.executable).with_name("runner")
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to run the runner as another user")
        prefix = [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    # not under the tests' own temporary folder, which is the owner's only
    folder = Path(tempfile.mkdtemp(prefix="runner-key-", dir="/tmp"))
    try:
        folder.chmod(0o777)
        (folder / "w.yml").write_text(
            "name: key\nsteps:\n  - id: peek\n    name: Peek\n    run: |\n"
            "      if tr '\\0' '\\n' < /proc/$PPID/environ | grep -q '^RUNNER_RECORD_KEY='; then\n"
            "        echo KEY-READ\n      else\n        echo KEY-HIDDEN\n      fi\n",
            encoding="utf-8",
        )
        environ = {
            "PATH": os.environ["PATH"],
            "HOME": str(folder),
            "NO_COLOR": "1",
            "RUNNER_RECORD_KEY": KEY,
        }
        argv = [*prefix, str(runner), "run", "w.yml", "--env", "dev", "--run-id", "k"]
        done = subprocess.run(
            argv, cwd=folder, env=environ, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done
        assert "KEY-HIDDEN" in done.stdout
        assert "KEY-READ" not in done.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_runner_warns_when_the_shell_that_started_it_holds_the_record_key(
    tmp_path: Path,
) -> None:
    """The runner hides its own environment, not its parent's: a CI job's `env:` gives the key
    to the shell that runs `runner run`, and a step read it from there
    (`/proc/$(ps -o ppid= $PPID)/environ`). The runner cannot hide that process; it says so,
    and how to avoid it (`exec runner ...`: then no shell holds the key)."""
    if not Path("/proc/self/environ").exists():
        pytest.skip("no /proc here")
    runner = Path(sys.executable).with_name("runner")
    (tmp_path / "w.yml").write_text(
        "name: key\nsteps:\n  - id: one\n    name: One\n    run: echo one\n", encoding="utf-8"
    )
    environ = {**clean_env(), "RUNNER_RECORD_KEY": KEY}

    def started_by_a_shell(how: str, run_id: str) -> subprocess.CompletedProcess[str]:
        script = f"{how}{runner} run w.yml --env dev --run-id {run_id} --state-dir S\n"
        return subprocess.run(
            ["bash", "-c", script + ("" if how else "true\n")],
            cwd=tmp_path,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )

    kept = started_by_a_shell("", "a")
    assert kept.returncode == 0, kept
    assert "warning: $RUNNER_RECORD_KEY is also in the environment of process" in kept.stderr
    assert "(bash)" in kept.stderr and "exec runner" in kept.stderr
    assert KEY not in kept.stderr + kept.stdout
    replaced = started_by_a_shell("exec ", "b")
    assert replaced.returncode == 0, replaced
    assert "RUNNER_RECORD_KEY" not in replaced.stderr
    listed = subprocess.run(
        ["bash", "-c", f"{runner} runs list --state-dir S\ntrue\n"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed
    assert "RUNNER_RECORD_KEY" not in listed.stderr  # no step runs there
