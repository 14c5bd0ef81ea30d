"""Script steps: the script goes to a file and runs through a shell template, with GitHub's file
commands (``RUNNER_OUTPUT`` = ``GITHUB_OUTPUT``, ...) and Octopus's ``set_octopusvariable``."""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import stat
import time
from collections.abc import Mapping
from pathlib import Path

from msgspec import Struct

from runner.bounded import read_file
from runner.errors import InputLimitError, StepError
from runner.process import run_process
from runner.steps import file_commands
from runner.steps.base import StepContext, StepResult
from runner.steps.scratch import AttemptFiles
from runner.steps.workflow_commands import (
    CommandProcessor,
    Refused,
)
from runner.steps.xtrace import traced_secrets
from runner.workspace import write_all

#: GitHub's shell templates (https://docs.github.com/actions/reference/workflow-syntax#jobsjob_idstepsshell)
SHELLS: dict[str, tuple[str, str]] = {
    "bash": ("bash --noprofile --norc -eo pipefail {0}", ".sh"),
    "sh": ("sh -e {0}", ".sh"),
    "python": ("python3 {0}", ".py"),
    "pwsh": ("pwsh -command \". '{0}'\"", ".ps1"),
}

#: the files a step writes to talk back, and the variables that name them (ours and GitHub's)
FILES = {
    "output": ("RUNNER_OUTPUT", "GITHUB_OUTPUT"),
    "env": ("RUNNER_ENV", "GITHUB_ENV"),
    "path": ("RUNNER_PATH", "GITHUB_PATH"),
    "summary": ("RUNNER_STEP_SUMMARY", "GITHUB_STEP_SUMMARY"),
    "octopus": (file_commands.OCTOPUS_VARIABLES_ENV,),
}


#: the most each of those files may hold: a step's record keeps what it wrote, and a record
#: past the 64 MiB the runner reads (``bounded.MAX_RECORD_FILE_BYTES``) could no longer be
#: resumed or shown; a 200 MB output made it so, after growing the runner past 1.4 GB
FILE_COMMAND_BYTES = 1024 * 1024


class Script(Struct, frozen=True):
    text: str
    shell: str | None
    working_directory: str | None
    timeout_minutes: float | None
    #: when the step this script is part of must end (``time.monotonic()``): a ``uses:`` step's
    #: ``timeout-minutes`` counts for all of its action's scripts together
    deadline: float | None = None


def shell_command(shell: str | None, script: str | Path) -> list[str]:
    """The argv that runs ``script`` with ``shell`` (a name or a template containing ``{0}``)."""
    name = shell or "bash"
    template = SHELLS[name][0] if name in SHELLS else name
    if "{0}" not in template:
        raise StepError(
            f"shell {name!r} is neither bash, sh, python or pwsh nor a template containing {{0}}"
        )
    argv = [part.replace("{0}", str(script)) for part in _split(template)]
    if name == "python" and _which("python3") is None and _which("python"):
        argv[0] = "python"
    if _which(argv[0]) is None and not os.path.isabs(argv[0]):
        raise StepError(f"shell {argv[0]!r} is not installed on this machine")
    return argv


#: what :func:`_which` found, by name and ``PATH``
_FOUND: dict[tuple[str, str | None], str] = {}


def _which(name: str) -> str | None:
    """``shutil.which``, its answer reused while the file it names is still there: searching
    ``PATH`` at each step cost more than the rest of building the command (the answer only says
    whether there is such a program, so one found earlier in ``PATH`` since changes nothing)."""
    key = (name, os.environ.get("PATH"))
    found = _FOUND.get(key)
    if found is not None and os.access(found, os.X_OK) and not os.path.isdir(found):
        return found
    found = shutil.which(name)
    if found is not None:
        _FOUND[key] = found
    return found


@functools.lru_cache(maxsize=64)
def _split(template: str) -> tuple[str, ...]:
    # shlex in pure Python cost a tenth of a millisecond a step; a run has few templates
    return tuple(shlex.split(template))


def run_script_step(ctx: StepContext) -> StepResult:
    """A ``run:`` step, re-run while it fails and its ``retry`` allows."""
    step = ctx.step
    script = Script(
        text=ctx.render_at("run", step.run or ""),
        shell=step.shell or ctx.workflow.default_shell,
        working_directory=step.working_directory or ctx.workflow.default_working_directory,
        timeout_minutes=step.timeout_minutes,
    )
    attempts = step.retry.attempts if step.retry else 1
    result = StepResult("failure")
    # a step started while the run is already cancelled (``always()``) runs to its end
    after_cancel = ctx.cancelled()
    for attempt in range(1, attempts + 1):
        result = run_script(ctx, script, attempt, after_cancel=after_cancel)
        result.attempts = attempt
        if result.outcome != "failure":
            break
        if attempt < attempts:
            delay = step.retry.delay_seconds if step.retry else 0.0
            ctx.log.line(step, f"attempt {attempt} of {attempts} failed; retrying in {delay:g}s")
            ctx.sleep(delay)
    return result


def run_script(
    ctx: StepContext, script: Script, attempt: int = 1, *, after_cancel: bool = False
) -> StepResult:
    """Run one script once and read back what it reported (``after_cancel``: see
    :func:`runner.process.run_process`)."""
    shell = script.shell or "bash"
    suffix = SHELLS.get(shell, ("", ".sh"))[1] if shell in SHELLS else ".sh"
    bash = shell in ("bash", None) or (shell not in SHELLS and "bash" in shell)
    path, files = _create_files(ctx, attempt, f"script{suffix}", script.text, bash=bash)
    try:
        return _run_created(ctx, script, path, files, after_cancel)
    finally:
        # the script holds the values substituted into it, secrets included, and the files may
        # hold secret values (a sensitive variable, an output made of a secret): like GitHub's,
        # they do not outlive the step
        if ctx.siblings is not None:
            ctx.siblings.remove(files["octopus"])
        _remove(path)
        for written in files.values():
            _remove(written)


def _run_created(
    ctx: StepContext, script: Script, path: str, files: dict[str, str], after_cancel: bool
) -> StepResult:
    shell = script.shell or "bash"
    env = dict(ctx.env)
    for kind, names in FILES.items():
        for name in names:
            env[name] = files[kind]
    cwd = ctx.workspace
    if script.working_directory:
        folder = ctx.render_at("working-directory", script.working_directory)
        cwd = (ctx.workspace / folder).resolve()
        if not cwd.is_dir():
            written = script.working_directory
            # quoted as it is, not repr()'d: repr escapes a `'` when the text also holds a `"`,
            # a form of a secret in the folder's name that the masker did not know
            shown = f"`{folder}`" if folder == written else f"`{folder}` (from `{written}`)"
            raise StepError(
                f"working-directory {shown} does not exist", location=ctx.at("working-directory")
            )
    argv = shell_command(shell, path)
    processor = CommandProcessor()
    refused: list[str] = []

    octopus_size = 0
    siblings = ctx.siblings

    def learn() -> None:
        nonlocal octopus_size
        # a `-sensitive` Octopus variable is masked from the moment it is set: the script wrote
        # it to the file before printing this line, so a changed size means new variables
        if siblings is not None:
            # running beside other steps: what any of them set so far (its own file included)
            for path in siblings.changed(_size):
                mask_sensitive_variables(ctx, path)
            return
        size = _size(files["octopus"])
        if size != octopus_size:
            octopus_size = size
            mask_sensitive_variables(ctx, files["octopus"])

    def on_line(line: str) -> None:
        learn()
        handle_line(ctx, processor, line, refused)

    def showable(text: str, continued: bool) -> int:
        # where a long line's piece may end is decided before the piece is logged: with the
        # secrets set so far, or one set just before the line was cut inside it and shown in
        # two parts, each too short for the masker once it learned the secret
        learn()
        return ctx.masker.showable(text, continued)

    if siblings is not None:
        siblings.add(files["octopus"])

    timeout = script.timeout_minutes * 60 if script.timeout_minutes else None
    if script.deadline is not None:
        left = max(script.deadline - time.monotonic(), 0.0)
        timeout = left if timeout is None else min(timeout, left)
    try:
        outcome = run_process(
            argv,
            env=env,
            cwd=str(cwd),
            on_line=on_line,
            timeout=timeout,
            groups=ctx.groups,
            after_cancel=after_cancel,
            showable=showable,
        )
    except ValueError:
        # `Popen` refuses an environment holding a NUL ("embedded null byte"), from a step's
        # output, `$RUNNER_PATH` or `fromJSON('"\\u0000"')`: it was an internal error that left
        # the run `running`. Looked for only then: a scan before every step cost every step
        nul = next((name for name, value in env.items() if "\0" in name or "\0" in value), None)
        if nul is None:
            raise
        raise StepError(
            f"environment variable `{nul}` holds a NUL character, which a process's "
            "environment cannot; remove it where the value is made (a step's output, "
            "`$RUNNER_ENV`, `$RUNNER_PATH` or `env:`)",
            location=ctx.at("env"),
        ) from None
    result = read_files(ctx, files)
    result.exit_code = outcome.exit_code
    if outcome.cancelled:
        result.outcome = "cancelled"
        result.error = "cancelled"
    elif outcome.timed_out:
        result.outcome = "failure"
        result.timed_out = True
        result.error = f"timed out after {script.timeout_minutes:g} minutes"
    elif outcome.exit_code != 0:
        result.outcome = "failure"
        result.error = result.error or f"exit code {outcome.exit_code}"
    elif outcome.output_error is not None:
        result.outcome = "failure"
        result.error = (
            f"the runner could not handle this step's output ({outcome.output_error}); the rest "
            "of it was not shown. This is a bug in the runner: please report it"
        )
    elif refused:
        # GitHub fails a step that used a refused command (set-env, add-path, a weak token)
        result.outcome = "failure"
        result.error = refused[0]
    return result


def handle_line(
    ctx: StepContext, processor: CommandProcessor, line: str, refused: list[str] | None = None
) -> None:
    """One line of output: a workflow command is carried out, text is masked and logged; the
    message of a command GitHub refuses is logged as an error and added to ``refused``."""
    step = ctx.step
    if line.startswith("+"):
        # a `set -x` trace of a command about to make a value secret: masked from this line on
        for secret in traced_secrets(line):
            ctx.masker.add(secret)
    if "::" not in line and not line.endswith(("\r", "\n")):
        # no command can be in it (nor the end of a stop-commands pause): the processor would
        # return it as it is, after a terminator regex that costs more than the rest together
        ctx.log.line(step, ctx.masker.mask(line))
        return
    item = processor.process(line)
    if isinstance(item, str):
        ctx.log.line(step, ctx.masker.mask(item))
        return
    if isinstance(item, Refused):
        ctx.log.annotation(step, "error", item.message, {})
        if refused is not None:
            refused.append(item.message)
        return
    name = item.name
    if name == "add-mask":
        if item.data:
            ctx.masker.add(item.data)
    elif name in ("error", "warning", "notice"):
        # a title or file name is the script's text as much as the message is
        properties = {key: ctx.masker.mask(value) for key, value in dict(item.properties).items()}
        ctx.log.annotation(step, name, ctx.masker.mask(item.data), properties)
    elif name == "group":
        ctx.log.group(step, ctx.masker.mask(item.data))
    elif name == "endgroup":
        ctx.log.group(step, None)
    elif name == "debug":
        if ctx.env.get("RUNNER_DEBUG") == "1":
            ctx.log.line(step, ctx.masker.mask(f"debug: {item.data}"))
    elif name in ("set-output", "save-state", "set-env", "add-path"):
        ctx.log.annotation(
            step,
            "warning",
            f"`::{name}::` is no longer supported; write to "
            "$RUNNER_OUTPUT (GITHUB_OUTPUT) or $RUNNER_ENV instead",
            {},
        )
    else:
        ctx.log.line(step, ctx.masker.mask(line))


def read_files(ctx: StepContext, files: Mapping[str, str | Path]) -> StepResult:
    """Outputs, environment, path, summary and Octopus variables a step wrote."""
    result = StepResult("success")
    try:
        for kind in ("octopus",):
            for variable in file_commands.parse_octopus_variables(_read(files[kind], kind)):
                if variable.sensitive:
                    ctx.masker.add(variable.value)
                    result.secret_outputs.add(f"Octopus:{variable.name}")
                result.octopus[variable.name] = variable.value
        for name, value in file_commands.parse_key_values(
            _read(files["output"], "output"), source="RUNNER_OUTPUT"
        ):
            result.outputs[name] = value
            _secret_part(ctx, name, value)
        env_file = file_commands.parse_env_file(_read(files["env"], "env"), source="RUNNER_ENV")
        for name, value in env_file.entries:
            result.env[name] = value
            _secret_part(ctx, name, value)
        for message in env_file.refused:
            # it names the variable, which a script may have made of a secret
            ctx.log.annotation(ctx.step, "error", ctx.masker.mask(message), {})
        result.path = []
        for entry in file_commands.parse_path_file(_read(files["path"], "path")):
            if "\0" in entry:  # as a NUL in `$RUNNER_ENV`: no later step could be started
                message = (
                    "Can't add a PATH entry using '$RUNNER_PATH': it contains a NUL character."
                )
                ctx.log.annotation(ctx.step, "error", message, {})
            else:
                result.path.append(entry)
        result.summary = ctx.masker.mask(_summary(ctx, files["summary"]))
    except StepError as exc:
        result.outcome = "failure"
        result.error = exc.message
    return result


def _summary(ctx: StepContext, path: str | Path) -> str:
    """The step's summary; one past the limit is left out with an error annotation, the step's
    outcome unchanged, as GitHub does ("$GITHUB_STEP_SUMMARY upload aborted"): a test report
    of 2 MB failed the deployment step that wrote it. One the step replaced (a link, a FIFO)
    still fails it."""
    try:
        return _read(path, "summary")
    except StepError:
        try:
            regular = stat.S_ISREG(os.lstat(path).st_mode)
        except OSError:
            regular = False
        if not regular:
            raise
        ctx.log.annotation(
            ctx.step,
            "error",
            f"{_NAMES['summary']} holds more than {FILE_COMMAND_BYTES // (1024 * 1024)} MiB, the "
            "most a step summary may (GitHub's limit too): it is left out",
            {},
        )
        return ""


def _secret_part(ctx: StepContext, name: str, value: str) -> None:
    """A value a script wrote as ``name=value`` where the line held a secret (a secret that
    is a whole dotenv line, ``DB_PASSWORD=...``, written to ``$RUNNER_ENV``): the value alone
    is only a part of what is registered, so nothing masked it, and it was stored, exported
    and printed in clear. It is a secret itself."""
    line = f"{name}={value}"
    # a value that holds a whole secret is masked as it is (and a secret output): only one
    # whose secret began in the name is registered, not a document a secret is a field of
    if value and ctx.masker.mask(line) != line and ctx.masker.mask(value) == value:
        ctx.masker.add(value)


def mask_sensitive_variables(ctx: StepContext, path: str | Path) -> None:
    """Mask the ``-sensitive`` Octopus variables written so far (complete lines only); a line
    that does not parse is left out (reported when the step ends), not the lines after it."""
    try:
        text = _read(path)
    except StepError:
        return  # not a file the runner made: the step fails when it ends (read_files)
    for line in text[: text.rfind("\n") + 1].splitlines(keepends=True):
        try:
            variables = file_commands.parse_octopus_variables(line)
        except StepError:
            continue  # one bad line turned off the masking of every sensitive one after it
        for variable in variables:
            if variable.sensitive:
                ctx.masker.add(variable.value)


def _size(path: str | Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


#: how a refused file is named to the person reading the log
_NAMES = {
    kind: f"${names[0]}" + (f" (${names[1]})" if len(names) > 1 else "")
    for kind, names in FILES.items()
}


def _read(path: str | Path, kind: str = "octopus") -> str:
    """The text of a file-command file, read as the runner made it: a regular file of at most
    :data:`FILE_COMMAND_BYTES`. A step may replace the file (it is the step's), and a FIFO
    there blocked the runner for ever (SIGTERM too: the open was retried) and a link to
    ``/dev/zero`` filled its memory; such a file (a link to anything included: the runner made
    none) is a :class:`StepError` naming the variable."""
    # bytes, not text mode: universal newlines would turn CRLF and a lone CR inside a value into
    # LF before the file command parsers (which handle CRLF themselves) see them; and os.lstat
    # first: five of these files per step, most of them empty, are not opened
    try:
        if _empty_file(os.lstat(path)):
            return ""  # what a step wrote to none of them
        data = read_file(path, what="file", limit=FILE_COMMAND_BYTES, follow=False)
    except FileNotFoundError:
        return ""  # the script removed it: it reported nothing there
    except InputLimitError:
        raise StepError(_refusal(path, kind)) from None
    except OSError as exc:
        # the step's own file, made unreadable by it (`chmod 000`): it was an internal error
        # (exit 70) that left the run `running`
        name = _NAMES.get(kind, "a file-command file")
        raise StepError(
            f"{name} cannot be read: {exc.strerror or exc}; the step changed the file the "
            "runner made: append to it, do not change its mode"
        ) from None
    return data.decode("utf-8", errors="replace")


def _refusal(path: str | Path, kind: str) -> str:
    name = _NAMES.get(kind, "a file-command file")
    try:
        status = os.lstat(path)
    except OSError:
        status = None
    if status is not None and stat.S_ISREG(status.st_mode):
        return (
            f"the step wrote more than {FILE_COMMAND_BYTES // (1024 * 1024)} MiB to {name}, the "
            "most a step's file may hold (GitHub's limit of an output); nothing it wrote there "
            "was taken: write large data to a file in the workspace and pass its path"
        )
    return (
        f"{name} was replaced by something that is not a regular file (a link, a FIFO or a "
        "device); append to the file the runner made, do not replace it"
    )


def _empty_file(status: os.stat_result) -> bool:
    # a regular file only: a pipe, a device or a /proc file may say 0 and still have something
    return stat.S_ISREG(status.st_mode) and status.st_size == 0


def _create_files(
    ctx: StepContext, attempt: int, script_name: str, script: str, *, bash: bool
) -> tuple[str, dict[str, str]]:
    """The attempt's script, written, and its file-command files, created empty (as GitHub
    creates them), all new and readable by the owner only; the step fails (a ``StepError``)
    if they cannot be: a full file system must not end the run. A bash script also gets
    ``set_octopusvariable``, in a file of its own (``functions``) that it reads when called."""
    folder: str | Path = ctx.step_dir
    try:
        files = ctx.scratch.attempt(ctx.step_dir, attempt)
        folder = files.folder
        try:
            return _create_in(files, script_name, script, bash)
        except FileNotFoundError:
            if not ctx.scratch.lost(files):
                raise
        files = ctx.scratch.attempt(ctx.step_dir, attempt)
        folder = files.folder
        return _create_in(files, script_name, script, bash)
    except OSError as exc:
        raise StepError(
            f"could not create the step's files in {folder}: {exc.strerror or exc}"
        ) from None


def _create_in(
    files: AttemptFiles, script_name: str, script: str, bash: bool
) -> tuple[str, dict[str, str]]:
    path = files.path(script_name)
    made = {kind: files.path(kind) for kind in FILES}
    created: list[str] = []
    try:
        if bash:
            # the attempt's own: one for the run, with a name every step knows, could be
            # rewritten by a step running beside it, or left behind, before this one reads it
            functions = made["functions"] = files.path("functions.sh")
            _write_new(functions, _OCTOPUS_FUNCTIONS)
            created.append(functions)
            script = file_commands.octopus_stub(functions) + script
        _write_new(path, _script_bytes(script))
        created.append(path)
        for kind in FILES:
            _make_empty(made[kind])
            created.append(made[kind])
    except BaseException:
        for name in created:
            _remove(name)
        raise
    return path, made


_OCTOPUS_FUNCTIONS = file_commands.OCTOPUS_BASH_FUNCTIONS.encode("ascii")


def _script_bytes(script: str) -> bytes:
    """The script as UTF-8; a value from the environment that was not UTF-8 (``\\udcff``, as
    Python reads a byte it cannot decode) as its bytes, as bash reads the variable itself, and
    any other half of a character as U+FFFD (writing one was an internal error)."""
    try:
        return script.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        whole = "".join(
            c if not "\ud800" <= c <= "\udfff" or "\udc80" <= c <= "\udcff" else "\ufffd"
            for c in script
        )
        return whole.encode("utf-8", "surrogateescape")


def _open_new(path: str) -> int:
    """A new file (a fresh inode: a process an earlier step left behind, holding the old one
    open, cannot write into this one), readable by the owner only while it exists."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except FileExistsError:
        # only in the state folder: left by a runner that was killed before it removed it
        os.unlink(path)
        return os.open(path, flags, 0o600)


def _make_empty(path: str) -> None:
    """An empty new file, as :func:`_open_new` makes one, in one system call (``mknod`` of a
    regular file: no descriptor to close; a step's five cost ten calls, each several
    microseconds of kernel time here). Where ``mknod`` is refused (macOS, some sandboxes), as
    ``_open_new`` does it."""
    try:
        os.mknod(path, 0o600 | stat.S_IFREG)
        return
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by a runner that was killed before it removed it
    except OSError:
        pass
    os.close(_open_new(path))


def _write_new(path: str, data: bytes) -> None:
    handle = _open_new(path)
    try:
        write_all(handle, data)
    finally:
        os.close(handle)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # the script removed it
        os.unlink(path)
