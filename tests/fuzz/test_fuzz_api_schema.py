"""Fuzzing the approval server's API with schemathesis, against its own OpenAPI document
(``/api/v1/openapi.json``): every operation gets generated parameters and bodies (valid and
invalid ones), sent with a runner, an approver, an admin token or none. No answer is a 5xx, and
documented answers match their schema.

The server (in-process, ASGI, SQLite) and its seed records are ``test_fuzz_api.py``'s. Skipped
where schemathesis is not installed.
"""

from __future__ import annotations

import contextlib
import os

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import settings  # noqa: E402
from schemathesis.checks import not_a_server_error, response_schema_conformance  # noqa: E402
from test_fuzz_api import APP, KNOWN, TOKENS  # noqa: E402

FUZZ = settings.get_profile("runner-fuzz-api")

#: admin tokens may do what both others may; the short run leaves them out
WHO = ["runner", "alice", "none"] + (["admin"] if os.environ.get("RUNNER_FUZZ") == "long" else [])

schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)


@pytest.mark.parametrize("who", WHO)
@schema.parametrize()
@FUZZ
def test_no_operation_answers_5xx(case: schemathesis.Case, who: str) -> None:
    headers = dict(case.headers or {})
    if who != "none":
        headers["authorization"] = f"Bearer {TOKENS[who]}"
    case.headers = headers
    # half the time, aim at records that exist, so that the deeper code runs too
    for name, value in list((case.path_parameters or {}).items()):
        if name in KNOWN and len(str(value)) % 2 == 0:
            case.path_parameters[name] = KNOWN[name]
    if case.query and "wait" in case.query:
        with contextlib.suppress(TypeError, ValueError):
            case.query["wait"] = min(float(case.query["wait"]), 0.05)
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
