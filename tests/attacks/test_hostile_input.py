"""Hostile input never crashes a parser of the runner or the server (issues #18 and #17).

Small files nested tens of thousands of levels deep segfaulted ``runner validate`` (exit 139,
inside ruamel.yaml's C composer), a chain of 2,000 merge keys ran for half a minute and ended in
a ``RecursionError`` (exit 70), and a deep ``record.json`` made ``runner resume`` exit 70. Each
such file now gets a positioned refusal. The commands run as subprocesses, so that a crash fails
the test instead of killing pytest; the time bounds are hang guards, not benchmarks.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers.run_helpers import CI_VARIABLES
from helpers.server_helpers import people_directory, serving

from runner.server.bodies import MAX_BODY_BYTES
from runner.server.storage import Store, make_engine, migrate

RUNNER = Path(sys.executable).with_name("runner")
#: a hang guard: every refusal here takes well under a second (bench/README.md has figures)
GUARD = 20.0

HEAD = "name: deep\nsteps: [{id: a, name: A, run: 'true'}]\n"


def run_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """(exit code, stdout + stderr, seconds) of the ``runner`` CLI run as a subprocess."""
    environ = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    environ.update(env or {})
    started = time.monotonic()
    done = subprocess.run(
        [str(RUNNER), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=GUARD * 3,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def merge_chain(links: int) -> str:
    lines = ["a0: &a0 {k0: v}"]
    lines += [f"a{i}: &a{i} {{<<: [*a{i - 1}], k{i}: v}}" for i in range(1, links)]
    return HEAD + "\n".join(lines) + "\n"


def nested_merges(depth: int) -> str:
    """Mappings nested in merge keys by indentation: ``a: {<<: {<<: ...}}``."""
    lines = [" " * i + "<<:" for i in range(1, depth)]
    return HEAD + "x:\n" + "\n".join(lines) + "\n" + " " * depth + "k: v\n"


def indented(depth: int) -> str:
    return HEAD + "x:\n" + "".join(" " * i + "a:\n" for i in range(1, depth)) + " " * depth + "1\n"


#: (file text, the first line `runner validate` must print)
DEEP = {
    "flow-sequence-30000": (
        HEAD + "x: " + "[" * 30_000 + "]" * 30_000 + "\n",
        "deep.yml:3:204: document is nested too deeply (the limit is 200); simplify it [syntax]",
    ),
    "flow-mapping-50000": (
        HEAD + "x: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n",
        "deep.yml:3:801: document is nested too deeply (the limit is 200); simplify it [syntax]",
    ),
    "block-sequence-30000": (
        HEAD + "x:\n" + "- " * 30_000 + "1\n",
        "deep.yml:4:401: document is nested too deeply (the limit is 200); simplify it [syntax]",
    ),
    "explicit-keys-30000": (
        HEAD + "x:\n" + "? " * 30_000 + "1\n",
        "deep.yml:4:403: document is nested too deeply (the limit is 200); simplify it [syntax]",
    ),
    "indentation-3000": (
        indented(3_000),
        "deep.yml:203:201: document is nested too deeply (the limit is 200); simplify it [syntax]",
    ),
    "merge-chain-2000": (
        merge_chain(2_000),
        "deep.yml:14:6: merge keys (`<<`) are nested more than 10 levels deep; merge fewer levels"
        " [syntax]",
    ),
    "merge-nested-1500": (
        nested_merges(1_500),
        "deep.yml:4:2: merge keys (`<<`) are nested more than 10 levels deep; merge fewer levels"
        " [syntax]",
    ),
    "merge-chain-600": (
        merge_chain(600),
        "deep.yml:14:6: merge keys (`<<`) are nested more than 10 levels deep; merge fewer levels"
        " [syntax]",
    ),
}


@pytest.mark.parametrize("text, expected", DEEP.values(), ids=DEEP.keys())
def test_validate_refuses_deep_and_expanding_yaml_at_its_position(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "deep.yml").write_text(text, encoding="utf-8")
    code, output, seconds = run_cli(tmp_path, "validate", "deep.yml")
    assert code == 1, output[-2000:]
    assert output.splitlines()[0] == expected, output[:2000]
    assert "internal error" not in output
    assert seconds < GUARD


def test_an_action_nested_too_deeply_is_a_diagnostic_of_the_action_file(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    action = tmp_path / "actions" / "deep" / "action.yml"
    action.parent.mkdir(parents=True)
    action.write_text("name: deep\nx: " + "[" * 30_000 + "]" * 30_000 + "\n", encoding="utf-8")
    (tmp_path / "deploy.yml").write_text(
        "name: uses\nenvironments: [staging]\nsteps:\n  - id: a\n    name: A\n"
        "    uses: ./actions/deep\n",
        encoding="utf-8",
    )
    code, output, seconds = run_cli(
        tmp_path, "run", "deploy.yml", "--env", "staging", "--state-dir", ".state"
    )
    assert code == 2, output[-2000:]
    assert f"{action}:2:204: document is nested too deeply" in output, output[:2000]
    assert seconds < GUARD


PARSE_TRUST_FILE = """\
import sys
from runner.errors import WorkflowError
from runner.approvals.identity import parse_directory
from runner.policy import parse_policy
parse = {"people": parse_directory, "policy": parse_policy}[sys.argv[1]]
try:
    parse(sys.stdin.buffer.read(), sys.argv[1] + ".yml")
except WorkflowError as exc:
    print("refused:", exc.diagnostics[0].location, exc.diagnostics[0].message)
"""


@pytest.mark.parametrize("kind", ["people", "policy"])
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("people: " + "[" * 30_000 + "]" * 30_000 + "\n", id="flow"),
        pytest.param("people:\n" + "- " * 30_000 + "x\n", id="block"),
        pytest.param(merge_chain(2_000).replace(HEAD, ""), id="merge-chain"),
    ],
)
def test_trust_files_nested_too_deeply_are_refused(kind: str, text: str) -> None:
    """The people file and the policy come from the trust ref: whoever can push there must
    still not crash a run (nor the server's `users import`)."""
    done = subprocess.run(
        [sys.executable, "-c", PARSE_TRUST_FILE, kind],
        input=text.encode(),
        capture_output=True,
        timeout=GUARD * 3,
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, output[-2000:]
    assert output.startswith(f"refused: {kind}.yml:"), output[:2000]
    assert "nested" in output


# -- run records (#17) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record, reason",
    [
        pytest.param(
            '{"version": 1, "x": ' + "[" * 50_000 + "]" * 50_000 + "}",
            "the run record is nested more than 64 levels deep (line 1, column 84)",
            id="nested-50000",
        ),
        pytest.param(
            '{"version": 1, "steps": ["not a step"]}',
            "the run record's `steps` is not a list of steps",
            id="steps-not-objects",
        ),
        # no file can be written with half of a character: resuming it was an internal error
        pytest.param(
            '{"version": 1, "inputs": {"v": "x\\ud800"}, "steps": []}',
            "the run record holds half of a character (a lone \\ud800-\\udfff escape)",
            id="half-a-character",
        ),
    ],
)
def test_resume_refuses_a_hostile_record_naming_the_file(
    tmp_path: Path, record: str, reason: str
) -> None:
    folder = tmp_path / ".state" / "runs" / "run-1"
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(record, encoding="utf-8")
    code, output, seconds = run_cli(tmp_path, "resume", "run-1", "--state-dir", ".state")
    assert code == 5, output[-2000:]
    assert "internal error" not in output
    shown = folder / "record.json"  # the state folder is shown as an absolute path
    assert f"the record of run run-1 cannot be read: {shown}: {reason}" in output
    assert seconds < GUARD


class DeepAnswers(http.server.BaseHTTPRequestHandler):
    """A hostile approval server: every GET answers 200 with JSON nested 50,000 deep."""

    def do_GET(self) -> None:
        body = b"[" * 50_000 + b"]" * 50_000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def deep_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DeepAnswers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_resume_from_a_server_answering_deep_json_is_refused(
    tmp_path: Path, deep_server: str
) -> None:
    code, output, seconds = run_cli(
        tmp_path,
        "resume",
        "run-1",
        "--state-dir",
        ".state",
        "--server",
        deep_server,
        env={"RUNNER_SERVER_TOKEN": "t"},
    )
    assert code == 5, output[-2000:]
    assert "internal error" not in output
    assert "the approval server's record of run run-1 cannot be read" in output
    assert not (tmp_path / ".state" / "runs" / "run-1").exists()
    assert seconds < GUARD


# -- the approval server's request bodies ---------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real server on loopback (SQLite), with a runner and an approver token."""
    engine = make_engine(f"sqlite:///{tmp_path / 'server.db'}")
    migrate(engine)
    store = Store(engine)
    store.import_directory(people_directory())
    headers = {
        "runner": {"Authorization": f"Bearer {store.issue_token('runner', label='t')}"},
        "alice": {"Authorization": f"Bearer {store.issue_token('approver', 'alice', label='t')}"},
    }
    with serving(store) as url:
        yield url + "/api/v1", {k: v["Authorization"] for k, v in headers.items()}
    engine.dispose()


DEEP_BODY = b'{"run_id": "r1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
#: shallow enough for Python's json, deep enough to break what walks it afterwards
DEEPISH_BODY = b'{"run_id": "r1", "x": ' + b"[" * 500 + b"]" * 500 + b"}"


@pytest.mark.parametrize(
    "who, method, path",
    [
        ("runner", "POST", "/interruptions"),
        ("runner", "PUT", "/runs/r1"),
        ("runner", "POST", "/locks/k1"),
        ("alice", "POST", "/interruptions/r1--gate/submit"),
    ],
)
@pytest.mark.parametrize("body", [DEEP_BODY, DEEPISH_BODY], ids=["100000", "500"])
def test_every_json_body_is_bounded_before_it_is_parsed(
    api: tuple[str, dict[str, str]], who: str, method: str, path: str, body: bytes
) -> None:
    url, tokens = api
    answer = requests.request(
        method,
        url + path,
        data=body,
        headers={"Authorization": tokens[who], "Content-Type": "application/json"},
        timeout=GUARD,
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "bad_request"
    assert "the request body is nested more than 64 levels deep" in error["message"]
    assert requests.get(url + "/health", timeout=GUARD).json() == {"status": "ok"}


def test_a_body_over_the_size_limit_is_refused(api: tuple[str, dict[str, str]]) -> None:
    url, tokens = api
    answer = requests.put(
        url + "/runs/r1",
        data=b'{"run_id": "r1", "x": "' + b"x" * MAX_BODY_BYTES + b'"}',
        headers={"Authorization": tokens["runner"], "Content-Type": "application/json"},
        timeout=GUARD,
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "too_large"


def test_a_record_of_normal_depth_is_still_accepted(api: tuple[str, dict[str, str]]) -> None:
    url, tokens = api
    record = {"run_id": "r1", "steps": [{"id": "a", "outputs": {"k": "[[[{{{"}}]}
    answer = requests.put(
        url + "/runs/r1",
        data=json.dumps(record),
        headers={"Authorization": tokens["runner"], "Content-Type": "application/json"},
        timeout=GUARD,
    )
    assert answer.status_code == 200, answer.text
    got = requests.get(url + "/runs/r1", headers={"Authorization": tokens["runner"]}, timeout=5)
    assert got.json() == record


def test_the_depth_check_ignores_brackets_in_strings() -> None:
    from runner.bounded import check_depth

    check_depth(json.dumps({"x": "[" * 10_000, "y": ["]" * 10_000, '\\"[[[']}))


UNDECODABLE = """\
name: undecodable
variables:
  X:
    from-env: TEST_X
  Doc:
    from-env: TEST_DOC
    secret: true
steps:
  - id: a
    name: A
    env:
      E: "#{X}"
    run: |
      printf '%s|%s|%s\\n' "#{X}" "$E" "${{ env.E }}" | od -An -tx1 -w64 | tr -s ' '
      echo "half ${{ fromJSON(secrets.Doc).u }} ${{ fromJSON(secrets.Doc).ok }}"
"""


def test_a_value_that_is_not_utf8_or_half_a_character_reaches_the_step(tmp_path: Path) -> None:
    """An environment variable holding a byte that is not UTF-8 (Python reads it as
    ``\\udcff``), substituted into a script, and a JSON secret whose string holds a lone
    ``\\ud800`` read with fromJSON, were internal errors writing the script (exit 70). The step
    gets the variable's bytes as bash itself would, and the half character as U+FFFD."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(UNDECODABLE)
    doc = '{"u": "ab\\ud800cd-xyz", "ok": "fine-1"}'
    code, out, _ = run_cli(
        tmp_path,
        "run",
        "w.yml",
        "--env",
        "e",
        env={"TEST_X": os.fsdecode(b"ab\xffcd"), "TEST_DOC": doc},
    )
    assert code == 0, out
    assert "61 62 ff 63 64 7c 61 62 ff 63 64 7c 61 62 ff 63 64 0a" in out
    assert "half *** ***" in out
