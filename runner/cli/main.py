"""The ``runner`` command group and its one error boundary.

Subcommands are imported only when invoked (or listed by ``--help``), and each command module keeps
its heavy imports inside functions, so ``runner --version`` starts in tens of milliseconds.
"""

from __future__ import annotations

import os
import sys

from runner import __version__
from runner.characters import encodable
from runner.gc_pause import end_start_up, start_up

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any

    import click

    from runner.errors import RunnerError

# Nothing heavier than ``os`` and ``sys`` at import time: the console script imports this module
# before anything else, and ``runner --version`` is answered without importing click at all
# (click alone costs about as much as the interpreter's start-up). The command group is built on
# first use.

COMMANDS = {
    "validate": "runner.cli.validate:validate",
    "plan": "runner.cli.plan:plan",
    "expr": "runner.cli.expr:expr",
    "run": "runner.cli.run:run",
    "approval": "runner.cli.approval:approval",
    "resume": "runner.cli.resume:resume",
    "runs": "runner.cli.runs:runs",
    "server": "runner.cli.server:server",
    "policy": "runner.cli.policy:policy",
}

#: the first paragraph of each command's help, for the listing in ``runner --help`` (which
#: would otherwise import every command module: half its time); a test keeps them equal
SUMMARIES = {
    "validate": "Check workflow files: exit 0 when clean, 1 when there are problems, 2 on bad "
    "usage.",
    "plan": "Show what a run would do in an environment, step by step, without running anything.",
    "expr": "Evaluate a GitHub-style expression and print its value as JSON (exit 1 on error).",
    "run": "Run a deployment in an environment. Exit codes are listed in `runner --help`.",
    "approval": "Approve manual steps with signed files (and, with a server, from the terminal).",
    "resume": "Resume a run: ask the sources again and continue after its manual step.",
    "runs": "The history of runs in the state folder.",
    "server": "Serve the approval server (with no subcommand), or administer it.",
    "policy": "Environment policies: explain a decision, review break-glass overrides.",
}

#: what ``--version`` prints (click's ``version_option`` below prints the same)
VERSION_MESSAGE = f"runner {__version__}"

_cli: click.Group | None = None


class Interrupted(Exception):
    """A command ended by SIGINT or SIGTERM (``KeyboardInterrupt`` on its way out of click)."""


def _build_cli() -> click.Group:
    import click

    class LazyGroup(click.Group):
        """A group whose subcommands are ``module:attribute`` strings, imported on first use."""

        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted(COMMANDS)

        def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
            # click's own listing and shortening, from the summaries above
            names = self.list_commands(ctx)
            limit = formatter.width - 6 - max(len(name) for name in names)
            rows = [
                (name, click.Command(name, help=SUMMARIES[name]).get_short_help_str(limit))
                for name in names
            ]
            with formatter.section("Commands"):
                formatter.write_dl(rows)

        def invoke(self, ctx: click.Context) -> Any:
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt as exc:
                # past click, whose handling adds a blank line before ours (see ``main``)
                raise Interrupted from exc

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            target = COMMANDS.get(cmd_name)
            if target is None:
                return None
            import importlib

            module, attribute = target.split(":")
            try:
                command: click.Command = getattr(importlib.import_module(module), attribute)
            finally:
                end_start_up()
            return command

    @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(
        __version__, "--version", prog_name="runner", message="%(prog)s %(version)s"
    )
    def cli() -> None:
        """Run deployments whose manual intervention steps wait for an authorised person.

        Exit codes: 0 success, 1 a step failed, 2 invalid workflow or usage, 3 aborted at a manual
        step, 4 an approval timed out, 5 refused, 6 an approval source failed or was unreachable,
        70 internal error, 75 waiting for approval (detached), 130 interrupted.
        """

    assert isinstance(cli, click.Group)
    return cli


def get_cli() -> click.Group:
    """The ``runner`` command group (built once)."""
    global _cli
    if _cli is None:
        _cli = _build_cli()
    return _cli


def __getattr__(name: str) -> Any:
    # ``runner.cli.main.cli``, as before the group was built lazily
    if name == "cli":
        return get_cli()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def print_error(error: RunnerError) -> None:
    """Show a user-facing error: diagnostics with their source lines, else one line and a hint."""
    import click

    from runner.errors import WorkflowError

    if isinstance(error, WorkflowError):
        from runner.diagnostics import render_text

        click.echo(
            render_text(error.diagnostics, source_lines, color=_color(sys.stderr)),
            nl=False,
            err=True,
        )
        return
    message = f"{error.location}: {error.message}" if error.location else error.message
    click.echo(f"error: {message}", err=True)
    if error.hint:
        click.echo(f"hint: {error.hint}", err=True)


def source_lines(path: str) -> list[str]:
    try:
        # no more than a workflow may be (8 MiB): the file may be the link to /dev/zero whose
        # load was refused; read whole, it was a MemoryError
        with open(path, "rb") as handle:
            return handle.read(8 * 1024 * 1024).decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def _color(stream: Any) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def _crash_log() -> str:
    import tempfile
    import time
    import traceback

    folder = os.environ.get("RUNNER_STATE_DIR") or tempfile.gettempdir()
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        folder = tempfile.gettempdir()
    path = os.path.join(folder, f"runner-crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log")
    with open(path, "w", encoding="utf-8") as handle:
        traceback.print_exc(file=handle)
    return path


def _print(text: str) -> int:
    """Write ``text`` to stdout; exit 1 quietly, as click does, when the reader has gone, and
    with one line when the output cannot take it (a full disk: it was a traceback)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        # nothing more can be written, and the interpreter's own flush at exit must not fail too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if not isinstance(exc, BrokenPipeError):
            sys.stderr.write(f"error: cannot write to standard output: {exc.strerror or exc}\n")
        return 1
    return 0


def _terminal_columns() -> int:
    """The width click wraps help to, as ``shutil.get_terminal_size`` finds it (without shutil)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


#: options whose value is a file or folder name
PATH_OPTIONS = frozenset(
    ("--out", "--key", "--request", "--state-dir", "--workflow", "--people", "--file")
)


def _not_utf8(args: list[str], number: int) -> RunnerError:
    """Why argument ``number`` (1-based), which holds bytes that are not UTF-8, is refused. A
    file name is said to be one, shown, with what to do: "give inputs, notes and fields as
    UTF-8" told someone whose file name it was nothing (newcomer pass). Any other value is not
    shown: it may be a secret input's."""
    from runner.errors import RunnerError

    arg = args[number - 1]
    option, is_pair, value = arg.partition("=")
    named = option in PATH_OPTIONS and is_pair
    if named or (number > 1 and args[number - 2] in PATH_OPTIONS) or os.path.lexists(arg):
        path = value if named else arg
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return RunnerError(
            f"argument {number}: the file name {shown!r} is not UTF-8",
            hint="rename it (runs, logs and approvals keep file names as text), then pass the "
            "new name",
        )
    what = f" ({option.encode('utf-8', 'replace').decode()}=...)" if is_pair else ""
    return RunnerError(
        f"argument {number}{what} is not UTF-8 text",
        hint="give inputs, notes and fields as UTF-8 (the terminal's or CI's encoding)",
    )


def _warn_exposed(holders: list[tuple[int, str]]) -> None:
    """Say that the record key is in reach of the steps all the same: in the starting
    environment of a process that started the runner (the CI job's shell), which the runner
    cannot hide and any step of the same user can read."""
    for pid, name in holders:
        sys.stderr.write(
            f"warning: $RUNNER_RECORD_KEY is also in the environment of process {pid} ({name}), "
            "which started the runner: any step can read it there (/proc/PID/environ); start the "
            "runner with `exec runner ...` so that no shell holds the key\n"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn every outcome into a documented exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        # the common case of click's eager --version option, without importing click
        return _print(VERSION_MESSAGE + "\n")
    if args in (["--help"], ["-h"]) and _terminal_columns() >= 80:
        # the same, for the group's help: click's text at its widest (runner.cli.help_text)
        from runner.cli.help_text import HELP

        return _print(HELP)
    try:
        if argv is None:  # this process's own command line (not a test calling ``main``)
            start_up()
        import click

        from runner.errors import ExitCode, RunnerError

        if argv is None:
            _interrupt_on_signals()
            from runner.process import exposed_in_ancestors, hide_environment

            if hide_environment() and args[:1] in (["run"], ["resume"]):
                # only where steps run: `runs show` in a shell holding the key has none
                _warn_exposed(exposed_in_ancestors())
    except KeyboardInterrupt:
        return _interrupted_exit()
    undecodable = next((i for i, arg in enumerate(args, 1) if not encodable(arg)), None)
    if undecodable is not None:
        # Python reads such bytes as `\udcff`: no record, approval or log can hold them, and
        # writing the first one was an internal error. Its value is not shown: it may be a
        # secret input's
        print_error(_not_utf8(args, undecodable))
        return ExitCode.INVALID
    try:
        # relative paths, the workspace and the state folder are found from here
        os.getcwd()
    except OSError as exc:
        from runner.errors import UsageError

        print_error(
            UsageError(
                f"the current folder cannot be used: {exc.strerror or exc} (it was removed, or "
                "this user may not enter it)",
                hint="cd to the workspace (or any folder that exists), then run the command again",
            )
        )
        return ExitCode.INVALID
    try:
        result = get_cli().main(args=argv, prog_name="runner", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except Interrupted:
        return _interrupted_exit()
    except click.exceptions.Abort:
        # click's own handling of ^C or a closed stdin (it has ended the line already)
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return ExitCode.INVALID
    except RunnerError as exc:
        print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted_exit()
    except Exception as exc:
        log = _crash_log()
        click.echo(f"internal error: {type(exc).__name__}: {exc} (details in {log})", err=True)
        return ExitCode.INTERNAL
    return int(result or 0)


def _interrupted_exit() -> int:
    """One line, exit 130. On a terminal the line the ^C was typed on (maybe a question's)
    is ended first."""
    sys.stderr.write(("\n" if _is_terminal(sys.stderr) else "") + "interrupted\n")
    sys.stderr.flush()
    return 130


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signum)


def _interrupt_on_signals() -> None:
    """SIGTERM as SIGINT: both raise ``KeyboardInterrupt`` (with the signal's number), so that
    every command ends through the boundary above (exit 130, one line) instead of being killed
    where it stands; ``runner run`` and ``resume`` then record the run as cancelled. A signal
    the parent made us ignore (``cmd &`` in a script ignores SIGINT) stays ignored."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _interrupted)


def entry() -> None:
    try:
        code = main()
    except KeyboardInterrupt:  # a signal as ``main`` was returning
        code = _interrupted_exit()
    sys.exit(code)
