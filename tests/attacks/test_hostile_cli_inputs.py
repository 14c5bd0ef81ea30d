"""What an approver or a newcomer hands the command line, written by someone else.

``runner approval new --request FILE`` signs what a request file says; the file comes from the
waiting run (a CI artifact, a chat message), that is from the deployer. A workflow's and the
command line's approval server URL come from the deployed commit or a person's typing. Each case
was first seen to get through (a file written outside ``--out``, an internal error, exit 70),
then fixed. Real ssh-keygen keys, the CLI in this process.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from helpers.cli import cli_in

from runner.approvals.document import parse_body
from runner.errors import VerificationError

#: request files a deployer could hand an approver, and what the refusal must name
HOSTILE_REQUESTS = {
    "a list": ([], "not a request file (a JSON object), but a JSON list"),
    "a string": ("x", "not a request file (a JSON object), but a JSON str"),
    "run id climbing out": (
        {"run_id": "../../../escaped", "step_id": "gate", "environment": "prod", "digest": "d"},
        "`run_id` '../../../escaped' is not a run id",
    ),
    "step id climbing out": (
        {"run_id": "r1", "step_id": "../../../escaped", "environment": "prod", "digest": "d"},
        "`step_id` '../../../escaped' is not a step id",
    ),
    "run id a number": (
        {"run_id": 7, "step_id": "gate", "environment": "prod", "digest": "d"},
        "`run_id` must be a string",
    ),
    "commit an object": (
        {"run_id": "r1", "step_id": "gate", "environment": "prod", "digest": "d", "commit": {}},
        "`commit` must be a string",
    ),
    "attempt not a number": (
        {
            "run_id": "r1",
            "step_id": "gate",
            "environment": "prod",
            "digest": "d",
            "kind": "guided-failure",
            "attempt": "x",
        },
        "`attempt` 'x' is not an attempt number",
    ),
}


@pytest.mark.parametrize("case", HOSTILE_REQUESTS, ids=list(HOSTILE_REQUESTS))
def test_approval_new_refuses_a_hostile_request_file(
    case: str, tmp_path: Path, keys: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    content, expected = HOSTILE_REQUESTS[case]
    approver = tmp_path / "approver" / "clone"
    approver.mkdir(parents=True)
    request = approver / "gate.request.json"
    request.write_text(json.dumps(content), encoding="utf-8")
    decision = "retry" if case == "attempt not a number" else "proceed"
    key = keys.alice  # type: ignore[attr-defined]
    result = cli_in(
        monkeypatch,
        approver,
        {"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        *("approval", "new", "--request", str(request), "--decision", decision),
        *("--key", str(key.path), "--principal", key.principal, "--out", "approvals"),
    )
    assert result.returncode == 2, result
    assert f"error: --request {request}: " in result.stderr
    assert expected in result.stderr
    assert "internal error" not in result.stderr
    # nothing signed, nothing written: not in --out, not anywhere it climbs to
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [Path("approver/clone/gate.request.json")]


def test_approval_new_refuses_a_run_id_option_climbing_out(
    tmp_path: Path, keys: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = keys.alice  # type: ignore[attr-defined]
    result = cli_in(
        monkeypatch,
        tmp_path,
        {"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        *("approval", "new", "--run-id", "../x", "--step", "gate", "--env", "prod"),
        *("--digest", "d", "--decision", "proceed", "--key", str(key.path)),
        *("--principal", key.principal),
    )
    assert result.returncode == 2, result
    assert "error: --run-id '../x' is not a run id" in result.stderr
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("linked", ["files", "folder", "no folder yet"])
def test_approval_new_never_writes_through_a_link_in_the_approvals_clone(
    tmp_path: Path, keys: object, monkeypatch: pytest.MonkeyPatch, linked: str
) -> None:
    """Anyone who can push to the approvals branch can commit links where the approver's next
    files go (``r1/gate.alice@example.com.json`` -> ``~/.bashrc``, or ``r1`` -> a folder of
    theirs): `approval new` wrote the signed body and signature through them, over the files
    they named, outside ``--out``."""
    key = keys.alice  # type: ignore[attr-defined]
    home = tmp_path / "home"
    home.mkdir()
    victims = {name: home / name for name in ("bashrc", "authorized_keys")}
    for victim in victims.values():
        victim.write_text("precious\n")
    clone = tmp_path / "clone"
    name = f"gate.{key.principal}.json"
    if linked == "files":
        (clone / "r1").mkdir(parents=True)
        (clone / "r1" / name).symlink_to(victims["bashrc"])
        (clone / "r1" / f"{name}.sig").symlink_to(victims["authorized_keys"])
    elif linked == "folder":
        clone.mkdir()
        (clone / "r1").symlink_to(home, target_is_directory=True)
    else:  # a link to a folder not made yet: it was an internal error (exit 70)
        clone.mkdir()
        (clone / "r1").symlink_to(home / "made", target_is_directory=True)
    result = cli_in(
        monkeypatch,
        tmp_path,
        {"PATH": os.environ["PATH"], "HOME": str(home)},
        *("approval", "new", "--run-id", "r1", "--step", "gate", "--env", "prod"),
        *("--digest", "d", "--decision", "proceed", "--key", str(key.path)),
        *("--principal", key.principal, "--out", str(clone)),
    )
    for victim in victims.values():
        assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in home.iterdir()) == ["authorized_keys", "bashrc"]
    if linked == "files":
        assert result.returncode == 0, result
        for written in (clone / "r1" / name, clone / "r1" / f"{name}.sig"):
            assert not written.is_symlink()
        assert json.loads((clone / "r1" / name).read_text())["run_id"] == "r1"
    else:
        assert result.returncode == 2, result
        assert f"error: {clone / 'r1'} is a link out of {clone}: not writing through it" in (
            result.stderr
        )


def test_approval_new_refuses_notes_no_runner_would_accept(
    tmp_path: Path, keys: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """70 KB of notes (a pasted log) were signed and written, and every runner refuses a body
    over 64 KiB as too large and waits on: the approver believed the step approved, and the
    approval was lost to a timeout."""
    key = keys.alice  # type: ignore[attr-defined]
    notes = "n" * 70_000
    with pytest.raises(VerificationError, match="too large"):  # what the runner makes of it
        parse_body(json.dumps({"notes": notes}).encode())
    result = cli_in(
        monkeypatch,
        tmp_path,
        {"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        *("approval", "new", "--run-id", "r1", "--step", "gate", "--env", "prod"),
        *("--digest", "d", "--decision", "proceed", "--key", str(key.path)),
        *("--principal", key.principal, "--out", "approvals", "--notes", notes),
    )
    assert result.returncode == 2, result
    assert "more than the 64 KiB a runner accepts; nothing was signed" in result.stderr
    assert "hint: shorten --notes" in result.stderr
    assert not (tmp_path / "approvals").exists()


#: approval server URLs the schema's ``^https?://`` let through, or a person typed for ``--server``
BAD_SERVER_URLS = {
    "unclosed IPv6 bracket": ("http://[::1", "'http://[::1' is not a URL (Invalid IPv6 URL)"),
    "port not a number": (
        "https://approvals:80x",
        "'https://approvals:80x' is not a URL (Port could not be cast to integer value as '80x')",
    ),
    "no host": ("https://", "'https://' names no host"),
}

SERVER_WORKFLOW = """\
name: Server gate
approvals:
  server: {{url: "{url}", token-env: RUNNER_SERVER_TOKEN}}
steps:
  - id: gate
    name: Gate
    manual: {{instructions: Check, timeout-minutes: 1}}
"""


@pytest.mark.parametrize("case", BAD_SERVER_URLS, ids=list(BAD_SERVER_URLS))
def test_a_workflow_server_url_that_cannot_be_asked_is_a_diagnostic(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, expected = BAD_SERVER_URLS[case]
    (tmp_path / "w.yml").write_text(SERVER_WORKFLOW.format(url=url), encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "RUNNER_SERVER_TOKEN": "t"}
    checked = cli_in(monkeypatch, tmp_path, environ, "validate", "w.yml")
    assert checked.returncode == 1, checked
    assert checked.stdout.startswith(f"w.yml:3:17: {expected}; write it in full"), checked
    ran = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev")
    assert ran.returncode == 2, ran  # it was 70, an internal error, at the first request
    assert "internal error" not in ran.stderr
    assert f"w.yml:3:17: {expected}" in ran.stderr
    assert not (tmp_path / ".runner" / "runs").exists()  # refused before anything was recorded


@pytest.mark.parametrize(
    "url", ["localhost:8080", "http://[::1", "127.0.0.1:8080/"], ids=["no scheme", "bad", "ip"]
)
def test_approval_server_option_that_is_not_a_url_is_a_usage_error(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "RUNNER_APPROVER_TOKEN": "t"}
    started = time.monotonic()
    result = cli_in(monkeypatch, tmp_path, environ, "approval", "list", "--server", url)
    # was: exit 6 "the approval server did not answer properly (InvalidSchema) after 3
    # attempt(s)" (a typo read as a server down, after the retries' backoff), or exit 70
    assert result.returncode == 2, result
    assert result.stderr.startswith(f"error: approval server URL '{url}' is not "), result
    assert "hint: write it in full, with http:// or https://" in result.stderr
    assert time.monotonic() - started < 1.0  # no retry of what cannot be asked


SECRET_INPUTS = """\
name: Secret inputs
inputs:
  pin: {type: number, secret: true}
  flag: {type: boolean, secret: true}
  pick: {type: choice, options: [a, b], secret: true}
steps:
  - id: hi
    name: Hi
    run: echo hi
"""


@pytest.mark.parametrize("name", ["pin", "flag", "pick"])
@pytest.mark.parametrize("command", ["run", "plan"])
def test_a_wrong_value_of_a_secret_input_is_not_shown(
    name: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a CI variable put in the wrong input: the refusal went to the log with the value in clear
    (tmp_path / "w.yml").write_text(SECRET_INPUTS, encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    secret = "hunter2-in-the-wrong-slot"
    result = cli_in(
        monkeypatch,
        tmp_path,
        environ,
        command,
        "w.yml",
        "--env",
        "dev",
        "--input",
        f"{name}={secret}",
    )
    assert result.returncode == 2, result
    assert secret not in result.stdout + result.stderr
    assert result.stderr.startswith(f"error: input '{name}' must be ")
    assert result.stderr.endswith(", got a value that is not shown (the input is secret)\n")


ANY_ENVIRONMENT = """\
name: Any environment
steps:
  - id: hi
    name: Hi
    run: echo hi
"""


@pytest.mark.parametrize(
    "environment",
    ["dev\n::warning::injected", "../prod", "pro d", "-dev", ""],
    ids=["workflow command", "path", "space", "dash first", "empty"],
)
@pytest.mark.parametrize("command", ["run", "plan"])
def test_env_of_a_workflow_without_environments_must_still_be_a_name(
    environment: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--env ${{ inputs.env }}` in a CI file: a workflow that declares no environments took any
    # text, and a newline in it wrote `::warning::...` as a GitHub workflow command of its own
    (tmp_path / "w.yml").write_text(ANY_ENVIRONMENT, encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GITHUB_ACTIONS": "true"}
    result = cli_in(monkeypatch, tmp_path, environ, command, "w.yml", "--env", environment)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr == (
        f"error: --env {environment!r} is not an environment name\n"
        "hint: use letters, digits, `.`, `_` and `-`, starting with a letter or digit\n"
    )
    assert not (tmp_path / ".runner" / "runs").exists()


@pytest.mark.parametrize(
    ("where", "workflow", "line_col"),
    [
        ("workflow name", 'name: "wf\\n::error::forged"\nsteps:\n  - id: a\n    name: A\n', "1:7"),
        ("step name", 'name: wf\nsteps:\n  - id: a\n    name: "A\\n::error::forged"\n', "4:11"),
        ("escape codes", 'name: "wf\\e[2K\\rforged"\nsteps:\n  - id: a\n    name: A\n', "1:7"),
    ],
    ids=["workflow name", "step name", "escape codes"],
)
def test_names_cannot_write_log_lines_of_their_own(
    where: str, workflow: str, line_col: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the deployed commit's script output is fenced off with ::stop-commands::, but the workflow
    # and step names were printed as they are: a newline in one wrote a workflow command
    # (`::error::`, `::add-mask::`, ...) of the deployed commit's choosing into a GitHub log
    (tmp_path / "w.yml").write_text(workflow + "    run: echo hi\n", encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GITHUB_ACTIONS": "true"}
    result = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev")
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith(f"w.yml:{line_col}: `name` must be a name on one line"), result
    assert "control characters" in result.stderr.splitlines()[0]


def live_commands(log: str) -> list[str]:
    """The workflow commands GitHub's runner would act on in ``log``: it reads lines as .NET's
    ``ReadLine`` does (``\\r``, ``\\n`` and ``\\r\\n`` each end one) and ignores every command
    between ``::stop-commands::TOKEN`` and ``::TOKEN::``."""
    live: list[str] = []
    fence: str | None = None
    for line in re.split(r"\r\n|\r|\n", log):
        text = line.strip()
        if fence is not None:
            if text == f"::{fence}::":
                fence = None
            continue
        if text.startswith("::stop-commands::"):
            fence = text.removeprefix("::stop-commands::")
        elif text.startswith(("::", "##[")):
            live.append(text)
    return live


FORGED_ERRORS = {
    "env file line with a carriage return": (
        "  - id: a\n    name: A\n    run: |\n"
        '      printf "bad\\r::error::forged\\n" >> "$RUNNER_ENV"\n'
    ),
    "action step name with a newline": "  - id: a\n    name: A\n    uses: ./actions/forge\n",
}


@pytest.mark.parametrize("case", FORGED_ERRORS, ids=list(FORGED_ERRORS))
def test_a_step_error_cannot_write_a_workflow_command(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a step's error is printed after its fence closes ("✗ A (error)"), and it can hold text the
    # deployed commit chose: a line its script wrote to $RUNNER_ENV, an action's step name
    (tmp_path / "w.yml").write_text("name: wf\nsteps:\n" + FORGED_ERRORS[case], encoding="utf-8")
    action = tmp_path / "actions" / "forge"
    action.mkdir(parents=True)
    (action / "action.yml").write_text(
        'name: Forge\nruns:\n  using: composite\n  steps:\n    - name: "S\\n::error::forged"\n'
        "      run: exit 3\n      shell: bash\n",
        encoding="utf-8",
    )
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GITHUB_ACTIONS": "true"}
    result = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev")
    assert result.returncode == 1, result
    assert "forged" in result.stdout  # the error is still shown
    commands = live_commands(result.stdout)
    assert [c for c in commands if "forged" in c and not c.startswith("::error title=A,")] == []
    assert [c for c in commands if c.startswith("::error")] == [
        next(c for c in commands if c.startswith("::error title=A,"))
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("run", "w.yml", "--env", "e", "--input", "version=s3cr3t\udcff"),
        ("approval", "new", "--notes", "ok \udcff", "--decision", "proceed", "--key", "k"),
        ("plan", "w.yml", "--env", "e", "--field", "ticket=\udcff"),
    ],
    ids=["input", "notes", "field"],
)
def test_an_argument_that_is_not_utf8_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    """A byte that is not UTF-8 (Python reads it as `\\udcff`) in `--input` was an internal
    error writing the run record (exit 70), after the run had been named."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(
        "name: w\ninputs:\n  version: {}\nsteps:\n  - id: a\n    name: A\n    run: 'true'\n"
    )
    done = cli_in(monkeypatch, tmp_path, dict(os.environ), *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not UTF-8 text" in done.stderr
    assert "internal error" not in done.stderr
    assert "s3cr3t" not in done.stderr  # the value may be a secret input's: never shown
    assert not (tmp_path / ".runner").exists()
