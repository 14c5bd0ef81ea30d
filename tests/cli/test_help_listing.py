"""`runner --help` lists the commands from ``SUMMARIES`` without importing them."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from runner.cli.main import COMMANDS, SUMMARIES


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_summary_is_the_commands_own_first_paragraph(name: str) -> None:
    module, attribute = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(module), attribute)
    assert command.short_help is None
    first = " ".join((command.help or "").partition("\n\n")[0].split())
    assert SUMMARIES[name] == first


def test_help_lists_every_command_without_importing_one() -> None:
    script = (
        "import sys\n"
        "from runner.cli.main import main\n"
        "code = main(['--help'])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('runner.cli.') and m not in "
        "('runner.cli.main', 'runner.cli.options'))\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "LOADED []" in done.stdout, done.stdout
    listing = done.stdout.split("Commands:\n", 1)[1]
    assert [line.split()[0] for line in listing.splitlines() if line.startswith("  ")] == sorted(
        COMMANDS
    )
