"""The GitLab CI example run by a real CI client: ``gitlab-ci-local`` (the npm package, pinned in
``.ci/package.json``) runs ``examples/ci/gitlab-ci.yml``, minus its ``image:`` line, with its
shell executor, against a bare git ``origin`` holding the deployed ``main``, a trust branch and
an approvals branch, as docs/ci.md and the walkthrough in docs/approvals.md describe.

How gitlab-ci-local stands in for GitLab here (its source, v4.72.0):

* ``--shell-isolation``: each job runs in a folder of its own (``.gitlab-ci-local/builds/<job>``,
  the repository's tracked files and ``.git``, reset at each job), and gets the artifacts of the
  jobs it ``needs`` copied in, as a GitLab job gets a fresh checkout plus artifacts; without it
  every job would share the checkout and an artifact would prove nothing.
* ``--no-artifacts-to-source``: artifacts stay in ``.gitlab-ci-local/artifacts/<job>`` (where the
  approver "downloads" ``request.json``) instead of being copied into the checkout.
* A run without a job name is a new pipeline: the manual ``resume-production`` waits. Naming the
  job (``gitlab-ci-local resume-production``) is pressing *Run* on it in that pipeline: it gets
  ``deploy-production``'s artifacts and its dotenv report. Artifacts are kept per job name and
  folder, so each pipeline gets a checkout of its own.
* ``GITLAB_CI`` is ``false`` in gitlab-ci-local and pipeline ids count per folder from 1000; the
  tests set ``GITLAB_CI=true`` (so the runner writes GitLab's log sections, which gitlab-ci-local
  parses) and give each pipeline an id of its own, as GitLab does.
* gitlab-ci-local needs a git repository (it copies the tracked files and reads the commit) but
  not a GitLab remote: with ``origin`` a local path it warns and names the project
  ``fallback.group/fallback.project``, which nothing here uses.
* gitlab-ci-local does not implement ``resource_group``; GitLab's only serialises running jobs,
  which docs/ci.md says does not cover a detached run, so nothing here depends on it.
* The runner is the one installed from this checkout in the test's environment (the jobs'
  ``PATH`` starts with its ``bin``, as an image with the runner installed would): the example's
  ``pip install "$DEPLOY_RUNNER_PACKAGE"`` runs, offline, and finds it already there.

Both tests together cost about 14 s of CPU: 7 gitlab-ci-local runs of 10 jobs (each start about
0.5 s, each job about 1 s, half of it pip); on this 2-core machine shared with others (load 5 to
7) that was 35 to 45 s of wall time. They skip, saying why, without Node 20+, gitlab-ci-local or
rsync.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from helpers import approval_world
from helpers.paths import ROOT

BIN = Path(sys.executable).parent
RUNNER = BIN / "runner"
PINNED = ROOT / ".ci" / "node_modules" / ".bin" / "gitlab-ci-local"
SECRET = "s3cret-db-passw0rd"
#: the deployment environment's key that seals the record between jobs (never in a log or artifact)
RECORD_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
HANG_GUARD = 180.0  # seconds for one gitlab-ci-local invocation; a pipeline takes a few

PEOPLE = """\
people:
  - id: u-alice
    username: alice
    display-name: Alice Martin
    ssh-principals: [alice@example.com]
    ci-logins: [alice]
  - id: u-bob
    username: bob
    display-name: Bob Stone
    ssh-principals: [bob@example.com]
teams:
  trading-desk: [alice, bob]
"""

# The walkthrough's workflow (docs/approvals.md), with a `from-env` secret that the resume job
# must provide again, a working file holding it (which the artifact must not carry), and
# `block-deployments`, so that a detached run keeps the environment where the lock is shared.
WORKFLOW = """\
name: Deploy the web shop
environments: [production]
variables:
  DatabasePassword:
    from-env: SHOP_DB_PASSWORD
    secret: true
approvals:
  trust:
    ref: refs/remotes/origin/approvals-trust
    people: people.yml
    allowed-signers: allowed_signers
  file:
    remote: origin
    branch: approvals
    path: approvals
    poll-seconds: 1
steps:
  - id: upgrade-database
    name: Upgrade the database
    env:
      DB_PASSWORD: "#{DatabasePassword}"
    run: |
      printf 'password=%s\\n' "$DB_PASSWORD" > "$RUNNER_TEMP/db.conf"
      echo "database upgraded"
  - id: notify-traders
    name: Ensure traders are aware of the deployment
    environments: [production]
    manual:
      instructions: Tell the trading desk, then proceed.
      teams: [trading-desk]
      prevent-self-approval: true
      block-deployments: true
      fields:
        - name: ticket
          type: string
          pattern: "^CHG-[0-9]+$"
          required: true
  - id: deploy-app
    name: Deploy the web app
    env:
      TICKET: ${{ steps.notify-traders.outputs.ticket }}
      DB_PASSWORD: "#{DatabasePassword}"
    run: echo "deployed under $TICKET with a ${#DB_PASSWORD}-character password"
"""


def why_not_runnable() -> tuple[str | None, str]:
    """gitlab-ci-local's path, or None and why it cannot run here."""
    if shutil.which("git") is None or shutil.which("ssh-keygen") is None:
        return None, "git and ssh-keygen (OpenSSH) are needed"
    if not RUNNER.is_file():
        return None, f"the runner is not installed beside {sys.executable}"
    node = shutil.which("node")
    if node is None:
        return None, "Node.js is not installed: gitlab-ci-local (an npm package) needs Node 20+"
    said = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = re.match(r"v(\d+)\.", said)
    if major is None or int(major.group(1)) < 20:
        return None, f"gitlab-ci-local 4.72 needs Node 20+, this is Node {said or '?'}"
    gcl = str(PINNED) if PINNED.is_file() else shutil.which("gitlab-ci-local")
    if gcl is None:
        return None, (
            "gitlab-ci-local is not installed: `npm ci --prefix .ci` installs the pinned "
            "version into .ci/node_modules (.ci/run does)"
        )
    if shutil.which("rsync") is None:
        return None, "gitlab-ci-local copies job folders and artifacts with rsync: install rsync"
    return gcl, ""


@pytest.fixture(scope="module")
def gitlab_ci_local() -> str:
    gcl, reason = why_not_runnable()
    if gcl is None:
        pytest.skip(reason)
    return gcl


@dataclass(frozen=True)
class Job:
    """One gitlab-ci-local invocation: its exit code and output, and the folders it left."""

    code: int
    output: str
    workspace: Path

    def log(self, job: str) -> str:
        """What the job printed (gitlab-ci-local keeps the last run of each job)."""
        return (self.workspace / ".gitlab-ci-local" / "output" / f"{job}.log").read_text()

    def artifacts(self, job: str) -> Path:
        return self.workspace / ".gitlab-ci-local" / "artifacts" / job

    def dotenv(self, job: str) -> dict[str, str]:
        report = self.artifacts(job) / ".gitlab-ci-reports" / "dotenv" / "deploy.env"
        return dict(line.split("=", 1) for line in report.read_text().splitlines() if line)


@dataclass
class World:
    root: Path
    gcl: str
    bob: approval_world.Key
    extra_env: dict[str, str] = field(default_factory=dict)
    pipeline_ids: dict[Path, int] = field(default_factory=dict)
    #: gitlab-ci-local checks the file against GitLab's JSON schema (about 0.5 s); once is enough
    schema_checked: bool = False

    @property
    def origin(self) -> Path:
        return self.root / "origin.git"

    def checkout(self, name: str) -> Path:
        """The checkout one pipeline runs in; alice's push started it (gitlab-ci-local makes
        GITLAB_USER_LOGIN from the checkout's git user.email)."""
        path = self.root / name
        approval_world.git(self.root, "clone", "-q", str(self.origin), str(path))
        approval_world.git(path, "config", "user.email", "alice@example.com")
        self.pipeline_ids[path] = 4000 + len(self.pipeline_ids)
        return path

    def run(self, workspace: Path, *jobs: str) -> Job:
        """The whole pipeline, or with job names, those jobs of the checkout's pipeline."""
        env = approval_world.clean_env(
            # the test's environment, where this checkout's runner is installed
            PATH=f"{BIN}:{approval_world.clean_env()['PATH']}",
            # the example's `pip install` finds it there, offline and without resolving its
            # dependencies again (a second per job on this machine)
            PIP_NO_INDEX="1",
            PIP_NO_DEPS="1",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            **self.extra_env,
        )
        # yargs reads every GCL_* variable as an option
        env = {k: v for k, v in env.items() if not k.startswith("GCL")}
        argv = [
            self.gcl,
            "--shell-isolation",
            "--no-artifacts-to-source",
            "--no-color",
            "--home",
            str(self.root / "gcl-home"),
            "--variable",
            f"DEPLOY_RUNNER_PACKAGE=deploy-runner=={version('deploy-runner')}",
            "--variable",
            f"SHOP_DB_PASSWORD={SECRET}",
            # the example seals the record between its jobs (a protected variable in GitLab)
            "--variable",
            f"RUNNER_RECORD_KEY={RECORD_KEY}",
            "--variable",
            "GITLAB_CI=true",
            # the trust anchor, a protected variable of the project in GitLab
            "--variable",
            "RUNNER_TRUST_REF=refs/remotes/origin/approvals-trust",
            "--variable",
            f"CI_PIPELINE_ID={self.pipeline_ids[workspace]}",
            "--ignore-predefined-vars",
            "GITLAB_CI,CI_PIPELINE_ID",
            *([] if not self.schema_checked else ["--no-json-schema-validation"]),
            *jobs,
        ]
        done = subprocess.run(
            argv,
            cwd=workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=HANG_GUARD,
        )
        if not self.schema_checked:
            assert "json schema validated" in done.stdout, done.stdout
            self.schema_checked = True
        return Job(done.returncode, done.stdout, workspace)

    def approve(self, request: Path, ticket: str) -> None:
        """Bob, in a clone of his own, signs the request from the job's artifact and pushes it
        to the approvals branch."""
        clone = self.root / f"bob-{request.parents[2].name}"
        approval_world.git(self.root, "clone", "-q", str(self.origin), str(clone))
        if approval_world.git(clone, "ls-remote", "--heads", "origin", "approvals"):
            approval_world.git(clone, "checkout", "-q", "approvals")
        else:
            approval_world.git(clone, "checkout", "-q", "--orphan", "approvals")
            approval_world.git(clone, "rm", "-rqf", ".")
        signed = subprocess.run(
            [
                str(RUNNER),
                "approval",
                "new",
                "--request",
                str(request),
                "--decision",
                "proceed",
                "--notes",
                "Desk told",
                "--field",
                f"ticket={ticket}",
                "--key",
                str(self.bob.path),
                "--principal",
                self.bob.principal,
                "--out",
                "approvals",
            ],
            cwd=clone,
            capture_output=True,
            text=True,
            env=approval_world.clean_env(),
        )
        assert signed.returncode == 0, signed.stdout + signed.stderr
        approval_world.git(clone, "add", "approvals")
        approval_world.git(clone, "commit", "-qm", "Approve")
        approval_world.git(clone, "push", "-q", "origin", "approvals")


@pytest.fixture
def world(tmp_path: Path, gitlab_ci_local: str) -> World:
    """origin: main (the example pipeline and the workflow), approvals-trust (people and keys);
    no approvals branch yet."""
    keys = tmp_path / "keys"
    keys.mkdir()
    alice = approval_world.make_key(keys, "alice")
    bob = approval_world.make_key(keys, "bob")
    world = World(tmp_path, gitlab_ci_local, bob)
    admin = tmp_path / "admin"
    approval_world.git(tmp_path, "init", "-q", "--bare", "-b", "main", str(world.origin))
    approval_world.git(tmp_path, "init", "-q", "-b", "approvals-trust", str(admin))
    (admin / "people.yml").write_text(PEOPLE)
    (admin / "allowed_signers").write_text(
        "".join(
            f'{key.principal} namespaces="runner-approval" {key.public}\n' for key in (alice, bob)
        )
    )
    approval_world.git(admin, "add", ".")
    approval_world.git(admin, "commit", "-qm", "Approvers for production")
    approval_world.git(admin, "switch", "-q", "--orphan", "main")
    example = (ROOT / "examples" / "ci" / "gitlab-ci.yml").read_text()
    pipeline = re.sub(r"(?m)^  image: .*\n", "", example)
    assert example.count("image:") == 1 and "image:" not in pipeline
    (admin / ".gitlab-ci.yml").write_text(pipeline)
    (admin / "workflows").mkdir()
    (admin / "workflows" / "deploy-webapp.yml").write_text(WORKFLOW)
    (admin / ".gitignore").write_text(".runner/\n")
    approval_world.git(admin, "add", ".")
    approval_world.git(admin, "commit", "-qm", "Deploy the web shop")
    approval_world.git(admin, "push", "-q", str(world.origin), "main", "approvals-trust")
    return world


def request_file(state: Path, run_id: str) -> Path:
    return state / "runs" / run_id / "steps" / "notify-traders" / "request.json"


def record(state: Path, run_id: str) -> dict[str, Any]:
    data = json.loads((state / "runs" / run_id / "record.json").read_text())
    assert isinstance(data, dict)
    return data


def test_the_example_pipeline_detaches_and_the_manual_job_resumes(world: World) -> None:
    """docs/ci.md's GitLab recipe: the state folder and the run id go from the deploy job to the
    manual resume job as an artifact and a dotenv report."""
    checkout = world.checkout("pipeline")
    commit = approval_world.git(checkout, "rev-parse", "HEAD")

    pipeline = world.run(checkout)
    assert pipeline.code == 0, pipeline.output
    assert re.search(r"PASS +validate", pipeline.output)
    assert re.search(r"PASS +deploy-production", pipeline.output)
    # the manual job waits for a person
    assert "resume-production starting" not in pipeline.output
    assert not (checkout / ".gitlab-ci-local" / "output" / "resume-production.log").exists()

    deploy = pipeline.log("deploy-production")
    report = pipeline.dotenv("deploy-production")
    run_id = report["DEPLOY_RUN_ID"]
    assert re.fullmatch(rf"gl-{world.pipeline_ids[checkout]}-\d+", run_id), report
    assert report["DEPLOY_EXIT_CODE"] == "75"
    assert f"Run {run_id} is waiting for approval" in deploy
    assert (
        f"Waiting for approval: push a signed approval for run {run_id}, "
        "then run the job resume-production." in deploy
    )
    assert "Not alice, who started this run" in deploy
    # GitLab's collapsible sections, as a GitLab log parser reads them: the manual step's too,
    # closed on detaching, so that the job's own message is not inside it
    assert "step_upgrade-database took" in deploy
    assert "step_notify-traders took" in deploy
    assert deploy.index("step_notify-traders took") < deploy.index("Waiting for approval: push")

    # the artifact: the record and the request, not the steps' working files
    state = pipeline.artifacts("deploy-production") / ".runner"
    waiting = record(state, run_id)
    assert (waiting["status"], waiting["exit_code"], waiting["commit"]) == ("waiting", 75, commit)
    assert request_file(state, run_id).is_file()
    built = checkout / ".gitlab-ci-local" / "builds" / "deploy-production" / ".runner"
    # the step's password file in $RUNNER_TEMP went when the job detached, as GitHub empties it
    assert (built / "runs" / run_id / "record.json").is_file()
    assert not (built / "runs" / run_id / "tmp").exists()
    leaked = [
        p
        for p in state.rglob("*")
        if p.is_file()
        and (SECRET.encode() in p.read_bytes() or RECORD_KEY.encode() in p.read_bytes())
    ]
    assert leaked == []
    # sealed with the environment's key: the artifact cannot be rewritten between the jobs
    assert str(waiting["seal"]).startswith("hmac-sha256:")
    assert RECORD_KEY not in deploy

    # someone presses Run before anyone approved: the run detaches again, the job passes
    early = world.run(checkout, "resume-production")
    assert early.code == 0, early.output
    assert "Still waiting: no valid decision yet." in early.log("resume-production")

    world.approve(request_file(state, run_id), ticket="CHG-1234")
    resumed = world.run(checkout, "resume-production")
    assert resumed.code == 0, resumed.output
    assert re.search(r"PASS +resume-production", resumed.output)
    log = resumed.log("resume-production")
    assert f"resuming run {run_id}" in log
    assert "proceed by Bob Stone via file: Desk told" in log
    # the secret variable was read again in the resume job
    assert f"deployed under CHG-1234 with a {len(SECRET)}-character password" in log
    assert f"Run {run_id} succeeded" in log
    assert "is not sealed" not in log and RECORD_KEY not in log

    final = resumed.artifacts("resume-production") / ".runner"
    done = record(final, run_id)
    assert (done["status"], done["exit_code"], done["commit"]) == ("success", 0, commit)
    assert [s["status"] for s in done["steps"]] == ["success"] * 3

    # later, from the resume job's artifact, the history re-verifies Bob's signature
    shown = subprocess.run(
        [
            str(RUNNER),
            "runs",
            "show",
            run_id,
            "--state-dir",
            str(final),
            "--workflow",
            "workflows/deploy-webapp.yml",
        ],
        cwd=checkout,
        capture_output=True,
        text=True,
        env=approval_world.clean_env(),
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"({world.bob.fingerprint}): signature re-verified as of the decision" in shown.stdout


def test_a_second_pipeline_is_refused_while_a_run_waits_on_a_shared_state_folder(
    world: World,
) -> None:
    """docs/ci.md, "Concurrency": the deployment lock holds across pipelines when the jobs share
    one state folder (a self-hosted runner with a fixed RUNNER_STATE_DIR) and the manual step
    has `block-deployments`; the second pipeline's deploy job fails with exit 5 until the first
    run is resumed and finishes."""
    shared = world.root / "runner-state"
    world.extra_env["RUNNER_STATE_DIR"] = str(shared)
    first, second = world.checkout("first"), world.checkout("second")

    one = world.run(first)
    assert one.code == 0, one.output
    run_id = one.dotenv("deploy-production")["DEPLOY_RUN_ID"]
    assert record(shared, run_id)["status"] == "waiting"
    # the record is in the shared folder; the example's `.runner/` artifact has nothing to keep
    assert not (one.artifacts("deploy-production") / ".runner").exists()
    (lock,) = (shared / "locks").glob("*.json")
    assert json.loads(lock.read_text())["run_id"] == run_id

    two = world.run(second)
    assert two.code == 1, two.output  # gitlab-ci-local: a job failed
    assert re.search(r"PASS +validate", two.output)
    assert re.search(r"FAIL +deploy-production", two.output)
    refused = two.log("deploy-production")
    assert (
        f"Deploy the web shop -> production is held by run {run_id}, waiting for approval"
        in refused
    )
    # not --wait-for-lock: that would keep a CI job waiting for hours on a person
    assert f"run this again once run {run_id} has ended" in refused
    report = two.dotenv("deploy-production")
    assert report["DEPLOY_EXIT_CODE"] == "5"
    # recorded as refused: it cannot be resumed into a deployment once the environment is free
    assert record(shared, report["DEPLOY_RUN_ID"])["status"] == "refused"

    world.approve(request_file(shared, run_id), ticket="CHG-77")
    resumed = world.run(first, "resume-production")
    assert resumed.code == 0, resumed.output
    assert f"Run {run_id} succeeded" in resumed.log("resume-production")
    assert list((shared / "locks").glob("*.json")) == []

    # the environment is free: the second pipeline's deploy job, run again, deploys
    again = world.run(second, "deploy-production")
    assert again.code == 0, again.output
    later = again.dotenv("deploy-production")
    assert later["DEPLOY_EXIT_CODE"] == "75"
    assert record(shared, later["DEPLOY_RUN_ID"])["status"] == "waiting"
