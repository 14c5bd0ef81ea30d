"""``runner validate`` warns where a step output, a step's ``RUNNER_ENV`` or a workflow output is
built from a secret: the value is stored and logged masked, and a resumed run cannot pass it on."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runner.load import check_file

HEAD = """\
name: secret outputs
inputs:
  token:
    secret: true
  region:
    default: eu
variables:
  ApiKey:
    from-env: API_KEY
    secret: true
  Plain:
    value: hello
env:
  WF_KEY: ${{ secrets.ApiKey }}
  WF_PLAIN: ${{ inputs.region }}
steps:
  - id: a
    name: A
    env:
      KEY: "#{ApiKey}"
      TOK: ${{ inputs.token }}
      FROM_WF: ${{ env.WF_KEY }}
      OK: "#{Plain}"
    run: |
"""


def warnings(tmp_path: Path, script: str, tail: str = "") -> list[str]:
    path = tmp_path / "deploy.yml"
    body = textwrap.indent(textwrap.dedent(script).strip("\n"), " " * 6)
    path.write_text(HEAD + body + "\n" + tail)
    (tmp_path / ".git").mkdir(exist_ok=True)
    loaded = check_file(path)
    assert loaded.errors == []
    return [
        f"{d.location.line}:{d.location.column}: {d.message}"
        for d in loaded.diagnostics
        if d.kind == "secret"
    ]


#: the file line and the column of the script's first line
FIRST = 25
INDENT = 6


#: a line, how the warning says it uses the secret, and where the reference starts
FLAGGED = [
    ('echo "x=${{ secrets.ApiKey }}" >> $RUNNER_OUTPUT', "`secrets.ApiKey`", "${{"),
    ('echo "x=${{ inputs.token }}" >> "$GITHUB_OUTPUT"', "`inputs.token`", "${{"),
    ('echo "x=#{ApiKey}" >> "${GITHUB_OUTPUT}"', "`#{ApiKey}`", "#{"),
    ('echo "x=$KEY" >> "$RUNNER_OUTPUT"', "`$KEY`, set from `#{ApiKey}`", "$KEY"),
    ('echo "x=${TOK}" >> "$RUNNER_OUTPUT"', "`$TOK`, set from `inputs.token`", "${TOK"),
    ('echo "x=$FROM_WF" >> "$RUNNER_OUTPUT"', "`$FROM_WF`, set from `env.WF_KEY`", "$FROM"),
    ('echo "x=$WF_KEY" >> "$RUNNER_OUTPUT"', "`$WF_KEY`, set from `secrets.ApiKey`", "$WF"),
    ('printf "x=%s\\n" "$(echo "$KEY" | base64)" >> $RUNNER_OUTPUT', "`$KEY`, set", "$KEY"),
]


@pytest.mark.parametrize(("line", "how", "marker"), FLAGGED)
def test_a_step_output_written_from_a_secret_is_flagged(
    tmp_path: Path, line: str, how: str, marker: str
) -> None:
    [warning] = warnings(tmp_path, line)
    column = INDENT + line.index(marker) + 1
    assert warning.startswith(f"{FIRST}:{column}: a step output is written from a secret ({how}")
    assert warning.endswith(
        "it is stored and logged masked (***), and a resumed run cannot pass it on; pass the "
        "secret to the steps that need it through their `env:`"
    )


@pytest.mark.parametrize(
    "line",
    [
        'echo "x=$OK" >> "$RUNNER_OUTPUT"',
        'echo "x=${{ inputs.region }}" >> "$RUNNER_OUTPUT"',
        'echo "x=$WF_PLAIN" >> "$RUNNER_OUTPUT"',
        'echo "using $KEY"',
        'curl -H "Authorization: $KEY" https://example.com > "$RUNNER_TEMP/out"',
        'set_octopusvariable "Token" "$KEY" -sensitive',
    ],
)
def test_other_uses_are_not_flagged(tmp_path: Path, line: str) -> None:
    assert warnings(tmp_path, line) == []


def test_heredocs_and_groups_redirected_to_the_file_are_read(tmp_path: Path) -> None:
    script = """
    cat >> "$GITHUB_OUTPUT" <<EOF
    first=plain
    second=#{ApiKey}
    EOF
    echo "after $KEY"
    {
      echo "multi<<X"
      echo "$TOK"
      echo X
    } >> "$GITHUB_OUTPUT"
    """
    found = warnings(tmp_path, script)
    # the lines that use the secret, at the reference
    assert [w.split(": a step output")[0] for w in found] == ["27:14", "32:15"]


def test_runner_env_and_octopus_variables_from_a_secret_are_flagged(tmp_path: Path) -> None:
    found = warnings(
        tmp_path,
        """
        echo "TOKEN=$TOK" >> "$RUNNER_ENV"
        set_octopusvariable "Name" "$KEY"
        """,
    )
    assert found == [
        "25:19: an environment variable for the later steps is set from a secret (`$TOK`, set "
        "from `inputs.token`): it is stored masked (***), and a resumed run cannot run the "
        "steps after it; pass the secret to the steps that need it through their `env:`",
        "26:35: an Octopus output variable is set from a secret (`$KEY`, set from `#{ApiKey}`) "
        "without `-sensitive`: it is stored and logged masked (***) all the same, and a resumed "
        "run cannot pass it on; add `-sensitive` to say that it is secret",
    ]


def test_a_workflow_output_built_from_a_secret_is_flagged(tmp_path: Path) -> None:
    tail = "outputs:\n  leaked: ${{ secrets.ApiKey }}\n  fine: ${{ steps.a.outputs.x }}\n"
    found = warnings(tmp_path, "echo hello", tail)
    assert found == [
        "27:11: output `leaked` is built from a secret (`secrets.ApiKey`): it is recorded and "
        "exported masked (***), never in clear"
    ]


def test_the_warning_reaches_runner_validate(tmp_path: Path) -> None:
    import subprocess
    import sys

    warnings(tmp_path, 'echo "x=${{ secrets.ApiKey }}" >> $RUNNER_OUTPUT')
    runner = Path(sys.executable).with_name("runner")
    done = subprocess.run(
        [str(runner), "validate", str(tmp_path / "deploy.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning: a step output is written from a secret" in done.stdout
    assert "[secret]" in done.stdout
