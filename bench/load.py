"""``runner validate`` and ``runner plan``: the seed workflow, and generated big ones.

- ``workflows/deploy-webapp.yml``: goal under 250 ms each, reference ``python -c pass``.
- generated workflows of 1,000 / 2,500 / 5,000 steps (a mix of ``run`` steps, ``if:``
  conditions reading earlier steps' outputs, ``${{ }}`` and ``#{}`` in ``env``, environment
  scopes): goal 5,000 steps under 2 s, and linear. The reference is a Python process that only
  composes the same file with ruamel.yaml's C parser (what any YAML-based tool pays), so the ratio
  is "how many YAML parses the command costs". Linearity is the marginal cost per step of the
  last size interval over that of the first (1.0: linear; fixed costs cancel out).

A run that takes longer than the time limit is reported as such (not met) rather than waited for.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import PYTHON, ROOT, clean_environ, median, plain_install, row, runner_command

SEED = ROOT / "workflows" / "deploy-webapp.yml"
SEED_GOAL_MS = 250.0
#: a difference between two timings below this is the machine's noise, not a cost
NOISE_S = 0.015
BIG_GOAL_S = 2.0
LINEAR_GOAL = 1.5

YAML_ONLY = (
    "import sys\n"
    "from ruamel.yaml import YAML\n"
    "YAML(typ='safe').compose(open(sys.argv[1], encoding='utf-8').read())\n"
)


def workflow(steps: int) -> str:
    """A valid workflow of ``steps`` steps, every kind of work the loader and planner do."""
    lines = [
        "name: generated",
        "environments: [staging, production]",
        "inputs:",
        "  version:",
        "    type: string",
        "    default: '1.0'",
        "variables:",
        "  Target:",
        "    - value: staging-host",
        "      environments: [staging]",
        "    - value: production-host",
        "      environments: [production]",
        "steps:",
    ]
    for i in range(steps):
        lines += [f"  - id: s{i}", f"    name: Step {i}"]
        if i % 4 == 1:
            lines.append(f"    if: steps.s{i - 1}.outputs.ok == 'true' && inputs.version != ''")
        if i % 4 == 2:
            lines += [
                "    env:",
                "      VERSION: ${{ inputs.version }}",
                '      TARGET: "#{Target}"',
            ]
        if i % 10 == 3:
            lines.append("    environments: [production]")
        lines.append(f'    run: echo "step {i} $VERSION" && echo ok=true >> "$RUNNER_OUTPUT"')
    return "\n".join(lines) + "\n"


def timed(argv: list[str], cwd: Path, env: dict[str, str], limit: float) -> float | None:
    """Wall seconds of one run, or None when it exceeded ``limit`` (then killed)."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]!r}")
    return elapsed


def samples(
    argv: list[str], cwd: Path, env: dict[str, str], repeat: int, limit: float, slow: float = 10.0
) -> list[float] | None:
    """Up to ``repeat`` timings; one only when a run takes over ``slow`` seconds."""
    result: list[float] = []
    for _ in range(repeat):
        elapsed = timed(argv, cwd, env, limit)
        if elapsed is None:
            return None
        result.append(elapsed)
        if elapsed > slow:
            break
    return result


def seed_copy(folder: Path) -> Path:
    """The seed in a workspace of its own whose people file makes the person at this terminal
    (the OS account, which no variable can change) a trader like alice: otherwise `plan`
    refuses, as `run` would, since nobody here could answer the seed's prompt."""
    if not folder.exists():
        (folder / ".git").mkdir(parents=True)
        (folder / "workflows").mkdir()
        shutil.copy(SEED, folder / "workflows" / SEED.name)
        shutil.copytree(ROOT / "actions", folder / "actions")
        (folder / "approvals").mkdir()
        me = pwd.getpwuid(os.geteuid()).pw_name
        people = (ROOT / "approvals" / "people.yml").read_text(encoding="utf-8")
        people = people.replace(
            "  - id: u-bob\n", f"  - id: u-here\n    username: {me}\n  - id: u-bob\n"
        )
        people = people.replace("trading-desk: [alice, bob]", f"trading-desk: [alice, bob, {me}]")
        (folder / "approvals" / "people.yml").write_text(people, encoding="utf-8")
    return folder / "workflows" / SEED.name


def seed_rows(repeat: int, state: Path) -> list[dict[str, Any]]:
    """The seed example in the installed copy (the goal: what users run) and in the editable
    development install (for information: its import finder adds ~20 ms to every start)."""
    plain_python, how = plain_install()
    installs = [("editable", PYTHON)]
    if plain_python is not None:
        installs.insert(0, ("installed", plain_python))
    else:
        print(f"load: no non-editable install ({how}); measuring the editable one", file=sys.stderr)
    rows = []
    for label, python in installs:
        goal = python is installs[0][1]
        rows += _seed_rows(label, python, goal, repeat, state)
    return rows


def _seed_rows(
    label: str, python: str, goal: bool, repeat: int, state: Path
) -> list[dict[str, Any]]:
    runner = runner_command(python)
    env = clean_environ(RUNNER_STATE_DIR=str(state), NO_COLOR="1", RUNNER_ACTOR="bobc")
    seed = seed_copy(state.parent / "seed")
    commands = {
        "validate": [*runner, "validate", str(seed)],
        "plan": [*runner, "plan", str(seed), "--env", "production"],
        "reference": [python, "-c", "pass"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm-up
        timed(argv, seed.parent.parent, env, 60)
    for _ in range(repeat):
        for name, argv in commands.items():
            elapsed = timed(argv, seed.parent.parent, env, 60)
            assert elapsed is not None
            times[name].append(elapsed)
    reference = median(times["reference"]) * 1000
    rows = []
    for name in ("validate", "plan"):
        value = median(times[name]) * 1000
        rows.append(
            row(
                f"load: {name} deploy-webapp.yml ({label})",
                value=value,
                unit="ms",
                reference=reference,
                reference_label="python -c pass",
                ratio=value / reference,
                goal=f"< {SEED_GOAL_MS:.0f} ms" if goal else "info",
                met=value < SEED_GOAL_MS if goal else None,
                details={"samples_ms": [t * 1000 for t in times[name]]},
            )
        )
    return rows


def big_rows(
    sizes_of: dict[str, tuple[int, ...]], repeat: int, limit: float, state: Path, folder: Path
) -> list[dict[str, Any]]:
    runner = runner_command()
    env = clean_environ(RUNNER_STATE_DIR=str(state), NO_COLOR="1")
    (folder / ".git").mkdir(parents=True, exist_ok=True)  # the workspace root
    paths = {}
    reference = {}
    for n in sorted({n for sizes in sizes_of.values() for n in sizes}):
        paths[n] = folder / f"steps-{n}.yml"
        paths[n].write_text(workflow(n))
        taken = samples([PYTHON, "-c", YAML_ONLY, str(paths[n])], folder, env, repeat, limit)
        assert taken is not None
        reference[n] = median(taken)
    rows: list[dict[str, Any]] = []
    for command, sizes in sizes_of.items():
        extra = ["--env", "production"] if command == "plan" else []
        medians: dict[int, float | None] = {}
        for n in sizes:
            taken = samples([*runner, command, str(paths[n]), *extra], folder, env, repeat, limit)
            medians[n] = median(taken) if taken else None
            value = medians[n]
            largest = n == max(sizes) and n >= 5000
            rows.append(
                row(
                    f"load: {command} {n} steps",
                    value=value,
                    unit="s",
                    reference=reference[n],
                    reference_label="YAML compose only",
                    ratio=value / reference[n] if value is not None else None,
                    goal=f"< {BIG_GOAL_S:.0f} s" if largest else "info",
                    met=(value is not None and value < BIG_GOAL_S) if largest else None,
                    details={
                        "samples_s": taken,
                        "per_step_ms": value / n * 1000 if value is not None else None,
                        "timed_out_after_s": None if value is not None else limit,
                    },
                )
            )
        timed = {n: t for n, t in medians.items() if t is not None}
        done = sorted(timed)
        marginal = {
            f"{a}..{b}": (timed[b] - timed[a]) / (b - a) * 1000 for a, b in itertools.pairwise(done)
        }
        linear = None
        inconclusive = False
        if len(done) >= 3:
            first = timed[done[1]] - timed[done[0]]
            m_first = first / (done[1] - done[0])
            m_last = (timed[done[-1]] - timed[done[-2]]) / (done[-1] - done[-2])
            linear = m_last / m_first if first >= NOISE_S else None
            # the first interval's cost was below the machine's noise (at --quick sizes, 250
            # more steps cost about 25-40 ms against swings of 50 ms; measured as 6 ms it gave
            # a ratio of 4.3 for the same code that gave 0.9 a minute before): no ratio, and not
            # a lost figure either (one lost because a size timed out is a regression)
            inconclusive = linear is None
        rows.append(
            row(
                f"load: {command} linearity {sizes[0]}..{sizes[-1]}",
                value=linear,
                unit="x",
                reference=1.0,
                reference_label="constant cost per step",
                ratio=linear,
                goal=f"<= {LINEAR_GOAL}",
                met=linear is not None and linear <= LINEAR_GOAL,
                # a ratio of two small differences: at --quick sizes it varies from 0.8 to 2.4
                # between runs of the same code, so only a ratio over twice the goal counts
                floor=LINEAR_GOAL,
                details={
                    "marginal_per_step_ms": marginal,
                    "per_step_ms": {str(n): timed[n] / n * 1000 for n in done},
                    "note": None if len(done) == len(sizes) else "some sizes timed out",
                    "inconclusive": inconclusive,
                },
            )
        )
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    full = (1000, 2500, 5000)
    # --quick: plan on smaller sizes, to stay short
    sizes_of = {"validate": full, "plan": (250, 500, 1000) if quick else full}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as temp:
        folder = Path(temp)
        rows = seed_rows(5 if quick else 10, folder / "state")
        rows += big_rows(sizes_of, 3, 30.0 if quick else 120.0, folder / "state", folder / "work")
    if quick:
        for found in rows:
            if found["name"].startswith("load: plan linearity"):
                # 250 more steps cost about 25 ms against swings of 50 ms here: the ratio of two
                # such differences went from undefined to 4.7 between runs of the same code.
                # Not checked against the baseline; "plan 1000 steps" (a ratio to composing the
                # YAML) is, and a cost per step that grows would show there as well
                found["details"]["inconclusive"] = True
    return rows
