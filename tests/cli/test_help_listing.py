"""`runner --help`: click's text, printed without click when the terminal is wide enough, and the
commands listed from ``SUMMARIES`` without importing them."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from runner.cli.help_text import HELP
from runner.cli.main import COMMANDS, SUMMARIES


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_summary_is_the_commands_own_first_paragraph(name: str) -> None:
    module, attribute = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(module), attribute)
    assert command.short_help is None
    first = " ".join((command.help or "").partition("\n\n")[0].split())
    assert SUMMARIES[name] == first


def click_help(columns: int) -> str:
    """What click itself prints for ``runner --help`` on a terminal this wide."""
    script = (
        "from runner.cli.main import get_cli\n"
        "get_cli().main(['--help'], prog_name='runner', standalone_mode=False)\n"
    )
    env = {**os.environ, "COLUMNS": str(columns)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout


def run_help(columns: int, flag: str = "--help") -> subprocess.CompletedProcess[str]:
    script = (
        "import sys\n"
        "from runner.cli.main import main\n"
        f"code = main([{flag!r}])\n"
        "print('CLICK', 'click' in sys.modules, code)\n"
    )
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )


def test_the_stored_help_is_exactly_what_click_prints() -> None:
    # when this fails, paste click_help(80) into runner/cli/help_text.py
    assert click_help(80) == HELP
    assert click_help(200) == HELP  # click wraps to 80 columns at most


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_on_a_wide_terminal_is_printed_without_click(flag: str) -> None:
    done = run_help(120, flag)
    assert done.stdout == HELP + "CLICK False 0\n"


def test_help_on_a_narrow_terminal_is_clicks_own() -> None:
    done = run_help(60)
    assert done.stdout == click_help(60) + "CLICK True 0\n"
    assert done.stdout != HELP + "CLICK True 0\n"


def test_help_lists_every_command_without_importing_one() -> None:
    script = (
        "import sys\n"
        "from runner.cli.main import main\n"
        "code = main(['--help'])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('runner.cli.') and m not in "
        "('runner.cli.main', 'runner.cli.options'))\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run(  # a narrow terminal: click's listing, not the stored text
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "60"},
    )
    assert "LOADED []" in done.stdout, done.stdout
    listing = done.stdout.split("Commands:\n", 1)[1]
    assert [line.split()[0] for line in listing.splitlines() if line.startswith("  ")] == sorted(
        COMMANDS
    )


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["--help", "--help"]])
def test_a_reader_gone_before_the_text_is_a_quiet_exit_1_as_in_click(args: list[str]) -> None:
    script = "import sys\nfrom runner.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written
    error = process.stderr.read()
    assert process.wait(timeout=60) == 1
    assert error == b""
