"""Helpers shared by every test folder, importable as ``helpers`` (``tests/`` is on the path
through the root ``conftest.py``; a folder's ``conftest`` is not importable by name from
another folder, each folder may have its own).

- :mod:`helpers.paths`: ``ROOT``, ``conformance_dir()``, ``borrow()`` another folder's conftest;
- :mod:`helpers.clock`: ``FakeClock`` (a ``now``/``sleep`` pair in which no time passes);
- :mod:`helpers.cli`: ``cli()``, the ``runner`` command in this process, its exit code and output;
- :mod:`helpers.engine`: ``run_here()``, a workflow run by the engine in this process;
- :mod:`helpers.stub`: ``stub_server()``, an HTTP server on loopback answering what a test says;
- :mod:`helpers.waiting`: ``wait_for()``, waiting on a condition instead of a duration.
"""
