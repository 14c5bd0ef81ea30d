"""The documentation's examples stay true to the code.

Every ```yaml block in docs/*.md that is a whole workflow (it starts with a
`# yaml-language-server` line or with `name:`) must pass `runner validate` without a single
diagnostic; the CI examples must be YAML mappings of the expected shape; the example trust files
must load with the runner's own parsers.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers.paths import ROOT

from runner.cli.validate import validate_files

DOCS = sorted((ROOT / "docs").glob("*.md"))
EXAMPLES = ROOT / "examples"
_FENCE = re.compile(r"^```yaml[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def workflow_blocks() -> list[tuple[str, str]]:
    """(id, text) of every yaml block in the docs that is a complete workflow."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            block = match.group(1)
            first = block.lstrip().splitlines()[0] if block.strip() else ""
            if first.startswith("# yaml-language-server") or first.startswith("name:"):
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{doc.name}:{line}", block))
    return found


BLOCKS = workflow_blocks()


def test_the_docs_have_a_complete_example() -> None:
    assert any(name.startswith("dsl.md:") for name, _ in BLOCKS), (
        "docs/dsl.md should hold at least one complete, validated workflow"
    )


@pytest.mark.parametrize(("name", "block"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_workflow_block_validates(
    name: str, block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a repository of its own, so that `./actions/...` resolves to the shipped actions
    (tmp_path / ".git").mkdir()
    shutil.copytree(ROOT / "actions", tmp_path / "actions")
    (tmp_path / "workflows").mkdir()
    path = tmp_path / "workflows" / "example.yml"
    path.write_text(block, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    code, report = validate_files(["workflows/example.yml"], "text")
    assert code == 0, f"{name} does not validate:\n{report}"
    assert report == "", f"{name} validates with diagnostics:\n{report}"


def _load_yaml(path: Path) -> object:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


CI_EXAMPLES = sorted((EXAMPLES / "ci").glob("*.yml"))


def test_there_are_ci_examples() -> None:
    names = {p.name for p in CI_EXAMPLES}
    assert {"github-actions.yml", "gitlab-ci.yml"} <= names


@pytest.mark.parametrize("path", CI_EXAMPLES, ids=[p.name for p in CI_EXAMPLES])
def test_ci_example_is_yaml(path: Path) -> None:
    data = _load_yaml(path)
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    if path.name == "github-actions.yml":
        assert "on" in data and "jobs" in data
        for job_id, job in data["jobs"].items():
            assert "runs-on" in job and "steps" in job, job_id
    if path.name == "gitlab-ci.yml":
        assert "stages" in data
        jobs = {k: v for k, v in data.items() if isinstance(v, dict) and "script" in v}
        assert jobs, "no job with a `script`"


def test_example_people_file_loads() -> None:
    from runner.approvals.identity import parse_directory

    path = EXAMPLES / "trust" / "people.yml"
    directory = parse_directory(path.read_bytes(), str(path))
    assert directory.people and directory.teams


def test_example_allowed_signers_load() -> None:
    from runner.approvals.allowed_signers import parse_allowed_signers, parse_revoked_keys

    trust = EXAMPLES / "trust"
    signers = parse_allowed_signers(
        (trust / "allowed_signers").read_text(encoding="utf-8"), source="allowed_signers"
    )
    assert signers and all(s.namespaces == ("runner-approval",) for s in signers)
    parse_revoked_keys((trust / "revoked_keys").read_bytes(), source="revoked_keys")


def test_example_principals_match_people() -> None:
    from runner.approvals.allowed_signers import parse_allowed_signers
    from runner.approvals.identity import parse_directory

    trust = EXAMPLES / "trust"
    directory = parse_directory((trust / "people.yml").read_bytes(), "people.yml")
    signers = parse_allowed_signers(
        (trust / "allowed_signers").read_text(encoding="utf-8"), source="allowed_signers"
    )
    for signer in signers:
        for principal in signer.principals:
            assert directory.by_principal(principal) is not None, principal
