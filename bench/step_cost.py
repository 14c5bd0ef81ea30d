"""What a step costs the runner beyond the shell it starts.

Times ``runner run`` on workflows of N and 2N ``run: "true"`` steps, and a bash loop starting
``bash --noprofile --norc -eo pipefail -c true`` N and 2N times (what a step's process costs at
the least). The per-step cost is ``(t(2N) - t(N)) / N`` for each, which cancels the fixed costs
(interpreter start-up, loading the workflow); the ratio of the two is the runner's overhead
factor (goal: at most 1.3).

    .venv/bin/python bench/step_cost.py [--steps 200] [--repeat 3]

Each run's CPU time (user + system, the runner and every process it waited for) is measured
too, and the same per-step difference is printed beside the wall time: on a shared machine the
wall time of a run swings with the other sessions' load, its CPU time much less.

Prints a table and writes ``bench/results/step_cost.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from common import clean_environ, runner_command

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "step_cost.json"
BASH_STEP = "bash --noprofile --norc -eo pipefail -c true"


#: one run: its wall time and the CPU time (user + system) of it and everything it waited for
Sample = tuple[float, float]


@contextlib.contextmanager
def measured(samples: list[Sample]) -> Iterator[None]:
    """Append the wall and CPU time of the block's child processes to ``samples``. CPU time is
    the steadier figure on a shared machine: another session's load stretches wall time, much
    less the CPU a run uses."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    yield
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    samples.append((wall, cpu))


def workflow(steps: int) -> str:
    lines = ["name: step cost", "steps:"]
    for i in range(steps):
        lines += [f"  - id: s{i}", f"    name: Step {i}", '    run: "true"']
    return "\n".join(lines) + "\n"


def time_runner(
    folder: Path, steps: int, repeat: int, state_root: Path | None = None
) -> list[Sample]:
    path = folder / f"steps-{steps}.yml"
    path.write_text(workflow(steps))
    times = []
    for attempt in range(repeat):
        # a fresh state folder for each run
        state = (state_root or folder) / f"state-{steps}-{attempt}"
        argv = [
            *runner_command(),
            "run",
            str(path),
            "--env",
            "bench",
            "--state-dir",
            str(state),
            "--run-id",
            "bench",
        ]
        with measured(times):
            done = subprocess.run(
                argv,
                cwd=folder,
                env=clean_environ(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        if done.returncode != 0:
            raise SystemExit(f"runner failed ({done.returncode}): {done.stderr}")
        shutil.rmtree(state)
    return times


# What any Python program pays to run a step's shell the way the runner does (its own session,
# output read as it comes while waiting for the exit on the process's pidfd, in one thread), and
# nothing else.
PYTHON_FLOOR = """
import os, select, subprocess, sys
argv = sys.argv[2].split()
for _ in range(int(sys.argv[1])):
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pidfd = os.pidfd_open(process.pid)
    out = process.stdout.fileno()
    poller = select.poll()
    poller.register(out, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    ended = exited = False
    while not (ended and exited):
        for fd, _ in poller.poll():
            if fd == pidfd:
                exited = True
                poller.unregister(pidfd)
            elif not os.read(out, 65536):
                ended = True
                poller.unregister(out)
    process.wait()
    os.close(pidfd)
    process.stdout.close()
"""


def time_python_floor(steps: int, repeat: int) -> list[Sample]:
    times: list[Sample] = []
    for _ in range(repeat):
        with measured(times):
            subprocess.run([sys.executable, "-c", PYTHON_FLOOR, str(steps), BASH_STEP], check=True)
    return times


def memory_folder() -> Path | None:
    """A tmpfs folder, to tell the state folder's file system's share of a step's cost."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="step-cost-", dir=shm))
    return None


def time_bash(steps: int, repeat: int) -> list[Sample]:
    loop = f"for i in $(seq 1 {steps}); do {BASH_STEP}; done"
    times: list[Sample] = []
    for _ in range(repeat):
        with measured(times):
            subprocess.run(["bash", "--noprofile", "--norc", "-c", loop], check=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="N (the larger run has 2N)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, median taken")
    args = parser.parse_args()
    small, large = args.steps, 2 * args.steps

    with tempfile.TemporaryDirectory(prefix="step-cost-") as temp:
        folder = Path(temp)
        (folder / ".git").mkdir()  # marks the workspace root
        memory = memory_folder()
        kinds: dict[str, Callable[[int], list[Sample]]] = {
            "runner": lambda n: time_runner(folder, n, 1),
            "bash": lambda n: time_bash(n, 1),
            "python_floor": lambda n: time_python_floor(n, 1),
        }
        if memory is not None:
            kinds["runner_state_in_memory"] = lambda n: time_runner(folder, n, 1, memory)
        runs: dict[str, dict[int, list[Sample]]] = {name: {small: [], large: []} for name in kinds}
        try:
            # round after round, each kind once at each size: this machine's speed drifts
            # within a minute, and measured one kind after another the ratio drifted with it
            for _ in range(args.repeat):
                for n in (small, large):
                    for name, measure in kinds.items():
                        runs[name][n] += measure(n)
        finally:
            if memory is not None:
                shutil.rmtree(memory, ignore_errors=True)

    table = {}
    for name, by_steps in runs.items():
        medians = {n: statistics.median(w for w, _ in samples) for n, samples in by_steps.items()}
        cpu = {n: statistics.median(c for _, c in samples) for n, samples in by_steps.items()}
        table[name] = {
            "seconds": {str(n): [w for w, _ in samples] for n, samples in by_steps.items()},
            "median_seconds": {str(n): t for n, t in medians.items()},
            "per_step_ms": (medians[large] - medians[small]) / (large - small) * 1000,
            "cpu_seconds": {str(n): [c for _, c in samples] for n, samples in by_steps.items()},
            "cpu_per_step_ms": (cpu[large] - cpu[small]) / (large - small) * 1000,
        }
    ratio = table["runner"]["per_step_ms"] / table["bash"]["per_step_ms"]
    cpu_ratio = table["runner"]["cpu_per_step_ms"] / table["bash"]["cpu_per_step_ms"]

    print(f"{'':24}{f't({small})':>10}{f't({large})':>10}{'per step':>12}{'CPU a step':>12}")
    for name, row in table.items():
        med = row["median_seconds"]
        print(
            f"{name:24}{med[str(small)]:>9.3f}s{med[str(large)]:>9.3f}s"
            f"{row['per_step_ms']:>9.2f} ms{row['cpu_per_step_ms']:>9.2f} ms"
        )
    print(f"ratio runner/bash per step: {ratio:.2f} (goal <= 1.3); CPU: {cpu_ratio:.2f}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "steps": [small, large],
                "repeat": args.repeat,
                "runner": table["runner"],
                "bash": table["bash"],
                "python_floor": table["python_floor"],
                "runner_state_in_memory": table.get("runner_state_in_memory"),
                "ratio": ratio,
                "cpu_ratio": cpu_ratio,
                "goal": 1.3,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
