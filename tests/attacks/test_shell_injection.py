"""Shell injection through values that reach scripts.

A value passed the safe way (``env:`` then ``"$NAME"``) is data, whatever it holds: inputs,
step outputs, ``#{}`` variables. Pasting an untrusted value into ``run`` is what ``runner
validate`` warns about, in each spelling.

The runner runs in this process (``runner.cli.main.main``): what is attacked is the shell of
each step, which stays a real bash.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import cli_in
from helpers.run_helpers import Workspace

PAYLOADS = [
    '"; touch PWNED1; "',
    "'; touch PWNED2; '",
    "$(touch PWNED3)",
    "`touch PWNED4`",
    "x\ntouch PWNED5",
    "${IFS}; touch PWNED6 #",
    "#{Octopus.Environment.Name}; touch PWNED7",
    "${{ inputs.payload }}; touch PWNED8",
]

SAFE = """
name: injection
inputs:
  payload:
    required: true
steps:
  - id: produce
    name: Produce
    env:
      P: ${{ inputs.payload }}
      Q: "#{payload}"
    run: |
      printf 'env=[%s]\\n' "$P"
      printf 'octo=[%s]\\n' "$Q"
      {
        echo "value<<__END__"
        printf '%s\\n' "$P"
        echo "__END__"
      } >> "$GITHUB_OUTPUT"
  - id: consume
    name: Consume
    env:
      FROM_STEP: ${{ steps.produce.outputs.value }}
      FROM_OCTO: "#{Octopus.Action[Produce].Output.value}"
    run: |
      printf 'step=[%s]\\n' "$FROM_STEP"
      sh -c 'printf "nested=[%s]\\n" "$FROM_STEP"'
"""


def pwned(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("PWNED*"))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_value_passed_through_env_is_never_executed(workspace: Workspace, payload: str) -> None:
    outcome = workspace.run(SAFE, "--input", f"payload={payload}")
    assert outcome.code == 0, outcome.out + outcome.err
    assert pwned(workspace.root) == []
    first_line = payload.split("\n")[0]
    assert f"env=[{first_line}" in outcome.out
    assert f"step=[{first_line}" in outcome.out
    assert f"nested=[{first_line}" in outcome.out


def test_the_control_a_pasted_input_does_execute(workspace: Workspace) -> None:
    """Proof that the payload is live: pasted into the script, it runs (and validate warns)."""
    outcome = workspace.run(
        """
        name: pasted
        inputs:
          payload:
            required: true
        steps:
          - id: bad
            name: Bad
            run: echo "${{ inputs.payload }}"
        """,
        "--input",
        f"payload={PAYLOADS[0]}",
    )
    assert outcome.code != 0  # the payload's trailing `""` is a command that is not found
    assert pwned(workspace.root) == ["PWNED1"]


# -- runner validate warns for each way of pasting ---------------------------------------------

PASTED = """
name: pasted
inputs:
  payload:
    default: x
env:
  FROM_INPUT: ${{{{ inputs.payload }}}}
steps:
  - id: gate
    name: Gate
    manual: {{}}
  - id: use
    name: Use
    run: |
      echo {line}
"""


def validate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, line: str) -> str:
    (tmp_path / ".git").mkdir(exist_ok=True)
    path = tmp_path / "w.yml"
    path.write_text(PASTED.format(line=line))
    done = cli_in(
        monkeypatch, tmp_path, {"NO_COLOR": "1", "PATH": "/usr/bin:/bin"}, "validate", str(path)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    "line",
    [
        '"${{ inputs.payload }}"',
        '"#{payload}"',
        '"${{ steps.gate.outputs.notes }}"',
        '"#{Octopus.Action[Gate].Output.Manual.Notes}"',
        '"${{ env.FROM_INPUT }}"',
    ],
)
def test_validate_warns_when_an_untrusted_value_is_pasted_into_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, line: str
) -> None:
    output = validate(monkeypatch, tmp_path, line)
    assert "can inject shell code" in output, output
    assert "[injection]" in output


def test_validate_is_quiet_for_the_safe_pattern(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    output = validate(monkeypatch, tmp_path, '"$FROM_INPUT"')
    assert "inject" not in output, output


def test_an_env_value_from_the_workflow_author_is_not_tainted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = PASTED.replace("${{{{ inputs.payload }}}}", "${{{{ deployment.environment }}}}")
    (tmp_path / ".git").mkdir(exist_ok=True)
    path = tmp_path / "w.yml"
    path.write_text(text.format(line='"${{ env.FROM_INPUT }}"'))
    done = cli_in(monkeypatch, tmp_path, os.environ, "validate", str(path))
    assert done.returncode == 0 and "inject" not in done.stdout + done.stderr, done.stdout


def test_a_step_env_that_replaces_the_tainted_value_is_quiet(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = PASTED.replace("    run: |", "    env: {{FROM_INPUT: fixed}}\n    run: |")
    (tmp_path / ".git").mkdir(exist_ok=True)
    path = tmp_path / "w.yml"
    path.write_text(text.format(line='"${{ env.from_input }}"'))
    done = cli_in(monkeypatch, tmp_path, os.environ, "validate", str(path))
    assert done.returncode == 0 and "inject" not in done.stdout + done.stderr, done.stdout
