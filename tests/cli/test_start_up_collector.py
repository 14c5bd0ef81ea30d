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


def _probe(tmp_path: Path, program: str = PROBE) -> dict[str, object]:
    """What ``program``, run in a Python process of its own, printed last (a JSON object)."""
    done = subprocess.run(
        [sys.executable, "-c", program],
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


# a command that imports more once its options are read (`runner server`'s stack)
MORE = """
import gc, json
from runner.gc_pause import end_start_up, more_start_up, start_up
start_up()
end_start_up()
before = gc.get_freeze_count()
paused = []
with more_start_up():
    paused.append(gc.isenabled())
    import sqlalchemy
added = gc.get_freeze_count() - before
print(json.dumps({"paused": paused[0], "enabled": gc.isenabled(), "added": added}))
"""


def test_a_command_that_imports_more_pauses_the_collector_again(tmp_path: Path) -> None:
    seen = _probe(tmp_path, MORE)
    assert seen["paused"] is False and seen["enabled"] is True
    assert seen["added"] > 10_000  # SQLAlchemy's classes and functions


def test_more_start_up_changes_nothing_in_a_test_calling_main() -> None:
    import gc

    from runner.gc_pause import more_start_up

    frozen = gc.get_freeze_count()
    with more_start_up():
        assert gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() <= frozen
