""".NET dates (invariant culture): parsing, ``ToString(format)``, and the date filters.

A :class:`Stamp` is a .NET ``DateTime`` (``kind`` unspecified/utc/local) or ``DateTimeOffset``
(``kind`` offset): a wall-clock time plus the offset ``z`` specifiers print. "Local" is the
machine's time zone, as in .NET.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from msgspec import Struct
from msgspec.structs import replace

from runner.variables.octostache.filters.numbers import FormatError

MONTHS = [calendar.month_name[i] for i in range(1, 13)]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTH_INDEX = {name[:3].lower(): i + 1 for i, name in enumerate(MONTHS)}
_MONTH_WORDS = "|".join(sorted({*MONTHS, *(m[:3] for m in MONTHS)}, key=len, reverse=True))
_DAY_WORDS = "|".join(sorted({*DAYS, *(d[:3] for d in DAYS)}, key=len, reverse=True))
_TIME = r"(?:[T\s]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?\s*([AaPp][Mm])?)?"
_ZONE = r"\s*(Z|GMT|UTC|[+-]\d{1,2}(?::?\d{2})?)?"
_PATTERNS = [
    ("ymd", re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})" + _TIME + _ZONE, re.I)),
    ("mdy", re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})" + _TIME + _ZONE, re.I)),
    (
        "dmy",
        re.compile(
            rf"(?:(?:{_DAY_WORDS}),?\s+)?(\d{{1,2}})\s+({_MONTH_WORDS})\.?,?\s+(\d{{4}})"
            + _TIME
            + _ZONE,
            re.I,
        ),
    ),
    (
        "mdy_words",
        re.compile(
            rf"(?:(?:{_DAY_WORDS}),?\s+)?({_MONTH_WORDS})\.?\s+(\d{{1,2}}),?\s+(\d{{4}})"
            + _TIME
            + _ZONE,
            re.I,
        ),
    ),
]
_STANDARD = {
    "d": "MM/dd/yyyy",
    "D": "dddd, dd MMMM yyyy",
    "f": "dddd, dd MMMM yyyy HH:mm",
    "F": "dddd, dd MMMM yyyy HH:mm:ss",
    "g": "MM/dd/yyyy HH:mm",
    "G": "MM/dd/yyyy HH:mm:ss",
    "m": "MMMM dd",
    "M": "MMMM dd",
    "s": "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
    "t": "HH:mm",
    "T": "HH:mm:ss",
    "y": "yyyy MMMM",
    "Y": "yyyy MMMM",
}


class Stamp(Struct, frozen=True):
    """A .NET date: naive wall time, kind, and the offset that ``z``/``K`` print."""

    wall: datetime
    kind: str = "unspecified"  # unspecified | utc | local | offset
    offset: timedelta | None = None

    def zone(self) -> timedelta:
        """The offset shown by ``z``: its own, else the local zone's at that time."""
        if self.offset is not None:
            return self.offset
        if self.kind == "utc":
            return timedelta(0)
        return local_offset(self.wall)

    def shift(self, delta: timedelta) -> Stamp:
        """``date + timespan`` (wall clock arithmetic, offset kept)."""
        return replace(self, wall=self.wall + delta)

    def to_utc(self) -> datetime:
        """The same instant in UTC, naive."""
        return self.wall - self.zone()


def local_offset(wall: datetime) -> timedelta:
    """The machine's UTC offset at a wall-clock time."""
    offset = wall.astimezone().utcoffset()
    return offset if offset is not None else timedelta(0)


def _offset(text: str) -> timedelta:
    if text.upper() in ("Z", "GMT", "UTC"):
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:-2]) if len(digits) > 2 else int(digits)
    minutes = int(digits[-2:]) if len(digits) > 2 else 0
    if hours > 14 or minutes > 59:
        raise ValueError("offset out of range")
    return sign * timedelta(hours=hours, minutes=minutes)


def parse(text: str) -> tuple[datetime, timedelta | None] | None:
    """``DateTime.Parse`` shapes: the wall time, and the offset if the text has one."""
    stripped = text.strip()
    for shape, pattern in _PATTERNS:
        match = pattern.fullmatch(stripped)
        if not match:
            continue
        g = match.groups()
        if shape == "ymd":
            year, month, day = int(g[0]), int(g[1]), int(g[2])
        elif shape == "mdy":
            month, day, year = int(g[0]), int(g[1]), int(g[2])
        elif shape == "dmy":
            day, month, year = int(g[0]), _MONTH_INDEX[g[1][:3].lower()], int(g[2])
        else:
            month, day, year = _MONTH_INDEX[g[0][:3].lower()], int(g[1]), int(g[2])
        hour, minute = int(g[3] or 0), int(g[4] or 0)
        second = int(g[5] or 0)
        micro = int((g[6] or "0").ljust(7, "0")[:6])
        meridiem = (g[7] or "").lower()
        try:
            if meridiem:
                if not 1 <= hour <= 12:
                    return None
                hour = hour % 12 + (12 if meridiem == "pm" else 0)
            wall = datetime(year, month, day, hour, minute, second, micro)
            return wall, _offset(g[8]) if g[8] else None
        except ValueError:
            return None
    time_only = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", stripped)
    if time_only:
        try:
            today = date.today()
            wall = datetime.combine(today, datetime.min.time()).replace(
                hour=int(time_only.group(1)),
                minute=int(time_only.group(2)),
                second=int(time_only.group(3) or 0),
            )
        except ValueError:
            return None
        return wall, None
    return None


def parse_datetime(text: str, roundtrip: bool = False) -> Stamp | None:
    """``DateTime.TryParse``: an offset converts to local time (``Local`` kind), except that with
    ``RoundtripKind`` a ``Z`` keeps UTC."""
    parsed = parse(text)
    if parsed is None:
        return None
    wall, offset = parsed
    if offset is None:
        return Stamp(wall)
    if roundtrip and text.strip().upper().endswith("Z"):
        return Stamp(wall, "utc")
    utc = (wall - offset).replace(tzinfo=UTC)
    local = utc.astimezone()
    return Stamp(local.replace(tzinfo=None), "local")


def parse_offset(text: str) -> Stamp | None:
    """``DateTimeOffset.TryParse``: no offset in the text means the local one."""
    parsed = parse(text)
    if parsed is None:
        return None
    wall, offset = parsed
    return Stamp(wall, "offset", offset if offset is not None else local_offset(wall))


def _zone_text(offset: timedelta, width: int) -> str:
    total = int(offset.total_seconds() // 60)
    sign = "-" if total < 0 else "+"
    hours, minutes = divmod(abs(total), 60)
    if width == 1:
        return f"{sign}{hours}"
    if width == 2:
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}:{minutes:02d}"


def _roundtrip(stamp: Stamp) -> str:
    text = stamp.wall.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.wall.microsecond:06d}0"
    if stamp.kind == "utc":
        return text + "Z"
    if stamp.kind in ("local", "offset"):
        return text + _zone_text(stamp.zone(), 3)
    return text


def format_date(stamp: Stamp, fmt: str) -> str:
    """``ToString(format)`` in the invariant culture (standard or custom format)."""
    if fmt == "":
        fmt = "G"
    if len(fmt) == 1:
        if fmt in "oO":
            return _roundtrip(stamp)
        if fmt in "rR":
            return _custom(Stamp(stamp.to_utc()), "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'")
        if fmt == "u":
            target = Stamp(stamp.to_utc()) if stamp.kind == "offset" else stamp
            return _custom(target, "yyyy'-'MM'-'dd HH':'mm':'ss'Z'")
        if fmt == "U":
            if stamp.kind == "offset":
                raise FormatError("U is not valid for a DateTimeOffset")
            return _custom(Stamp(stamp.to_utc()), "dddd, dd MMMM yyyy HH:mm:ss")
        if fmt not in _STANDARD:
            raise FormatError(f"unknown standard date format {fmt!r}")
        return _custom(stamp, _STANDARD[fmt])
    return _custom(stamp, fmt)


def _run(fmt: str, i: int) -> int:
    j = i
    while j < len(fmt) and fmt[j] == fmt[i]:
        j += 1
    return j - i


def _custom(stamp: Stamp, fmt: str) -> str:
    w = stamp.wall
    out: list[str] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        n = _run(fmt, i)
        if c == "d":
            out.append(
                str(w.day)
                if n == 1
                else f"{w.day:02d}"
                if n == 2
                else DAYS[w.weekday()][:3]
                if n == 3
                else DAYS[w.weekday()]
            )
        elif c in "fF":
            if n > 7:
                raise FormatError("too many fraction digits")
            digits = f"{w.microsecond:06d}0"[:n]
            if c == "F":
                digits = digits.rstrip("0")
                if not digits and out and out[-1].endswith("."):
                    out[-1] = out[-1][:-1]
            out.append(digits)
        elif c == "g":
            out.append("A.D.")
        elif c == "h":
            out.append(str(w.hour % 12 or 12) if n == 1 else f"{w.hour % 12 or 12:02d}")
        elif c == "H":
            out.append(str(w.hour) if n == 1 else f"{w.hour:02d}")
        elif c == "K":
            out.append(
                "Z"
                if stamp.kind == "utc"
                else ""
                if stamp.kind == "unspecified"
                else _zone_text(stamp.zone(), 3)
            )
            n = 1
        elif c == "m":
            out.append(str(w.minute) if n == 1 else f"{w.minute:02d}")
        elif c == "M":
            out.append(
                str(w.month)
                if n == 1
                else f"{w.month:02d}"
                if n == 2
                else MONTHS[w.month - 1][:3]
                if n == 3
                else MONTHS[w.month - 1]
            )
        elif c == "s":
            out.append(str(w.second) if n == 1 else f"{w.second:02d}")
        elif c == "t":
            designator = "AM" if w.hour < 12 else "PM"
            out.append(designator[:1] if n == 1 else designator)
        elif c == "y":
            out.append(
                str(w.year % 100)
                if n == 1
                else f"{w.year % 100:02d}"
                if n == 2
                else str(w.year).zfill(n)
            )
        elif c == "z":
            out.append(_zone_text(stamp.zone(), min(n, 3)))
        elif c == ":":
            out.append(":")
            n = 1
        elif c == "/":
            out.append("/")
            n = 1
        elif c in "'\"":
            end = fmt.find(c, i + 1)
            if end < 0:
                raise FormatError("unterminated quote")
            out.append(fmt[i + 1 : end])
            n = end - i + 1
        elif c == "%" and i + 1 < len(fmt) and fmt[i + 1] != "%":
            out.append(_custom(stamp, fmt[i + 1]) if fmt[i + 1] not in "'\"\\" else "")
            n = 2
        elif c == "\\":
            if i + 1 >= len(fmt):
                raise FormatError("trailing escape")
            out.append(fmt[i + 1])
            n = 2
        else:
            out.append(c)
            n = 1
        i += n
    return "".join(out)


Clock = Callable[[], datetime]


def now_stamp(clock: Clock, utc: bool) -> Stamp:
    """``DateTime.Now`` (kind unspecified) or ``DateTime.UtcNow`` from the injected clock.

    An aware clock value is local time in its own offset; a naive one is local wall time."""
    now = clock()
    if utc:
        instant = now if now.tzinfo is not None else now.astimezone()
        return Stamp(instant.astimezone(UTC).replace(tzinfo=None), "utc")
    if now.tzinfo is not None:
        return Stamp(now.replace(tzinfo=None), "unspecified", now.utcoffset())
    return Stamp(now)


def add_months(stamp: Stamp, months: int) -> Stamp:
    """``DateTime.AddMonths``: calendar months, the day clamped to the month's length."""
    w = stamp.wall
    total = w.year * 12 + (w.month - 1) + months
    year, month = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("year out of range")
    day = min(w.day, calendar.monthrange(year, month + 1)[1])
    return replace(stamp, wall=w.replace(year=year, month=month + 1, day=day))


def shift(argument: str | None, change: Callable[[Stamp], Stamp]) -> str | None:
    """``DateFunction.Shift``: naive stays naive, ``Z`` stays UTC, an explicit offset is kept;
    the result is round-trip (``O``) text."""
    if argument is None:
        return None
    try:
        stamp = parse_datetime(argument, roundtrip=True)
        if stamp is not None and stamp.kind != "local":
            return _roundtrip(change(stamp))
        offset = parse_offset(argument)
        if offset is not None:
            return _roundtrip(change(offset))
    except (OverflowError, ValueError):
        return None
    return None
