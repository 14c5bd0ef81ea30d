"""Records written by earlier runners still load, and save back byte for byte.

The files under ``tests/data/records`` are real ``record.json`` files written by the runner before
the record's fields became typed (a signed-file approval, a prompt's, an abort, a quorum, timeouts
with and without refusals, a detached wait, a policy verdict with break-glass, a plain failure):
a resume reads them, the approval server mirrors them, and tampering checks compare their bytes,
so typing the fields must not change a single one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
