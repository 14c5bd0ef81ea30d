"""Ways around a signed approval through git itself (issue #17): what a pusher of tags or of the
approvals branch can write.

* a tag named like the trust ref (``origin/approvals-trust``, or
  ``refs/remotes/origin/approvals-trust`` under ``refs/tags/``) must never be read as the trust
  ref: git's short-name rules try ``refs/tags/`` before ``refs/remotes/``;
* a valid abort must count however it is hidden: behind 500 junk files, deleted or rewritten by a
  later commit, or dropped by a merge;
* a huge file in the run's folder (a 48 MiB blob, or a link to a 256 MiB file in a local folder)
  is never read.

The git world (origin, deploy repository, protected trust branch, approver's clone, real
ssh-keygen keys) is ``helpers.approval_world``'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.approval_world import RUNNER, World, clean_env, git
from msgspec.structs import asdict

from runner.approvals.quorum import judge
from runner.model import Approvals
from runner.model import FileSource as FileConfig

FOLDER = "approvals/r1"

MALLORY_PEOPLE = """\
  - id: u-mallory
    username: mallory
    display-name: Mallory
    ssh-principals: [mallory@example.com]
"""

GATED = """\
name: Seed
environments: [production]
approvals:
  trust: {{ref: {ref}, people: trust/people.yml, allowed-signers: trust/allowed_signers, \
revoked-keys: trust/revoked_keys}}
  file: {{remote: origin, branch: approvals, path: approvals, poll-seconds: 1}}
steps:
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
      timeout-minutes: 0.05
  - id: after
    name: After
    run: echo "approved by $WHO"
    env:
      WHO: "#{{Octopus.Action[Approve release].Output.Manual.ResponsibleUser.DisplayName}}"
"""


# -- the trust ref shadowed by a tag -----------------------------------------------------------


def push_permissive_tag(world: World, tag: str) -> None:
    """A deployer's commit of trust files that let mallory approve, pushed as tag ``tag``, and
    the workspace fetching tags (as CI checkouts with tags do)."""
    keys = world.keys
    people = world.PEOPLE_YML.replace("teams:\n", MALLORY_PEOPLE + "teams:\n").replace(
        "trading-desk: [alice, bob, dave]", "trading-desk: [alice, bob, dave, mallory]"
    )
    signers = keys.allowed_signers() + (
        f'{keys.mallory.principal} namespaces="runner-approval" {keys.mallory.public}\n'
    )
    clone = world.root / "deployer"
    git(world.root, "clone", "-q", str(world.origin), str(clone))
    git(clone, "checkout", "-q", "--orphan", "evil")
    git(clone, "rm", "-rqf", "--ignore-unmatch", ".")
    (clone / "trust").mkdir()
    (clone / "trust" / "people.yml").write_text(people)
    (clone / "trust" / "allowed_signers").write_text(signers)
    (clone / "trust" / "revoked_keys").write_text("")
    git(clone, "add", "trust")
    git(clone, "commit", "-qm", "my own trust")
    git(clone, "tag", tag)
    git(clone, "push", "-q", "origin", f"refs/tags/{tag}")
    git(world.repo, "fetch", "-q", "--tags", "origin")


def run_with_mallorys_approval(
    world: World, monkeypatch: pytest.MonkeyPatch, ref: str, run_id: str
) -> tuple[int, str]:
    path = world.commit_workflow(GATED.format(ref=ref))
    request = world.request(
        run_id=run_id, digest=hashlib.sha256(path.read_bytes()).hexdigest(), commit=world.head
    )
    mallory = world.keys.mallory
    world.push_signed(world.body(request, mallory).encode(), mallory, run_id=run_id)
    done = world.run_here(monkeypatch, "--run-id", run_id)
    return done.returncode, done.stdout + done.stderr


def test_a_tag_named_like_the_short_trust_ref_does_not_shadow_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_permissive_tag(world, "origin/approvals-trust")
    code, output = run_with_mallorys_approval(world, monkeypatch, "origin/approvals-trust", "t1")
    assert "approved by" not in output, "the deployer's tag was read as the trust ref"
    assert code == 2, output
    assert "deploy.yml:4:16: `ref` must be a full ref name" in output
    assert "e.g. `refs/remotes/origin/approvals-trust`" in output


def test_a_tag_named_like_the_full_trust_ref_is_not_read(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trust ref was not fetched here; a tag ``refs/tags/refs/remotes/origin/...`` is
    what ``git rev-parse refs/remotes/origin/approvals-trust`` then finds."""
    push_permissive_tag(world, "refs/remotes/origin/approvals-trust")
    git(world.repo, "update-ref", "-d", "refs/remotes/origin/approvals-trust")
    code, output = run_with_mallorys_approval(
        world, monkeypatch, "refs/remotes/origin/approvals-trust", "t2"
    )
    assert "approved by" not in output, "the deployer's tag was read as the trust ref"
    assert code != 0, output
    assert "refs/remotes/origin/approvals-trust does not exist here" in output


# -- an abort hidden or deleted ----------------------------------------------------------------


def signed(world: World, request: Any, who: str, **changes: Any) -> dict[str, bytes]:
    key = getattr(world.keys, who)
    raw = world.body(request, key, **changes).encode()
    name = f"approvals/{request.run_id}/gate.{key.principal}.json"
    return {name: raw, name + ".sig": world.sign(raw, key)}


def verdict_of(world: World, request: Any) -> str:
    submissions, verdict = world.judge(request)
    assert all("internal" not in (s.problem or "") for s in submissions)
    return verdict.state


def test_junk_files_cannot_push_an_abort_out_of_the_listing(world: World) -> None:
    request = world.request()
    junk = {f"{FOLDER}/gate.az-{n:03}": b"junk\n" for n in range(500)}
    world.push(
        {
            **signed(world, request, "alice"),
            **junk,
            **signed(world, request, "bob", decision="abort"),
        }
    )
    assert verdict_of(world, request) == "aborted"


@pytest.mark.parametrize("how", ["deleted", "rewritten"])
def test_an_abort_deleted_or_rewritten_by_a_later_commit_still_counts(
    world: World, how: str
) -> None:
    request = world.request()
    abort = signed(world, request, "bob", decision="abort")
    world.push(abort, "bob aborts")
    name = next(iter(abort))
    if how == "deleted":
        git(world.approver, "rm", "-q", name, name + ".sig")
        git(world.approver, "commit", "-qm", "tidy up")
        git(world.approver, "push", "-q", "origin", "approvals")
    else:
        world.push({name: b"{}", name + ".sig": b"nothing"}, "rewrite")
    world.push(signed(world, request, "alice"), "alice approves")
    assert verdict_of(world, request) == "aborted"


def test_an_abort_dropped_by_a_merge_still_counts(world: World) -> None:
    """``git merge -s ours`` keeps the abort's commit in the history and drops its file: history
    simplification would follow the first parent only and never see it."""
    request = world.request()
    world.push({"README": b"approvals\n"}, "start")
    base = git(world.approver, "rev-parse", "HEAD")
    world.push(signed(world, request, "bob", decision="abort"), "bob aborts")
    abort = git(world.approver, "rev-parse", "HEAD")
    git(world.approver, "checkout", "-q", "-b", "side", base)
    (world.approver / "notes").write_text("x\n")
    git(world.approver, "add", "notes")
    git(world.approver, "commit", "-qm", "side")
    git(world.approver, "merge", "-q", "-s", "ours", "--no-edit", abort)
    git(world.approver, "push", "-q", "origin", "side:approvals")
    git(world.approver, "checkout", "-q", "approvals")
    git(world.approver, "reset", "-q", "--hard", "side")
    assert not (world.approver / FOLDER).exists()
    world.push(signed(world, request, "alice"), "alice approves")
    assert verdict_of(world, request) == "aborted"


def test_a_proceed_seen_then_deleted_still_counts_toward_the_quorum(world: World) -> None:
    request = world.request(quorum=(("trading-desk", 2),))
    source = world.source()
    source.register(request)
    alice = signed(world, request, "alice")
    world.push(alice, "alice approves")
    assert [s.who for s in source.poll(request) if not s.problem] == ["alice@example.com"]
    name = next(iter(alice))
    git(world.approver, "rm", "-q", name, name + ".sig")
    git(world.approver, "commit", "-qm", "tidy up")
    git(world.approver, "push", "-q", "origin", "approvals")
    world.push(signed(world, request, "bob"), "bob approves")
    submissions = source.poll(request)
    verdict = judge(request, submissions, world.directory(), None)
    assert verdict.state == "approved"


QUORUM_OF_TWO = GATED.replace(
    "      timeout-minutes: 0.05",
    "      require: [{{team: trading-desk, count: 2}}]\n      timeout-minutes: 10",
)


def rewrite_approvals(world: World) -> None:
    """Force-push ``approvals`` to a fresh commit with nothing in it: the history is gone."""
    git(world.approver, "checkout", "-q", "--orphan", "rewritten")
    git(world.approver, "rm", "-rqf", "--ignore-unmatch", ".")
    git(world.approver, "commit", "-q", "--allow-empty", "-m", "rewritten")
    git(world.approver, "push", "-q", "--force", "origin", "rewritten:approvals")
    git(world.approver, "branch", "-q", "-D", "approvals")
    git(world.approver, "checkout", "-q", "-b", "approvals")


def test_a_proceed_seen_is_recorded_at_once_and_survives_a_kill_and_a_rewrite(
    world: World,
) -> None:
    path = world.commit_workflow(QUORUM_OF_TWO.format(ref=world.TRUST_REF))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    request = world.request(run_id="k1", digest=digest, commit=world.head)
    world.push(signed(world, request, "alice"))
    argv = [
        RUNNER,
        "run",
        "deploy.yml",
        "--env",
        "production",
        "--state-dir",
        "S",
        "--run-id",
        "k1",
    ]
    runner = subprocess.Popen(
        argv, cwd=world.repo, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    record = world.repo / "S" / "runs" / "k1" / "record.json"
    try:
        deadline = time.monotonic() + 60  # a hang guard: the first poll comes at once
        while time.monotonic() < deadline and runner.poll() is None:
            if record.exists():
                gate = json.loads(record.read_text())["steps"][0].get("approval") or {}
                if [s["who"] for s in gate.get("submissions", [])] == ["alice@example.com"]:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("alice's approval was seen but not recorded while waiting")
    finally:
        runner.kill()
        runner.wait()
    rewrite_approvals(world)
    world.push(signed(world, request, "bob"))
    done = subprocess.run(
        [RUNNER, "resume", "k1", "--state-dir", "S"],
        cwd=world.repo,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    decisions = world.record("k1")["steps"][0]["approval"]["decisions"]
    assert sorted(d["username"] for d in decisions) == ["alice", "bob"]


PROCEED_ON_TIMEOUT = GATED.replace(
    "      timeout-minutes: 0.05", "      timeout-minutes: 0.05\n      on-timeout: proceed"
)


def test_an_abort_buried_past_the_bounds_never_lets_a_step_proceed_on_timeout(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More matching files than the source reads stall it (it never decides on a partial read);
    a step that proceeds on timeout must not then proceed over the abort it could not see."""
    path = world.commit_workflow(PROCEED_ON_TIMEOUT.format(ref=world.TRUST_REF))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    request = world.request(run_id="p1", digest=digest, commit=world.head)
    junk = {f"approvals/p1/gate.a{n:03}.json": f"{n}\n".encode() for n in range(600)}
    world.push({**junk, **signed(world, request, "bob", decision="abort")})
    done = world.run_here(monkeypatch, "--run-id", "p1")
    output = done.stdout + done.stderr
    assert "approved by" not in output and "proceeded on timeout" not in output, output
    assert done.returncode == 4, output
    assert "approval source file could not be read" in output
    assert "refusing to read them in part" in output


# -- huge files --------------------------------------------------------------------------------

POLL_ONCE = """\
import json, resource, sys
from pathlib import Path
from runner.approvals.files import FileSource
from runner.approvals.request import Interruption
from runner.approvals.trust import load_directory
from runner.git import Git
from runner.model import Approvals, Trust, FileSource as FileConfig
from runner.options import RunOptions

spec = json.loads(sys.argv[1])
trust, file = Trust(**spec["trust"]), FileConfig(**spec["file"])
repo = Path(spec["repo"])
source = FileSource(
    environ={}, approvals=Approvals(trust=trust, file=file), workspace=repo,
    directory=load_directory(trust, Git(repo), "nobody"), options=RunOptions(),
)
request = Interruption.from_dict(spec["request"])
source.register(request)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
problems = [s.problem for s in source.poll(request)]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kb": peak - before, "problems": problems}))
"""


def poll_in_a_process(world: World, request: Any, approvals: Approvals) -> dict[str, Any]:
    """One poll in a fresh interpreter: how much its peak RSS grew (git's own memory apart)."""
    assert approvals.trust is not None and approvals.file is not None
    spec = {
        "trust": asdict(approvals.trust),
        "file": asdict(approvals.file),
        "repo": str(world.repo),
        "request": request.to_dict(),
    }
    done = subprocess.run(
        [sys.executable, "-c", POLL_ONCE, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


MIB = 1024 * 1024


def sparse_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        out.truncate(size)
    return path


def test_a_huge_blob_in_the_runs_folder_is_not_read(world: World) -> None:
    """A 48 MiB blob (zeros: git stores it in a few hundred KiB), as an approval file and as a
    file of another name: neither is read."""
    big = sparse_file(world.root / "big", 48 * MIB)
    oid = git(world.approver, "hash-object", "-w", str(big))
    big.unlink()
    name = "gate.mallory@example.com.json"
    for path in (f"{FOLDER}/{name}", f"{FOLDER}/big.bin"):
        git(world.approver, "update-index", "--add", "--cacheinfo", f"100644,{oid},{path}")
    git(world.approver, "commit", "-qm", "big")
    git(world.approver, "push", "-q", "origin", "approvals")
    result = poll_in_a_process(world, world.request(), world.approvals_config())
    assert result["grew_kb"] < 16 * 1024, f"the poll grew by {result['grew_kb'] // 1024} MiB"
    assert result["problems"] == [
        f"{name}: the body is {48 * MIB} bytes, over the 64 KiB limit (not read)"
    ]


def local_config(world: World) -> Approvals:
    base = world.approvals_config()
    return Approvals(trust=base.trust, file=FileConfig(path="approvals", poll_seconds=1))


@pytest.mark.parametrize("kind", ["link", "file"])
def test_a_huge_local_file_or_a_link_to_one_is_not_read(world: World, kind: str) -> None:
    """A local folder (no remote): a link to a 256 MiB file outside it is never followed, and a
    256 MiB file in it is never read (both sparse: no disk used)."""
    folder = world.repo / FOLDER
    folder.mkdir(parents=True)
    name = "gate.mallory@example.com.json"
    if kind == "link":
        os.symlink(sparse_file(world.root / "outside", 256 * MIB), folder / name)
        reason = "is a symbolic link (not followed)"
    else:
        sparse_file(folder / name, 256 * MIB)
        reason = f"is {256 * MIB} bytes, over the 64 KiB limit (not read)"
    result = poll_in_a_process(world, world.request(), local_config(world))
    assert result["grew_kb"] < 16 * 1024, f"the poll grew by {result['grew_kb'] // 1024} MiB"
    assert result["problems"] == [f"{name}: {reason}"]
