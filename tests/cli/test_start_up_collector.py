"""The cyclic collector is paused over a command's imports, and on again for the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers.environ import host_env

# ``main()`` as the console script calls it, without arguments: this process's own command line
PROBE = """
import gc, json, sys
sys.argv = ["runner", "expr", "1 == 1"]
from runner.cli.main import main
code = main()
print(json.dumps({"code": code, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


def _probe(tmp_path: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,
        env=host_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_modules_a_command_imported_are_frozen_and_the_collector_is_on_again(
    tmp_path: Path,
) -> None:
    seen = _probe(tmp_path)
    assert seen["code"] == 0
    assert seen["enabled"] is True
    # click, the command's modules and their dependencies: tens of thousands of objects
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000


def test_a_test_calling_main_keeps_its_collector_as_it_was() -> None:
    import gc

    from runner.cli.main import main

    frozen = gc.get_freeze_count()
    assert main(["expr", "1 == 1"]) == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() <= frozen  # frozen objects may die, none were added
