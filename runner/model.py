"""The workflow as frozen records. Every record knows where it came from in the file.

Built from validated data by :mod:`runner.load.build`; nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from msgspec import Struct, field

from runner.errors import Location

Scalar = str | int | float | bool
SourceName = Literal["server", "file", "prompt"]
SOURCE_NAMES: tuple[SourceName, ...] = ("server", "file", "prompt")
#: a run id: it names a folder of the state folder (and an approval file's), so nothing else
#: (``.`` and ``..`` are refused besides: :func:`is_run_id`)
RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: a step id, as the workflow schema has it (``steps[].id``)
STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def is_run_id(value: str) -> bool:
    """Whether ``value`` can name a run: a folder of the state folder, and nothing else."""
    return RUN_ID.fullmatch(value) is not None and value not in (".", "..")


class Input(Struct, frozen=True):
    name: str
    type: Literal["string", "number", "boolean", "choice"] = "string"
    required: bool = False
    default: Scalar | None = None
    options: tuple[str, ...] = ()
    description: str = ""
    secret: bool = False
    location: Location | None = None


class ScopedValue(Struct, frozen=True):
    """One value of a variable: literal or read from the process environment, maybe scoped."""

    value: str | None = None
    from_env: str | None = None
    environments: tuple[str, ...] = ()
    secret: bool = False
    location: Location | None = None


class Variable(Struct, frozen=True):
    name: str
    values: tuple[ScopedValue, ...]
    location: Location | None = None

    @property
    def secret(self) -> bool:
        return any(v.secret for v in self.values)


class Output(Struct, frozen=True):
    name: str
    value: str
    description: str = ""
    location: Location | None = None


class Webhook(Struct, frozen=True):
    url: str | None = None
    url_env: str | None = None


class Trust(Struct, frozen=True):
    """Where identity and keys come from; paths are read from ``ref`` (a protected branch/tag)."""

    people: str
    ref: str | None = None
    allowed_signers: str | None = None
    revoked_keys: str | None = None
    policy: str | None = None
    #: the commit ``ref`` named when the run started: every trust file of the run is read from
    #: it, so a step cannot move the ref before the manual step reads who may approve
    commit: str | None = None
    #: ``ref`` and ``policy`` come from the environment's trust anchor (``runner.anchor``)
    anchored: bool = False
    #: ``revoked_keys`` is the anchor's default list, which the ref may not have (yet): a
    #: missing file revokes nothing, one added later revokes at once (``runner.anchor``)
    revoked_keys_optional: bool = False


class ServerSource(Struct, frozen=True):
    url: str
    token_env: str | None = None
    ca_bundle: str | None = None


class FileSource(Struct, frozen=True):
    path: str = "approvals"
    remote: str | None = None
    branch: str | None = None
    namespace: str = "runner-approval"
    poll_seconds: float = 3.0


class Approvals(Struct, frozen=True):
    trust: Trust | None = None
    server: ServerSource | None = None
    file: FileSource | None = None
    prompt: bool = False
    notify: Webhook | None = None

    @property
    def sources(self) -> tuple[SourceName, ...]:
        """The configured sources; with none configured, the terminal prompt."""
        names: list[SourceName] = []
        if self.server:
            names.append("server")
        if self.file:
            names.append("file")
        if self.prompt:
            names.append("prompt")
        return tuple(names) or ("prompt",)


class Field(Struct, frozen=True):
    """A typed value the approver gives with their decision; it becomes a step output."""

    name: str
    type: Literal["string", "choice", "boolean"]
    label: str = ""
    description: str = ""
    required: bool = False
    pattern: str | None = None
    options: tuple[str, ...] = ()
    default: Scalar | None = None


class Quorum(Struct, frozen=True):
    team: str
    count: int


class Manual(Struct, frozen=True):
    title: str = ""
    instructions: str = ""
    teams: tuple[str, ...] = ()
    require: tuple[Quorum, ...] = ()
    prevent_self_approval: bool = False
    timeout_minutes: float | None = None
    on_timeout: Literal["abort", "proceed"] = "abort"
    fields: tuple[Field, ...] = ()
    sources: tuple[SourceName, ...] = ()
    block_deployments: bool = False
    notify: Webhook | None = None


#: the outputs every manual step gives (``steps.<id>.outputs.<name>``), and one per field
MANUAL_OUTPUTS = (
    "approved",
    "notes",
    "responsible-user-id",
    "responsible-user-username",
    "responsible-user-display-name",
    "responsible-user-email",
)
#: the same as Octopus's output variables (``Octopus.Action[<step name>].Output.<name>``), and
#: ``Manual.<field>`` for each field
MANUAL_OCTOPUS_OUTPUTS = (
    "Manual.Notes",
    "Manual.Approved",
    "Manual.ResponsibleUser.Id",
    "Manual.ResponsibleUser.Username",
    "Manual.ResponsibleUser.DisplayName",
    "Manual.ResponsibleUser.EmailAddress",
)


#: what a person may choose at a failed step under guided failure (Octopus: Retry, Ignore, Fail)
GuidedChoice = Literal["retry", "skip", "fail"]
GUIDED_CHOICES: tuple[GuidedChoice, ...] = ("retry", "skip", "fail")


class GuidedFailure(Struct, frozen=True):
    """Octopus's guided failure mode: a failed step waits for a person to retry it, skip it (it
    stays ``Failed`` and the run goes on) or fail the deployment, through the approval sources."""

    teams: tuple[str, ...] = ()
    require: tuple[Quorum, ...] = ()
    prevent_self_approval: bool = False
    choices: tuple[GuidedChoice, ...] = GUIDED_CHOICES
    #: how many times ``retry`` may be chosen for one step (None: no limit)
    max_retries: int | None = None
    timeout_minutes: float | None = None
    on_timeout: Literal["fail", "skip"] = "fail"
    sources: tuple[SourceName, ...] = ()
    notify: Webhook | None = None
    #: where it is configured (the workflow's key or the step's), for diagnostics
    location: Location | None = None


class Retry(Struct, frozen=True):
    attempts: int
    delay_seconds: float = 0.0


StepKind = Literal["run", "uses", "manual"]


class Step(Struct, frozen=True):
    id: str
    name: str
    kind: StepKind
    index: int
    condition: str | bool | None = None
    environments: tuple[str, ...] = ()
    exclude_environments: tuple[str, ...] = ()
    required: bool = False
    with_previous: bool = False
    continue_on_error: bool | str = False
    timeout_minutes: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    run: str | None = None
    shell: str | None = None
    working_directory: str | None = None
    retry: Retry | None = None
    uses: str | None = None
    with_: Mapping[str, str] = field(default_factory=dict)
    manual: Manual | None = None
    #: guided failure as it applies to this step (the step's own, else the workflow's; None when
    #: off or opted out with ``guided-failure: false``)
    guided: GuidedFailure | None = None
    location: Location | None = None
    #: where each of the step's keys has its value, for errors found late (``"if"``, ``"run"``)
    where: Mapping[str, Location] = field(default_factory=dict)
    #: a gate no later step runs without (the policy's approval, ``policy.with_policy_approval``):
    #: unless it passed, every step after it is skipped, ``always()`` and ``failure()`` ones too
    barrier: bool = False

    def at(self, key: str) -> Location | None:
        return self.where.get(key, self.location)

    @property
    def unskippable(self) -> bool:
        """Octopus refuses to skip required steps and manual steps with responsible teams (a
        quorum names teams too)."""
        return self.required or bool(self.manual and (self.manual.teams or self.manual.require))


class Workflow(Struct, frozen=True):
    name: str
    path: str
    digest: str
    steps: tuple[Step, ...]
    description: str = ""
    environments: tuple[str, ...] = ()
    inputs: Mapping[str, Input] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, Variable] = field(default_factory=dict)
    outputs: Mapping[str, Output] = field(default_factory=dict)
    default_shell: str | None = None
    default_working_directory: str | None = None
    approvals: Approvals = field(default_factory=Approvals)
    #: the workflow-level ``guided-failure`` (each step's own is ``Step.guided``)
    guided: GuidedFailure | None = None
    location: Location | None = None
    #: where each value of ``env`` is (``"env.NAME"``), for errors found late
    where: Mapping[str, Location] = field(default_factory=dict)

    def at(self, key: str) -> Location | None:
        return self.where.get(key, self.location)

    def step(self, key: str) -> Step | None:
        """The step with this id, or (case-insensitively, as Octopus) this name."""
        lowered = key.lower()
        for step in self.steps:
            if step.id == key or step.name.lower() == lowered:
                return step
        return None


class Identity(Struct, frozen=True):
    """A person as the people-and-teams file knows them (or as CI / git names them)."""

    id: str = ""
    username: str = ""
    display_name: str = ""
    email: str = ""
