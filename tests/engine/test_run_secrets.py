"""Secrets never reach the log, the run record or the job summary: secret variables (literal and
from the environment), secret inputs, ``::add-mask::`` and ``-sensitive`` Octopus variables, in
the forms a script is likely to print them in."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers.run_helpers import Outcome, Workspace

LITERAL = "lit-Secret-4f9a!x"
FROM_ENV = "env-secret/with+special&chars"
INPUT = "input-secret-7731"
MASKED = "added-by-mask-9c2"
SENSITIVE = "sensitive-out-55aa"
MULTILINE = "-----BEGIN KEY-----\nMIIBfirstLine0001\nAbCdsecondLine02\n-----END KEY-----"
SECRETS = {
    "literal": LITERAL,
    "from-env": FROM_ENV,
    "input": INPUT,
    "add-mask": MASKED,
    "sensitive": SENSITIVE,
}

WORKFLOW = """
name: secrets
inputs:
  token:
    secret: true
    required: true
variables:
  Literal:
    value: "lit-Secret-4f9a!x"
    secret: true
  FromEnv:
    from-env: TEST_FROM_ENV
    secret: true
  Certificate:
    from-env: TEST_CERTIFICATE
    secret: true
steps:
  - id: prepare
    name: Prepare
    env:
      LITERAL: "#{Literal}"
      FROM_ENV: ${{ secrets.FromEnv }}
      TOKEN: ${{ inputs.token }}
    run: |
      echo "::add-mask::added-by-mask-9c2"
      set_octopusvariable "Sensitive" "sensitive-out-55aa" -sensitive
      set -- "$LITERAL" "$FROM_ENV" "$TOKEN" "added-by-mask-9c2" "sensitive-out-55aa"
      for value in "$@"; do
        echo "plain: $value"
        echo "quoted: '$value' \\"$value\\""
        echo "base64: $(printf %s "$value" | base64)"
        echo "::warning::annotation $value"
        echo "out-$(printf %s "$value" | md5sum | cut -c1-6)=$value" >> "$GITHUB_OUTPUT"
      done
      python3 -c '
      import json, sys, urllib.parse
      for value in sys.argv[1:]:
          print("url:", urllib.parse.quote(value, safe=""))
          print("json:", json.dumps({"v": value}))
      ' "$@"
      echo "## Deployed with $LITERAL and $TOKEN" >> "$GITHUB_STEP_SUMMARY"
  - id: multi-line
    name: Multi-line
    env:
      CERT: "#{Certificate}"
    run: |
      printf '%s\\n' "$CERT"
      printf '%s\\n' "$CERT" | sed 's/^/  indented /'
      echo "whole base64: $(printf %s "$CERT" | base64 -w0)"
  - id: use-sensitive
    name: Use sensitive
    env:
      VALUE: "#{Octopus.Action[Prepare].Output.Sensitive}"
    run: echo "later step sees $VALUE"
  - id: fail
    name: Fail with a secret
    env:
      LITERAL: "#{Literal}"
    run: |
      echo "$LITERAL" >> "$GITHUB_OUTPUT"
"""


def run_secrets(workspace: Workspace, *extra: str, env: dict[str, str] | None = None) -> Outcome:
    return workspace.cli(
        WORKFLOW,
        "--input",
        f"token={INPUT}",
        *extra,
        env={
            "TEST_FROM_ENV": FROM_ENV,
            "TEST_CERTIFICATE": MULTILINE,
            "GITHUB_STEP_SUMMARY": str(workspace.root / "summary.md"),
            **(env or {}),
        },
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """The secrets workflow run once in each log format."""
    options = {
        "text": ((), {}),
        "json": (("--format", "json"), {}),
        "github": ((), {"GITHUB_ACTIONS": "true"}),
    }
    return {
        name: run_secrets(Workspace(tmp_path_factory.mktemp(name)), *args, env=env)
        for name, (args, env) in options.items()
    }


def forms(secret: str) -> list[str]:
    """What must not appear: the secret, each of its lines, and encoded forms."""
    found = [secret, *(line for line in secret.splitlines() if len(line) >= 4)]
    for text in list(found):
        found += [
            base64.b64encode(text.encode()).decode(),
            quote(text, safe=""),
            json.dumps(text)[1:-1],
        ]
    return found


def assert_clean(text: str) -> None:
    for name, secret in {**SECRETS, "multi-line": MULTILINE}.items():
        for form in forms(secret):
            assert form not in text, f"{name} secret leaked as {form!r}"


@pytest.fixture(params=["text", "json", "github"])
def outcome(request: pytest.FixtureRequest, runs: dict[str, Outcome]) -> Outcome:
    return runs[request.param]


def test_secrets_not_in_output(outcome: Outcome) -> None:
    assert outcome.code == 1
    assert_clean(outcome.out)
    assert_clean(outcome.err)
    assert "***" in outcome.out


def test_secrets_not_in_record(outcome: Outcome) -> None:
    text = outcome.record_text
    assert_clean(text)
    record = outcome.record
    assert record.inputs == {"token": "***"}
    prepare = record.step("prepare")
    # outputs made of secrets are secret outputs too: shown masked, kept whole in memory only
    assert sorted(prepare.secret_outputs) == sorted([*prepare.outputs, "Octopus:Sensitive"])
    assert prepare.octopus == {}
    assert len(prepare.outputs) == 5
    assert set(prepare.outputs.values()) == {"***"}
    assert record.error == {
        "message": "Step 'Fail with a secret' failed",
        "detail": "Invalid format '***'",
    }


def test_secrets_not_left_in_state_folder(outcome: Outcome) -> None:
    """Neither the record, the steps' file-command files nor their scripts (which hold what was
    substituted into them) keep a secret on disk."""
    folder = outcome.record_path.parent
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert folder / "record.json" in files
    assert not [p for p in files if p.name.startswith("script.")]
    for path in files:
        assert_clean(path.read_text())


def test_a_secret_substituted_into_a_script_does_not_stay_on_disk(workspace: Workspace) -> None:
    outcome = workspace.run(
        """
        name: substituted
        variables:
          Password:
            value: "pasted-secret-0b7e"
            secret: true
        steps:
          - id: use
            name: Use
            run: test "#{Password}" = pasted-secret-0b7e && echo "same"
        """
    )
    assert outcome.code == 0, outcome.err
    assert "  same" in outcome.lines()
    for path in outcome.record_path.parent.rglob("*"):
        assert not path.is_file() or "pasted-secret-0b7e" not in path.read_text()


def test_secrets_not_in_job_summary(runs: dict[str, Outcome]) -> None:
    outcome = runs["github"]
    summary = (outcome.state_dir.parent / "summary.md").read_text()
    assert_clean(summary)
    assert "## Deployed with *** and ***" in summary
    assert "| ❌ | Fail with a secret | failure |" in summary
    assert "| Invalid format '***' |" in summary
    assert outcome.code == 1


def test_each_form_masked_per_line(runs: dict[str, Outcome]) -> None:
    lines = runs["text"].lines()
    for prefix in ("plain", "base64", "url"):
        assert lines.count(f"  {prefix}: ***") == 5
    assert lines.count('  json: {"v": "***"}') == 5
    assert lines.count("  quoted: '***' \"***\"") == 5
    assert lines.count("  warning: annotation ***") == 5


def test_multi_line_secret_masked_line_by_line(runs: dict[str, Outcome]) -> None:
    lines = runs["text"].lines()
    start = lines.index("▶ Multi-line")
    assert lines[start + 1 : start + 10] == [
        "  ***",
        "  ***",
        "  ***",
        "  ***",
        "    indented ***",
        "    indented ***",
        "    indented ***",
        "    indented ***",
        "  whole base64: ***",
    ]


def test_add_mask_line_not_echoed_and_sensitive_output_usable(runs: dict[str, Outcome]) -> None:
    outcome = runs["text"]
    assert not any("add-mask" in line for line in outcome.lines())
    assert "  later step sees ***" in outcome.lines()
    assert outcome.step("use-sensitive").outcome == "success"


def test_missing_secret_from_env_is_left_unsubstituted(workspace: Workspace) -> None:
    outcome = workspace.run(
        """
        name: missing secret
        variables:
          Password:
            from-env: TEST_NOT_SET_ANYWHERE
            secret: true
        steps:
          - id: use
            name: Use
            env:
              PASSWORD: "#{Password}"
            run: echo "password=[$PASSWORD]"
        """
    )
    assert outcome.code == 0, outcome.err
    assert "  password=[#{Password}]" in outcome.lines()


def test_a_missing_working_directory_holding_a_secret_is_named_masked(
    workspace: Workspace,
) -> None:
    """The message repr()'d the folder: beside a `"`, a `'` of the secret became `\\'`, a
    form the masker did not know, and the log, the record and `runs show` showed it."""
    secret = "it's-my-Passw0rd!"
    outcome = workspace.run(
        """
        name: missing folder
        variables:
          SmbPassword:
            from-env: TEST_SMB_PASSWORD
            secret: true
        steps:
          - id: copy
            name: Copy
            working-directory: 'mnt/"share"/#{SmbPassword}'
            run: echo hi
        """,
        env={"TEST_SMB_PASSWORD": secret},
    )
    assert outcome.code != 0
    assert outcome.step("copy").error is not None
    assert outcome.step("copy").error.endswith(
        'working-directory `mnt/"share"/***` (from `mnt/"share"/#{SmbPassword}`) does not exist'
    )
    for text in (outcome.out, outcome.err, outcome.record_text):
        assert "s-my-Passw0rd" not in text


def test_a_sensitive_value_is_masked_at_once_in_the_steps_running_beside_its_setter(
    workspace: Workspace,
) -> None:
    """Each step read only its own Octopus-variables file, when its own output arrived: a step
    started with the setter printed the value in clear while the setter printed nothing."""
    outcome = workspace.run(
        """
        name: parallel
        steps:
          - id: fetch
            name: Fetch
            run: |
              tok="GeneratedT0ken-$RUNNER_RUN_ID-x"
              set_octopusvariable DbToken "$tok" -sensitive
              echo "$tok" > "$RUNNER_TEMP/token"
              # silent until the step beside it has printed the value
              for _ in $(seq 300); do [ -f "$RUNNER_TEMP/printed" ] && break; sleep 0.05; done
          - id: migrate
            name: Migrate
            start: with-previous
            run: |
              for _ in $(seq 300); do [ -s "$RUNNER_TEMP/token" ] && break; sleep 0.05; done
              echo "connecting with $(cat "$RUNNER_TEMP/token")"
              touch "$RUNNER_TEMP/printed"
        """
    )
    assert outcome.code == 0, outcome.err
    assert "GeneratedT0ken" not in outcome.out + outcome.err
    assert any(line.endswith("connecting with ***") for line in outcome.lines())


def test_the_files_a_step_reports_through_are_the_owners_alone(workspace: Workspace) -> None:
    outcome = workspace.run(
        """
        name: file modes
        steps:
          - id: look
            name: Look
            run: |
              stat -c '%a %n' "$RUNNER_OUTPUT" "$RUNNER_ENV" "$RUNNER_PATH" \\
                "$RUNNER_STEP_SUMMARY" "$0"
              rm "$RUNNER_PATH"  # removed by the script: nothing reported there
              echo "ok=yes" >> "$RUNNER_OUTPUT"
        """
    )
    assert outcome.code == 0, outcome.err
    modes = [line.split()[0] for line in outcome.lines() if line.strip().startswith("600 ")]
    assert len(modes) == 5, outcome.lines()
    assert outcome.record.steps[0].outputs == {"ok": "yes"}


def test_a_resumed_run_refuses_the_steps_after_a_lost_secret_environment_variable(
    tmp_path: Path,
) -> None:
    """A ``RUNNER_ENV`` value holding a secret is stored masked: a process resuming the run
    does not have it, and any later step that starts a process could read it."""
    from types import SimpleNamespace

    from runner.engine.record import RunRecord, StepRecord
    from runner.engine.resume import lost_secret
    from runner.load import check_file

    (tmp_path / ".git").mkdir()
    path = tmp_path / "deploy.yml"
    path.write_text(
        "name: env\nsteps:\n"
        "  - {id: set, name: Set, run: 'echo TOKEN=x >> $RUNNER_ENV'}\n"
        "  - {id: use, name: Use, run: 'echo $TOKEN'}\n"
    )
    workflow = check_file(path).workflow
    assert workflow is not None
    record = RunRecord(
        "r", str(path), "env", "d", "staging",
        env={"TOKEN": "***"},
        secret_env=["TOKEN"],
        steps=[StepRecord("set", "Set", status="success"), StepRecord("use", "Use")],
    )  # fmt: skip
    resumed = SimpleNamespace(record=record, secret_env={}, secret_values={})
    assert lost_secret(workflow, resumed) == (
        "an earlier step set the environment variable `TOKEN` to a value holding a secret, and "
        "secret values are never stored: step `use` and the steps after it cannot run in a "
        "resumed run"
    )
    same_process = SimpleNamespace(record=record, secret_env={"TOKEN": "x"}, secret_values={})
    assert lost_secret(workflow, same_process) is None
    record.update_step("use", status="success")
    assert lost_secret(workflow, resumed) is None


@pytest.mark.parametrize("last", ["true", "exit 3"])
def test_runner_temp_is_emptied_when_the_run_ends_as_github_empties_it_after_a_job(
    workspace: Workspace, tmp_path: Path, last: str
) -> None:
    """Steps leave credentials in ``$RUNNER_TEMP`` (a password file here): the later steps of
    the run still read them, and nothing is left when it ends, however it ends. A link a step
    put in the folder's place, or inside it, is removed, never what it points to."""
    kept = tmp_path / "not-the-runs"
    kept.mkdir()
    (kept / "precious").write_text("mine")
    outcome = workspace.run(
        f"""
        name: temp
        steps:
          - id: write
            name: Write
            run: |
              printf 'password=hunter2-7c1d' > "$RUNNER_TEMP/db.conf"
              ln -s {kept} "$RUNNER_TEMP/link"
          - id: read
            name: Read
            run: grep -q hunter2-7c1d "$RUNNER_TEMP/db.conf" && echo "read it"
          - id: swap
            name: Swap
            run: |
              mv "$RUNNER_TEMP" "$RUNNER_TEMP.moved" && ln -s "$RUNNER_TEMP.moved" "$RUNNER_TEMP"
              {last}
        """
    )
    assert outcome.code == (0 if last == "true" else 1), outcome.err
    assert "  read it" in outcome.lines()
    run_folder = outcome.record_path.parent
    assert not (run_folder / "tmp").exists() and not (run_folder / "tmp").is_symlink()
    # what the link pointed to is a step's own doing; the runner followed no link into it
    assert (kept / "precious").read_text() == "mine"
    assert (run_folder / "tmp.moved" / "db.conf").is_file()


def test_a_variable_whose_environment_variable_is_not_set_is_warned_of(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a newcomer pass: a secret read from an environment variable the CI job forgot
    to pass went through silently, and the step got `#{DbPassword}` as its password."""
    workflow = """\
name: unset
variables:
  DbPassword:
    from-env: TEST_UNSET_DB_PASSWORD
    secret: true
steps:
  - id: use
    name: Use
    run: |
      echo "password is #{DbPassword}"
"""
    warning = (
        "warning: variable `DbPassword` reads $TEST_UNSET_DB_PASSWORD, which is not set: "
        "`#{DbPassword}` stays as written where a step uses it"
    )
    monkeypatch.delenv("TEST_UNSET_DB_PASSWORD", raising=False)
    unset = workspace.run(workflow)
    assert unset.code == 0, unset.err
    assert warning in unset.out
    assert "password is #{DbPassword}" in unset.out
    empty = workspace.run(workflow, env={"TEST_UNSET_DB_PASSWORD": ""}, run_id="run-2")
    assert empty.code == 0, empty.err
    assert warning not in empty.out  # set, if empty
