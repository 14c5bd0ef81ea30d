"""Where the package's imports may sit: at the top of each module, except the few lazy ones the
architecture doc names, each for a cost the start-up benchmark measures or an optional extra.

The layers themselves (which package may import which) are import-linter's contracts in
pyproject.toml, run by .ci/run; this test keeps imports out of function bodies, where a layer
violation or an import cycle would only show when the function first runs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.environ import host_env

import runner

PACKAGE = Path(runner.__file__).parent

#: module (relative to the package) -> the modules it may import inside a function, and why
LAZY: dict[str, tuple[set[str] | None, str]] = {
    "cli/main.py": (None, "start-up: each command's module is imported when it runs"),
    "cli/server.py": (
        {
            "sqlalchemy.engine",
            "sqlalchemy.exc",
            "uvicorn",
            "runner.server.storage",
            "runner.server.connections",
            "runner.server.web",
            "runner.server.errors",
            "runner.server.audit",
        },
        "the `server` extra: `runner server --help` works, and says what to install, without it",
    ),
    "approvals/server_client.py": (
        {"requests"},
        "about 100 ms; a run without a server never pays it",
    ),
    "server/database.py": (
        {"alembic", "alembic.config", "alembic.util"},
        "about 0.25 s of each server start (Mako, Pygments); a database at the head never pays it",
    ),
    "notify.py": (
        {"http.client", "urllib.request", "urllib.error", "socket", "ssl"},
        "about 20 ms of each start (with email and ssl); a run without a webhook never pays it",
    ),
    "approvals/sshsig.py": (
        {"cryptography.exceptions", "cryptography.hazmat.primitives.asymmetric.ed25519"},
        "about 10 ms of each start; a run that checks no signature never pays it",
    ),
    "engine/run.py": (
        {"concurrent.futures"},
        "about 7 ms of each run; only steps started together use threads",
    ),
    "load/schema.py": ({"jsonschema"}, "about 60 ms; the quick check answers for a valid file"),
    "process.py": ({"ctypes"}, "about 2 ms; only a run given $RUNNER_RECORD_KEY needs prctl"),
}


def _function_imports(tree: ast.Module) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import) and in_function:
                found.extend((child.lineno, alias.name) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and in_function:
                found.append((child.lineno, "." * child.level + (child.module or "")))
            walk(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    walk(tree, False)
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_sit_at_the_top_of_the_module(path: Path) -> None:
    name = path.relative_to(PACKAGE).as_posix()
    allowed, _why = LAZY.get(name, (set(), ""))
    imports = _function_imports(ast.parse(path.read_text(encoding="utf-8")))
    stray = [
        f"{name}:{line}: {module}"
        for line, module in imports
        if allowed is not None and module not in allowed
    ]
    assert not stray, (
        "imports inside functions (move them to the top, or name them in LAZY):\n"
        + "\n".join(stray)
    )


def test_the_lazy_list_names_only_modules_that_exist() -> None:
    for name in LAZY:
        assert (PACKAGE / name).is_file(), name


def test_the_check_sees_an_import_inside_a_function() -> None:
    tree = ast.parse("import os\n\ndef f():\n    import json\n    from runner import model\n")
    assert _function_imports(tree) == [(4, "json"), (5, "runner")]


def test_a_run_loads_none_of_the_lazy_modules_it_does_not_use(tmp_path: Path) -> None:
    """The lazy imports above pay only when they are used: a plain `runner run` (no webhook,
    no signature to check, one step at a time, no server) loads none of them."""
    (tmp_path / "deploy.yml").write_text(
        "name: Deploy\nsteps:\n  - id: build\n    name: Build\n    run: echo built\n"
    )
    lazy = sorted({module for allowed, _why in LAZY.values() if allowed for module in allowed})
    probe = (
        "import atexit, sys\n"
        "from runner.cli.main import main\n"
        f"lazy = {lazy!r}\n"
        "atexit.register(lambda: print('LOADED', sorted(m for m in lazy if m in sys.modules)))\n"
        "sys.argv = ['runner', 'run', 'deploy.yml', '--env', 'dev']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=host_env(),
    )
    assert "succeeded" in done.stdout, done.stdout + done.stderr
    assert "LOADED []" in done.stdout, done.stdout
