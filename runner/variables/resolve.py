"""Which value each variable has in an environment, Octopus-style, and where it came from.

Octopus picks, for each variable, the value whose scope is most specific for the deployment: a
value scoped to the environment beats an unscoped one. Pure: the process environment is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping

from msgspec import Struct, field

from runner.model import ScopedValue, Variable

SECRET_MASK = "***"


class Resolved(Struct, frozen=True):
    """One variable's value for an environment."""

    name: str
    value: str | None  # None: read from an environment variable that is not set
    secret: bool
    origin: str  # "scoped to production", "from $DB_PASSWORD", "default"
    missing_env: str | None = None

    def shown(self) -> str:
        if self.value is None:
            return f"(${self.missing_env} is not set)"
        return SECRET_MASK if self.secret else self.value


class VariableSet(Struct, frozen=True):
    """The variables of a run, in the workflow's order, with secret names known."""

    items: tuple[Resolved, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)

    def values(self) -> dict[str, str]:
        """Name to value for substitution; unset ones are left out, so Octostache echoes them."""
        result = {r.name: r.value for r in self.items if r.value is not None}
        result.update(self.extra)
        return result

    def secrets(self) -> list[str]:
        return [r.value for r in self.items if r.secret and r.value]


def select(variable: Variable, environment: str) -> ScopedValue | None:
    """The value that applies in ``environment``: scoped beats unscoped; the first of equals."""
    scoped = [v for v in variable.values if environment in v.environments]
    if scoped:
        return scoped[0]
    unscoped = [v for v in variable.values if not v.environments]
    return unscoped[0] if unscoped else None


def resolve(
    variables: Mapping[str, Variable], environment: str, environ: Mapping[str, str]
) -> VariableSet:
    """Every variable that has a value in ``environment``."""
    items: list[Resolved] = []
    for variable in variables.values():
        chosen = select(variable, environment)
        if chosen is None:
            continue
        origin = f"scoped to {environment}" if chosen.environments else "unscoped"
        if chosen.from_env is not None:
            value = environ.get(chosen.from_env)
            items.append(
                Resolved(
                    variable.name,
                    value,
                    chosen.secret,
                    f"from ${chosen.from_env}, {origin}",
                    None if value is not None else chosen.from_env,
                )
            )
        else:
            items.append(Resolved(variable.name, chosen.value, chosen.secret, origin))
    return VariableSet(tuple(items))
