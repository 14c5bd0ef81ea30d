"""The tamper-evident audit log: each entry's hash covers the previous entry's hash and the
entry itself, so a changed, removed or reordered entry breaks the chain from there on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

GENESIS = "0" * 64


def entry_hash(previous: str, entry: dict[str, Any]) -> str:
    body = {k: entry.get(k) for k in ("at", "kind", "interruption_id", "actor", "data")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((previous + "\n" + canonical).encode("utf-8")).hexdigest()


def verify_chain(entries: Iterable[dict[str, Any]]) -> list[str]:
    """Every break in the chain, as readable problems; an empty list means intact."""
    problems = []
    previous = GENESIS
    expected_seq = None
    for entry in entries:
        seq = entry.get("seq")
        if expected_seq is not None and isinstance(seq, int) and seq != expected_seq:
            problems.append(
                f"entry {seq}: expected entry {expected_seq} here (removed or reordered)"
            )
        if entry.get("prev_hash") != previous:
            problems.append(f"entry {seq}: does not follow the entry before it")
        if entry_hash(str(entry.get("prev_hash")), entry) != entry.get("hash"):
            problems.append(f"entry {seq}: its content was changed")
        previous = str(entry.get("hash"))
        expected_seq = (seq + 1) if isinstance(seq, int) else None
    return problems
