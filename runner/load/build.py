"""Validated YAML data to the frozen records of :mod:`runner.model`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from runner.errors import Location
from runner.load.yaml import Document, Path
from runner.model import (
    Approvals,
    Field,
    FileSource,
    GuidedChoice,
    GuidedFailure,
    Input,
    Manual,
    Output,
    Quorum,
    Retry,
    Scalar,
    ScopedValue,
    ServerSource,
    Step,
    StepKind,
    Trust,
    Variable,
    Webhook,
    Workflow,
)


def text(value: Scalar | None) -> str:
    """A YAML scalar as the string a script would see (GitHub writes booleans in lower case)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _strings(mapping: Mapping[str, Any] | None) -> Mapping[str, str]:
    return MappingProxyType({k: text(v) for k, v in (mapping or {}).items()})


def build_workflow(doc: Document, raw: bytes) -> Workflow:
    """The model of an already schema-valid document."""
    data: dict[str, Any] = doc.data
    defaults = data.get("defaults", {}).get("run", {})
    guided = _guided(data.get("guided-failure"), doc.location(("guided-failure",), key=True))
    return Workflow(
        name=data["name"],
        path=doc.path,
        digest=hashlib.sha256(raw).hexdigest(),
        description=data.get("description", ""),
        environments=tuple(data.get("environments", ())),
        inputs=MappingProxyType(
            {
                name: _input(name, spec, doc.location(("inputs", name), key=True))
                for name, spec in data.get("inputs", {}).items()
            }
        ),
        env=_strings(data.get("env")),
        variables=MappingProxyType(
            {name: _variable(doc, name, spec) for name, spec in data.get("variables", {}).items()}
        ),
        outputs=MappingProxyType(
            {
                name: _output(name, spec, doc.location(("outputs", name)))
                for name, spec in data.get("outputs", {}).items()
            }
        ),
        default_shell=defaults.get("shell"),
        default_working_directory=defaults.get("working-directory"),
        approvals=_approvals(data.get("approvals")),
        guided=guided,
        steps=tuple(_step(doc, i, spec, guided) for i, spec in enumerate(data["steps"])),
        location=doc.location(()),
        where=MappingProxyType(
            {f"env.{name}": doc.location(("env", name)) for name in data.get("env") or {}}
        ),
    )


def _input(name: str, spec: dict[str, Any], location: Location) -> Input:
    return Input(
        name=name,
        type=spec.get("type", "string"),
        required=spec.get("required", False),
        default=spec.get("default"),
        options=tuple(spec.get("options", ())),
        description=spec.get("description", ""),
        secret=spec.get("secret", False),
        location=location,
    )


def _variable(doc: Document, name: str, spec: Any) -> Variable:
    path: Path = ("variables", name)
    if not isinstance(spec, (dict, list)):
        value = ScopedValue(value=text(spec), location=doc.location(path))
        return Variable(name, (value,), doc.location(path, key=True))
    items = spec if isinstance(spec, list) else [spec]
    values = []
    for i, item in enumerate(items):
        where: Path = (*path, i) if isinstance(spec, list) else path
        values.append(
            ScopedValue(
                value=text(item["value"]) if "value" in item else None,
                from_env=item.get("from-env"),
                environments=tuple(item.get("environments", ())),
                secret=item.get("secret", False),
                location=doc.location(where),
            )
        )
    return Variable(name, tuple(values), doc.location(path, key=True))


def _output(name: str, spec: Any, location: Location) -> Output:
    if isinstance(spec, str):
        return Output(name, spec, location=location)
    return Output(name, spec["value"], spec.get("description", ""), location)


def _webhook(spec: dict[str, Any] | None) -> Webhook | None:
    return Webhook(spec.get("url"), spec.get("url-env")) if spec else None


def _approvals(spec: dict[str, Any] | None) -> Approvals:
    if not spec:
        return Approvals()
    trust = spec.get("trust")
    server = spec.get("server")
    files = spec.get("file")
    return Approvals(
        trust=Trust(
            people=trust["people"],
            ref=trust.get("ref"),
            allowed_signers=trust.get("allowed-signers"),
            revoked_keys=trust.get("revoked-keys"),
            policy=trust.get("policy"),
        )
        if trust
        else None,
        server=ServerSource(server["url"], server.get("token-env"), server.get("ca-bundle"))
        if server is not None
        else None,
        file=FileSource(
            path=files.get("path", "approvals"),
            remote=files.get("remote"),
            branch=files.get("branch"),
            namespace=files.get("namespace", "runner-approval"),
            poll_seconds=float(files.get("poll-seconds", 3)),
        )
        if files is not None
        else None,
        prompt="prompt" in spec,
        notify=_webhook(spec.get("notify")),
    )


def _manual(spec: dict[str, Any]) -> Manual:
    return Manual(
        title=spec.get("title", ""),
        instructions=spec.get("instructions", ""),
        teams=tuple(spec.get("teams", ())),
        require=tuple(Quorum(r["team"], r["count"]) for r in spec.get("require", ())),
        prevent_self_approval=spec.get("prevent-self-approval", False),
        timeout_minutes=spec.get("timeout-minutes"),
        on_timeout=spec.get("on-timeout", "abort"),
        fields=tuple(
            Field(
                name=f["name"],
                type=f["type"],
                label=f.get("label", ""),
                description=f.get("description", ""),
                required=f.get("required", False),
                pattern=f.get("pattern"),
                options=tuple(f.get("options", ())),
                default=f.get("default"),
            )
            for f in spec.get("fields", ())
        ),
        sources=tuple(spec.get("sources", ())),
        block_deployments=spec.get("block-deployments", False),
        notify=_webhook(spec.get("notify")),
    )


def _guided(spec: object, location: Location | None) -> GuidedFailure | None:
    """``guided-failure:`` as a model; ``true`` is every default, ``false`` or absent is off."""
    if spec is None or spec is False:
        return None
    if spec is True:
        return GuidedFailure(location=location)
    if not isinstance(spec, dict):
        # The schema refused it; _beyond_the_schema then builds what it can and stops here.
        raise TypeError("guided-failure is not a mapping")
    choices: list[GuidedChoice] = []
    limit = spec.get("max-retries")
    for item in spec.get("choices", ("retry", "skip", "fail")):
        if isinstance(item, dict):
            choices.append("retry")
            limit = item["retry"].get("limit", limit)
        else:
            choices.append(item)
    return GuidedFailure(
        teams=tuple(spec.get("teams", ())),
        require=tuple(Quorum(r["team"], r["count"]) for r in spec.get("require", ())),
        prevent_self_approval=spec.get("prevent-self-approval", False),
        choices=tuple(dict.fromkeys(choices)),
        max_retries=limit,
        timeout_minutes=spec.get("timeout-minutes"),
        on_timeout=spec.get("on-timeout", "fail"),
        sources=tuple(spec.get("sources", ())),
        notify=_webhook(spec.get("notify")),
        location=location,
    )


def _step_guided(
    doc: Document, path: Path, spec: dict[str, Any], workflow: GuidedFailure | None
) -> GuidedFailure | None:
    """The step's own ``guided-failure`` overrides the workflow's; a manual step's abort is a
    decision already, so the workflow's never applies to one."""
    if "guided-failure" in spec:
        return _guided(spec["guided-failure"], doc.location((*path, "guided-failure"), key=True))
    return None if "manual" in spec else workflow


def _step(
    doc: Document, index: int, spec: dict[str, Any], guided: GuidedFailure | None = None
) -> Step:
    path: Path = ("steps", index)
    kind: StepKind = "run" if "run" in spec else "uses" if "uses" in spec else "manual"
    retry = spec.get("retry")
    return Step(
        id=spec["id"],
        name=spec["name"],
        kind=kind,
        index=index,
        condition=spec.get("if"),
        environments=tuple(spec.get("environments", ())),
        exclude_environments=tuple(spec.get("exclude-environments", ())),
        required=spec.get("required", False),
        with_previous=spec.get("start") == "with-previous",
        continue_on_error=spec.get("continue-on-error", False),
        timeout_minutes=spec.get("timeout-minutes"),
        env=_strings(spec.get("env")),
        run=spec.get("run"),
        shell=spec.get("shell"),
        working_directory=spec.get("working-directory"),
        retry=Retry(retry["attempts"], float(retry.get("delay-seconds", 0))) if retry else None,
        uses=spec.get("uses"),
        with_=_strings(spec.get("with")),
        manual=_manual(spec["manual"]) if "manual" in spec else None,
        guided=_step_guided(doc, path, spec, guided),
        location=doc.location(path),
        where=MappingProxyType(value_places(doc, path, spec)),
    )


def value_places(doc: Document, path: Path, spec: dict[str, Any]) -> dict[str, Location]:
    """Where each key of the step at ``path`` (a workflow's or an action's) has its value, and
    each value of ``with``, of ``env`` and of a manual step's ``title``, ``instructions`` and
    fields' labels and patterns (``"with.NAME"``, ``"env.NAME"``, ``"manual.title"``,
    ``"manual.fields.0.label"``): the places of expressions that fail at run time, and of
    patterns that do not compile."""
    where = {key: doc.location((*path, key)) for key in spec}
    for key in ("with", "env", "manual"):
        if isinstance(spec.get(key), dict):
            for name in spec[key]:
                where[f"{key}.{name}"] = doc.location((*path, key, name))
    for i, field in enumerate((spec.get("manual") or {}).get("fields") or ()):
        # a label for its expressions; a pattern for the check that compiles it (it pointed
        # at the manual step's first key: newcomer pass)
        for key in ("label", "pattern"):
            if isinstance(field, dict) and key in field:
                where[f"manual.fields.{i}.{key}"] = doc.location(
                    (*path, "manual", "fields", i, key)
                )
    return where
