"""hashFiles as GitHub's runner computes it, and what a link in the workspace may not make it do:
walk outside the workspace, loop, or hash a file that is not the workspace's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runner.evaluation.hashfiles import hash_files


def expected(*files: Path) -> str:
    outer = hashlib.sha256()
    for path in sorted(files):
        outer.update(hashlib.sha256(path.read_bytes()).digest())
    return outer.hexdigest()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    (root / "app" / "deep").mkdir(parents=True)
    (root / "app" / "package-lock.json").write_text("one")
    (root / "app" / "deep" / "package-lock.json").write_text("two")
    (root / "README.md").write_text("readme")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "package-lock.json").write_text("not ours")
    return root


def test_the_digest_of_the_digests_in_path_order(workspace: Path) -> None:
    files = [workspace / "app/package-lock.json", workspace / "app/deep/package-lock.json"]
    assert hash_files(workspace, "**/package-lock.json") == expected(*files)
    assert hash_files(workspace, "app/package-lock.json") == expected(files[0])
    assert hash_files(workspace, "app/*/package-lock.json") == expected(files[1])
    assert hash_files(workspace, "**/*.json", "!app/deep/**") == expected(files[0])
    assert hash_files(workspace, "**") == expected(*files, workspace / "README.md")
    assert hash_files(workspace, "**/nothing-*") == ""


def test_a_link_to_a_folder_is_not_followed_unless_asked(workspace: Path) -> None:
    (workspace / "linked").symlink_to(workspace / "app" / "deep")
    own = [workspace / "app/package-lock.json", workspace / "app/deep/package-lock.json"]
    assert hash_files(workspace, "**/package-lock.json") == expected(*own)
    assert hash_files(workspace, "linked/*.json") == ""
    # a link to a file is hashed as the file, as GitHub's runner does, when the file is ours
    (workspace / "current.json").symlink_to(workspace / "app" / "package-lock.json")
    assert hash_files(workspace, "current.json") == expected(own[0])
    followed = hash_files(workspace, "--follow-symbolic-links", "**/package-lock.json")
    assert followed == expected(*own, workspace / "linked/package-lock.json")


def test_nothing_outside_the_workspace_is_walked_or_hashed(workspace: Path) -> None:
    (workspace / "root").symlink_to("/")
    (workspace / "out").symlink_to(workspace.parent / "outside")
    (workspace / "lock.json").symlink_to(workspace.parent / "outside" / "package-lock.json")
    own = [workspace / "app/package-lock.json", workspace / "app/deep/package-lock.json"]
    for follow in ([], ["--follow-symbolic-links"]):
        # a walk of / through the link would take minutes and read what is not ours
        assert hash_files(workspace, *follow, "**/package-lock.json") == expected(*own)
        assert hash_files(workspace, *follow, "root/**/passwd") == ""
        assert hash_files(workspace, *follow, "out/*") == ""
        assert hash_files(workspace, *follow, "lock.json") == ""
        assert hash_files(workspace, *follow, "../outside/*") == ""


def test_a_loop_of_links_ends(workspace: Path) -> None:
    (workspace / "app" / "deep" / "up").symlink_to(workspace)
    (workspace / "a").symlink_to(workspace / "b")
    (workspace / "b").symlink_to(workspace / "a")
    own = [workspace / "app/package-lock.json", workspace / "app/deep/package-lock.json"]
    for follow in ([], ["--follow-symbolic-links"]):
        assert hash_files(workspace, *follow, "**/package-lock.json") == expected(*own)
        assert hash_files(workspace, *follow, "a/**") == ""
