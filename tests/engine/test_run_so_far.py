"""What a step sees of the run so far is grown step by step, and is always exactly what building
it again from the whole record gives (same values, same contexts, same order)."""

from __future__ import annotations

from typing import Any

import pytest
from run_helpers import Workspace

from runner.engine.run import Run

WORKFLOW = """
name: so far
variables:
  Region: eu-west
  Token:
    value: "so-far-secret-4d1c"
    secret: true
steps:
  - id: first
    name: First
    run: |
      echo "ok=yes" >> "$RUNNER_OUTPUT"
      set_octopusvariable "Colour" "blue"
  - id: skipped
    name: Skipped
    if: "false"
    run: echo never
  - id: secret
    name: Secret output
    run: |
      set_octopusvariable "Key" "so-far-key-9a2e" -sensitive
      echo "n=1" >> "$RUNNER_OUTPUT"
  - id: left
    name: Left
    run: echo "side=left" >> "$RUNNER_OUTPUT"
  - id: right
    name: Right
    start: with-previous
    run: echo "side=right" >> "$RUNNER_OUTPUT"
  - id: tolerated
    name: Tolerated
    continue-on-error: true
    run: exit 3
  - id: reads
    name: Reads
    env:
      SEEN: "${{ steps.first.outputs.ok }} #{Octopus.Action[First].Output.Colour} #{Region}"
    run: echo "seen=$SEEN"
  - id: fails
    name: Fails
    run: exit 1
  - id: after
    name: After
    if: always()
    run: echo "#{Octopus.Deployment.Error} ${{ steps.tolerated.outcome }}"
"""


def test_every_step_sees_what_a_full_build_would_show(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    grown_used: list[int] = []
    original = Run._grown

    def checked(self: Run, kept: Any, key: Any) -> Any:
        grown = original(self, kept, key)
        if grown is not None:
            grown_used.append(1)
            values, contexts = self._rebuilt(key[2])
            assert list(grown[0].items()) == list(values.items())
            assert grown[1] == contexts
            for name in ("vars", "steps"):
                assert list(grown[1][name]) == list(contexts[name])  # type: ignore[call-overload]
        return grown

    monkeypatch.setattr(Run, "_grown", checked)
    outcome = workspace.run(WORKFLOW)
    assert outcome.code == 1, outcome.err
    assert len(grown_used) >= 4  # the run went forward step by step
    assert "seen=yes blue eu-west" in outcome.out
    assert "Step 'Fails' failed failure" in outcome.out
