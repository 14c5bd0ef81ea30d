"""Make it huge: what a step writes to its files (``$RUNNER_OUTPUT``, ``$RUNNER_ENV``, the Octopus
variables, the summary) is bounded, and no run writes a record it could not read back.

A step wrote 200 MB to ``$RUNNER_OUTPUT``: the runner grew past 1.4 GB, "succeeded", and recorded
the output in ``record.json`` and ``events.jsonl``, each past the 64 MiB the runner reads: `runner
runs show` and `runner resume` refused the run ever after (`runs list` left it out), so a run
detached at a later gate could never be resumed. A step that replaced its ``$RUNNER_OUTPUT`` by a
link to ``/dev/zero`` grew the runner until the machine's memory ran out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.memory_limited import limited_runner
from helpers.run_helpers import Workspace

from runner import masking
from runner.engine import record as record_module
from runner.engine.record import RecordStore

runner = limited_runner


HUGE = """\
name: deploy
steps:
  - id: big
    name: Big
    run: |
      {{ printf 'big='; head -c {size} /dev/zero | tr '\\0' 'y'; echo; }} >> "{file}"
  - id: after
    name: After
    run: echo after
"""


@pytest.mark.parametrize(
    ("variable", "size"),
    [
        ("$RUNNER_OUTPUT", 70_000_000),
        ("$GITHUB_ENV", 2_000_000),
    ],
)
def test_a_huge_step_file_fails_the_step_and_the_record_stays_readable(
    tmp_path: Path, variable: str, size: int
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(HUGE.format(size=size, file=variable))
    result = runner(tmp_path, "run", "w.yml", "--env", "dev", "--run-id", "r1")
    assert result.returncode == 1, result.stdout + result.stderr
    names = {"$GITHUB_ENV": "$RUNNER_ENV ($GITHUB_ENV)"}
    shown_as = names.get(variable, variable + " ($GITHUB_" + variable.split("_", 1)[1] + ")")
    assert f"the step wrote more than 1 MiB to {shown_as}" in result.stdout
    assert "internal error" not in result.stderr
    shown = runner(tmp_path, "runs", "show", "r1")
    assert shown.returncode == 0, shown.stderr
    assert "After" in shown.stdout
    for name in ("record.json", "events.jsonl"):
        assert (tmp_path / ".runner" / "runs" / "r1" / name).stat().st_size < 100_000


def test_a_huge_step_summary_is_left_out_and_the_step_goes_on(tmp_path: Path) -> None:
    """GitHub leaves a summary past 1 MiB out, with an error, and the step succeeds (a test
    report of 2 MB is common): here it failed the deployment step that wrote it. It is left
    out with an error annotation now, and the record stays small."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(HUGE.format(size=2_000_000, file="$RUNNER_STEP_SUMMARY"))
    result = runner(tmp_path, "run", "w.yml", "--env", "dev", "--run-id", "r1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "$RUNNER_STEP_SUMMARY ($GITHUB_STEP_SUMMARY) holds more than 1 MiB, the most a step "
        "summary may (GitHub's limit too): it is left out"
    ) in result.stdout
    assert "after" in result.stdout
    for name in ("record.json", "events.jsonl"):
        assert (tmp_path / ".runner" / "runs" / "r1" / name).stat().st_size < 100_000


@pytest.mark.parametrize("variable", ["$RUNNER_OUTPUT", "$RUNNER_OCTOPUS_VARIABLES"])
def test_a_step_file_linked_to_dev_zero_fails_the_step(tmp_path: Path, variable: str) -> None:
    if variable == "$RUNNER_OCTOPUS_VARIABLES":
        from runner.steps.file_commands import OCTOPUS_VARIABLES_ENV

        variable = f"${OCTOPUS_VARIABLES_ENV}"
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(
        "name: deploy\nsteps:\n  - id: z\n    name: Z\n"
        f'    run: ln -sf /dev/zero "{variable}"; echo a line is printed\n'
    )
    result = runner(tmp_path, "run", "w.yml", "--env", "dev", "--run-id", "r1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{variable} " in result.stdout
    assert "was replaced by something that is not a regular file" in result.stdout
    assert "internal error" not in result.stderr


def test_a_record_past_what_the_runner_reads_is_never_written(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However it grows (many steps' outputs, each under its own limit), the run stops before
    its record passes what a resume reads, the record it saved last intact."""
    monkeypatch.setattr(record_module, "MAX_RECORD_FILE_BYTES", 40_000)
    steps = "".join(
        f"  - id: s{i}\n    name: S{i}\n    run: printf 'o=%0{5000}d\\n' 0 >> \"$RUNNER_OUTPUT\"\n"
        for i in range(20)
    )
    outcome = workspace.run(f"name: deploy\nsteps:\n{steps}", environment="dev")
    assert outcome.code == 5, outcome.err
    assert "more than the 0 MiB the runner reads back" in outcome.err
    assert "the run stops here, its last saved record is intact" in outcome.err
    journal = outcome.state_dir / "runs" / outcome.run_id / "events.jsonl"
    assert journal.stat().st_size <= 40_000
    record = RecordStore(outcome.state_dir).load(outcome.run_id)
    assert record.steps[0].status == "success"
    assert record.steps[-1].status == "pending"


def test_a_line_of_200_mb_is_logged_in_pieces(tmp_path: Path) -> None:
    """Held whole until its end, one line of 300 MB (a minified file, `cat` of a binary) grew
    the runner by 1.8 GB."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(
        "name: deploy\nsteps:\n  - id: z\n    name: Z\n"
        "    run: head -c 200000000 /dev/zero | tr '\\0' x; echo; echo after\n"
    )
    with (tmp_path / "out.txt").open("w") as out:
        result = runner(tmp_path, "run", "w.yml", "--env", "dev", stdout=out)
    assert result.returncode == 0, result.stderr
    with (tmp_path / "out.txt").open() as shown:
        lengths = [len(line) for line in shown]
    assert sum(lengths) > 200_000_000
    assert max(lengths) < 2 * 1024 * 1024  # pieces of about 1 MiB


def test_a_secret_across_a_pieces_end_is_masked(workspace: Workspace) -> None:
    piece = 1024 * 1024
    script = "".join(
        f"printf '%*s' {piece - offset} '' | tr ' ' x; printf '%s' \"$PW\"\n"
        for offset in range(1, 24)
    )
    workflow = (
        "name: deploy\nvariables:\n  Pw: {from-env: PW, secret: true}\nsteps:\n"
        "  - id: a\n    name: A\n    env: {PW: '#{Pw}'}\n    run: |\n"
        + "".join(f"      {line}\n" for line in script.splitlines())
        + "      echo\n"
    )
    outcome = workspace.run(workflow, environment="dev", env={"PW": "hunter2-0123456789"})
    assert outcome.code == 0, outcome.err
    assert outcome.out.count("***") == 23
    for part in ("hunter2", "0123456789", "r2-01", "3456789"):
        assert part not in outcome.out


def test_a_sensitive_variable_set_just_before_a_long_line_is_masked_across_its_pieces(
    workspace: Workspace,
) -> None:
    """Where a piece ends was decided with the secrets the masker knew before the piece was
    logged, and a ``-sensitive`` Octopus variable is learned when a line is logged: one set
    just before a long line was cut inside it, ``hunter2-01`` in one piece and ``23456789`` in
    the next, each shown (neither is the secret). The variables are read before the cut."""
    workflow = (
        "name: deploy\nsteps:\n  - id: a\n    name: A\n    run: |\n"
        "      token=hunter2-0123456789\n"
        '      set_octopusvariable DbToken "$token" -sensitive\n'
        "      printf '%*s' $((1024 * 1024 - 5)) '' | tr ' ' x; printf hunter2-01; sleep 0.5\n"
        "      printf 23456789; printf '%*s' 1000 '' | tr ' ' z; echo\n"
    )
    outcome = workspace.run(workflow, environment="dev")
    assert outcome.code == 0, outcome.err
    assert "xxx***zzz" in outcome.out
    for part in ("hunter2", "23456789"):
        assert part not in outcome.out


def test_runs_list_names_a_run_it_cannot_read(workspace: Workspace) -> None:
    """Such a run (a record written before this limit, or replaced in the artifact) was left
    out of `runner runs list` without a word, which then said "no runs recorded"."""
    outcome = workspace.run(
        "name: deploy\nsteps:\n  - {id: a, name: A, run: 'true'}\n", environment="dev"
    )
    assert outcome.code == 0, outcome.err
    with outcome.record_path.open("r+b") as handle:
        handle.truncate(65 << 20)
    listed = runner(workspace.root, "runs", "list", "--state-dir", str(workspace.state_dir))
    assert listed.returncode == 0, listed.stderr
    assert "no runs recorded" not in listed.stdout
    assert (
        f"warning: run {outcome.run_id} is left out: its record cannot be read: " in listed.stderr
    )
    assert "more than the 64 MiB the runner reads" in listed.stderr


def test_many_add_masks_compile_each_secret_a_few_times_not_at_every_add(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 `::add-mask::` lines, each followed by a line printed, took the runner 6 minutes
    and 870 MB: the masker compiled every secret and its encoded forms again at each one.
    Each string is now compiled again about log2(n) times (``_Levels``), and every value is
    still masked."""
    compiled = [0]
    real = masking._Matcher.__init__

    def counting(self: masking._Matcher, words: Any) -> None:
        words = list(words)
        compiled[0] += len(words)
        real(self, words)

    monkeypatch.setattr(masking._Matcher, "__init__", counting)
    count = 300
    script = (
        f'for i in $(seq 1 {count}); do echo "::add-mask::value-$i-abcdefgh"; '
        'echo "line value-$i-abcdefgh"; done'
    )
    outcome = workspace.run(
        f"name: deploy\nsteps:\n  - id: a\n    name: A\n    run: '{script}'\n", environment="dev"
    )
    assert outcome.code == 0, outcome.err
    assert "value-" not in outcome.out
    assert outcome.out.count("line ***") == count
    probe = masking.Masker()  # the strings the run's masker held at the end
    for i in range(1, count + 1):
        probe.add(f"value-{i}-abcdefgh")
    strings = len(probe.patterns)
    assert compiled[0] <= 12 * strings, (compiled[0], strings)  # it was about count / 2 times
