"""The record's seal: an HMAC of its exact text, as its last field (``runner.engine.seal``)."""

from __future__ import annotations

import json

import pytest

from runner.engine.record import RunRecord, StepRecord
from runner.engine.seal import SealError, is_sealed, record_key, seal, unseal
from runner.errors import UsageError

KEY = b"k" * 32


def text() -> str:
    record = RunRecord("r1", "deploy.yml", "Deploy", "d" * 64, "production")
    record.steps = [StepRecord("a", "A", status="success", outputs={"x": "1"})]
    return record.to_json()


def test_a_sealed_record_is_still_a_record_and_unseals_to_its_text() -> None:
    sealed = seal(text().encode(), KEY).decode()
    assert is_sealed(sealed)
    assert RunRecord.from_json(sealed).run_id == "r1"  # readers without the key still read it
    assert json.loads(sealed)["seal"].startswith("hmac-sha256:")
    assert unseal(sealed, KEY) == text()


def test_every_byte_changed_is_refused() -> None:
    sealed = seal(text().encode(), KEY).decode()
    body = sealed.index(',\n "seal"')
    for index in range(0, body, 7):
        changed = sealed[:index] + chr(ord(sealed[index]) ^ 1) + sealed[index + 1 :]
        with pytest.raises(SealError):
            unseal(changed, KEY)


def test_another_key_or_no_seal_is_refused() -> None:
    sealed = seal(text().encode(), KEY).decode()
    with pytest.raises(SealError, match="does not verify"):
        unseal(sealed, b"o" * 32)
    with pytest.raises(SealError, match="no seal"):
        unseal(text(), KEY)


def test_the_key_comes_from_the_environment_and_must_be_long() -> None:
    assert record_key({}) is None
    assert record_key({"RUNNER_RECORD_KEY": ""}) is None
    assert record_key({"RUNNER_RECORD_KEY": "x" * 32}) == b"x" * 32
    with pytest.raises(UsageError, match="at least 32"):
        record_key({"RUNNER_RECORD_KEY": "short"})
