"""What a step sees of the run so far is grown step by step, and is always exactly what building
it again from the whole record gives (same values, same contexts, same order)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from helpers.run_helpers import Workspace

from runner.engine.run import Run
from runner.evaluation.contexts import ContextBuilder

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
    original = ContextBuilder._finished

    def checked(self: ContextBuilder, rec: Any) -> None:
        original(self, rec)
        grown = self._built
        if grown is not None:
            grown_used.append(1)
            built = self._build()
            assert list(grown.values.items()) == list(built.values.items())
            assert grown.contexts == built.contexts
            for name in ("vars", "steps"):
                assert list(grown.contexts[name]) == list(built.contexts[name])  # type: ignore[call-overload]
            assert (grown.error, grown.finished, grown.last) == (
                built.error,
                built.finished,
                built.last,
            )

    monkeypatch.setattr(ContextBuilder, "_finished", checked)
    outcome = workspace.run(WORKFLOW)
    assert outcome.code == 1, outcome.err
    assert len(grown_used) >= 4  # the run went forward step by step
    assert "seen=yes blue eu-west" in outcome.out
    assert "Step 'Fails' failed failure" in outcome.out


SLEEPS = {0: 0.1, 2: 0.6, 3: 0.6, 4: 0.6, 5: 0.6, 6: 0.6, 7: 0.6, 8: 0.3}


def test_a_step_finishing_while_another_reads_the_run_keeps_the_workflows_order(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten steps side by side (two more than run at once): s8 starts when s1 ends, s9 when s0
    ends (out of order: the run is read again from the record), and s9 reads it while s8
    finishes, between the statuses it keys on and the states it builds from."""
    steps = "".join(
        f"""
  - id: s{i}
    name: S{i}
    {"start: with-previous" if i else ""}
    run: sleep {SLEEPS.get(i, 0)}; echo "x={i}" >> "$RUNNER_OUTPUT"
"""
        for i in range(10)
    )
    workflow = (
        "name: side by side\nsteps:"
        + steps
        + """
  - id: d
    name: D
    run: echo "STEPS=${{ join(steps.*.outputs.x, ',') }}"
"""
    )
    running = threading.local()
    run_step, states = Run._run_step, ContextBuilder.states

    def noting(self: Run, step: Any, *more: Any) -> None:
        running.step = step.id
        run_step(self, step, *more)

    def late(self: ContextBuilder) -> Any:
        if getattr(running, "step", None) == "s9" and not getattr(running, "waited", False):
            running.waited = True
            deadline = time.monotonic() + 10
            while self.record.step("s8").status != "success" and time.monotonic() < deadline:
                time.sleep(0.01)
        return states(self)

    monkeypatch.setattr(Run, "_run_step", noting)
    monkeypatch.setattr(ContextBuilder, "states", late)
    outcome = workspace.run(workflow)
    assert outcome.code == 0, outcome.err
    assert "STEPS=0,1,2,3,4,5,6,7,8,9" in outcome.out
