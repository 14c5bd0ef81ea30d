"""The trust anchor: where trust comes from, set outside the deployed commit (issue #17).

``approvals.trust`` is written in the deployed workflow, which is part of the commit being
deployed: left alone, the deployer chooses the trust. A pull request could point ``trust.ref`` at
a branch it pushed (its own people and keys), or drop ``trust.policy`` (and with it the policy's
mandatory approval, allowed refs and freezes). The anchor is set by whoever administers the CI or
the environment, where the deployed commit cannot write it (a GitHub environment variable, a
GitLab protected variable, the runner host's configuration), like the protection rules of a
GitHub environment or an Octopus lifecycle:

- ``RUNNER_TRUST_REF``: the full name of the protected trust ref;
- ``RUNNER_TRUST_POLICY``: the policy's path on that ref (default ``policy.yml``; no file there:
  no policy, a decision only the ref's maintainers can make);
- ``RUNNER_TRUST_PEOPLE``: the people file's path there, for a workflow without
  ``approvals.trust`` (default ``people.yml``);
- ``RUNNER_SERVER_URL``: the approval server, for a workflow with ``approvals.server``: the
  server decides who approved, and the runner token goes to it, so the deployed workflow must
  not name another.

With the anchor set, the workflow's ``approvals.trust.ref`` must be that ref or be left out (it is
inherited), its ``policy`` that path or left out, and the policy applies whether or not the
workflow names it. A mismatch is refused before anything runs.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from msgspec import Struct, structs

from runner.approvals.trust import check_ref_name
from runner.ci import in_ci
from runner.errors import GitError, Location, RefusedError
from runner.git import verified_file
from runner.model import Trust, Workflow

if TYPE_CHECKING:
    from runner.git import GitReader

REF_VARIABLE = "RUNNER_TRUST_REF"
POLICY_VARIABLE = "RUNNER_TRUST_POLICY"
PEOPLE_VARIABLE = "RUNNER_TRUST_PEOPLE"
SERVER_VARIABLE = "RUNNER_SERVER_URL"
DEFAULT_POLICY = "policy.yml"
DEFAULT_PEOPLE = "people.yml"
#: the revocation list read beside the allowed signers when an anchored workflow names none
DEFAULT_REVOKED_KEYS = "revoked_keys"

FIX = (
    f"trust is set by {REF_VARIABLE} (the CI's protected or environment variable): name the same "
    "ref in `approvals.trust.ref` or leave it out; to change the trust ref, change the variable"
)


class Anchor(Struct, frozen=True):
    ref: str
    policy: str
    people: str

    def describe(self) -> str:
        return f"{self.ref} (from {REF_VARIABLE}), policy {self.policy}"


def anchor_of(environ: Mapping[str, str]) -> Anchor | None:
    """The anchor the environment sets, or None."""
    ref = environ.get(REF_VARIABLE, "").strip()
    if not ref:
        return None

    try:
        check_ref_name(ref)
    except RefusedError as exc:
        raise RefusedError(f"{REF_VARIABLE}: {exc.message}", hint=exc.hint) from None
    policy = environ.get(POLICY_VARIABLE, "").strip() or DEFAULT_POLICY
    people = environ.get(PEOPLE_VARIABLE, "").strip() or DEFAULT_PEOPLE
    return Anchor(ref, policy, people)


def anchor_workflow(
    workflow: Workflow, anchor: Anchor, locate: Callable[[tuple[str, ...]], Location]
) -> Workflow:
    """The workflow with its trust read from the anchor; refuse a workflow naming other trust."""
    trust = workflow.approvals.trust
    if trust is not None and trust.ref and trust.ref != anchor.ref:
        raise RefusedError(
            f"approvals.trust.ref names {trust.ref}, but this environment's trust anchor is "
            f"{anchor.ref}: the deployed workflow cannot choose whose approvals count",
            location=locate(("approvals", "trust", "ref")),
            hint=FIX,
        )
    if trust is not None and trust.policy and trust.policy != anchor.policy:
        raise RefusedError(
            f"approvals.trust.policy names {trust.policy}, but this environment's policy is "
            f"{anchor.policy} on {anchor.ref} (set by {POLICY_VARIABLE})",
            location=locate(("approvals", "trust", "policy")),
            hint="leave `policy` out of `approvals.trust` (the anchored policy applies anyway) "
            f"or name {anchor.policy}",
        )
    if trust is None:
        anchored = Trust(people=anchor.people, ref=anchor.ref, policy=anchor.policy, anchored=True)
    else:
        anchored = structs.replace(trust, ref=anchor.ref, policy=anchor.policy, anchored=True)
        if trust.allowed_signers and not trust.revoked_keys:
            # deleting the `revoked-keys:` line from the deployed workflow turned revocation
            # off (attack pass): anchored, the list beside the allowed signers is read, at the
            # pinned commit and at the ref's tip, once the ref has one (a review found a list
            # first created while a run waited ignored)
            anchored = structs.replace(
                anchored,
                revoked_keys=posixpath.join(
                    posixpath.dirname(trust.allowed_signers), DEFAULT_REVOKED_KEYS
                ),
                revoked_keys_optional=True,
            )
    approvals = structs.replace(workflow.approvals, trust=anchored)
    return structs.replace(workflow, approvals=approvals)


def anchor_server(
    workflow: Workflow, environ: Mapping[str, str], locate: Callable[[tuple[str, ...]], Location]
) -> None:
    """Refuse a workflow whose approval server is not the one the environment names."""
    anchored = environ.get(SERVER_VARIABLE, "").strip()
    server = workflow.approvals.server
    if not anchored or server is None or _same_url(server.url, anchored):
        return
    raise RefusedError(
        f"approvals.server.url names {server.url}, but this environment's approval server is "
        f"{anchored} (set by {SERVER_VARIABLE}): the deployed workflow cannot choose who "
        "approves, nor where the runner token is sent",
        location=locate(("approvals", "server", "url")),
        hint=f"name {anchored} in `approvals.server.url`; to change the server, change "
        f"{SERVER_VARIABLE}",
    )


def _same_url(one: str, other: str) -> bool:
    return one.strip().rstrip("/").lower() == other.strip().rstrip("/").lower()


def has_policy(git: GitReader, trust: Trust) -> bool:
    """Whether the anchored policy file exists at the pinned trust commit. Only the anchored ref's
    maintainers can add or delete it, so its absence means this environment has no policy; a
    trust ref that does not exist here is left to the read, which fails naming it."""

    if not trust.policy or trust.commit is None:
        return True
    try:
        # verified: a step that rewrote the pinned commit's tree in .git/objects must not be
        # able to make the policy disappear (and with it the policy's approval)
        return verified_file(git, trust.commit, trust.policy) is not None
    except GitError:
        return True  # the read then fails, saying why


def relies_on_git_trust(workflow: Workflow) -> bool:
    trust = workflow.approvals.trust
    return workflow.approvals.file is not None or (
        trust is not None and bool(trust.ref or trust.policy)
    )


def unanchored_warning(
    workflow: Workflow, environ: Mapping[str, str], *, trust_anchored: bool = False
) -> str | None:
    """The warning for a CI run whose trust, or approval server, the deployed workflow chooses;
    None when it chooses neither or outside CI."""
    if not in_ci(environ):
        return None
    parts = []
    if not trust_anchored and relies_on_git_trust(workflow):
        parts.append(
            "trust is chosen by the deployed workflow (approvals.trust): a pull request can point "
            f"it at its own people, keys and policy. Set {REF_VARIABLE} (and {POLICY_VARIABLE} "
            "if the policy is not policy.yml)"
        )
    if workflow.approvals.server is not None and not environ.get(SERVER_VARIABLE):
        parts.append(
            "the approval server is chosen by the deployed workflow (approvals.server.url): a "
            "pull request can name its own, which then decides and receives the runner token. "
            f"Set {SERVER_VARIABLE}"
        )
    if not parts:
        return None
    text = (
        "; ".join(parts) + " as a protected or environment variable of the CI, outside the "
        "repository (docs/security.md, The trust anchor)"
    )
    if environ.get("GITHUB_ACTIONS"):
        return f"::warning title=runner: trust not anchored::{text}"
    return f"warning: {text}"
