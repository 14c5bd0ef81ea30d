"""Before the first step: can every manual step that may run be decided here?

A manual step that no source can ask, or whose approvals would all be refused, used to be found
only when its turn came: after earlier steps had changed things (the seed workflow upgraded the
production database in CI, then failed with "no approval source can ask"), or silently, waiting
to its timeout (``prevent-self-approval`` with a starter the people file does not know refuses
every proceed). These checks run before anything runs, so such a run fails at once with exit 1,
naming each step and the fix.

Pure: the environment, whether stdin is a terminal, the local user and the people file come in
as arguments (the people file as a callable, read only when a check needs it).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from msgspec import Struct

from runner.actor import current_actor
from runner.approvals.identity import Directory
from runner.approvals.prompt import approvers_text, local_user, prompt_refusal
from runner.approvals.server_client import DEFAULT_TOKEN_ENV
from runner.approvals.trust import load_directory, refuse_deployed_commit
from runner.ci import in_ci
from runner.engine.plan import make_plan
from runner.errors import PreflightError as PreflightError
from runner.errors import RunnerError
from runner.git import Git
from runner.model import Manual, Step, Workflow
from runner.options import RunOptions

if TYPE_CHECKING:
    from runner.prepare import Prepared


class Problem(Struct, frozen=True):
    """Why a manual step could not be decided here, and what to change."""

    step: Step
    message: str
    hint: str

    def __str__(self) -> str:
        return f"step '{self.step.name}': {self.message} (fix: {self.hint})"


def check(
    workflow: Workflow,
    steps: Iterable[Step],
    *,
    environ: Mapping[str, str],
    stdin_tty: bool,
    local_user: str,
    started_by: str,
    directory: Callable[[], Directory | None],
    insecure_local_trust: bool = False,
    trust_refusal: Callable[[], str | None] = lambda: None,
    unreadable: Callable[[], str | None] = lambda: None,
) -> list[Problem]:
    """Every reason why one of ``steps`` (those that may run and ask people) cannot be decided.
    ``unreadable`` says why the trust files cannot be read, if they cannot: every decision
    would then be refused, after the steps before the gate had run."""
    problems: list[Problem] = []
    loaded: list[Directory | None] = []

    def people() -> Directory | None:
        if not loaded:
            loaded.append(directory())
        return loaded[0]

    trust = workflow.approvals.trust
    people_file = trust.people if trust else None
    for step in steps:
        why = unreadable() if trust is not None else None
        if why is not None:
            problems.append(Problem(step, why, _trust_hint(why, trust.ref if trust else None)))
            continue
        manual = step.manual
        if manual is None:
            continue  # a guided-failure question: its sources are judged when it is asked
        if manual.prevent_self_approval:
            found = people()
            if found is not None and found.by_login(started_by) is None:
                problems.append(_unknown_starter(step, started_by, people_file))
                continue  # every decision would be refused: no source can help
        reasons: list[str] = []
        for name in manual.sources or workflow.approvals.sources:
            reason = _cannot_ask(
                name, workflow, manual, environ, stdin_tty, local_user, started_by, people,
                insecure_local_trust, trust_refusal,
            )  # fmt: skip
            if reason is None:
                break
            reasons.append(f"{name}: {reason}")
        else:
            problems.append(
                Problem(
                    step,
                    "no approval source can ask here (" + "; ".join(reasons) + ")",
                    "configure `approvals.file` (signed approval files) or `approvals.server` "
                    "for CI, or run on a terminal as one of the approvers",
                )
            )
    return problems


def _trust_hint(why: str, ref: str | None) -> str:
    remote = re.fullmatch(r"refs/remotes/([^/]+)/(.+)", ref or "")
    if not ref:
        # read from the working tree: there is no ref to fix
        if why.startswith("cannot read trust file"):
            return "create the file, or correct its path under the workflow's `approvals.trust`"
        return "fix the trust files (the people file, allowed_signers, revoked keys)"
    if "does not exist" not in why:
        return "fix the trust files on that ref (the people file, allowed_signers, revoked keys)"
    if remote is not None:
        name, branch = remote.groups()
        return (
            f"fetch the trust branch before the run: git fetch --no-tags {name} "
            f"+refs/heads/{branch}:{ref}"
        )
    if ref:
        return f"make {ref} exist here before the run (fetch it), or fix `approvals.trust`"
    return "fix the files `approvals.trust` names"


def _unknown_starter(step: Step, started_by: str, people_file: str | None) -> Problem:
    where = people_file or "the people file"
    return Problem(
        step,
        f"it prevents self-approval, but the run is started by {started_by!r}, who is not in "
        f"{where}: self-approval could not be ruled out, so every approval would be refused",
        f"add {started_by!r} to the `ci-logins` of that person in {where}, or set "
        "RUNNER_ACTOR to their username there",
    )


def _cannot_ask(
    name: str,
    workflow: Workflow,
    manual: Manual,
    environ: Mapping[str, str],
    stdin_tty: bool,
    local_user: str,
    started_by: str,
    people: Callable[[], Directory | None],
    insecure: bool,
    trust_refusal: Callable[[], str | None],
) -> str | None:
    """Why source ``name`` cannot ask for this step here, or None if it can."""
    approvals = workflow.approvals
    if name == "prompt":
        ci = in_ci(environ)
        if ci:
            return f"cannot ask in CI (${ci} is set)"
        if not stdin_tty:
            return "stdin is not a terminal"
        directory = people()
        if directory is None:
            return None
        refusal = prompt_refusal(
            directory, manual.teams, manual.prevent_self_approval, started_by, local_user
        )
        if refusal is not None and directory.by_login(local_user) is None:
            people_file = approvals.trust.people if approvals.trust else None
            if people_file:
                # what the README tells a newcomer trying the gate to do
                refusal += (
                    f" ({people_file}; to answer here, add a person with `username: "
                    f"{local_user}` to a team that may)"
                )
        if refusal is not None:
            return f"{refusal}; may answer: {approvers_text(directory, manual.teams)}"
        return None
    if name == "file":
        trust = approvals.trust
        if approvals.file is None:
            return "`approvals.file` is not configured"
        if trust is None or not trust.allowed_signers:
            return "needs `approvals.trust.allowed-signers`"
        if not trust.ref and not insecure:
            return "`approvals.trust.ref` is not set (trust files must come from a protected ref)"
        return trust_refusal()
    if name == "server":
        if approvals.server is None:
            return "`approvals.server` is not configured"

        variable = approvals.server.token_env or DEFAULT_TOKEN_ENV
        if not environ.get(variable):
            return f"no runner token in ${variable}"
        return None
    return f"unknown source {name!r}"


def steps_that_may_ask(prepared: Prepared, environ: Mapping[str, str]) -> list[Step]:
    """The steps that will or may run and ask people: manual steps, and steps under guided
    failure (if they fail) that a dry run does not skip, whether earlier manual steps are
    assumed to proceed or to abort (``if: failure()`` steps run only then)."""
    workflow = prepared.workflow
    if not any(step.manual or step.guided for step in workflow.steps):
        return []

    wanted: set[str] = set()
    for assume in ("proceed", "abort"):
        plan = make_plan(
            workflow,
            prepared.environment,
            inputs=prepared.inputs,
            variables=prepared.variables,
            skip=prepared.skip,
            assume=assume,
            created_by=current_actor(environ),
        )
        for planned in plan.steps:
            asks = planned.step.manual is not None or planned.step.guided is not None
            if asks and planned.runs is not False:
                wanted.add(planned.step.id)
    return [step for step in workflow.steps if step.id in wanted]


def approval_problems(
    prepared: Prepared,
    environ: Mapping[str, str],
    options: RunOptions,
    *,
    stdin_tty: bool | None = None,
    steps: list[Step] | None = None,
    started_by: str | None = None,
) -> list[Problem]:
    """Why manual steps that may run could not be decided here (runner.engine.preflight);
    ``started_by``: who started the run, where that is not who runs this (a resume)."""
    todo = steps_that_may_ask(prepared, environ) if steps is None else steps
    if not todo:
        return []

    workflow = prepared.workflow
    user = local_user()
    git = Git(prepared.loaded.workspace)

    loaded: list[Directory | None] = []
    failed: list[str] = []

    def directory() -> Directory | None:
        if not loaded:
            try:
                loaded.append(load_directory(workflow.approvals.trust, git, user))
            except RunnerError as exc:
                failed.append(exc.message)
                loaded.append(None)
        return loaded[0]

    def unreadable() -> str | None:
        directory()
        return failed[0] if failed else None

    refusals: list[str | None] = []

    def trust_refusal() -> str | None:
        """Trust read from the commit being deployed is trust the deployer could write."""
        trust = workflow.approvals.trust
        if not refusals:
            refusals.append(None)
            if trust is not None and trust.ref:
                try:
                    refuse_deployed_commit(git, trust.ref, trust.commit)
                except RunnerError as exc:
                    refusals[0] = exc.message
        return refusals[0]

    if stdin_tty is None:
        stdin_tty = sys.stdin is not None and sys.stdin.isatty()
    return check(
        workflow,
        todo,
        environ=environ,
        stdin_tty=stdin_tty,
        local_user=user,
        started_by=started_by if started_by is not None else current_actor(environ).username,
        directory=directory,
        insecure_local_trust=options.insecure_local_trust,
        trust_refusal=trust_refusal,
        unreadable=unreadable,
    )
