"""Helpers shared by every test folder, importable as ``helpers`` (``tests/`` is on the path
through the root ``conftest.py``; a folder's ``conftest`` is not importable by name from
another folder, each folder may have its own).

- :mod:`helpers.paths`: ``ROOT``, ``conformance_dir()``;
- :mod:`helpers.run_helpers`: ``Workspace`` (runs in this process and as a ``runner`` process, and
  the record they leave) and its ``workspace`` fixture;
- :mod:`helpers.environ`: ``HOST_VARIABLES``, the host's CI variables a test's runner must not
  see, and ``host_env()``, the environment without them;
- :mod:`helpers.git_world`: ``GitWorld``, a bare origin, the workspace cloned from it and the
  protected trust branch, the base of the two worlds below, and ``git()``;
- :mod:`helpers.approval_world`: real ``ssh-keygen`` keys and the git ``World`` of the ``file``
  source, with their fixtures;
- :mod:`helpers.policy_world`: the git ``World`` of the environment policies, the CLI in this
  process, and its autouse ``clean_environment`` fixture;
- :mod:`helpers.server_helpers`: the approval server's store (SQLite, PostgreSQL) and a uvicorn
  serving it on loopback, with their fixtures;
- :mod:`helpers.server_e2e`: `runner server` in a subprocess and a workspace whose run waits on
  it (its ``World``), with the ``world``, ``module_world`` and ``shared_world`` fixtures;
- :mod:`helpers.net`: ``free_port()``, for a server started as a process of its own;
- :mod:`helpers.cancel`: a ``runner`` process to cancel with real signals (``Running``), and the
  workspaces it waits in;
- :mod:`helpers.seed`: the repository's seed workflow copied into a test's folder;
- :mod:`helpers.people`: people files of one approver, alice, the whole trading desk;
- :mod:`helpers.clock`: ``FakeClock`` (a ``now``/``sleep`` pair in which no time passes) and
  ``fake_time()``, which puts every run of this process on one;
- :mod:`helpers.cli`: ``cli()``, the ``runner`` command in this process, its exit code and output;
  ``cli_in()``, the same in a given folder and environment, as a subprocess would run it;
- :mod:`helpers.engine`: ``run_here()``, a workflow run by the engine in this process;
- :mod:`helpers.stub`: ``stub_server()``, an HTTP server on loopback answering what a test says;
- :mod:`helpers.waiting`: ``wait_for()``, waiting on a condition instead of a duration, and
  ``Output``, a process's output read as it comes, to wait for what it says;
- :mod:`helpers.collected`: the cases this session collected, per file (the docs' figures);
- :mod:`helpers.forked_runner`: the tests' ``runner`` commands forked from a warm interpreter
  (:mod:`helpers.fork_server`, one per test process) instead of started from scratch.

A test that waits for a step's timeout runs the engine on a fake clock (``fake_time``,
``run_here``); a test that needs a real process waits for what the process says or does.
"""

import pytest

# the modules that were folders' conftests or test modules: their failed asserts explain
# themselves, as the tests' do
pytest.register_assert_rewrite(
    "helpers.run_helpers",
    "helpers.approval_world",
    "helpers.server_helpers",
    "helpers.server_e2e",
    "helpers.git_world",
    "helpers.policy_world",
    "helpers.cancel",
    "helpers.seed",
)
