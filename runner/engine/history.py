"""The state folder and the runs recorded in it, for commands that only read them (``plan``,
``runs``, ``policy``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from runner.engine.record import RecordStore
from runner.workspace import state_folder, workspace_here


def state_dir(
    option: str | None, environ: Mapping[str, str], workspace: Path | None = None
) -> Path:
    """The state folder, absolute (see :func:`runner.workspace.state_folder`); ``workspace`` is
    the workflow's root, else the current folder's."""

    return state_folder(option, environ, workspace or workspace_here())


def run_history(state_dir: Path) -> RunHistory:
    """What the promotion rule checks: each recorded run's environment, status, digest, commit."""
    return RunHistory(state_dir)


class RunHistory:
    """The runs recorded in a state folder, read when first iterated: only a policy's promotion
    rule looks at them, and reading every record of a long-used state folder at each ``plan``
    would cost more than the plan."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._runs: list[dict[str, Any]] | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._runs is None:
            self._runs = [
                {
                    "run_id": r.run_id,
                    "environment": r.environment,
                    "status": r.status,
                    "digest": r.digest,
                    "commit": r.commit,
                }
                for r in RecordStore(self.state_dir).list()
            ]
        return iter(self._runs)
