"""``runner.steps.xtrace.traced_secrets``: the value a ``set -x`` trace shows of a command that
makes it secret, read as bash quoted it. The lines are bash's own (checked in the last test)."""

from __future__ import annotations

import subprocess

import pytest

from runner.steps.xtrace import traced_secrets


@pytest.mark.parametrize(
    ("line", "secrets"),
    [
        ("+ set_octopusvariable ApiToken tok-123 -sensitive", ["tok-123"]),
        ("+ set_octopusvariable ApiToken 'a b'\\''c' -sensitive", ["a b'c"]),
        ("++ set_octopusvariable T $'a\\tb\\001' -sensitive", ["a\tb\x01"]),
        ("+ set_octopusvariable T $'caf\\303\\251 x' -sensitive", ["café x"]),
        ("+ set_octopusvariable T $'\\x41\\u00e9\\e' -sensitive", ["Aé\x1b"]),
        ('+ set_octopusvariable T "q\\"uote" -sensitive', ['q"uote']),
        ("+ echo ::add-mask::tok-456", ["tok-456"]),
        ("+ echo '::add-mask::two words'", ["two words"]),
        ("+++ printf %s\\\\n ::add-mask::a\\ b", ["a b"]),
        # not secrets: a plain variable, no trace prefix, a wrong form, an empty value
        ("+ set_octopusvariable ApiToken tok-123", []),
        ("set_octopusvariable ApiToken tok-123 -sensitive", []),
        ("+set_octopusvariable ApiToken tok-123 -sensitive", []),
        ("+ set_octopusvariable A B C -sensitive", []),
        ("+ echo ::add-mask::", []),
        # a quote left open: the value goes on over the next line (a gap, documented)
        ("+ set_octopusvariable T 'first line", []),
        ("+ set_octopusvariable T $'unclosed", []),
    ],
)
def test_traced_secrets(line: str, secrets: list[str]) -> None:
    assert traced_secrets(line) == secrets


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
@pytest.mark.parametrize(
    "value", ["plain-tok-1", "with space and 'quote'", "tab\there", "ctl\x01x", "é ünï", 'q"$`\\']
)
def test_the_value_is_read_back_from_bashs_own_trace(value: str, locale: str) -> None:
    """bash, not a hand-written line, traces the call: whatever quoting it chose is read."""
    script = 'set_octopusvariable() { :; }; set -x; set_octopusvariable Name "$1" -sensitive'
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script, "bash", value],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": locale},
        check=True,
    )
    traced = [line for line in done.stderr.splitlines() if "set_octopusvariable Name" in line]
    assert [traced_secrets(line) for line in traced] == [[value]]
