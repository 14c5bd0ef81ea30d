"""The ``file`` source: approvals committed to git as signed files, verified offline.

Every ``poll-seconds`` (with jitter) it fetches ``remote``/``branch`` into a private ref and reads
``<path>/<run-id>/*.json`` with their ``.json.sig`` from the fetched commit (never the working
tree); without ``remote``, ``path`` is a plain local folder. Trust (people, allowed signers,
revoked keys) comes from ``approvals.trust.ref``; trust read from anywhere else is refused unless
``--insecure-local-trust`` is given, and never from the commit being deployed.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.approvals.allowed_signers import (
    AllowedSigner,
    parse_allowed_signers,
    parse_revoked_keys,
)
from runner.approvals.document import body_digest, verify_signed
from runner.approvals.identity import Directory
from runner.approvals.request import Interruption, Submission
from runner.approvals.trust import TrustFiles, refuse_deployed_commit
from runner.errors import ApprovalError, RefusedError, VerificationError
from runner.model import Approvals
from runner.model import FileSource as FileConfig

PRIVATE_REF = "refs/runner/approvals"
MAX_FILES = 500


def git(workspace: Path, *args: str, input: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(workspace), *args],
            input=input,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ApprovalError(f"git {args[0]} failed: {exc}") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ApprovalError(f"git {args[0]} failed: {lines[-1] if lines else done.returncode}")
    return done.stdout


def deployed_commit(workspace: Path) -> str | None:
    try:
        return git(workspace, "rev-parse", "--verify", "--quiet", "HEAD").decode().strip()
    except ApprovalError:
        return None


class FileSource:
    name = "file"

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        approvals: Approvals,
        workspace: Path,
        directory: Directory,
        options: Mapping[str, Any],
        now: Any = None,
        **_: object,
    ) -> None:
        assert approvals.file is not None
        self.config: FileConfig = approvals.file
        self.workspace = workspace
        self.directory = directory
        self.interval = self.config.poll_seconds * random.uniform(0.8, 1.2)
        self.now = now or (lambda: datetime.now(UTC))
        self.trust = approvals.trust
        self.insecure = bool(options.get("insecure_local_trust"))
        self.signers: list[AllowedSigner] = []
        self.revoked: frozenset[bytes] = frozenset()
        self.last_fetch = 0.0

    # -- trust -------------------------------------------------------------------------------

    def register(self, request: Interruption) -> None:
        """Load the trust files from the protected ref; refuse anything less."""
        if self.trust is None or not self.trust.allowed_signers:
            raise ApprovalError(
                "the file source needs `approvals.trust.allowed-signers`",
                hint="list each approver's SSH key in an allowed_signers file on a protected ref",
            )
        files = TrustFiles.of(self.trust, self.workspace)
        if not files.protected and not self.insecure:
            raise RefusedError(
                "the file source refuses trust files from the working tree: set "
                "`approvals.trust.ref` to a protected branch or tag",
                hint="for a local try only, pass --insecure-local-trust",
            )
        if files.protected and self.trust.ref:
            refuse_deployed_commit(self.workspace, self.trust.ref, self.trust.commit)
        self.signers = parse_allowed_signers(
            files.read(self.trust.allowed_signers).decode("utf-8", "replace"),
            source=files.where(self.trust.allowed_signers),
        )
        if self.trust.revoked_keys:
            self.revoked = parse_revoked_keys(
                files.read(self.trust.revoked_keys), source=files.where(self.trust.revoked_keys)
            )

    # -- polling -----------------------------------------------------------------------------

    def _files(self, request: Interruption) -> dict[str, bytes]:
        folder = f"{self.config.path.strip('/')}/{request.run_id}"
        if self.config.remote is None:
            base = self.workspace / folder
            if not base.is_dir():
                return {}
            return {
                p.name: p.read_bytes() for p in sorted(base.iterdir())[:MAX_FILES] if p.is_file()
            }
        branch = self.config.branch or "approvals"
        ref = f"{PRIVATE_REF}/{branch}"
        try:
            git(
                self.workspace,
                "fetch",
                "--quiet",
                "--no-tags",
                self.config.remote,
                f"+refs/heads/{branch}:{ref}",
            )
        except ApprovalError as exc:
            if "couldn't find remote ref" in exc.message:
                return {}  # nobody has pushed an approval yet
            raise
        listing = git(self.workspace, "ls-tree", "-z", ref, "--", f"{folder}/").split(b"\0")
        found: dict[str, bytes] = {}
        for entry in listing[:MAX_FILES]:
            if not entry:
                continue
            meta, _, path = entry.partition(b"\t")
            kind, sha = meta.split(b" ")[1:3]
            if kind != b"blob":
                continue
            found[path.decode("utf-8", "replace").rsplit("/", 1)[-1]] = git(
                self.workspace, "cat-file", "blob", sha.decode()
            )
        return found

    def poll(self, request: Interruption) -> list[Submission]:
        """Every approval file of the step, verified afresh at each poll: nothing is cached, so
        a ``.sig`` pushed after its ``.json`` is seen, a bad copy cannot hide a good file, and an
        approval that expires while a quorum fills stops counting."""
        files = self._files(request)
        now = self.now()
        found: list[Submission] = []
        for name, raw in files.items():
            if not name.endswith(".json") or not name.startswith(f"{request.step_id}."):
                continue
            signature = files.get(name + ".sig")
            key = f"file:{body_digest(raw)}:{body_digest(signature) if signature else 'unsigned'}"
            evidence: dict[str, Any] = {
                "file": f"{self.config.path}/{request.run_id}/{name}",
                "sha256": body_digest(raw),
            }
            if self.config.remote:
                evidence["remote"] = self.config.remote
            if signature is None:
                found.append(_problem(name, key, evidence, "has no .sig file beside it"))
                continue
            try:
                signed = verify_signed(
                    raw,
                    signature,
                    signers=self.signers,
                    revoked=self.revoked,
                    namespace=self.config.namespace,
                    at=now,
                )
                from runner.approvals.document import check_binding

                check_binding(signed.body, request, now)
            except VerificationError as exc:
                found.append(_problem(name, key, evidence, exc.message))
                continue
            evidence.update(
                body=raw.decode("utf-8"),
                signature=signature.decode("ascii", "replace"),
                principal=signed.principal,
                fingerprint=signed.fingerprint,
                key_type=signed.key_type,
            )
            found.append(
                Submission(
                    source="file",
                    result="proceed" if signed.body.decision == "proceed" else "abort",
                    who=signed.principal,
                    who_kind="principal",
                    notes=signed.body.notes,
                    fields=dict(signed.body.fields),
                    submitted_at=signed.body.issued_at,
                    evidence=evidence,
                    key=key,
                )
            )
        return found

    def cancel(self, request: Interruption, reason: str) -> None:
        return None

    def instructions(self, request: Interruption) -> list[str]:
        where = (
            f"commit them to branch {self.config.branch or 'approvals'} of "
            f"{self.config.remote} and push"
            if self.config.remote
            else f"they go to {self.config.path}/{request.run_id}/"
        )
        command = (
            f"runner approval new --run-id {request.run_id} --step {request.step_id} "
            f"--env {request.environment} --digest {request.digest}"
            + (f" --commit {request.commit}" if request.commit else "")
            + " --decision proceed --notes '...' --key ~/.ssh/id_ed25519"
            + (
                f" --namespace {self.config.namespace}"
                if self.config.namespace != "runner-approval"
                else ""
            )
            + (" --field NAME=VALUE" if request.fields else "")
            + f" --out {self.config.path}"
        )
        return [command, f"then {where}"]


def _problem(name: str, key: str, evidence: dict[str, Any], reason: str) -> Submission:
    return Submission(
        source="file",
        result="proceed",
        who=name,
        who_kind="principal",
        evidence=evidence,
        key=key,
        problem=f"{name}: {reason}",
        submitted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
