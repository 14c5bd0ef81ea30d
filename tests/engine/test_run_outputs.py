"""What steps report back: ``$GITHUB_OUTPUT``/``$RUNNER_OUTPUT`` (GitHub's file format, heredocs
included), ``$GITHUB_ENV``, ``$GITHUB_PATH``, Octopus's ``set_octopusvariable``, and the workflow's
``outputs`` exported to the outer job."""

from __future__ import annotations

import json

import pytest
from helpers.run_helpers import Workspace

from runner.steps.file_commands import parse_key_values


def one_step(script: str, *, shell: str = "bash") -> str:
    body = "\n".join("      " + line for line in script.splitlines())
    return f"""
name: outputs
steps:
  - id: write
    name: Write
    shell: {shell}
    run: |
{body}
"""


@pytest.mark.parametrize("variable", ["GITHUB_OUTPUT", "RUNNER_OUTPUT"])
def test_output_seen_by_later_steps(workspace: Workspace, variable: str) -> None:
    result = workspace.run(
        f"""
        name: outputs
        steps:
          - id: build
            name: Build
            run: |
              echo "version=1.4.2" >> "${variable}"
              echo "url=http://x/?a=b&c=d" >> "${variable}"
          - id: use
            name: Use
            env:
              VERSION: ${{{{ steps.build.outputs.version }}}}
              URL: ${{{{ steps.build.outputs.url }}}}
              MISSING: ${{{{ steps.build.outputs.missing }}}}
            run: echo "got $VERSION $URL [$MISSING]"
        """
    )
    assert result.code == 0, result.err
    assert result.step("build").outputs == {"version": "1.4.2", "url": "http://x/?a=b&c=d"}
    assert "  got 1.4.2 http://x/?a=b&c=d []" in result.lines()


#: what a step writes with printf, and the outputs it ends with
OUTPUT_FILES = [
    ("plain", r"a=1\nb=two words\n", {"a": "1", "b": "two words"}),
    ("empty value", r"empty=\n", {"empty": ""}),
    ("value with = and <<", r"a=b=c<<d\n", {"a": "b=c<<d"}),
    ("heredoc", r"text<<EOF\nline 1\nline 2\nEOF\n", {"text": "line 1\nline 2"}),
    ("heredoc empty", r"text<<EOF\nEOF\n", {"text": ""}),
    ("heredoc one empty line", r"text<<EOF\n\nEOF\n", {"text": ""}),
    ("heredoc two empty lines", r"text<<EOF\n\n\nEOF\n", {"text": "\n"}),
    (
        "heredoc delimiter-like lines",
        r"text<<EOF\nEOF is near\n EOF\nEOF \nEOFEOF\nxEOF\nEOF\n",
        {"text": "EOF is near\n EOF\nEOF \nEOFEOF\nxEOF"},
    ),
    ("heredoc holding key=value", r"text<<END\nk=v\nk2<<EOF\nEND\n", {"text": "k=v\nk2<<EOF"}),
    ("heredoc last line unterminated", r"text<<EOF\nv\nEOF", {"text": "v"}),
    ("crlf", r"a=1\r\nb<<EOF\r\nv1\r\nv2\r\nEOF\r\n", {"a": "1", "b": "v1\r\nv2"}),
    ("lone CR inside a value", r"a=x\ry\nb<<EOF\nu\rv\nEOF\n", {"a": "x\ry", "b": "u\rv"}),
    ("bom", r"\xef\xbb\xbfa=1\n", {"a": "1"}),
    ("blank lines skipped", r"\n\na=1\n\n", {"a": "1"}),
    (
        "several entries, later wins",
        r"a=1\nb<<X\nfirst\nX\na=2\nb<<Y\nsecond\nY\n",
        {"a": "2", "b": "second"},
    ),
]


@pytest.mark.parametrize(
    ("content", "outputs"),
    [(c, o) for _, c, o in OUTPUT_FILES],
    ids=[name for name, _, _ in OUTPUT_FILES],
)
def test_output_file_forms(workspace: Workspace, content: str, outputs: dict[str, str]) -> None:
    result = workspace.run(one_step(f"printf '{content}' >> \"$GITHUB_OUTPUT\""))
    assert result.code == 0, result.out
    step = result.step("write")
    assert (step.outcome, step.error) == ("success", None)
    assert step.outputs == outputs


#: output files GitHub refuses: the step fails with GitHub's message, though it exited 0
BAD_OUTPUT_FILES = [
    (
        "missing delimiter",
        r"text<<EOF\nvalue\n",
        "Invalid value. Matching delimiter not found 'EOF'",
    ),
    (
        "delimiter with a trailing space",
        r"text<<EOF\nvalue\nEOF \n",
        "Invalid value. Matching delimiter not found 'EOF'",
    ),
    ("no newline after value", r"text<<EOF\nvalue", "Invalid value. EOF marker missing new line."),
    ("no = or <<", r"garbage\n", "Invalid format 'garbage'"),
    ("empty name", r"=x\n", "Invalid format '=x'. Name must not be empty"),
    (
        "empty delimiter",
        r"text<<\n",
        "Invalid format 'text<<'. Name must not be empty and delimiter must not be empty",
    ),
]


@pytest.mark.parametrize(
    ("content", "message"),
    [(c, m) for _, c, m in BAD_OUTPUT_FILES],
    ids=[name for name, _, _ in BAD_OUTPUT_FILES],
)
def test_bad_output_file_fails_step(workspace: Workspace, content: str, message: str) -> None:
    result = workspace.run(one_step(f"printf '{content}' >> \"$GITHUB_OUTPUT\""))
    assert result.code == 1
    step = result.step("write")
    assert (step.status, step.outcome, step.conclusion) == ("failure",) * 3
    assert step.exit_code == 0
    assert step.error == message
    assert step.outputs == {}
    assert result.record.error == {"message": "Step 'Write' failed", "detail": message}
    assert "✗ Write" in result.out
    assert f"({message})" in result.out


def test_python_step_writes_outputs(workspace: Workspace) -> None:
    script = (
        "import os\n"
        "with open(os.environ['GITHUB_OUTPUT'], 'a') as out:\n"
        "    out.write('json<<EOF\\n' + '{\"a\": [1, 2]}' + '\\nEOF\\n')\n"
    )
    result = workspace.run(one_step(script, shell="python"))
    assert result.code == 0, result.out
    assert json.loads(result.step("write").outputs["json"]) == {"a": [1, 2]}


def test_env_file_affects_later_steps(workspace: Workspace) -> None:
    result = workspace.run(
        """
        name: env
        env:
          FROM_WORKFLOW: workflow
        steps:
          - id: set
            name: Set
            run: |
              echo "DEPLOY_TARGET=blue" >> "$GITHUB_ENV"
              echo "FROM_WORKFLOW=overridden" >> "$RUNNER_ENV"
              printf 'NOTES<<EOF\\nfirst line\\nsecond line\\nEOF\\n' >> "$GITHUB_ENV"
              echo "in the same step: [${DEPLOY_TARGET:-}]"
          - id: use
            name: Use
            run: |
              echo "target=$DEPLOY_TARGET from=$FROM_WORKFLOW"
              printf '%s\\n' "$NOTES" | sed 's/^/notes: /'
          - id: step-env-wins
            name: Step env wins
            env:
              DEPLOY_TARGET: green
            run: |
              echo "step env=$DEPLOY_TARGET"
              echo "step env context=${{ env.DEPLOY_TARGET }}"
        """
    )
    assert result.code == 0, result.out
    lines = result.lines()
    assert "  in the same step: []" in lines
    assert "  target=blue from=overridden" in lines
    assert "  notes: first line" in lines
    assert "  notes: second line" in lines
    assert result.record.env == {
        "DEPLOY_TARGET": "blue",
        "FROM_WORKFLOW": "overridden",
        "NOTES": "first line\nsecond line",
    }
    # as in GitHub: GITHUB_ENV overrides the workflow's `env:`, a step's own `env:` overrides both
    assert "  step env=green" in lines
    assert "  step env context=green" in lines


def test_env_file_refuses_node_options_without_failing(workspace: Workspace) -> None:
    result = workspace.run(
        """
        name: env
        steps:
          - id: set
            name: Set
            run: |
              echo "NODE_OPTIONS=--require /tmp/evil.js" >> "$GITHUB_ENV"
              echo "SAFE=yes" >> "$GITHUB_ENV"
          - id: use
            name: Use
            run: echo "node=[${NODE_OPTIONS:-}] safe=$SAFE"
        """
    )
    assert result.code == 0, result.out
    assert result.step("set").outcome == "success"
    assert "  error: Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command." in (
        result.lines()
    )
    assert "  node=[] safe=yes" in result.lines()
    assert result.record.env == {"SAFE": "yes"}


def test_path_file_prepends_for_later_steps(workspace: Workspace) -> None:
    for name in ("first", "second"):
        tool = workspace.root / "tools" / name / "mytool"
        tool.parent.mkdir(parents=True)
        tool.write_text(f"#!/bin/sh\necho 'mytool from {name}'\n")
        tool.chmod(0o755)
    result = workspace.run(
        """
        name: path
        steps:
          - id: add-first
            name: Add first
            run: echo "$PWD/tools/first" >> "$GITHUB_PATH"
          - id: use-first
            name: Use first
            run: mytool
          - id: add-second
            name: Add second
            run: echo "$PWD/tools/second" >> "$RUNNER_PATH"
          - id: use-second
            name: Use second
            run: |
              mytool
              echo "$PATH" | tr ':' '\\n' | grep -c '/tools/'
        """
    )
    assert result.code == 0, result.out
    lines = result.lines()
    assert lines.index("  mytool from first") < lines.index("  mytool from second")
    assert "  2" in lines
    root = str(workspace.root)
    assert result.record.path == [f"{root}/tools/second", f"{root}/tools/first"]


def test_octopus_output_variable(workspace: Workspace) -> None:
    result = workspace.run(
        """
        name: octopus
        steps:
          - id: build
            name: Build the package
            run: |
              set_octopusvariable "PackageVersion" "2.0.1"
              set_octopusvariable "Notes" "multi
              line 'quoted' \\"value\\""
          - id: use
            name: Use
            env:
              VERSION: "#{Octopus.Action[Build the package].Output.PackageVersion}"
              NOTES: "#{Octopus.Action[Build the package].Output.Notes}"
            run: |
              echo "version=$VERSION"
              printf '%s\\n' "$NOTES"
        """
    )
    assert result.code == 0, result.out
    assert result.step("build").octopus == {
        "PackageVersion": "2.0.1",
        "Notes": "multi\nline 'quoted' \"value\"",
    }
    lines = result.lines()
    assert "  version=2.0.1" in lines
    assert "  multi" in lines
    assert "  line 'quoted' \"value\"" in lines


def test_sensitive_octopus_variable_masked_and_never_stored(workspace: Workspace) -> None:
    secret = "s3cr3t-T0ken-value"
    result = workspace.run(
        f"""
        name: octopus
        steps:
          - id: issue
            name: Issue a token
            run: |
              set_octopusvariable "ApiToken" "{secret}" -sensitive
              set_octopusvariable "TokenId" "id-17"
              echo "issued {secret}"
          - id: use
            name: Use
            env:
              TOKEN: "#{{Octopus.Action[Issue a token].Output.ApiToken}}"
            run: |
              echo "token=$TOKEN"
              test "$TOKEN" = "{secret}" && echo "token is intact"
        """
    )
    assert result.code == 0, result.out
    issue = result.step("issue")
    assert issue.octopus == {"TokenId": "id-17"}
    assert issue.secret_outputs == ["Octopus:ApiToken"]
    lines = result.lines()
    assert "  token=***" in lines
    assert "  token is intact" in lines
    assert secret not in result.out
    assert secret not in result.record_text


def test_set_octopusvariable_rejects_unknown_flag(workspace: Workspace) -> None:
    result = workspace.run(one_step('set_octopusvariable "Key" "value" -sensitve'))
    assert result.code == 1
    assert result.step("write").octopus == {}
    assert "  set_octopusvariable: unknown option '-sensitve' (expected -sensitive)" in (
        result.lines()
    )


WORKFLOW_OUTPUTS = """
name: exported
variables:
  Password:
    from-env: TEST_DB_PASSWORD
    secret: true
outputs:
  version:
    value: ${{ steps.build.outputs.version }}
    description: the version deployed
  notes: ${{ steps.build.outputs.notes }}
  environment: "#{Octopus.Environment.Name}"
  leaked: "password #{Password}"
steps:
  - id: build
    name: Build
    run: |
      echo "version=3.1.0" >> "$GITHUB_OUTPUT"
      printf 'notes<<EOF\\nline one\\nline two\\nEOF\\n' >> "$GITHUB_OUTPUT"
"""


def test_workflow_outputs_exported_inside_github_actions(workspace: Workspace) -> None:
    outer = workspace.root / "outer-output"
    outer.write_text("earlier=kept\n")
    result = workspace.run(
        WORKFLOW_OUTPUTS,
        env={
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(outer),
            "TEST_DB_PASSWORD": "correct-horse-battery",
        },
    )
    assert result.code == 0, result.out
    assert dict(parse_key_values(outer.read_text(), source="GITHUB_OUTPUT")) == {
        "earlier": "kept",
        "run-id": "run-1",
        "version": "3.1.0",
        "notes": "line one\nline two",
        "environment": "staging",
        "leaked": "password ***",
    }


def test_workflow_outputs_not_exported_outside_github_actions(workspace: Workspace) -> None:
    outer = workspace.root / "outer-output"
    outer.write_text("")
    result = workspace.run(
        WORKFLOW_OUTPUTS,
        env={"GITHUB_OUTPUT": str(outer), "TEST_DB_PASSWORD": "correct-horse-battery"},
    )
    assert result.code == 0, result.out
    assert outer.read_text() == ""
