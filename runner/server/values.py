"""Values as the server stores and shows them: UTC times, canonical JSON, token hashes."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

from runner.bounded import MAX_JSON_DEPTH, check_depth
from runner.characters import whole_characters

#: what stands for a value nested deeper than the API answers
TOO_DEEP = "(nested too deeply to show)"


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """``moment`` as ISO 8601 in UTC with milliseconds and a ``Z`` (what the API shows)."""
    if moment is None:
        return None
    # PostgreSQL answers in its session's time zone: always UTC here (the audit hash covers it)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back (stored as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def as_json(value: Any) -> Any:
    """``value`` as it reads back from a JSON column: equal values compare equal."""
    return json.loads(json.dumps(value, sort_keys=True))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def shown(value: Any) -> Any:
    """Stored JSON as the API and the pages can answer it: ``value`` itself, unless it holds
    half of a character, a NaN or infinity, or nesting deeper than ``MAX_JSON_DEPTH`` (kept
    before the server refused them); then a copy with each half as U+FFFD, each such number as
    null and the deepest parts cut. One such row made every listing holding it answer 500
    (attack pass); mended, it differs from what its runner sent, which then fails closed."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
        check_depth(text)
    except (ValueError, RecursionError):  # UnicodeEncodeError and InputLimitError included
        return _mended(value, MAX_JSON_DEPTH)
    return value


def _mended(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return whole_characters(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict | list | tuple) and depth <= 0:
        return TOO_DEEP
    if isinstance(value, dict):
        return {whole_characters(str(k)): _mended(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mended(item, depth - 1) for item in value]
    return value
