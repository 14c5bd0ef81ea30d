"""docs/security.md states how many attack cases the suite tries: the figure is the suite's."""

from __future__ import annotations

import re
import subprocess
import sys

from support import ROOT

SECURITY = ROOT / "docs" / "security.md"
_STATED = re.compile(r"tried \*\*(\d[\d,]*)\*\* cases in \*\*(\d+)\*\* files, all refused")


def test_security_md_states_the_attack_suites_count() -> None:
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    collected = subprocess.run(
        [*argv, "-W", "ignore", "tests/attacks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    per_file = {
        path: int(count)
        for path, count in re.findall(r"^(tests/attacks/\S+\.py): (\d+)$", collected.stdout, re.M)
    }
    assert per_file, collected.stdout
    stated = _STATED.search(SECURITY.read_text(encoding="utf-8"))
    assert stated is not None, "docs/security.md must say: tried **N** cases in **M** files"
    cases, files = int(stated.group(1).replace(",", "")), int(stated.group(2))
    assert (cases, files) == (sum(per_file.values()), len(per_file)), (
        f"update docs/security.md: the suite has {sum(per_file.values())} cases in "
        f"{len(per_file)} files"
    )
