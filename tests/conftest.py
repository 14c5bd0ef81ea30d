from __future__ import annotations

import gc
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import collected, forked_runner, memory_tmp
from helpers.paths import ROOT, conformance_dir

from runner.steps.scratch import SHARED_MEMORY, safe_parent

__all__ = ["ROOT", "conformance_dir"]

SESSION_TMP = pytest.StashKey[memory_tmp.Session]()
SESSION_PASSED = pytest.StashKey[bool]()

# The tests start `runner` hundreds of times (and xdist's workers start after this file loads):
# with PYTHONDONTWRITEBYTECODE, which some images set, every start would compile the package's
# modules again instead of reading the bytecode cache (.ci/run and bench/common.py drop it too).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# A suite started in the background of a script (`pytest &`, some CI runners) inherits SIGINT
# ignored, and so would every `runner` it starts: the runner keeps an ignored SIGINT, as Unix
# programs do, and the Ctrl-C tests would wait out their 60 s. A terminal's default, as a
# newcomer's Ctrl-C meets it: the processes started from here get it back.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: The files that take longest (bench/README.md, "The test suite"), in the order xdist hands them
#: to its workers, whole (`--dist loadfile`), before the rest in collection order
#: (`--no-loadscope-reorder` in pyproject.toml): a long file started last would leave the other
#: workers idle at the end. Files that mostly wait (servers, browsers, timeouts) alternate with
#: files that keep a core busy (fuzzing, limits, masking), so that while one worker waits the
#: others compute: over two pairs of runs the cores were busy 1.70-1.71 of 2 this way, 1.65 with
#: the waiting files all first.
SLOW_FILES = (
    "tests/e2e/test_gitlab_ci_local.py",
    "tests/server/test_server_e2e.py",
    "tests/fuzz/test_fuzz_api_schema.py",
    "tests/server/test_guided_server_e2e.py",
    "tests/server/test_slow_clients.py",
    "tests/web/test_hostile_records.py",
    "tests/variables/test_limits.py",
    "tests/web/test_notifications.py",
    "tests/load/test_schema_quick.py",
    "tests/web/test_browser.py",
    "tests/fuzz/test_fuzz_expressions.py",
    "tests/attacks/test_newcomer_rules.py",
    "tests/test_masking.py",
    "tests/attacks/test_server_integrity.py",
    "tests/fuzz/test_fuzz_variables.py",
    "tests/e2e/test_cancel_early.py",
    "tests/attacks/test_sql_injection.py",
    "tests/steps/test_guided.py",
    "tests/server/test_concurrency.py",
    "tests/approvals/test_file_source.py",
    "tests/fuzz/test_fuzz_file_commands.py",
    "tests/web/test_security.py",
    "tests/server/test_api.py",
    "tests/attacks/test_server_record_tampering.py",
    "tests/attacks/test_record_journal.py",
    "tests/policy/test_policy_e2e.py",
    "tests/steps/test_composite.py",
    "tests/attacks/test_approvals_branch.py",
    "tests/engine/test_run_process.py",
    "tests/bench/test_bench_smoke.py",
    "tests/attacks/test_hostile_input.py",
    "tests/engine/test_run_record.py",
    "tests/attacks/test_record_seal.py",
    "tests/web/test_guided_page.py",
    "tests/e2e/test_paths.py",
    "tests/attacks/test_record_tampering.py",
    "tests/server/test_server_source.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Temporary files in memory (tests/helpers/memory_tmp.py), chosen once by the controller:
    xdist's workers, started after this, inherit ``TMPDIR``."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        session = memory_tmp.choose()
        if session is not None:
            memory_tmp.use(session.folder)
            config.stash[SESSION_TMP] = session


def pytest_collection_finish(session: pytest.Session) -> None:
    """The collected tests (4,000 items, their modules, fixtures and parameters) live as long as
    the session: frozen, the garbage collector stops walking them at each collection of the
    oldest generation, and it runs a tenth as often. The collector took about a sixth of the
    in-process tests' CPU (5.2 s of 30 s in the fuzz, variables, expressions, load and masking
    files), 2.1 s after this; the whole suite, two interleaved rounds: 116.5 s and 118.5 s
    against 119.0 s and 124.3 s, 6-7 s less CPU. Only pytest's processes: every process they
    start has Python's defaults."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def pytest_report_header(config: pytest.Config) -> str | None:
    session = config.stash.get(SESSION_TMP, None)
    return None if session is None else f"temporary files: {session.folder} (in memory)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[SESSION_PASSED] = exitstatus == pytest.ExitCode.OK


def pytest_unconfigure(config: pytest.Config) -> None:
    """A session that passed leaves nothing to read: its folder goes, once the workers and
    pytest's own clean-up are done with it. A failed or interrupted one's stays
    (memory_tmp.KEEP_ENDED), holding only its failed tests' ``tmp_path`` folders
    (``tmp_path_retention_policy`` in pyproject.toml)."""
    session = config.stash.get(SESSION_TMP, None)
    if session is not None:
        session.end(remove=config.stash.get(SESSION_PASSED, False))


@pytest.fixture
def conformance() -> Path:
    path = conformance_dir()
    if not path.is_dir():
        pytest.skip(f"conformance vectors not found at {path}")
    return path


def pytest_itemcollected(item: pytest.Item) -> None:
    collected.note(item)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of SLOW_FILES first, in its order; a file's tests keep their order."""
    rank = {path: n for n, path in enumerate(SLOW_FILES)}
    last = len(SLOW_FILES)
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], last))


forked_runner.install()


@pytest.fixture(scope="session", autouse=True)
def warm_runner() -> Iterator[None]:
    """The warm interpreter that this process's ``runner`` commands are forked from
    (tests/helpers/forked_runner.py), started by the main thread before the first test."""
    forked_runner.start()
    yield
    forked_runner.stop()


@pytest.fixture(scope="session", autouse=True)
def private_runtime_dir() -> Iterator[Path]:
    """A private ``$XDG_RUNTIME_DIR`` for this session (each xdist worker has its own), removed at
    its end. The runner makes each run's scratch folder there (``runner/steps/scratch.py``),
    also in the runs the tests start as processes: a run killed with SIGKILL cannot remove its
    folder, which would otherwise stay in ``/dev/shm``. A folder of ours, mode 0700, is one the
    runner takes; made in ``/dev/shm`` it stays in memory, as the runner's own would."""
    parent = (
        SHARED_MEMORY if safe_parent(SHARED_MEMORY) and os.access(SHARED_MEMORY, os.W_OK) else None
    )
    folder = Path(tempfile.mkdtemp(prefix="pytest-runner-", dir=parent))
    folder.chmod(0o700)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_RUNTIME_DIR", str(folder))
        yield folder
    shutil.rmtree(folder, ignore_errors=True)
