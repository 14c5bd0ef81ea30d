"""Reading the trust files (people, allowed signers, revoked keys, policy).

Trust must come from a protected place, never from what is being deployed: with
``approvals.trust.ref`` set, each file is read from that git ref (the commit it names, every
object on the way hashed against its id), not from the working tree or the deployed commit.
Without a ref, the files come from the working tree, which only the terminal prompt accepts, or
any source with ``--insecure-local-trust`` (for local tries).

The ref is named in full (``refs/remotes/origin/approvals-trust``, ``refs/heads/...``,
``refs/tags/...``) and read with ``git show-ref --verify``: git's short-name rules try
``refs/tags/<name>`` before ``refs/remotes/<name>``, so with tags fetched a tag named
``origin/approvals-trust``, which anyone who can push a tag can create, would win (issue #17).
"""

from __future__ import annotations

from msgspec import Struct, structs

from runner.approvals.allowed_signers import (
    AllowedSigner,
    parse_allowed_signers,
    parse_revoked_keys,
)
from runner.approvals.identity import LOCAL_ONLY, Directory, Person, parse_directory
from runner.errors import ApprovalError, GitError, RefusedError
from runner.git import GitReader, is_ancestor, rev_commit, verified_file
from runner.model import Trust, Workflow

#: where a trust ref may live; anything else (a short name, HEAD, a commit id) is refused
REF_PREFIXES = ("refs/remotes/", "refs/heads/", "refs/tags/")


class TrustFiles(Struct, frozen=True):
    """Where trust files are read from, and whether that place is protected."""

    git: GitReader
    ref: str | None
    #: the commit the ref was pinned to when the run started (see ``pin_trust``)
    commit: str | None = None
    #: unpinned: the ref's tip, read once for all the files of one check (see ``at_tip``)
    tip: str | None = None

    @classmethod
    def at_tip(cls, git: GitReader, ref: str) -> TrustFiles:
        """The files at ``ref``'s tip as it is now, the tip read once for all of them."""
        check_ref_name(ref)
        return cls(git, ref, tip=rev_commit(git, ref))

    @classmethod
    def of(cls, trust: Trust, git: GitReader) -> TrustFiles:
        return cls(git, trust.ref, trust.commit)

    @property
    def protected(self) -> bool:
        return self.ref is not None

    def where(self, path: str) -> str:
        return f"{self.ref}:{path}" if self.ref else path

    def read_if_there(self, path: str) -> bytes | None:
        """The file's bytes, or None when the place has no such file (other failures raise,
        as :meth:`read`)."""
        if self.ref is None:
            return self.read(path) if (self.git.workspace / path).exists() else None
        check_ref_name(self.ref)
        commit = self.commit or self.tip or rev_commit(self.git, self.ref)
        if commit is None:
            return self.read(path)  # which says the ref does not exist here
        try:
            return verified_file(self.git, commit, path)
        except GitError:
            return self.read(path)  # which says why, as for any trust file

    def read(self, path: str) -> bytes:
        if self.ref is None:
            try:
                return (self.git.workspace / path).read_bytes()
            except OSError as exc:
                raise ApprovalError(f"cannot read trust file {path}: {exc.strerror}") from None
        check_ref_name(self.ref)
        if self.commit is None:
            commit = self.tip or rev_commit(self.git, self.ref)
            if commit is None:
                raise ApprovalError(
                    f"cannot read trust file {path}: {self.ref} does not exist here",
                    hint="fetch the protected trust ref first (e.g. `git fetch origin "
                    "+refs/heads/approvals-trust:refs/remotes/origin/approvals-trust`)",
                )
            return git_show(self.git, commit, path, shown=self.ref)
        try:
            return git_show(self.git, self.commit, path, shown=self.ref)
        except ApprovalError as exc:
            raise ApprovalError(
                f"{exc.message} (the commit {self.ref} named when the run started)",
                hint=f"fetch the history of the trust branch behind {self.ref}, not only its tip "
                "(no --depth=1)",
            ) from None


def git_show(git: GitReader, commit: str, path: str, *, shown: str | None = None) -> bytes:
    """A file's bytes at ``commit`` (a full commit id), each object on the way checked against
    its id (:func:`runner.git.verified_file`: a step can rewrite ``.git/objects``); ``shown``
    is how messages name it."""
    try:
        data = verified_file(git, commit, path)
    except GitError as exc:
        detail = exc.message.removeprefix("git cat-file failed: ")
        raise ApprovalError(
            f"cannot read trust file {path} from {shown or commit}: {detail}",
            hint="fetch the protected trust ref first (e.g. `git fetch origin "
            "+refs/heads/approvals-trust:refs/remotes/origin/approvals-trust`)",
        ) from None
    if data is None:
        raise ApprovalError(
            f"cannot read trust file {path} from {shown or commit}: there is no such file in "
            f"commit {commit[:12]}",
            hint="commit it to the protected trust branch, or fix the path in `approvals.trust`",
        )
    return data


def load_directory(trust: Trust | None, git: GitReader, local_user: str) -> Directory:
    """The people-and-teams file; without trust settings, a directory of just the local user
    (only the terminal prompt can then decide, as the person at the terminal)."""
    if trust is None:
        person = Person(id=local_user, username=local_user, display_name=local_user)
        return Directory((person,), {}, LOCAL_ONLY)
    files = TrustFiles.of(trust, git)
    return parse_directory(files.read(trust.people), files.where(trust.people))


def pin_trust(workflow: Workflow, git: GitReader, commit: str | None = None) -> Workflow:
    """The workflow with its trust ref pinned to a commit: ``commit`` (a resumed run keeps the
    one it started with), else the commit the ref names now. Pinned before any step runs, so a
    step that moves the ref (``git update-ref``) cannot change who may approve."""
    trust = workflow.approvals.trust
    if trust is None or not trust.ref:
        return workflow
    check_ref_name(trust.ref)
    pinned = commit or rev_commit(git, trust.ref)
    if pinned is None:
        return workflow  # reading a file from the ref then fails, naming the ref
    approvals = structs.replace(workflow.approvals, trust=structs.replace(trust, commit=pinned))
    return structs.replace(workflow, approvals=approvals)


def check_ref_name(ref: str) -> None:
    """Refuse a trust ref that is not a full ref name (see the module's docstring)."""
    if (
        ref.startswith(REF_PREFIXES)
        and ".." not in ref
        and not any(c in ref for c in ":^~{}\\ \t\n*?[")
    ):
        return
    raise RefusedError(
        f"trust ref {ref!r} must be a full ref name: a short name can resolve to a tag or "
        "branch that someone else pushed",
        hint=f"write `ref: {full_ref_name(ref)}`; a trust ref is refs/remotes/<remote>/<branch>, "
        "refs/heads/<branch> or refs/tags/<tag>",
    )


def full_ref_name(ref: str) -> str:
    """The full name a short trust ref most likely meant (for the hint of a refusal)."""
    if ref.startswith("refs/"):
        return ref
    if "/" in ref:
        return f"refs/remotes/{ref}"
    return f"refs/heads/{ref}"


def refuse_deployed_commit(git: GitReader, ref: str, commit: str | None = None) -> None:
    """Refuse a trust ref that is the commit being deployed (trust it would let a deployer edit)."""
    check_ref_name(ref)
    trusted, deployed = commit or rev_commit(git, ref), rev_commit(git, "HEAD")
    if trusted is not None and trusted == deployed:
        raise RefusedError(
            f"trust ref {ref} is the commit being deployed; trust must come from a protected "
            "ref that the deployment cannot change"
        )


def reachable(git: GitReader, commit: str, ref: str) -> bool:
    """Whether ``commit`` is ``ref``'s tip or one of its ancestors (``git merge-base
    --is-ancestor``): a trust commit read from a run record counts only if the protected ref
    really named it once; any other commit may carry whatever trust its author wrote. The tip
    is read by the ref's full name, as every trust read is (:func:`runner.git.ref_commit`)."""
    tip = rev_commit(git, ref)
    return tip is not None and is_ancestor(git, commit, tip)


def read_keys(trust: Trust, files: TrustFiles) -> tuple[list[AllowedSigner], frozenset[bytes]]:
    """The allowed signers and revoked keys ``files`` hold (ApprovalError, TrustFileError)."""
    if not trust.allowed_signers:
        raise ApprovalError("`approvals.trust.allowed-signers` is not set")
    signers = parse_allowed_signers(
        files.read(trust.allowed_signers).decode("utf-8", "replace"),
        source=files.where(trust.allowed_signers),
    )
    revoked: frozenset[bytes] = frozenset()
    if trust.revoked_keys:
        raw = (
            files.read_if_there(trust.revoked_keys)
            if trust.revoked_keys_optional
            else files.read(trust.revoked_keys)
        )
        if raw is not None:
            revoked = parse_revoked_keys(raw, source=files.where(trust.revoked_keys))
    return signers, revoked


def keys_at_tip(trust: Trust, pinned: list[AllowedSigner], git: GitReader) -> frozenset[bytes]:
    """The keys refused at the trust ref's tip although the pinned commit allows them: revoked
    there since, or no longer listed at all. A key removed from ``allowed_signers`` without
    being revoked approved a resumed run whose record named an older trust commit (an
    unsealed record names any commit of the ref's history; attack pass)."""
    if not trust.ref:
        return frozenset()
    signers, revoked = read_keys(trust, TrustFiles.at_tip(git, trust.ref))
    listed = {signer.public_key.blob for signer in signers}
    return revoked | {s.public_key.blob for s in pinned if s.public_key.blob not in listed}
