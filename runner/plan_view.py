"""A plan shown to people (text) or machines (JSON). Secrets never appear: they print as ``***``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from runner.engine.plan import Plan, PlannedStep, mask_secrets
from runner.inputs import shown_inputs
from runner.load.build import text
from runner.model import Step
from runner.policy import describe


def plan_to_json(plan: Plan) -> dict[str, Any]:
    secret_inputs = {n for n, i in plan.workflow.inputs.items() if i.secret}
    return {
        "workflow": plan.workflow.name,
        "path": plan.workflow.path,
        "digest": plan.workflow.digest,
        "environment": plan.environment,
        "inputs": shown_inputs(plan.inputs, secret_inputs, lambda t: _mask(plan, t)),
        "variables": [
            {
                "name": r.name,
                "value": _mask(plan, plan.expanded.get(r.name, r.shown())),
                "secret": r.secret,
                "origin": r.origin,
            }
            for r in plan.variables.items
        ],
        "policy": None
        if plan.policy is None
        else {
            "allowed": plan.policy.allowed,
            "checks": [
                {"rule": c.rule, "ok": c.ok, "message": c.message, "overridden": c.overridden}
                for c in plan.policy.checks
            ],
        },
        "steps": [_step_json(plan, p) for p in plan.steps],
        "errors": [
            {"step": p.step.id, "message": _mask(plan, p.message), "hint": p.hint}
            for p in plan.problems
        ],
        "outcome": outcome(plan)[0],
        "exit-code": outcome(plan)[1],
    }


def outcome(plan: Plan) -> tuple[str, int]:
    """What a run would end with, and its exit code, as ``runner run`` would decide: a policy
    that refuses stops it first (exit 5), then manual steps nobody can decide here (exit 1)."""
    if plan.policy is not None and not plan.policy.allowed:
        return "refused by the environment policy", 5
    if plan.problems:
        return "fails before the first step: manual steps cannot be decided here", 1
    return plan.outcome, 0


def _step_json(plan: Plan, planned: PlannedStep) -> dict[str, Any]:
    step = planned.step
    item: dict[str, Any] = {
        "id": step.id,
        "name": step.name,
        "kind": step.kind,
        "group": planned.group,
        "runs": planned.runs,
        "reason": _mask(plan, planned.reason),
    }
    if planned.approval is not None:
        a = planned.approval
        item["approval"] = {
            "teams": list(a.teams),
            "quorum": [{"team": t, "count": c} for t, c in a.quorum],
            "sources": list(a.sources),
            "prevent-self-approval": a.prevent_self_approval,
            "timeout-minutes": a.timeout_minutes,
            "on-timeout": a.on_timeout,
            "assumed": a.assumed,
            "title": _mask(plan, a.title),
            "instructions": _mask(plan, a.instructions),
            "rendered-at-run-time": _mask(plan, a.unrendered) or None,
            "fields": [
                {
                    "name": name,
                    "type": kind,
                    "label": _mask(plan, label),
                    "required": required,
                    "pattern": pattern,
                    "options": list(options),
                }
                for name, kind, label, required, pattern, options in a.fields
            ],
        }
    guided = step.guided
    if guided is not None and step.kind != "manual":
        item["guided-failure"] = {
            "teams": list(guided.teams),
            "quorum": [{"team": q.team, "count": q.count} for q in guided.require],
            "sources": list(guided.sources or plan.workflow.approvals.sources),
            "prevent-self-approval": guided.prevent_self_approval,
            "choices": {choice: CHOICE_LEADS_TO[choice] for choice in guided.choices},
            "max-retries": guided.max_retries,
            "timeout-minutes": guided.timeout_minutes,
            "on-timeout": guided.on_timeout,
        }
    return item


#: what each guided-failure choice does, as ``plan`` tells it
CHOICE_LEADS_TO = {
    "retry": "runs the step again, as a new attempt",
    "skip": "goes on as if it succeeded (the step stays Failed)",
    "fail": "fails the deployment",
}


def _guided_lines(plan: Plan, step: Step) -> list[str]:
    """Where guided failure would ask, whom, and what each choice leads to."""
    guided = step.guided
    if guided is None or step.kind == "manual":
        return []
    who = ", ".join(guided.teams) if guided.teams else "anyone in the people file"
    quorum = "; ".join(f"{q.count} from {q.team}" for q in guided.require) or "1 person"
    sources = ", ".join(guided.sources or plan.workflow.approvals.sources)
    lines = [f"            if it fails, asks: {who} ({quorum}) via {sources}"]
    for choice in guided.choices:
        limit = (
            f" (at most {guided.max_retries} time{'' if guided.max_retries == 1 else 's'})"
            if choice == "retry" and guided.max_retries is not None
            else ""
        )
        lines.append(f"              {choice}{limit}: {CHOICE_LEADS_TO[choice]}")
    if guided.prevent_self_approval:
        lines.append("              the person who started the run may not decide")
    if guided.timeout_minutes is not None:
        then = "skips the step" if guided.on_timeout == "skip" else "fails the deployment"
        lines.append(f"              times out after {guided.timeout_minutes:g} min, then {then}")
    return lines


def _mask(plan: Plan, value: str) -> str:
    return mask_secrets(value, plan.secrets)


def plan_to_text(plan: Plan) -> str:
    lines = [f"Plan: {plan.workflow.name} -> {plan.environment}  ({plan.workflow.path})"]
    if plan.inputs:
        secret_inputs = {n for n, i in plan.workflow.inputs.items() if i.secret}
        masked = shown_inputs(plan.inputs, secret_inputs, lambda t: _mask(plan, t))
        shown = ", ".join(f"{k}={text(v)}" for k, v in masked.items())
        lines.append(f"Inputs: {shown}")
    if plan.variables.items:
        lines.append("Variables:")
        width = max(len(r.name) for r in plan.variables.items)
        for r in plan.variables.items:
            shown = _mask(plan, plan.expanded.get(r.name, r.shown()))
            lines.append(f"  {r.name.ljust(width)} = {shown}  ({r.origin})")
    if plan.policy is not None and plan.policy.checks:
        verdict = "allowed" if plan.policy.allowed else "REFUSED"
        lines.append(f"Policy for {plan.environment}: {verdict}")
        lines.extend(f"  {line}" for line in describe(plan.policy))
    lines.append("Steps:")
    sizes = Counter(p.group for p in plan.steps)
    for planned in plan.steps:
        step = planned.step
        parallel = sizes[planned.group] > 1
        mark = {True: "run ", False: "skip", None: " ?  "}[planned.runs]
        branch = "||" if parallel else "  "
        lines.append(f"  {planned.group:>2} {branch} {mark}  {step.id}: {step.name}")
        lines.append(f"            {_mask(plan, planned.reason)}")
        if planned.approval is not None and planned.runs is not False:
            a = planned.approval
            who = ", ".join(a.teams) if a.teams else "anyone in the people file"
            quorum = "; ".join(f"{c} from {t}" for t, c in a.quorum) or "1 person"
            lines.append(f"            waits for: {who} ({quorum}) via {', '.join(a.sources)}")
            if a.prevent_self_approval:
                lines.append("            the person who started the run may not approve")
            if a.timeout_minutes is not None:
                lines.append(
                    f"            times out after {a.timeout_minutes:g} min, then {a.on_timeout}s"
                )
            if a.title and a.title != step.name:
                lines.append(f"            asks: {_mask(plan, a.title)}")
            instructions = _mask(plan, a.instructions).strip()
            if instructions:
                lines.append("            instructions:")
                for line in instructions.splitlines():
                    lines.append(f"              | {line}".rstrip())
            if a.unrendered:
                lines.append(
                    "            shown as written, rendered when the step runs: "
                    + _mask(plan, a.unrendered)
                )
            for name, kind, label, required, pattern, options in a.fields:
                about = [kind, "required" if required else "optional"]
                if options:
                    about.append("one of " + "/".join(options))
                if pattern:
                    about.append(f"matching {pattern}")
                named = f"{name} ({_mask(plan, label)})" if label and label != name else name
                lines.append(f"            field {named}: {', '.join(about)}")
            lines.append(f"            dry run assumes: {a.assumed}")
        if planned.runs is not False:
            lines.extend(_guided_lines(plan, step))
        for problem in plan.problems:
            if problem.step.id == step.id:
                lines.append(f"            ERROR: {_mask(plan, problem.message)}")
                lines.append(f"            fix: {problem.hint}")
    ending, code = outcome(plan)
    if code:
        lines.append(f"Outcome: {ending} (a run would exit {code})")
    else:
        lines.append(f"Outcome if so: {ending}")
    return "\n".join(lines) + "\n"
