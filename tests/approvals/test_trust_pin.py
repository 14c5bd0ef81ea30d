"""The trust ref is read from the commit it named when the run started (``pin_trust``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner.approvals.trust import TrustFiles, pin_trust
from runner.errors import ApprovalError
from runner.git import Git
from runner.model import Approvals, Trust, Workflow


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "trust")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "people.yml").write_text("first\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def workflow(ref: str | None) -> Workflow:
    trust = Trust(people="people.yml", ref=ref)
    return Workflow(name="w", path="w.yml", digest="d", steps=(), approvals=Approvals(trust=trust))


def test_the_ref_moved_after_pinning_is_not_read(repo: Path) -> None:
    pinned = pin_trust(workflow("refs/heads/trust"), Git(repo))
    trust = pinned.approvals.trust
    assert trust is not None and trust.commit == git(repo, "rev-parse", "trust")
    (repo / "people.yml").write_text("moved\n")
    git(repo, "commit", "-q", "-am", "moved")
    assert TrustFiles.of(trust, Git(repo)).read("people.yml") == b"first\n"
    # without the pin, the ref's new commit
    assert TrustFiles(Git(repo), "refs/heads/trust").read("people.yml") == b"moved\n"


def test_a_resumed_run_keeps_the_commit_it_started_with(repo: Path) -> None:
    first = git(repo, "rev-parse", "trust")
    (repo / "people.yml").write_text("second\n")
    git(repo, "commit", "-q", "-am", "second")
    trust = pin_trust(workflow("refs/heads/trust"), Git(repo), commit=first).approvals.trust
    assert trust is not None and trust.commit == first


def test_no_ref_no_pin(repo: Path) -> None:
    assert pin_trust(workflow(None), Git(repo)).approvals.trust == Trust(people="people.yml")


def test_a_pinned_commit_missing_from_the_clone_says_to_fetch_history(repo: Path) -> None:
    trust = Trust(people="people.yml", ref="refs/heads/trust", commit="1" * 40)
    with pytest.raises(ApprovalError) as caught:
        TrustFiles.of(trust, Git(repo)).read("people.yml")
    assert "(the commit refs/heads/trust named when the run started)" in caught.value.message
    assert caught.value.hint is not None and "no --depth=1" in caught.value.hint


def test_the_files_of_one_check_at_the_tip_come_from_one_commit(repo: Path) -> None:
    """Unpinned (``approval verify`` without a record, the keys at the tip), the tip is read
    once: a ref that moves between two files' reads cannot mix two commits' trust (allowed
    signers of one, revoked keys of another)."""
    (repo / "revoked").write_text("first revoked\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "revoked")
    reader = Git(repo)
    calls = reader.calls
    files = TrustFiles.at_tip(reader, "refs/heads/trust")
    assert files.read("people.yml") == b"first\n"
    (repo / "people.yml").write_text("moved\n")
    (repo / "revoked").write_text("moved revoked\n")
    git(repo, "commit", "-q", "-am", "moved")
    assert files.read("revoked") == b"first revoked\n"
    assert files.read_if_there("revoked") == b"first revoked\n"
    assert reader.calls == calls + 3  # the tip once, each file once
    missing = TrustFiles.at_tip(reader, "refs/heads/nope")
    with pytest.raises(ApprovalError, match="refs/heads/nope does not exist here"):
        missing.read("people.yml")
