"""``Format`` (``FormatFunction``) and the date filters (``DateFunction``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from runner.variables.octostache.filters import dates, numbers
from runner.variables.octostache.filters.dates import Clock, Stamp

Options = list[str]


def _typed(kind: str, argument: str, fmt: str) -> str | None:
    if kind in ("int32", "int"):
        integer = numbers.parse_int(argument)
        return None if integer is None else numbers.format_number(integer, fmt)
    if kind == "double":
        double = numbers.parse_double(argument)
        return None if double is None else numbers.format_number(double, fmt)
    if kind == "decimal":
        dec = numbers.parse_decimal(argument)
        return None if dec is None else numbers.format_number(dec, fmt)
    if kind in ("date", "datetime"):
        stamp = dates.parse_datetime(argument)
        return None if stamp is None else dates.format_date(stamp, fmt)
    if kind == "datetimeoffset":
        offset = dates.parse_offset(argument)
        return None if offset is None else dates.format_date(offset, fmt)
    return None


def format_filter(argument: str | None, options: Options) -> str | None:
    """``Format fmt`` (a number if it parses as a decimal, else a date) or ``Format Type fmt``
    with Type one of ``Int32``/``Int``, ``Double``, ``Decimal``, ``Date``/``DateTime``,
    ``DateTimeOffset``. Formats are .NET's, in the invariant culture."""
    if argument is None or not options or len(options) > 2:
        return None
    try:
        if len(options) == 1:
            dec = numbers.parse_decimal(argument)
            if dec is not None:
                return numbers.format_number(dec, options[0])
            offset = dates.parse_offset(argument)
            return None if offset is None else dates.format_date(offset, options[0])
        return _typed(options[0].lower(), argument, options[1])
    except (numbers.FormatError, ValueError, OverflowError):
        return None


def now_date(clock: Clock, utc: bool) -> Callable[[str | None, Options], str | None]:
    """``NowDate [format]`` / ``NowDateUtc [format]`` (round-trip ``O`` by default)."""

    def now(argument: str | None, options: Options) -> str | None:
        if argument is not None or len(options) > 1:
            return None
        try:
            return dates.format_date(dates.now_stamp(clock, utc), options[0] if options else "O")
        except (numbers.FormatError, ValueError):
            return None

    return now


def _amount(options: Options) -> float | None:
    # double.TryParse(NumberStyles.Float, InvariantCulture): no thousands separators.
    if len(options) != 1 or not re.fullmatch(
        r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", options[0]
    ):
        return None
    return float(options[0])


def _duration(unit: timedelta) -> Callable[[str | None, Options], str | None]:
    def add(argument: str | None, options: Options) -> str | None:
        amount = _amount(options)
        if amount is None:
            return None
        try:
            delta = unit * amount
        except OverflowError:
            return None
        return dates.shift(argument, lambda stamp: stamp.shift(delta))

    add.__doc__ = f"Add a number of {unit} to a date (round-trip result)."
    return add


add_seconds = _duration(timedelta(seconds=1))
add_minutes = _duration(timedelta(minutes=1))
add_hours = _duration(timedelta(hours=1))
add_days = _duration(timedelta(days=1))
add_weeks = _duration(timedelta(weeks=1))


def add_months(argument: str | None, options: Options) -> str | None:
    """``AddMonths n``: calendar months, day clamped (31 Jan + 1 month = 28/29 Feb)."""
    if len(options) != 1 or not re.fullmatch(r"\s*[+-]?\d+\s*", options[0]):
        return None
    months = int(options[0])

    def change(stamp: Stamp) -> Stamp:
        return dates.add_months(stamp, months)

    return dates.shift(argument, change)


_SPAN = re.compile(r"\s*(-)?(?:(\d+)\.)?(\d+):(\d+)(?::(\d+)(?:\.(\d{1,7}))?)?\s*")
_SPAN_FOUR = re.compile(r"\s*(-)?(\d+):(\d+):(\d+):(\d+)(?:\.(\d{1,7}))?\s*")


def parse_timespan(text: str) -> timedelta | None:
    """``TimeSpan.TryParse`` (invariant): ``d``, ``[d.]hh:mm[:ss[.f]]``, ``d:hh:mm:ss``; as in
    .NET, ``48:00:00`` is 48 days, since hours over 23 make the first field days."""
    if re.fullmatch(r"\s*-?\d+\s*", text):
        return timedelta(days=int(text))
    four = _SPAN_FOUR.fullmatch(text)
    match = four or _SPAN.fullmatch(text)
    if match is None:
        return None
    if four:
        days, hours, minutes, seconds = (int(four.group(i)) for i in range(2, 6))
    else:
        days = int(match.group(2) or 0)
        hours, minutes, seconds = int(match.group(3)), int(match.group(4)), int(match.group(5) or 0)
        if hours > 23 and match.group(2) is None and match.group(5) is not None:
            if match.group(6):
                return None
            days, hours, minutes, seconds = hours, minutes, seconds, 0
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    fraction = match.group(6) or ""
    micro = int(fraction.ljust(7, "0")[:6]) if fraction else 0
    span = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds, microseconds=micro)
    return -span if match.group(1) else span


def add_timespan(argument: str | None, options: Options) -> str | None:
    """``AddTimeSpan d.hh:mm:ss``."""
    if len(options) != 1:
        return None
    span = parse_timespan(options[0])
    if span is None:
        return None
    return dates.shift(argument, lambda stamp: stamp.shift(span))
