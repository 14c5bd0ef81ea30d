"""``runner.git``: the one way the runner reads git, with real git.

A timeout kills git and what it started, a missing git or a folder that is no repository is an
answer or a clean :class:`GitError` (never a traceback), and the caller's ``GIT_*`` variables,
``refs/replace``, and hooks or an fsmonitor a step wrote into the repository do not reach the
runner's own git calls.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

import runner.git
from runner.errors import ApprovalError, GitError
from runner.git import (
    Git,
    deployed_commit,
    exact_ref,
    git_environment,
    has_file,
    head,
    is_ancestor,
    read_verified,
    ref_commit,
    rev_commit,
    verified_file,
)

IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@e",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@e",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    """Plain git, as a user (or a workflow step) runs it."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **IDENTITY},
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str = "c") -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


# -- answers ---------------------------------------------------------------------------------


def test_reads_refs_commits_files_and_ancestry(repo: Path) -> None:
    first = commit(repo, {"trust/people.yml": "first\n"})
    second = commit(repo, {"trust/people.yml": "second\n"})
    reader = Git(repo)
    assert head(reader) == second
    assert exact_ref(reader, "refs/heads/main") == second
    assert exact_ref(reader, "refs/heads/nope") is None
    assert rev_commit(reader, "refs/heads/main") == second
    assert rev_commit(reader, first) == first
    assert is_ancestor(reader, first, second)
    assert not is_ancestor(reader, second, first)
    assert has_file(reader, first, "trust/people.yml")
    assert not has_file(reader, first, "trust/other.yml")
    assert reader.read("show", f"{first}:trust/people.yml") == b"first\n"


def test_exact_ref_never_guesses_a_short_name(repo: Path) -> None:
    """A tag named like the full ref does not answer for it (issue #17)."""
    commit(repo, {"a": "1"})
    git(repo, "tag", "refs/heads/trust")  # refs/tags/refs/heads/trust
    assert exact_ref(Git(repo), "refs/heads/trust") is None


def test_ref_commit_never_guesses_a_short_name(repo: Path) -> None:
    """Nor does ``ref_commit`` (the trust ref's read): a tag named like the missing full ref, or
    a ref below it, does not answer for it."""
    commit(repo, {"a": "1"})
    git(repo, "tag", "refs/heads/trust")  # refs/tags/refs/heads/trust
    git(repo, "branch", "trust/below")  # refs/heads/trust/below: a pattern match, not the ref
    reader = Git(repo)
    assert ref_commit(reader, "refs/heads/trust") is None
    assert ref_commit(reader, "refs/heads") is None
    assert ref_commit(reader, "refs/heads/*") is None  # git's patterns glob; the name does not


def test_ref_commit_peels_tags_to_their_commit(repo: Path) -> None:
    first = commit(repo, {"a": "1"})
    git(repo, "tag", "light")
    git(repo, "tag", "-a", "annotated", "-m", "t")
    git(repo, "tag", "-a", "of-a-tag", "annotated", "-m", "t")  # peeled by git, as before
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    git(repo, "tag", "-a", "of-a-tree", tree, "-m", "t")
    git(repo, "tag", "a-tree", tree)
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/heads/main")
    reader = Git(repo)
    for ref in ("light", "annotated", "of-a-tag"):
        assert ref_commit(reader, f"refs/tags/{ref}") == first, ref
    assert ref_commit(reader, "refs/remotes/origin/HEAD") == first
    assert ref_commit(reader, "refs/tags/of-a-tree") is None
    assert ref_commit(reader, "refs/tags/a-tree") is None
    assert ref_commit(reader, "refs/heads/nope") is None
    # one git process for a branch or an annotated tag
    calls = reader.calls
    ref_commit(reader, "refs/heads/main")
    ref_commit(reader, "refs/tags/annotated")
    assert reader.calls == calls + 2


def test_a_failure_says_what_git_said(repo: Path) -> None:
    with pytest.raises(GitError) as caught:
        Git(repo).read("show", "HEAD:missing")
    assert caught.value.message.startswith("git show failed: fatal: ")
    assert isinstance(caught.value, ApprovalError)  # a failure is never a decision


def test_a_folder_that_is_no_repository_is_an_answer(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for folder in (plain, tmp_path / "nowhere"):
        reader = Git(folder)
        assert head(reader) is None
        assert reader.query("rev-parse", "HEAD") is None
        with pytest.raises(GitError, match=r"^git rev-parse failed: fatal: "):
            reader.read("rev-parse", "HEAD")


def test_a_missing_git_is_a_clean_error(repo: Path) -> None:
    reader = Git(repo, executable=str(repo / "no-git"))
    with pytest.raises(GitError) as caught:
        head(reader)
    assert caught.value.message == f"git rev-parse failed: cannot run {repo / 'no-git'}: not found"


def test_the_deployed_commit_is_head_not_the_ci_variable(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit checked out, whose scripts run; the CI's variable only without one: without
    a repository, or on a machine without git at all (there the run failed, exit 6)."""
    monkeypatch.setenv("GITHUB_SHA", "f" * 40)
    checked_out = commit(repo, {"deploy.sh": "echo\n"})
    assert deployed_commit(Git(repo)) == checked_out
    assert deployed_commit(Git(repo.parent / "plain-folder")) == "f" * 40
    no_git = Git(repo, executable=str(repo / "no-git"))
    with pytest.raises(GitError):
        deployed_commit(no_git)  # a git on PATH that this reader cannot run: an error
    monkeypatch.setattr("runner.git.shutil.which", lambda name: None)
    assert deployed_commit(no_git) == "f" * 40


def test_a_timeout_kills_git_and_what_it_started(repo: Path, tmp_path: Path) -> None:
    """A git that hangs (here a stand-in that starts a child and waits) is stopped at the
    timeout, its whole process group with it."""
    pid_file = tmp_path / "child.pid"
    fake = tmp_path / "git"
    fake.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pid_file}\nwait\n")
    fake.chmod(0o755)
    reader = Git(repo, executable=str(fake), timeout=1)
    with pytest.raises(GitError, match=r"^git fetch failed: git did not finish within 1 s$"):
        reader.read("fetch", "origin")
    child = int(pid_file.read_text())
    # SIGKILL is delivered at once, but the kernel may take a moment to end the process
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a killed child whose parent died too may stay a zombie until the
    container's init reaps it: that is not running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_output_past_the_limit_is_refused_not_read_in_part(repo: Path) -> None:
    commit(repo, {"big": "x" * 200_000})
    with pytest.raises(GitError, match=r"^git show wrote more than 1024 bytes; refusing"):
        Git(repo).read("show", "HEAD:big", limit=1024)
    assert len(Git(repo).read("show", "HEAD:big")) == 200_000


def test_input_is_fed_to_git(repo: Path) -> None:
    first = commit(repo, {"a": "1"})
    out = Git(repo).read("cat-file", "--batch-check", input=f"{first}\n".encode())
    assert out.decode().split() == [first, "commit", out.decode().split()[2]]


# -- isolation -------------------------------------------------------------------------------


def test_the_callers_git_variables_do_not_point_git_elsewhere(repo: Path, tmp_path: Path) -> None:
    """Run from a git hook or an alias, the runner inherits ``GIT_DIR``, ``GIT_INDEX_FILE``,
    ``-c`` settings (``GIT_CONFIG_PARAMETERS``, ``GIT_CONFIG_COUNT``): none of them may make it
    read another repository, or another config, than its workspace's."""
    mine = commit(repo, {"a": "mine"})
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    theirs = commit(other, {"a": "theirs"})
    environ = {
        **os.environ,
        "GIT_DIR": str(other / ".git"),
        "GIT_WORK_TREE": str(other),
        "GIT_INDEX_FILE": str(other / ".git" / "index"),
        "GIT_OBJECT_DIRECTORY": str(other / ".git" / "objects"),
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(other / ".git" / "objects"),
        "GIT_CONFIG_PARAMETERS": "'user.email'='injected@example.com'",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "user.email",
        "GIT_CONFIG_VALUE_0": "injected@example.com",
    }
    # the same environment misleads plain git: the test would see it if the runner's did too
    leaked = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )
    assert leaked.stdout.strip() == theirs
    reader = Git(repo, environ=environ)
    assert head(reader) == mine
    assert reader.query("config", "--local", "user.email") is None
    assert reader.read("show", "HEAD:a") == b"mine"


def test_the_environment_git_gets() -> None:
    environ = {
        "HOME": "/home/x",
        "PATH": "/bin",
        "SSH_AUTH_SOCK": "/tmp/agent",
        "GIT_DIR": "/elsewhere",
        "GIT_CONFIG_PARAMETERS": "'core.hookspath'='/x'",
        "GIT_EXEC_PATH": "/evil",
        "GIT_SSH_COMMAND": "ssh -i key",
        "GIT_CONFIG_GLOBAL": "/etc/ci-gitconfig",
        "GIT_TERMINAL_PROMPT": "1",
        "GIT_NO_REPLACE_OBJECTS": "0",
    }
    assert git_environment(environ) == {
        "HOME": "/home/x",
        "PATH": "/bin",
        "SSH_AUTH_SOCK": "/tmp/agent",
        "GIT_SSH_COMMAND": "ssh -i key",
        "GIT_CONFIG_GLOBAL": "/etc/ci-gitconfig",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_GRAFT_FILE": "/dev/null/no-grafts",
    }


def test_replace_refs_do_not_substitute_a_commit(repo: Path) -> None:
    """``git replace`` makes plain git show another commit's files under a commit's id."""
    good = commit(repo, {"people.yml": "good\n"})
    evil = commit(repo, {"people.yml": "evil\n"})
    git(repo, "replace", good, evil)
    assert git(repo, "show", f"{good}:people.yml") == "evil"  # what plain git now answers
    assert Git(repo).read("show", f"{good}:people.yml") == b"good\n"


def test_grafts_do_not_cut_history(repo: Path) -> None:
    """``.git/info/grafts`` makes plain git see a commit without its parents."""
    first = commit(repo, {"a": "1"})
    second = commit(repo, {"a": "2"})
    (repo / ".git" / "info" / "grafts").write_text(second + "\n")
    assert git(repo, "log", "--format=%H") == second  # what plain git now answers
    assert Git(repo).read("log", "--format=%H").decode().split() == [second, first]
    assert is_ancestor(Git(repo), first, second)


def test_hooks_a_step_wrote_do_not_run_in_the_runners_fetch(repo: Path, tmp_path: Path) -> None:
    """A step can write ``.git/hooks`` or point ``core.hooksPath`` somewhere: git runs the
    ``reference-transaction`` hook whenever a ref moves, so the runner's own ``git fetch`` of
    the approvals branch would run it, with the runner's environment."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    commit(origin, {"a": "1"})
    commit(repo, {"a": "0"})
    marker = tmp_path / "ran"
    hook = f"#!/bin/sh\necho ran >> {marker}\n"
    for folder in (repo / ".git" / "hooks", tmp_path / "hooks"):
        folder.mkdir(exist_ok=True)
        (folder / "reference-transaction").write_text(hook)
        (folder / "reference-transaction").chmod(0o755)
    git(repo, "fetch", "-q", str(origin), "+refs/heads/main:refs/plain/one")
    assert marker.exists(), "the hook did not run for plain git: the test proves nothing"
    marker.unlink()
    Git(repo).read("fetch", "-q", str(origin), "+refs/heads/main:refs/runner/one")
    assert not marker.exists()
    git(repo, "config", "core.hooksPath", str(tmp_path / "hooks"))
    Git(repo).read("fetch", "-q", str(origin), "+refs/heads/main:refs/runner/two")
    assert not marker.exists()
    assert exact_ref(Git(repo), "refs/runner/two") is not None


def test_an_fsmonitor_a_step_configured_does_not_run(repo: Path, tmp_path: Path) -> None:
    commit(repo, {"a": "1"})
    marker = tmp_path / "ran"
    monitor = tmp_path / "monitor"
    monitor.write_text(f"#!/bin/sh\necho ran >> {marker}\n")
    monitor.chmod(0o755)
    git(repo, "config", "core.fsmonitor", str(monitor))
    git(repo, "status", "--short")
    assert marker.exists(), "plain git did not run the fsmonitor: the test proves nothing"
    marker.unlink()
    Git(repo).read("status", "--short")
    assert not marker.exists()


def test_verified_file_reads_through_checked_objects(repo: Path) -> None:
    first = commit(repo, {"trust/people.yml": "good\n", "trust/sub/x": "x\n"})
    reader = Git(repo)
    assert verified_file(reader, first, "trust/people.yml") == b"good\n"
    assert verified_file(reader, first, "trust/sub/x") == b"x\n"
    assert verified_file(reader, first, "trust/other.yml") is None
    assert verified_file(reader, first, "nothing/here") is None
    with pytest.raises(GitError, match="is not a regular file"):
        verified_file(reader, first, "trust/sub")
    with pytest.raises(GitError, match="is missing from the repository"):
        verified_file(reader, "1" * 40, "trust/people.yml")
    with pytest.raises(GitError, match="not a full commit id"):
        verified_file(reader, "HEAD", "trust/people.yml")


def test_verified_file_refuses_an_overwritten_object(repo: Path) -> None:
    """git itself shows an object file overwritten with another object's, under the old id."""
    good = commit(repo, {"people.yml": "good\n"})
    evil = commit(repo, {"people.yml": "evil\n"})
    objects = repo / ".git" / "objects"
    target = objects / good[:2] / good[2:]
    target.chmod(0o644)
    target.write_bytes((objects / evil[:2] / evil[2:]).read_bytes())
    assert git(repo, "show", f"{good}:people.yml") == "evil"  # what plain git now answers
    with pytest.raises(GitError, match=f"object {good[:12]} in the repository does not hash"):
        verified_file(Git(repo), good, "people.yml")


def test_a_file_verified_once_is_not_read_again_nor_replaced(repo: Path) -> None:
    """The run reads people, keys and policy at the same pinned commit at each check: the
    second read starts no git, and a step that rewrites the object in between changes
    nothing (what the commit holds was checked against its id the first time)."""
    good = commit(repo, {"people.yml": "good, first read\n"})
    evil = commit(repo, {"people.yml": "evil\n"})
    reader = Git(repo)
    assert verified_file(reader, good, "people.yml") == b"good, first read\n"
    assert verified_file(reader, good, "absent.yml") is None
    calls = reader.calls
    objects = repo / ".git" / "objects"
    target = objects / good[:2] / good[2:]
    target.chmod(0o644)
    target.write_bytes((objects / evil[:2] / evil[2:]).read_bytes())
    assert verified_file(reader, good, "people.yml") == b"good, first read\n"
    assert verified_file(reader, good, "absent.yml") is None
    assert reader.calls == calls
    # read afresh, the rewritten object is refused as before
    with pytest.raises(GitError, match="does not hash"):
        read_verified(reader, good, "people.yml")


def test_the_verified_files_kept_are_bounded(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = runner.git._Verified(entries=3, size=120)
    monkeypatch.setattr(runner.git, "_VERIFIED", kept)
    first = commit(repo, {f"f{n}": f"{n}\n" * 10 for n in range(5)})
    reader = Git(repo)
    for n in range(5):
        verified_file(reader, first, f"f{n}")
    assert list(kept.files) == [(first, "f2"), (first, "f3"), (first, "f4")]
    big = commit(repo, {"big": "x" * 90})
    verified_file(reader, big, "big")
    assert list(kept.files) == [(first, "f4"), (big, "big")]
    assert kept.held == 20 + 90


def test_the_verified_files_kept_are_counted_once_when_threads_read_them_together() -> None:
    kept = runner.git._Verified(entries=8, size=1000)
    files = {(f"{n:040x}", "people.yml"): b"x" * (n + 1) for n in range(16)}

    def keep_all() -> None:
        for key, data in files.items():
            kept.keep(key, data)

    threads = [threading.Thread(target=keep_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(kept.files) <= 8
    assert kept.held == sum(len(data or b"") for data in kept.files.values())
