"""The ``file`` source: approvals committed to git as signed files, verified offline.

Every ``poll-seconds`` (default 3, with jitter) it asks the remote where ``branch`` is (``git
ls-remote``: one round trip, nothing fetched) and fetches only when the branch moved, into a
private ref; then it reads every version of ``<path>/<run-id>/<step>.*.json`` and its ``.json.sig``
in the branch's history (:mod:`runner.approvals.branch`), never the working tree. Without
``remote``, ``path`` is a plain local folder, read without following links. Trust (people,
allowed signers, revoked keys) comes from ``approvals.trust.ref``; trust read from anywhere else
is refused unless ``--insecure-local-trust`` is given, and never from the commit being deployed.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.approvals.allowed_signers import (
    AllowedSigner,
)
from runner.approvals.branch import MAX_BLOBS, MAX_FILE_BYTES, ApprovalsBranch
from runner.approvals.document import body_digest, check_binding, submission_of, verify_signed
from runner.approvals.identity import Directory
from runner.approvals.request import Interruption, Submission, inputs_digest
from runner.approvals.trust import TrustFiles, keys_at_tip, read_keys, refuse_deployed_commit
from runner.bounded import NotTheRunnersFile, open_regular
from runner.errors import ApprovalError, RefusedError, VerificationError
from runner.git import Git, GitReader
from runner.model import Approvals
from runner.model import FileSource as FileConfig
from runner.options import RunOptions

#: matching files read from a local folder (names are filtered first: junk never counts)
MAX_FILES = 500
#: versions of them kept (a deleted or rewritten file still counts), as on a branch
MAX_VERSIONS = MAX_BLOBS


#: what the printed `runner approval new` command has in place of a field's value (which
#: ``approval new`` refuses to sign as it is)
FIELD_PLACEHOLDER = "..."

#: the key of the request file (``request.json``) saying where the file source reads approvals
REQUEST_KEY = "file_source"


def request_file_facts(config: FileConfig | None, request: Interruption) -> dict[str, Any]:
    """What a request file adds to the interruption for ``runner approval new --request``: where
    the run reads signed files (remote, branch, path), so that the files are not written to a
    checkout of another branch, whose push the run never reads (newcomer pass)."""
    if config is None or "file" not in request.sources:
        return {}
    return {
        REQUEST_KEY: {
            "remote": config.remote,
            "branch": approvals_branch(config),
            "path": config.path.strip("/"),
        }
    }


def approvals_branch(config: FileConfig) -> str | None:
    """The branch approvals are read from (None: a local folder, read from the workspace)."""
    return (config.branch or "approvals") if config.remote else None


def worktree_name(branch: str) -> str:
    """The folder, beside a clone, that the hints suggest for a worktree of ``branch``."""
    return f"../{branch.replace('/', '-')}-branch"


#: a file version as the source found it: name, body, signature (None: none beside it), and why
#: it was not read (too large, not a regular file), if it was not
Found = tuple[str, bytes, bytes | None, str | None]


class FileSource:
    name = "file"

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        approvals: Approvals,
        workspace: Path,
        directory: Directory,
        options: RunOptions,
        now: Any = None,
        git: GitReader | None = None,
        **_: object,
    ) -> None:
        assert approvals.file is not None
        self.config: FileConfig = approvals.file
        self.workspace = workspace
        self.git: GitReader = git or Git(workspace)
        self.directory = directory
        self.interval = self.config.poll_seconds * random.uniform(0.8, 1.2)
        self.now = now or (lambda: datetime.now(UTC))
        self.trust = approvals.trust
        self.insecure = options.insecure_local_trust
        self.signers: list[AllowedSigner] = []
        self.revoked: frozenset[bytes] = frozenset()
        self.branch: ApprovalsBranch | None = None
        #: blob contents read so far (each version is read once), by object id
        self.blobs: dict[str, bytes] = {}
        #: local folder mode: every version seen so far, by content (a deleted file still counts)
        self.local: dict[tuple[str, str, str], Found] = {}

    # -- trust -------------------------------------------------------------------------------

    def register(self, request: Interruption) -> None:
        """Load the trust files from the protected ref; refuse anything less."""
        if self.trust is None or not self.trust.allowed_signers:
            raise ApprovalError(
                "the file source needs `approvals.trust.allowed-signers`",
                hint="list each approver's SSH key in an allowed_signers file on a protected ref",
            )
        files = TrustFiles.of(self.trust, self.git)
        if not files.protected and not self.insecure:
            raise RefusedError(
                "the file source refuses trust files from the working tree: set "
                "`approvals.trust.ref` to a protected branch or tag",
                hint="for a local try only, pass --insecure-local-trust",
            )
        if files.protected and self.trust.ref:
            refuse_deployed_commit(self.git, self.trust.ref, self.trust.commit)
        self.signers, self.revoked = read_keys(self.trust, files)
        if files.protected and files.commit is not None:
            # the trust was pinned when the run started; a key revoked since at the ref's tip,
            # or no longer listed there, is refused too (a resumed run took it, while
            # `approval verify` and a passed gate's check refused it), as `Gates.keys` does
            self.revoked |= keys_at_tip(self.trust, self.signers, self.git)

    # -- reading -----------------------------------------------------------------------------

    def _folder(self, request: Interruption) -> str:
        return f"{self.config.path.strip('/')}/{request.run_id}"

    def _files(self, request: Interruption) -> list[Found]:
        """Every version of the step's approval files seen so far (none is ever forgotten)."""
        if self.config.remote is None:
            return self._local(request)
        if self.branch is None:
            self.branch = ApprovalsBranch(
                self.git,
                self.config.remote,
                self.config.branch or "approvals",
                self._folder(request),
                request.step_id,
            )
        branch = self.branch
        branch.refresh()
        versions = branch.versions()
        wanted = [
            oid
            for v in versions
            for oid, size in ((v.body, v.body_size), (v.signature, v.signature_size))
            if oid and oid not in self.blobs and size <= MAX_FILE_BYTES
        ]
        self.blobs.update(branch.read(wanted))
        found: list[Found] = []
        for v in versions:
            too_large = next(
                (
                    f"{what} is {size} bytes, over the {MAX_FILE_BYTES // 1024} KiB limit "
                    "(not read)"
                    for what, size in (("the body", v.body_size), ("its .sig", v.signature_size))
                    if size > MAX_FILE_BYTES
                ),
                None,
            )
            body = self.blobs.get(v.body, b"")
            signature = self.blobs.get(v.signature, b"") if v.signature else None
            found.append((v.name, body, signature, too_large))
        return found

    def _local(self, request: Interruption) -> list[Found]:
        """The step's files in a local folder: names matched before anything is read, links
        never followed, sizes checked before reading."""
        base = self.workspace / self._folder(request)
        pattern = re.compile(re.escape(request.step_id) + r"\.[^/]+\.json")
        try:
            with os.scandir(base) as entries:
                names = sorted(e.name for e in entries if pattern.fullmatch(e.name))
        except (FileNotFoundError, NotADirectoryError):
            return list(self.local.values())
        except OSError as exc:
            raise ApprovalError(f"cannot list {base}: {exc.strerror}") from None
        if len(names) > MAX_FILES:
            raise ApprovalError(
                f"{base} holds more than {MAX_FILES} approval files for step "
                f"{request.step_id}; refusing to read them in part (an abort could hide in the "
                "rest)",
                hint="a fresh run id starts a fresh folder",
            )
        for name in names:
            body, why = _read_local(base / name)
            sig_bytes, sig_why = _read_local(base / (name + ".sig"))
            signature = None if sig_why == "missing" else sig_bytes
            sig_why = None if sig_why == "missing" else sig_why
            problem = why or (f"its .sig {sig_why}" if sig_why else None)
            key = (name, body_digest(body), body_digest(signature) if signature else "")
            self.local[key] = (name, body, signature, problem)
        if len(self.local) > MAX_VERSIONS:
            raise ApprovalError(
                f"more than {MAX_VERSIONS} versions of step {request.step_id}'s approval files "
                f"seen in {base}; refusing to read them in part",
                hint="a fresh run id starts a fresh folder",
            )
        return list(self.local.values())

    def poll(self, request: Interruption) -> list[Submission]:
        """Every version of the step's approval files ever seen (each read once), verified
        afresh at each poll: a ``.sig`` pushed after its ``.json`` is seen, a bad copy cannot
        hide a good file, a deleted one still counts, and an approval that expires while a
        quorum fills stops counting."""
        now = self.now()
        found: list[Submission] = []
        for name, raw, signature, unread in self._files(request):
            key = f"file:{body_digest(raw)}:{body_digest(signature) if signature else 'unsigned'}"
            evidence: dict[str, Any] = {
                "file": f"{self.config.path}/{request.run_id}/{name}",
                "sha256": body_digest(raw),
            }
            if self.config.remote:
                evidence["remote"] = self.config.remote
            if unread:
                found.append(_problem(name, f"{key}:{name}:{unread}", evidence, unread))
                continue
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
                check_binding(signed.body, request, now)
            except VerificationError as exc:
                found.append(_problem(name, key, evidence, exc.message))
                continue
            found.append(submission_of(signed, signature.decode("ascii", "replace"), evidence, key))
        return found

    def cancel(self, request: Interruption, reason: str) -> None:
        return None

    def instructions(self, request: Interruption) -> list[str]:
        branch = approvals_branch(self.config)
        path = self.config.path.strip("/")
        if branch is None:
            out = f" --out {path}"
            where = f"they go to {path}/{request.run_id}/"
        else:
            # written into the clone of the deployed branch (the default --out), they were
            # pushed where the run never reads them (newcomer pass)
            worktree = worktree_name(branch)
            out = f" --branch {branch} --out {worktree}/{path}"
            where = (
                f"commit them to branch {branch} of {self.config.remote} and push (--out is a "
                f"worktree of that branch beside your clone; the first time: git fetch "
                f"{self.config.remote} {branch} && git worktree add {worktree} {branch})"
            )
        command = (
            f"runner approval new --run-id {request.run_id} --step {request.step_id} "
            f"--env {request.environment} --digest {request.digest}"
            + (f" --commit {request.commit}" if request.commit else "")
            + (
                f" --inputs-digest {bound}"
                if (bound := inputs_digest(request.inputs, request.skipped))
                else ""
            )
            + (
                f" --attempt {request.attempt} --decision {'|'.join(request.choices)}"
                if request.guided
                else " --decision proceed"
            )
            + " --notes '...' --key ~/.ssh/id_ed25519"
            + (
                f" --namespace {self.config.namespace}"
                if self.config.namespace != "runner-approval"
                else ""
            )
            # each required field by name (a placeholder NAME=VALUE, copied as printed, made
            # a proceed the run refused: newcomer pass); the log lists what each one takes
            + "".join(
                f" --field {f.name}={FIELD_PLACEHOLDER}" for f in request.fields if f.required
            )
            + out
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


def _read_local(path: Path) -> tuple[bytes, str | None]:
    """A regular file's bytes, or why not: "missing", a link, not a regular file, too large.
    Opened without following a link and checked on the open descriptor, so a file swapped for a
    link between the check and the read is not followed either."""
    try:
        fd, info = open_regular(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return b"", "missing"
    except NotTheRunnersFile as exc:
        return b"", "is a symbolic link (not followed)" if exc.link else "is not a regular file"
    except OSError as exc:
        return b"", f"cannot be read: {exc.strerror}"
    try:
        if info.st_size > MAX_FILE_BYTES:
            return (
                b"",
                f"is {info.st_size} bytes, over the {MAX_FILE_BYTES // 1024} KiB limit (not read)",
            )
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES and (chunk := os.read(fd, MAX_FILE_BYTES + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        if size > MAX_FILE_BYTES:
            return b"", f"grew over the {MAX_FILE_BYTES // 1024} KiB limit (not read)"
        return data, None
    finally:
        os.close(fd)
