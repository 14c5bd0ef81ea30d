"""Poll a URL until it answers the expected status (and text), or time out. Stdlib only."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request


def probe(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(1_000_000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(1_000_000).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def main() -> int:
    url = os.environ["CHECK_URL"]
    expected = int(os.environ.get("CHECK_STATUS") or 200)
    text = os.environ.get("CHECK_TEXT", "")
    deadline = time.monotonic() + float(os.environ.get("CHECK_TIMEOUT") or 60)
    interval = float(os.environ.get("CHECK_INTERVAL") or 2)
    attempts = 0
    status, detail = 0, ""
    while True:
        attempts += 1
        status, body = probe(url)
        if status == expected and (not text or text in body):
            print(f"{url} answered {status} after {attempts} attempt(s)")
            break
        detail = (
            (f"status {status}" if status != expected else f"body does not contain {text!r}")
            if status
            else f"no answer ({body})"
        )
        print(f"attempt {attempts}: {url}: {detail}")
        if time.monotonic() + interval > deadline:
            print(f"::error::{url} did not become healthy: {detail}")
            break
        time.sleep(interval)
    output = os.environ.get("RUNNER_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(f"status={status}\nattempts={attempts}\n")
    return 0 if status == expected and (not text or text in body) else 1


if __name__ == "__main__":
    sys.exit(main())
