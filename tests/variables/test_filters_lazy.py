"""Filters are imported when first used, and every name in the table resolves to one."""

from __future__ import annotations

import subprocess
import sys

from runner.variables.octostache import filters


def test_every_filter_name_resolves_to_a_function() -> None:
    for name in filters.NAMES - set(filters.CLOCK_FILTERS):
        assert callable(filters._function(name)), name


def test_substituting_without_filters_does_not_import_them() -> None:
    code = (
        "import sys\n"
        "from runner.variables import octostache\n"
        "octostache.substitute('#{A} and #{B | ToUpper}', {'A': 'a', 'B': 'b'})\n"
        "loaded = sorted(m for m in sys.modules if '.octostache.filters.' in m)\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.rsplit(".", 1)[-1] for name in out.stdout.strip().split(",")}
    assert "text" in loaded  # ToUpper's module (which uses the regular expression one)
    assert loaded <= {"text", "regex"}
