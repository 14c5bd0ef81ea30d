"""The output variables a manual step sets, for the step itself, a resumed run and the plan."""

from __future__ import annotations

from collections.abc import Mapping

from runner.model import Identity


def manual_outputs(
    approved: bool, notes: str, person: Identity, fields: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """A manual step's outputs: ``steps.<id>.outputs`` and Octopus's ``Output.Manual.*`` (their
    names are ``runner.model.MANUAL_OUTPUTS`` and ``MANUAL_OCTOPUS_OUTPUTS``, which ``runner
    validate`` checks references against, and one per field)."""
    outputs = {
        "approved": "true" if approved else "false",
        "notes": notes,
        "responsible-user-id": person.id,
        "responsible-user-username": person.username,
        "responsible-user-display-name": person.display_name,
        "responsible-user-email": person.email,
        **fields,
    }
    octopus = {
        "Manual.Notes": notes,
        "Manual.Approved": "True" if approved else "False",
        "Manual.ResponsibleUser.Id": person.id,
        "Manual.ResponsibleUser.Username": person.username,
        "Manual.ResponsibleUser.DisplayName": person.display_name,
        "Manual.ResponsibleUser.EmailAddress": person.email,
        **{f"Manual.{name}": value for name, value in fields.items()},
    }
    return outputs, octopus
