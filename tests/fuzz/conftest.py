"""The fuzzing budget, read once from ``RUNNER_FUZZ``.

* unset (CI, the default): a short, deterministic run: every property draws the same examples on
  every run (``derandomize``), so CI never fails on a new random draw, and the whole folder takes
  well under a minute;
* ``RUNNER_FUZZ=long`` (``scripts/fuzz-long``): thousands of fresh random examples per property,
  with hypothesis's example database on, so a failure found once is replayed first next time.

Properties use the profiles registered here by name (a test module cannot import this conftest):
``settings.get_profile("runner-fuzz")`` for cheap targets, ``"runner-fuzz-slow"`` for targets
that cost milliseconds per example (the whole loader, the API), ``"runner-fuzz-api"`` for each
(operation, token) pair schemathesis generates for. This file never *loads* a
profile, so it changes nothing for the hypothesis tests of other folders.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

LONG = os.environ.get("RUNNER_FUZZ", "").strip().lower() == "long"

#: examples per property: (cheap, slow, per API operation and token). The short run draws the
#: same examples every time, so it guards regressions; finding new bugs is the long run's job.
#: Halved from (200, 50, 15): the suite still covers every line it did (coverage.py, with the
#: filter and calc edge cases the larger draw reached pinned in tests/variables).
BUDGET = (5000, 1000, 300) if LONG else (100, 25, 8)

_COMMON = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    "derandomize": not LONG,
    "database": None if not LONG else settings.default.database,
    "print_blob": True,
}

settings.register_profile("runner-fuzz", max_examples=BUDGET[0], **_COMMON)
settings.register_profile("runner-fuzz-slow", max_examples=BUDGET[1], **_COMMON)
settings.register_profile("runner-fuzz-api", max_examples=BUDGET[2], **_COMMON)


def pytest_report_header() -> str:
    mode = "long" if LONG else "short"
    return (
        f"fuzz budget: {mode} ({BUDGET[0]} examples per property, {BUDGET[1]} for slow ones, "
        f"{BUDGET[2]} per API operation and token)"
    )
