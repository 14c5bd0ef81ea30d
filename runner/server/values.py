"""Values as the server stores and shows them: UTC times, canonical JSON, token hashes."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any


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
