"""docs/security.md states how many attack cases the suite tries: the figure is the suite's."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import collected
from helpers.paths import ROOT

SECURITY = ROOT / "docs" / "security.md"
ATTACKS = ROOT / "tests" / "attacks"
_STATED = re.compile(r"tried \*\*(\d[\d,]*)\*\* cases in \*\*(\d+)\*\* files, all refused")


def attack_cases(config: pytest.Config) -> dict[str, int]:
    """Cases per file of tests/attacks: this session's count when it collected the folder whole
    (the full suite), else a collection of its own in a subprocess (this test run alone)."""
    if collected.whole(config, ATTACKS):
        return collected.per_file(config, ATTACKS)
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    listing = subprocess.run(
        [*argv, "-W", "ignore", "tests/attacks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert listing.returncode == 0, listing.stdout + listing.stderr
    return {
        path: int(count)
        for path, count in re.findall(r"^(tests/attacks/\S+\.py): (\d+)$", listing.stdout, re.M)
    }


def test_security_md_states_the_attack_suites_count(request: pytest.FixtureRequest) -> None:
    per_file = attack_cases(request.config)
    assert per_file, "no attack case collected"
    stated = _STATED.search(SECURITY.read_text(encoding="utf-8"))
    assert stated is not None, "docs/security.md must say: tried **N** cases in **M** files"
    cases, files = int(stated.group(1).replace(",", "")), int(stated.group(2))
    assert (cases, files) == (sum(per_file.values()), len(per_file)), (
        f"update docs/security.md: the suite has {sum(per_file.values())} cases in "
        f"{len(per_file)} files"
    )
