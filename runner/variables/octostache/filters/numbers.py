""".NET number parsing and formatting (invariant culture), as ``FormatFunction`` relies on.

Parsing follows ``decimal``/``double``/``int.TryParse`` with their default number styles;
formatting implements the standard (``C D E F G N P R X``) and custom (``0 # . , % ‰ E0 ;``)
format strings. Decimals round half away from zero, as .NET's ``decimal`` does.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_DECIMAL_MAX = Decimal("79228162514264337593543950335")
_NUMBER = re.compile(r"\s*([+-]?)\s*((?:\d[\d,]*)?)(?:\.(\d*))?\s*([+-]?)\s*")
_FLOAT = re.compile(r"\s*([+-]?)((?:\d[\d,]*)?)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*")
_INTEGER = re.compile(r"\s*([+-]?\d+)\s*")
_STANDARD = re.compile(r"([A-Za-z])(\d{0,9})")

Number = Decimal | int | float


class FormatError(ValueError):
    """.NET's ``FormatException``."""


def parse_decimal(text: str) -> Decimal | None:
    """``decimal.TryParse`` (``NumberStyles.Number``: signs, thousands, decimal point)."""
    match = _NUMBER.fullmatch(text)
    if not match or (match.group(1) and match.group(4)):
        return None
    whole, frac = match.group(2).replace(",", ""), match.group(3) or ""
    if not whole and not frac:
        return None
    try:
        value = Decimal(f"{whole or '0'}.{frac}" if match.group(3) is not None else whole)
    except InvalidOperation:
        return None
    if abs(value) > _DECIMAL_MAX:
        return None
    return -value if "-" in (match.group(1), match.group(4)) else value


def parse_double(text: str) -> float | None:
    """``double.TryParse`` (``Float | AllowThousands``), including ``NaN`` and ``Infinity``."""
    stripped = text.strip()
    specials = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
    if stripped in specials:
        return specials[stripped]
    match = _FLOAT.fullmatch(text)
    if not match or not (match.group(2) or match.group(3)):
        return None
    body = f"{match.group(1)}{match.group(2).replace(',', '') or '0'}.{match.group(3) or '0'}"
    value = float(body + (f"e{match.group(4)}" if match.group(4) else ""))
    return value


def parse_int(text: str, bits: int = 32) -> int | None:
    """``int.TryParse`` (``NumberStyles.Integer``), range-checked."""
    match = _INTEGER.fullmatch(text)
    if not match:
        return None
    value = int(match.group(1))
    limit = 1 << (bits - 1)
    return value if -limit <= value < limit else None


def _to_decimal(value: Number) -> Decimal:
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def _round(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _group(digits: str) -> str:
    head = len(digits) % 3 or 3
    parts = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return ",".join(parts)


def _fixed(value: Decimal, places: int, grouped: bool) -> str:
    text = f"{abs(_round(value, places)):f}"
    whole, _, frac = text.partition(".")
    if grouped:
        whole = _group(whole)
    return whole + ("." + frac if places > 0 else "")


def _negative(value: Decimal, places: int) -> bool:
    return value < 0 and _round(value, places) != 0


def _exponent(value: Decimal, precision: int, letter: str, min_exp_digits: int, plus: bool) -> str:
    if value == 0:
        mantissa, exp = Decimal(0), 0
    else:
        exp = value.adjusted()
        mantissa = _round(value.scaleb(-exp), precision)
        if abs(mantissa) >= 10:
            exp += 1
            mantissa = _round(value.scaleb(-exp), precision)
    sign = "-" if exp < 0 else ("+" if plus else "")
    body = f"{abs(mantissa):.{precision}f}"
    return f"{body}{letter}{sign}{abs(exp):0{min_exp_digits}d}"


def _general(value: Number, precision: int | None) -> str:
    if isinstance(value, float) and precision is None:
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        text = repr(value).removesuffix(".0")
        if "e" in text:
            mantissa, _, exp = text.partition("e")
            sign = "-" if exp.startswith("-") else "+"
            return f"{mantissa}E{sign}{abs(int(exp)):02d}"
        return text
    d = _to_decimal(value)
    if precision is None or precision == 0:
        if isinstance(value, Decimal):
            return f"{value:f}"  # decimal "G" keeps every digit, trailing zeros included
        if isinstance(value, int):
            return str(value)
        precision = 15
    exponent = d.adjusted() if d != 0 else 0
    if -5 <= exponent < precision:
        rounded = _round(d, max(precision - 1 - exponent, 0))
        text = f"{rounded:f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    text = _exponent(d, precision - 1, "E", 2, True)
    mantissa, _, rest = text.partition("E")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{'-' if d < 0 and not mantissa.startswith('-') else ''}{mantissa}E{rest}"


def _standard(value: Number, letter: str, digits: str) -> str:
    precision = int(digits) if digits else None
    upper = letter.upper()
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    d = _to_decimal(value)
    if upper == "C":
        places = 2 if precision is None else precision
        body = "¤" + _fixed(d, places, True)
        return f"({body})" if _negative(d, places) else body
    if upper == "D":
        if not isinstance(value, int):
            raise FormatError("D needs an integer")
        body = str(abs(value)).zfill(precision or 0)
        return ("-" if value < 0 else "") + body
    if upper == "E":
        text = _exponent(d, 6 if precision is None else precision, letter, 3, True)
        return text
    if upper in ("F", "N"):
        places = 2 if precision is None else precision
        body = _fixed(d, places, upper == "N")
        return ("-" if _negative(d, places) else "") + body
    if upper == "G":
        return _general(value, precision)
    if upper == "P":
        places = 2 if precision is None else precision
        scaled = d * 100
        body = _fixed(scaled, places, True) + " %"
        return ("-" if _negative(scaled, places) else "") + body
    if upper == "R":
        if isinstance(value, Decimal):
            raise FormatError("R needs a floating point number")
        return _general(value, None)
    if upper == "X":
        if not isinstance(value, int):
            raise FormatError("X needs an integer")
        text = format(value & 0xFFFFFFFF if value < 0 else value, "X" if letter == "X" else "x")
        return text.zfill(precision or 0)
    raise FormatError(f"unknown standard format {letter!r}")


def _split_sections(fmt: str) -> list[str]:
    sections, current, i, quote = [], [], 0, ""
    while i < len(fmt):
        c = fmt[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "\\" and i + 1 < len(fmt):
            current.append(fmt[i : i + 2])
            i += 2
            continue
        elif c == ";":
            sections.append("".join(current))
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    sections.append("".join(current))
    return sections


def _lex(section: str) -> list[tuple[str, str]]:
    """Format items: ``d`` (``0``/``#``), ``.``, ``,``, ``%``, ``‰``, ``e`` (spec), ``lit``."""
    items: list[tuple[str, str]] = []
    i = 0
    while i < len(section):
        c = section[i]
        if c in "0#":
            items.append(("d", c))
        elif c in ".,%‰":
            items.append((c, ""))
        elif c == "\\" and i + 1 < len(section):
            items.append(("lit", section[i + 1]))
            i += 1
        elif c in "'\"":
            end = section.find(c, i + 1)
            end = len(section) if end < 0 else end
            items.append(("lit", section[i + 1 : end]))
            i = end
        elif c in "eE":
            m = re.match(r"[eE]([+-]?)(0+)", section[i:])
            if m:
                items.append(("e", m.group(0)))
                i += len(m.group(0))
                continue
            items.append(("lit", c))
        else:
            items.append(("lit", c))
        i += 1
    return items


def _spread(whole: str, slots: int) -> list[str]:
    """The integer digits each placeholder prints: extra digits all go to the first one."""
    if slots == 0:
        return []
    if len(whole) >= slots:
        first = len(whole) - slots + 1
        return [whole[:first], *whole[first:]]
    return [""] * (slots - len(whole)) + list(whole)


def _custom(value: Decimal, section: str, signed: bool) -> str:
    items = _lex(section)
    point = next((k for k, item in enumerate(items) if item[0] == "."), len(items))
    exp_at = next((k for k, item in enumerate(items) if item[0] == "e"), None)
    end_digits = exp_at if exp_at is not None else len(items)
    int_slots = [k for k in range(min(point, end_digits)) if items[k][0] == "d"]
    frac_slots = [k for k in range(point + 1, end_digits) if items[k][0] == "d"]
    # Commas: right after the last integer placeholder they scale by 1000; between, they group.
    last_int = int_slots[-1] if int_slots else -1
    scale = 0
    k = last_int + 1
    while k < len(items) and items[k][0] == ",":
        scale += 1
        k += 1
    grouped = any(
        items[k][0] == "," and int_slots and int_slots[0] < k < last_int for k in range(len(items))
    )
    for kind, _ in items:
        if kind == "%":
            value *= 100
        elif kind == "‰":
            value *= 1000
    value = value.scaleb(-3 * scale)
    exponent_text = ""
    if exp_at is not None:
        spec = items[exp_at][1]
        exp = 0
        if value != 0:
            exp = value.adjusted() - max(len(int_slots) - 1, 0)
            value = value.scaleb(-exp)
        sign = "-" if exp < 0 else ("+" if "+" in spec else "")
        exponent_text = spec[0] + sign + str(abs(exp)).zfill(spec.count("0"))
    rounded = _round(abs(value), len(frac_slots))
    whole, _, frac = f"{rounded:f}".partition(".")
    whole = whole.lstrip("0")
    first_zero = next((n for n, k in enumerate(int_slots) if items[k][1] == "0"), len(int_slots))
    whole = whole.zfill(len(int_slots) - first_zero)
    frac = frac.ljust(len(frac_slots), "0")
    last_zero = max((n + 1 for n, k in enumerate(frac_slots) if items[k][1] == "0"), default=0)
    shown = max(last_zero, len(frac.rstrip("0")))
    slot_digits = _spread(whole, len(int_slots))
    out: list[str] = []
    emitted = printed = 0
    for k, (kind, text) in enumerate(items):
        if kind == "d" and k < point and k < end_digits:
            for digit in slot_digits[emitted]:
                out.append(digit)
                printed += 1
                remaining = len(whole) - printed
                if grouped and remaining > 0 and remaining % 3 == 0:
                    out.append(",")
            emitted += 1
        elif kind == "d" and k > point and k < end_digits:
            n = frac_slots.index(k)
            if n < shown:
                out.append(frac[n])
        elif kind == ".":
            if shown > 0:
                out.append(".")
        elif kind == "e":
            out.append(exponent_text)
        elif kind == ",":
            continue
        elif kind in "%‰":
            out.append(kind)
        elif kind == "lit":
            out.append(text)
    result = "".join(out)
    if signed and rounded != 0:
        result = "-" + result
    return result


def format_number(value: Number, fmt: str) -> str:
    """``ToString(format, InvariantCulture)`` for a decimal, double or int."""
    if fmt == "":
        return _general(value, None)
    standard = _STANDARD.fullmatch(fmt)
    if standard:
        return _standard(value, standard.group(1), standard.group(2))
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return _general(value, None)
    d = _to_decimal(value)
    sections = _split_sections(fmt)
    if len(sections) == 1:
        return _custom(d, sections[0], d < 0)
    if d < 0 and sections[1]:
        return _custom(-d, sections[1], False)
    if d == 0 and len(sections) > 2 and sections[2]:
        return _custom(d, sections[2], False)
    return _custom(abs(d), sections[0], d < 0 and not sections[1])
