"""Records written by earlier runners still load, and save back byte for byte.

The files under ``tests/data/records`` are real ``record.json`` files written by the runner before
the record's fields became typed (a signed-file approval, a prompt's, an abort, a quorum, timeouts
with and without refusals, a detached wait, a policy verdict with break-glass, a plain failure):
a resume reads them, the approval server mirrors them, and tampering checks compare their bytes,
so typing the fields must not change a single one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runner.approvals.state import (
    ApprovalState,
    GateState,
    GuidedDecision,
    GuidedOutcome,
    GuidedState,
    RecordShapeError,
    recorded_decisions,
)
from runner.engine.record import RecordStore, RunRecord

RECORDS = Path(__file__).parent.parent / "data" / "records"
FILES = sorted(RECORDS.glob("*.json"))


def test_there_are_fixtures() -> None:
    assert len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_an_old_record_round_trips_byte_for_byte(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert RunRecord.from_json(text).to_json() == text


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_an_old_record_saved_by_the_store_is_the_same_file(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    store = RecordStore(tmp_path)
    record = RunRecord.from_json(data.decode("utf-8"))
    store.save(record)
    assert store.path(record.run_id).read_bytes() == data
    again = store.load(record.run_id)
    store.save(again, durable=True)
    assert store.path(record.run_id).read_bytes() == data


def test_approvals_load_as_their_types() -> None:
    record = RunRecord.from_json((RECORDS / "approved-signed-file.json").read_text("utf-8"))
    approval = record.step("gate").approval
    assert isinstance(approval, ApprovalState)
    assert approval.state is GateState.APPROVED and approval.passed
    assert approval.interruption is not None and approval.interruption.teams == ("trading-desk",)
    assert approval.decisions is not None
    assert [(d.result, d.username, d.source) for d in approval.decisions] == [
        ("proceed", "alice", "file")
    ]
    assert approval.submissions[0].evidence["principal"] == "alice@example.com"
    waiting = RunRecord.from_json((RECORDS / "waiting.json").read_text("utf-8"))
    state = waiting.step("gate").approval
    assert state is not None and state.state is GateState.WAITING
    assert (state.decided_at, state.decisions, state.unread_sources) == (None, None, None)


def test_the_keys_only_some_waits_set_round_trip() -> None:
    """``unread_sources`` (a timeout while a source could not be read) and a wait cancelled
    before any decision (``decided_at`` without ``decisions``) are written by the runner but
    by none of the runs above."""
    text = (RECORDS / "timed-out-refused.json").read_text("utf-8")
    unread = text.replace('"decisions": []}', '"decisions": [], "unread_sources": {"file": "x"}}')
    cancelled = text.replace('"state": "timed-out"', '"state": "cancelled"').replace(
        ', "decisions": []}', "}"
    )
    for changed in (unread, cancelled):
        assert changed != text
        assert RunRecord.from_json(changed).to_json() == changed
    assert RunRecord.from_json(unread).step("gate").approval.unread_sources == {"file": "x"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        ('["x"]', "the `approval` of its record's step `gate` is not an object"),
        ('{"state": "won"}', "has an unknown state 'won'"),
        ('{"state": "approved", "decisions": 5}', "has `decisions` that is not a list"),
        (
            '{"state": "approved", "decisions": [{"evidence": [1]}]}',
            "has a decision whose `evidence` is not of its type",
        ),
        ('{"state": "waiting", "submissions": [{"source": "file"}]}', "a submission that is not"),
    ],
)
def test_an_approval_of_the_wrong_shape_is_refused(approval: str, message: str) -> None:
    text = (RECORDS / "waiting.json").read_text("utf-8")
    start = text.index('"approval": {"interruption"')
    end = text.index(', "error": null}', start)
    changed = text[:start] + f'"approval": {approval}' + text[end:]
    with pytest.raises(RecordShapeError, match=re.escape(message)):
        RunRecord.from_json(changed)


def test_the_servers_run_page_reads_decisions_of_any_record_it_was_sent() -> None:
    data = json.loads((RECORDS / "quorum.json").read_text("utf-8"))
    gate = next(s for s in data["steps"] if s["approval"])
    decisions = recorded_decisions(gate["approval"])
    assert [d.result for d in decisions] == ["proceed", "proceed"]
    assert decisions[0].display_name
    # the server keeps what a runner sent: decisions without the rest of the state still show
    assert [d.who for d in recorded_decisions({"decisions": [{"display_name": "A"}]})] == ["A"]
    for junk in (None, ["x"], {"state": "approved", "decisions": 5}, {"decisions": [{"notes": 1}]}):
        assert recorded_decisions(junk) == ()


def test_guided_failure_loads_as_its_types() -> None:
    record = RunRecord.from_json((RECORDS / "guided-retry-then-skip.json").read_text("utf-8"))
    guided = record.step("migrate").guided
    assert isinstance(guided, GuidedState) and guided.waiting is None
    assert [(d.attempt, d.choice, d.state, d.source) for d in guided.decisions] == [
        (1, "retry", GuidedOutcome.DECIDED, "file"),
        (2, "skip", GuidedOutcome.DECIDED, "file"),
    ]
    assert guided.skipped and guided.last is not None and guided.last.who == "Alice Martin"
    exhausted = RunRecord.from_json((RECORDS / "guided-exhausted.json").read_text("utf-8"))
    last = exhausted.step("flaky").guided.last  # type: ignore[union-attr]
    assert last is not None and last.state is GuidedOutcome.EXHAUSTED and last.choice == "fail"
    waiting = RunRecord.from_json((RECORDS / "guided-waiting.json").read_text("utf-8"))
    open_question = waiting.step("flaky").guided.waiting  # type: ignore[union-attr]
    assert open_question is not None and open_question.state is GateState.WAITING
    assert open_question.interruption is not None and open_question.interruption.attempt == 1


def test_a_timeouts_unread_sources_keep_their_place() -> None:
    """Written by the runner before the record was typed: ``unread_sources`` before ``notes``."""
    written = (
        '{"attempt": 1, "interruption": "r--s@attempt-1", "failure": {}, "state": "timed-out", '
        '"choice": "fail", "decided_at": "t", "submissions": [], "refused": [], '
        '"unread_sources": {"file": "no route"}, "notes": "timed out, nobody decided"}'
    )
    decision = GuidedDecision.from_json(json.loads(written))
    assert decision.unread_sources == {"file": "no route"}
    assert json.dumps(decision.to_json()) == written


@pytest.mark.parametrize(
    ("guided", "message"),
    [
        ("[]", "the `guided` of its record's step `flaky` is not an object"),
        ('{"decisions": 5}', "has `decisions` that is not a list"),
        ('{"decisions": [{"attempt": "1", "state": "decided"}]}', "`attempt` is not a number"),
        ('{"decisions": [{"attempt": true, "state": "decided"}]}', "`attempt` is not a number"),
        ('{"decisions": [{"attempt": 1, "state": "won"}]}', "in an unknown state 'won'"),
        (
            '{"decisions": [{"attempt": 1, "state": "decided", "choice": "Skip"}]}',
            "has a decision with an unknown choice 'Skip'",
        ),
        (
            '{"decisions": [{"attempt": 1, "state": "decided", "evidence": []}]}',
            "has a decision whose `evidence` is not of its type",
        ),
        ('{"decisions": [], "waiting": {"state": "won"}}', "has an open question that has an"),
    ],
)
def test_a_guided_record_of_the_wrong_shape_is_refused(guided: str, message: str) -> None:
    text = (RECORDS / "guided-waiting.json").read_text("utf-8")
    start = text.index('"guided": {"decisions"')
    end = text.rindex("}}", start)
    changed = text[:start] + f'"guided": {guided}' + text[end + 1 :]
    with pytest.raises(RecordShapeError, match=re.escape(message)):
        RunRecord.from_json(changed)
