"""Capacity of one approval server process (SQLite): many runners long-polling at once.

Starts ``runner server`` as a subprocess, creates N interruptions, and runs N simulated runners as
asyncio httpx clients, each long-polling its own interruption (``GET
/api/v1/interruptions/{id}?wait=30`` with ``If-None-Match``, as ``runner run`` does). While they
all wait, it reads the server's RSS and CPU time from ``/proc/<pid>`` over a window (10 s by
default). Then, again and again (50 times by default), an approver takes one target interruption
and submits a decision through the API, and the time from the submit's response to that runner's
poll returning with the decision is measured (and, as a stricter figure, from the moment the
submit was sent). A runner whose interruption was decided registers a fresh one and waits again,
as its next run would, so N stay waiting throughout.

Goals: median < 100 ms, p99 < 500 ms.

    .venv/bin/python bench/server_capacity.py [--clients 1000] [--decisions 50]

Prints a table and writes ``bench/results/server_capacity.json``. The simulated runners share
the machine's cores with the server, so the figures are an upper bound of what the server alone
adds. Not a pytest test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
GOAL_MEDIAN_MS = 100.0
GOAL_P99_MS = 500.0
PEOPLE_YML = """\
people:
  - id: u-alice
    username: alice
    display-name: Alice Martin
    email: alice@example.com
teams:
  trading-desk: [alice]
"""


def interruption(run_id: str) -> dict[str, Any]:
    return {
        "id": f"{run_id}--gate",
        "run_id": run_id,
        "step_id": "gate",
        "step_name": "Approve release",
        "title": "Approve release",
        "instructions": "Tell the **trading desk**.",
        "teams": [],
        "quorum": [],
        "fields": [],
        "created": "2030-01-01T00:00:00Z",
        "deadline": None,
        "environment": "production",
        "workflow": "Capacity",
        "digest": "0" * 64,
        "commit": None,
        "inputs": {},
        "following_steps": ["Deploy"],
        "started_by": "ci-bot",
        "prevent_self_approval": False,
        "sources": ["server"],
        "run_started": "2030-01-01T00:00:00Z",
    }


# -- the server process ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def runner_command() -> list[str]:
    beside = Path(sys.executable).with_name("runner")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("runner")
    if found:
        return [found]
    return [sys.executable, "-c", "from runner.cli.main import entry; entry()"]


def raise_file_limit(needed: int) -> None:
    """Each waiting runner is one socket on either side: lift the soft limit (the server, a
    child, inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, needed))
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        sys.exit(f"open-file limit {soft} is below the {needed} this run needs (ulimit -n)")


@dataclass
class ProcessSample:
    at: float
    cpu_seconds: float
    rss_kb: int
    threads: int


def sample(pid: int) -> ProcessSample:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return ProcessSample(time.monotonic(), cpu, rss, threads)


def cpu_percent(first: ProcessSample, last: ProcessSample) -> float:
    return 100.0 * (last.cpu_seconds - first.cpu_seconds) / (last.at - first.at)


# -- the simulated runners ---------------------------------------------------------------------


@dataclass
class Runner:
    """One waiting run: long-polls its interruption; when it is decided, registers a fresh one
    (its next run) and waits on that."""

    index: int
    interruption_id: str
    etag: str = '"1"'
    generation: int = 0
    in_flight: bool = False
    sent_at: float = 0.0
    polls: int = 0
    timeouts: int = 0
    errors: list[str] = field(default_factory=list)
    # (time the poll returned, interruption id, version, state)
    answers: list[tuple[float, str, int, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


async def run_runner(runner: Runner, client: httpx.AsyncClient, wait: float) -> None:
    while True:
        runner.in_flight, runner.sent_at = True, time.perf_counter()
        runner.polls += 1
        try:
            answer = await client.get(
                f"/api/v1/interruptions/{runner.interruption_id}",
                params={"wait": wait},
                headers={"If-None-Match": runner.etag},
            )
        except httpx.HTTPError as exc:
            runner.in_flight = False
            runner.errors.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.5)
            continue
        returned = time.perf_counter()
        runner.in_flight = False
        if answer.status_code == 304:
            runner.timeouts += 1
            continue
        if answer.status_code != 200:
            runner.errors.append(f"HTTP {answer.status_code}: {answer.text[:200]}")
            await asyncio.sleep(0.5)
            continue
        view = answer.json()
        runner.etag = answer.headers.get("etag", f'"{view["version"]}"')
        runner.answers.append((returned, view["id"], int(view["version"]), view["state"]))
        runner.changed.set()
        if view["state"] != "waiting":
            runner.generation += 1
            run_id = f"cap-{runner.index}-{runner.generation}"
            created = await client.post("/api/v1/interruptions", json=interruption(run_id))
            if created.status_code != 201:
                runner.errors.append(f"create HTTP {created.status_code}: {created.text[:200]}")
                return
            runner.interruption_id, runner.etag = created.json()["id"], '"1"'


async def answer_for(
    runner: Runner, interruption_id: str, version: int, timeout: float
) -> tuple[float, str]:
    """Wait until the runner's poll has returned ``version`` (or later) of the interruption."""
    deadline = time.perf_counter() + timeout
    while True:
        for returned, seen_id, seen_version, state in runner.answers:
            if seen_id == interruption_id and seen_version >= version:
                return returned, state
        runner.changed.clear()
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError(
                f"runner {runner.index} never saw version {version} of {interruption_id}"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.changed.wait(), remaining)


async def repolled(runner: Runner, after: float, timeout: float = 10.0) -> None:
    """Wait until the runner has sent its next long-poll (after ``after``)."""
    deadline = time.perf_counter() + timeout
    while not (runner.in_flight and runner.sent_at > after):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"runner {runner.index} did not poll again")
        await asyncio.sleep(0.002)


# -- the benchmark -----------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000.0 for v in values_s]
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
        "samples": len(ms),
    }


async def bench(
    args: argparse.Namespace, url: str, pid: int, runner_token: str, approver_token: str
) -> dict[str, Any]:
    n = args.clients
    limits = httpx.Limits(max_connections=n + 64, max_keepalive_connections=n + 64)
    timeout = httpx.Timeout(args.wait + 15, pool=None)
    runners_client = httpx.AsyncClient(
        base_url=url,
        limits=limits,
        timeout=timeout,
        headers={"Authorization": f"Bearer {runner_token}"},
    )
    approver = httpx.AsyncClient(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {approver_token}"}
    )
    tasks: list[asyncio.Task[None]] = []
    try:
        # N interruptions
        started = time.perf_counter()
        gate = asyncio.Semaphore(16)

        async def create(i: int) -> str:
            async with gate:
                answer = await runners_client.post(
                    "/api/v1/interruptions", json=interruption(f"cap-{i}-0")
                )
                answer.raise_for_status()
                return str(answer.json()["id"])

        ids = await asyncio.gather(*(create(i) for i in range(n)))
        create_seconds = time.perf_counter() - started
        print(f"created {n} interruptions in {create_seconds:.1f} s", flush=True)

        # N runners long-polling
        runners = [Runner(i, ids[i]) for i in range(n)]
        polls_started = time.perf_counter()
        tasks = [asyncio.create_task(run_runner(r, runners_client, args.wait)) for r in runners]
        while not all(r.in_flight for r in runners):
            await asyncio.sleep(0.05)
        # every poll has been sent; give the server time to take them all in (each one is
        # authenticated and reads the version before it starts to wait)
        await asyncio.sleep(args.settle)
        print(
            f"{n} runners waiting ({time.perf_counter() - polls_started:.1f} s after the "
            f"first poll); measuring the server for {args.idle_seconds:g} s",
            flush=True,
        )

        # the server while all of them wait
        answered_before = sum(len(r.answers) + r.timeouts for r in runners)
        first = sample(pid)
        rss_peak = first.rss_kb
        end = time.monotonic() + args.idle_seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
            rss_peak = max(rss_peak, sample(pid).rss_kb)
        last = sample(pid)
        idle = {
            "window_s": round(last.at - first.at, 2),
            "cpu_percent": round(cpu_percent(first, last), 1),
            "rss_mb_start": round(first.rss_kb / 1024, 1),
            "rss_mb_end": round(last.rss_kb / 1024, 1),
            "rss_mb_peak": round(rss_peak / 1024, 1),
            "threads": last.threads,
            "polls_in_flight": sum(r.in_flight for r in runners),
            "polls_answered_in_window": sum(len(r.answers) + r.timeouts for r in runners)
            - answered_before,
        }

        # decisions, one target at a time
        print(f"submitting {args.decisions} decisions", flush=True)
        decided_from_response: list[float] = []
        decided_from_request: list[float] = []
        assigned_from_response: list[float] = []
        submit_round_trip: list[float] = []
        before_decisions = sample(pid)
        for k in range(args.decisions):
            runner = runners[(k * n) // args.decisions]
            await repolled(runner, 0.0)
            target = runner.interruption_id
            answer = await approver.put(
                f"/api/v1/interruptions/{target}/responsible", json={"reassign": False}
            )
            answer.raise_for_status()
            assign_returned = time.perf_counter()
            version = int(answer.json()["version"])
            seen, _ = await answer_for(runner, target, version, 30)
            assigned_from_response.append(seen - assign_returned)
            # the runner polls again, as ``runner run`` does; then the decision
            await repolled(runner, seen)
            await asyncio.sleep(args.gap)
            sent = time.perf_counter()
            answer = await approver.post(
                f"/api/v1/interruptions/{target}/submit",
                json={"result": "proceed", "notes": f"go {k}"},
            )
            answer.raise_for_status()
            returned = time.perf_counter()
            version = int(answer.json()["version"])
            seen, state = await answer_for(runner, target, version, 30)
            if state != "approved":
                raise RuntimeError(f"{target} is {state}, not approved")
            decided_from_response.append(seen - returned)
            decided_from_request.append(seen - sent)
            submit_round_trip.append(returned - sent)
        after_decisions = sample(pid)
        errors = [e for r in runners for e in r.errors]
        return {
            "create_seconds": round(create_seconds, 2),
            "idle": idle,
            "decisions": {
                "from_submit_response": summary(decided_from_response),
                "from_submit_request": summary(decided_from_request),
                "submit_round_trip": summary(submit_round_trip),
                "assign_from_response": summary(assigned_from_response),
                "cpu_percent": round(cpu_percent(before_decisions, after_decisions), 1),
                "rss_mb_end": round(after_decisions.rss_kb / 1024, 1),
            },
            "runner_polls": sum(r.polls for r in runners),
            "runner_poll_timeouts": sum(r.timeouts for r in runners),
            "runner_errors": len(errors),
            "runner_error_examples": errors[:5],
        }
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runners_client.aclose()
        await approver.aclose()


def stop_server(server: subprocess.Popen[bytes], grace: float = 5.0) -> dict[str, Any]:
    """SIGTERM, then SIGKILL after ``grace`` seconds (uvicorn's graceful shutdown waits for every
    pending long-poll to run out, even one whose client has gone)."""
    stopping = time.perf_counter()
    server.terminate()
    try:
        server.wait(grace)
        killed = False
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        killed = True
    return {"seconds": round(time.perf_counter() - stopping, 2), "killed_after_grace": killed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="waiting runners (N)")
    parser.add_argument("--decisions", type=int, default=50, help="decisions to time")
    parser.add_argument("--wait", type=float, default=30.0, help="long-poll wait, seconds")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="window for RSS and CPU while all runners wait",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds after the last poll is sent before measuring",
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=0.05,
        help="pause between a runner's re-poll and the decision, seconds",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "server_capacity.json")
    args = parser.parse_args()
    if args.clients < 1 or args.decisions < 1:
        parser.error("--clients and --decisions must be at least 1")
    args.decisions = min(args.decisions, args.clients)
    raise_file_limit(2 * args.clients + 256)

    from runner.approvals.identity import parse_directory
    from runner.cli.server import open_store

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="server-capacity-") as folder:
        database = f"sqlite:///{folder}/server.db"
        store = open_store(database)
        store.import_directory(parse_directory(PEOPLE_YML.encode(), "people.yml"))
        runner_token = store.issue_token("runner", label="capacity")
        approver_token = store.issue_token("approver", "alice")
        store.engine.dispose()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(folder) / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_SERVER_")}
        with log.open("wb") as out:
            server = subprocess.Popen(
                [*runner_command(), "server", "--database", database, "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the server did not start:\n{log.read_text()}")
                time.sleep(0.05)
            started = sample(server.pid)
            figures = asyncio.run(bench(args, url, server.pid, runner_token, approver_token))
        finally:
            stop = stop_server(server)
        problems = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if "Error" in line or "Traceback" in line
        ]

    decided = figures["decisions"]["from_submit_response"]
    result = {
        "benchmark": "server_capacity",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "database": "sqlite",
        "clients": args.clients,
        "decisions_timed": args.decisions,
        "long_poll_wait_s": args.wait,
        "server_rss_mb_at_start": round(started.rss_kb / 1024, 1),
        **figures,
        "server_stop": stop,
        "server_log_problems": problems[:10],
        "goals": {
            "median_ms": GOAL_MEDIAN_MS,
            "p99_ms": GOAL_P99_MS,
            "median_met": decided["median_ms"] < GOAL_MEDIAN_MS,
            "p99_met": decided["p99_ms"] < GOAL_P99_MS,
        },
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nwritten to {args.out}")
    return 0 if result["goals"]["median_met"] and result["goals"]["p99_met"] else 1


def print_table(result: dict[str, Any]) -> None:
    idle, decisions = result["idle"], result["decisions"]
    rows = [
        ("waiting runners", f"{result['clients']}"),
        ("create N interruptions", f"{result['create_seconds']} s"),
        ("server RSS at start", f"{result['server_rss_mb_at_start']} MB"),
        (
            f"server RSS, N waiting ({idle['window_s']:g} s)",
            f"{idle['rss_mb_start']} -> {idle['rss_mb_end']} MB (peak {idle['rss_mb_peak']})",
        ),
        ("server CPU, N waiting", f"{idle['cpu_percent']} % of one core"),
        ("server threads", f"{idle['threads']}"),
        ("polls answered in the window", f"{idle['polls_answered_in_window']}"),
    ]
    for name, key in (
        ("decision -> runner (from submit response)", "from_submit_response"),
        ("decision -> runner (from submit sent)", "from_submit_request"),
        ("submit round trip", "submit_round_trip"),
        ("assignment -> runner", "assign_from_response"),
    ):
        s = decisions[key]
        rows.append(
            (
                name,
                f"median {s['median_ms']} ms, p99 {s['p99_ms']} ms, "
                f"max {s['max_ms']} ms (n={s['samples']})",
            )
        )
    rows += [
        ("server CPU during decisions", f"{decisions['cpu_percent']} % of one core"),
        (
            "runner polls / timeouts / errors",
            f"{result['runner_polls']} / {result['runner_poll_timeouts']} / "
            f"{result['runner_errors']}",
        ),
        ("goal median < 100 ms", "met" if result["goals"]["median_met"] else "NOT met"),
        ("goal p99 < 500 ms", "met" if result["goals"]["p99_met"] else "NOT met"),
        (
            "server stop on SIGTERM",
            f"{result['server_stop']['seconds']} s"
            + (
                " (killed: pending long-polls hold the shutdown)"
                if result["server_stop"]["killed_after_grace"]
                else ""
            ),
        ),
        ("total time", f"{result['total_seconds']} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
