"""A file name that is not UTF-8 is named as one, with what to do: it was refused as "argument 2
is not UTF-8 text / hint: give inputs, notes and fields as UTF-8", which told someone whose file
name it was nothing (newcomer pass). Any other value stays unshown (it may be a secret)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import cli_in

#: ``wé.yml`` in Latin-1, as Python reads such a name (``\udce9`` for the byte 0xe9)
NAME = os.fsdecode(b"w\xe9.yml")
RENAME = (
    "hint: rename it (runs, logs and approvals keep file names as text), then pass the new name\n"
)


@pytest.mark.parametrize(
    ("args", "number"),
    [
        (("validate", NAME), 2),
        (("run", "--env", "dev", NAME), 4),
        (("approval", "new", "--request", "r\udce9.json", "--decision", "proceed"), 4),
        (("approval", "new", "--out=a\udce9", "--decision", "proceed"), 3),
    ],
    ids=["existing-file", "run", "after-a-path-option", "path-option-with-equals"],
)
def test_a_file_name_that_is_not_utf8_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], number: int
) -> None:
    (tmp_path / NAME).write_text("name: w\n")  # there, under its name of bytes
    done = cli_in(monkeypatch, tmp_path, {"PATH": os.environ["PATH"]}, *args)
    assert (done.returncode, done.stdout) == (2, "")
    shown = "w\ufffd.yml" if NAME in args else ("r\ufffd.json" if number == 4 else "a\ufffd")
    assert (
        done.stderr == f"error: argument {number}: the file name {shown!r} is not UTF-8\n{RENAME}"
    )


def test_another_value_is_still_not_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ("run", "w.yml", "--env", "e", "--input", "version=s3cr3t\udcff")
    done = cli_in(monkeypatch, tmp_path, {"PATH": os.environ["PATH"]}, *args)
    assert done.returncode == 2
    assert done.stderr == (
        "error: argument 6 (version=...) is not UTF-8 text\n"
        "hint: give inputs, notes and fields as UTF-8 (the terminal's or CI's encoding)\n"
    )
