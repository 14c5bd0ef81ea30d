"""A runner waiting at a manual step, on each approval source: memory and CPU while it waits.

For each source, ``runner run`` starts a one-step workflow whose manual step waits (it times out
after an hour; the benchmark stops it long before):

- ``file``: a plain local folder (no ``remote``), trust files from the working tree with
  ``--insecure-local-trust``, the default ``poll-seconds``;
- ``server``: a ``runner server`` on loopback (SQLite), a runner token;
- ``prompt``: the terminal, under a pseudo-terminal nobody types into.

Once the run record shows the step ``waiting``, ``/proc/<pid>/status`` VmRSS and
``/proc/<pid>/stat`` utime+stime are sampled every 0.5 s for 10 s (3 s with ``--quick``).
Goals: RSS under 60 MB, CPU under 1% of a core. The RSS reference is a bare interpreter sleeping
(``python -c "import time; time.sleep(...)"``), so the ratio is how many bare interpreters the
waiting runner weighs; the CPU figure is already a ratio (CPU seconds per wall second).
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import pwd
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import PYTHON, clean_environ, median, row, runner_command

RSS_GOAL_MB = 60.0
CPU_GOAL = 0.01
CLOCK = os.sysconf("SC_CLK_TCK")

#: the person at the pty is the OS account the benchmark runs as (which no variable can
#: change), who may answer: the prompt asks nothing of someone who may not, and the run would
#: then be refused before its first step
HERE = pwd.getpwuid(os.geteuid()).pw_name
PEOPLE = f"""\
people:
  - id: u-bench
    username: {HERE}
    display-name: Bench Person
    ssh-principals: [bench@example.com]
teams:
  approvers: [{HERE}]
"""

STEP = """\
steps:
  - id: gate
    name: Wait for a person
    manual:
      instructions: Nobody will answer; the benchmark stops the run.
      teams: [approvers]
      timeout-minutes: 60
"""

WORKFLOWS = {
    "file": """\
name: wait on file
environments: [production]
approvals:
  trust: {people: people.yml, allowed-signers: allowed_signers, revoked-keys: revoked_keys}
  file: {path: approvals}
""",
    "server": """\
name: wait on server
environments: [production]
approvals:
  trust: {people: people.yml}
  server: {url: "%(url)s"}
""",
    "prompt": """\
name: wait on prompt
environments: [production]
approvals:
  trust: {people: people.yml}
  prompt: {}
""",
}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLOCK


def sample(pid: int, seconds: float) -> dict[str, Any]:
    """RSS samples and CPU used over ``seconds`` of wall time."""
    rss = []
    cpu_start, wall_start = cpu_seconds(pid), time.perf_counter()
    while time.perf_counter() - wall_start < seconds:
        rss.append(rss_kb(pid))
        time.sleep(0.5)
    cpu = cpu_seconds(pid) - cpu_start
    wall = time.perf_counter() - wall_start
    rss.append(rss_kb(pid))
    return {"rss_kb": rss, "cpu_s": cpu, "wall_s": wall}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: Any, timeout: float, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({process.returncode})")
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not reached in {timeout} s")


def is_waiting(record: Path) -> bool:
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    return any(step.get("status") == "waiting" for step in data.get("steps", []))


def stop(process: subprocess.Popen[bytes], grace: float = 2.0) -> float | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; how long SIGTERM took (None: it did not).

    A waiting run notices a cancellation only between two polls of its sources (up to
    ``poll-seconds``, 30 s by default, or a 20 s long-poll), so the benchmark does not wait."""
    if process.poll() is not None:
        return 0.0
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
        return time.perf_counter() - started
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def drain(fd: int) -> threading.Thread:
    """Read a pty's output so that the prompt never blocks on a full buffer."""

    def read() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 4096):
                pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def measure_source(
    source: str, folder: Path, seconds: float, server: str | None, token: str | None
) -> dict[str, Any]:
    work = folder / source
    work.mkdir()
    (work / ".git").mkdir()  # the workspace root
    (work / "people.yml").write_text(PEOPLE)
    (work / "allowed_signers").write_text("")
    (work / "revoked_keys").write_text("")
    (work / "approvals").mkdir()
    text = WORKFLOWS[source] % {"url": server or ""} + STEP
    (work / "wait.yml").write_text(text)
    state = work / "state"
    argv = [
        *runner_command(),
        "run",
        "wait.yml",
        "--env",
        "production",
        "--state-dir",
        str(state),
        "--run-id",
        f"bench-{source}",
    ]
    if source == "file":
        argv.append("--insecure-local-trust")
    env = clean_environ(RUNNER_ACTOR="bench", NO_COLOR="1")
    if token:
        env["RUNNER_SERVER_TOKEN"] = token
    record = state / "runs" / f"bench-{source}" / "record.json"
    master = None
    log = open(work / "output.log", "wb")  # noqa: SIM115 - closed below
    try:
        if source == "prompt":
            master, slave = pty.openpty()
            process = subprocess.Popen(
                argv,
                cwd=work,
                env=env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
            os.close(slave)
            drain(master)
        else:
            process = subprocess.Popen(
                argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        try:
            wait_for(lambda: is_waiting(record), 60, f"{source}: waiting state", process)
            time.sleep(0.5)  # let the first poll settle
            figures = sample(process.pid, seconds)
        finally:
            stopped = stop(process)
        figures["sigterm_stopped_after_s"] = stopped
    except RuntimeError as exc:
        log.close()
        output = (work / "output.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{exc}\n{output}") from None
    finally:
        log.close()
        if master is not None:
            with contextlib.suppress(OSError):
                os.close(master)
    return figures


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    database = f"sqlite:///{folder / 'server.db'}"
    (folder / "people.yml").write_text(PEOPLE)
    runner = runner_command()
    env = clean_environ()
    token = subprocess.run(
        [*runner, "server", "--database", database, "tokens", "issue", "--kind", "runner"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - the server outlives this function
    process = subprocess.Popen(
        [
            *runner,
            "server",
            "--database",
            database,
            "--port",
            str(port),
            "--people",
            str(folder / "people.yml"),
        ],
        env=env,
        stdout=log,
        stderr=log,
    )

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "/", timeout=1):
                return True
        except OSError as exc:
            return getattr(exc, "code", None) is not None  # an HTTP error: it answers

    wait_for(up, 30, "approval server start", process)
    return process, url, token


def reference_rss(seconds: float, folder: Path) -> int:
    process = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(60)"], cwd=folder)
    try:
        time.sleep(min(1.0, seconds))
        return rss_kb(process.pid)
    finally:
        process.kill()
        process.wait()


def run(quick: bool) -> list[dict[str, Any]]:
    seconds = 3.0 if quick else 10.0
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-waiting-") as temp:
        folder = Path(temp)
        reference_kb = reference_rss(seconds, folder)
        results: dict[str, dict[str, Any] | str] = {}
        server = None
        try:
            for source in ("file", "server", "prompt"):
                try:
                    url = token = None
                    if source == "server":
                        (folder / "srv").mkdir()
                        server, url, token = start_server(folder / "srv")
                    results[source] = measure_source(source, folder, seconds, url, token)
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    results[source] = f"could not measure: {exc}"
        finally:
            if server is not None:
                stop(server)
    for source, figures in results.items():
        if isinstance(figures, str):
            rows.append(
                row(
                    f"waiting ({source}): RSS",
                    value=None,
                    unit="MB",
                    reference=None,
                    reference_label="bare python",
                    ratio=None,
                    goal="< 60 MB",
                    met=False,
                    details={"error": figures},
                )
            )
            continue
        rss_mb = max(figures["rss_kb"]) / 1024
        cpu = figures["cpu_s"] / figures["wall_s"]
        rows.append(
            row(
                f"waiting ({source}): RSS",
                value=rss_mb,
                unit="MB",
                reference=reference_kb / 1024,
                reference_label="bare python MB",
                ratio=rss_mb / (reference_kb / 1024),
                goal=f"< {RSS_GOAL_MB:.0f} MB",
                met=rss_mb < RSS_GOAL_MB,
                details={
                    "rss_kb_samples": figures["rss_kb"],
                    "median_rss_mb": median(figures["rss_kb"]) / 1024,
                },
            )
        )
        rows.append(
            row(
                f"waiting ({source}): CPU",
                value=cpu * 100,
                unit="% core",
                reference=100.0,
                reference_label="one core",
                ratio=cpu,
                goal=f"< {CPU_GOAL * 100:.0f}% core",
                met=cpu < CPU_GOAL,
                # half the goal: a regression is a waiting run past 1% of a core; below it,
                # one poll more in the window (the prompt's 0.67% once here) is noise
                floor=CPU_GOAL / 2,
                details={
                    "cpu_s": figures["cpu_s"],
                    "wall_s": figures["wall_s"],
                    "sigterm_stopped_after_s": figures["sigterm_stopped_after_s"],
                },
            )
        )
    return rows
