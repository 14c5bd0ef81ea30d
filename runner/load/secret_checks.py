"""A warning where a step output, an environment variable set by a step, or a workflow output is
built from a secret.

Such a value is masked wherever it is stored or shown (the run record, the log, the workflow's
exported outputs: ``***``), and known whole only to the process that ran the step, so a resumed
run cannot pass it on. Usually the secret was meant for the steps that read the output, and
reaches them better through their own ``env:``.

Found in a ``run`` script: a line that writes to ``$RUNNER_OUTPUT``/``$GITHUB_OUTPUT`` or
``$RUNNER_ENV``/``$GITHUB_ENV`` (or a heredoc or ``{ ...; }`` group redirected there) and uses a
secret, as ``${{ secrets.X }}``, a secret input, ``#{SecretVariable}``, or ``$NAME`` where the
step's or the workflow's ``env`` sets ``NAME`` from one of those; and ``set_octopusvariable``
of a secret without ``-sensitive``. This reads the script's text only: a secret that reaches the
file through a command's output or a function cannot be seen, and is masked all the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from runner import expressions, variables
from runner.errors import Diagnostic, ExpressionError
from runner.expressions.ast import Index, Literal, NamedValue, walk
from runner.load.expression_checks import position_in_value
from runner.load.yaml import Document, Path
from runner.model import Step, Workflow

_ALL = ("env", "vars", "inputs", "secrets", "steps", "deployment", "runner", "job")
_HOST = ("hashfiles",)

#: the file-command files a line writes to, by the variable that names them
_FILE = re.compile(r"\$\{?(RUNNER_OUTPUT|GITHUB_OUTPUT|RUNNER_ENV|GITHUB_ENV)\b")
_SHELL_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_GROUP_END = re.compile(r"^\s*\}")
_SET_OCTOPUS = re.compile(r"^\s*set_octopusvariable\b")

#: where in a text a secret is used, and how it is written there
_Use = tuple[int, str]


class _Secrets:
    """What a workflow's secrets are called: ``secrets.*``, secret inputs, secret variables."""

    def __init__(self, workflow: Workflow) -> None:
        self.inputs = {name.lower() for name, spec in workflow.inputs.items() if spec.secret}
        self.variables = {
            name.lower() for name, variable in workflow.variables.items() if variable.secret
        }
        self.workflow_env = _secret_env(self, workflow.env, {})
        self._step_env: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}

    def step_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """The env names a step's script sees whose value uses a secret, each with how (many
        steps share the same ``env``: each is read once)."""
        key = tuple(env.items())
        found = self._step_env.get(key)
        if found is None:
            found = self._step_env[key] = _secret_env(self, env, self.workflow_env)
        return found

    def used(self, text: str, env: Mapping[str, str] | None = None) -> _Use | None:
        """Where and how ``text`` refers to a secret (``secrets.X``, ``#{X}``, ``$X``)."""
        return (
            self._in_expressions(text, env or {})
            or self._in_octopus(text)
            or (self._in_shell(text, env) if env is not None else None)
        )

    def _in_expressions(self, text: str, env: Mapping[str, str]) -> _Use | None:

        if "${{" not in text:
            return None
        try:
            templates = expressions.find_templates(text)
        except ExpressionError:
            return None  # reported by the expression checks
        for template in templates:
            try:
                tree = expressions.parse(template.expression, _ALL, _HOST)
            except ExpressionError:
                continue
            if tree is None:
                continue
            for node in walk(tree):
                if isinstance(node, NamedValue) and node.name == "secrets":
                    return template.start, f"`{template.expression.strip()}`"
                if (
                    isinstance(node, Index)
                    and isinstance(node.target, NamedValue)
                    and isinstance(node.key, Literal)
                    and isinstance(node.key.value, str)
                ):
                    context, key = node.target.name, node.key.value
                    if (context == "inputs" and key.lower() in self.inputs) or (
                        context == "env" and key.upper() in {n.upper() for n in env}
                    ):
                        return template.start, f"`{template.expression.strip()}`"
        return None

    def _in_octopus(self, text: str) -> _Use | None:

        if "#{" not in text:
            return None
        for name in sorted(variables.references(text)):
            if name.lower() in self.variables or name.lower() in self.inputs:
                return max(text.find("#{"), 0), f"`#{{{name}}}`"
        return None

    @staticmethod
    def _in_shell(text: str, env: Mapping[str, str] | None) -> _Use | None:
        for match in _SHELL_VARIABLE.finditer(text):
            name = match.group(1) or match.group(2)
            if env and name in env:
                return match.start(), f"`${name}`, set from {env[name]}"
        return None


def _secret_env(
    secrets: _Secrets, env: Mapping[str, str], inherited: Mapping[str, str]
) -> dict[str, str]:
    """The names of ``env`` (over ``inherited``) whose value uses a secret, each with how."""
    found = dict(inherited)
    for name, value in env.items():
        found.pop(name, None)
        use = secrets.used(value, inherited)
        if use:
            found[name] = use[1]
    return found


def check_secret_outputs(workflow: Workflow, doc: Document) -> list[Diagnostic]:
    """Warnings where outputs are built from secrets (see the module docstring)."""
    secrets = _Secrets(workflow)
    if not (secrets.inputs or secrets.variables or _mentions_secrets(doc)):
        return []
    found = list(_workflow_outputs(workflow, doc, secrets))
    for step in workflow.steps:
        if step.run:
            found.extend(_step(doc, step, secrets))
    return found


def _mentions_secrets(doc: Document) -> bool:
    """Whether ``secrets.`` appears anywhere (the only secrets a workflow may have but the
    ones it declares)."""
    return any("secrets" in line for line in doc.lines)


def _workflow_outputs(workflow: Workflow, doc: Document, secrets: _Secrets) -> Iterator[Diagnostic]:

    for name, output in workflow.outputs.items():
        use = secrets.used(output.value, secrets.workflow_env)
        if use:
            spec = (doc.data.get("outputs") or {}).get(name)
            path: Path = ("outputs", name) if isinstance(spec, str) else ("outputs", name, "value")
            yield Diagnostic(
                position_in_value(doc, path, output.value, use[0]),
                f"output `{name}` is built from a secret ({use[1]}): it is recorded and "
                "exported masked (***), never in clear",
                "secret",
                "warning",
            )


def _step(doc: Document, step: Step, secrets: _Secrets) -> Iterator[Diagnostic]:

    text = step.run or ""
    lines = text.split("\n")
    writes = list(_writes(lines))
    if not writes:
        return
    env = secrets.step_env(step.env)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    path: Path = ("steps", step.index, "run")
    for _, (target, block) in writes:
        for number in block:
            use = secrets.used(lines[number], env)
            if use:
                break
        else:
            continue
        if target == "octopus":
            message = (
                f"an Octopus output variable is set from a secret ({use[1]}) without "
                "`-sensitive`: it is stored and logged masked (***) all the same, and a resumed "
                "run cannot pass it on; add `-sensitive` to say that it is secret"
            )
        elif target.endswith("_OUTPUT"):
            message = (
                f"a step output is written from a secret ({use[1]}): it is stored and logged "
                "masked (***), and a resumed run cannot pass it on; pass the secret to the "
                "steps that need it through their `env:`"
            )
        else:
            message = (
                f"an environment variable for the later steps is set from a secret ({use[1]}): "
                "it is stored masked (***), and a resumed run cannot run the steps after it; "
                "pass the secret to the steps that need it through their `env:`"
            )
        yield Diagnostic(
            position_in_value(doc, path, text, offsets[number] + use[0]),
            message,
            "secret",
            "warning",
        )


def _writes(lines: list[str]) -> Iterator[tuple[int, tuple[str, range]]]:
    """For each line that writes to a file-command file: its index, the file, and the lines
    whose text is written (itself; a heredoc's body; a ``{ ... }`` group's lines)."""
    for number, line in enumerate(lines):
        if _SET_OCTOPUS.match(line):
            if "-sensitive" not in line:
                yield number, ("octopus", range(number, number + 1))
            continue
        match = _FILE.search(line)
        if match is None:
            continue
        block = range(number, number + 1)
        heredoc = _HEREDOC.search(line)
        if heredoc:
            end = next(
                (i for i in range(number + 1, len(lines)) if lines[i].strip() == heredoc.group(2)),
                len(lines),
            )
            block = range(number, end)
        elif _GROUP_END.match(line):
            start = next(
                (i for i in range(number - 1, -1, -1) if lines[i].lstrip().startswith("{")), number
            )
            block = range(start, number + 1)
        yield number, (match.group(1), block)
