"""What masking costs per line of output, with a run's worth of secrets registered.

Registers 10 secrets of the kinds a deployment holds (API tokens, a password with punctuation, a
database URL, a multi-line PEM private key) in a fresh ``Masker``, then masks a generated log of
typical build and deployment lines (compiler and test output, paths, timestamps, JSON lines,
base64 blobs; a few lines carry a secret or an encoded form of one) line by line, as a script
step does, and in 64 KiB chunks through ``StreamMasker``. Also times registering the secrets (the
matcher is compiled on the first ``mask`` after an ``add``).

    .venv/bin/python bench/masking.py [--lines 20000] [--repeat 5] [--secrets 10]

``--against PATH`` times another ``masking.py`` (another checkout's) in the same process,
interleaved with this one (the machine is shared and noisy: compare figures of one run only).
Times are the process's CPU time, which other load on the machine disturbs less than wall time.
Prints the figures and writes ``bench/results/masking.json``.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import random
import statistics
import string
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from runner import masking

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "masking.json"

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIDGLa/42l4TYcLNcA9M8IMgdRawCLmOnrYapYpmbmXw6\n"
    "-----END PRIVATE KEY-----"
)


def make_secrets(count: int, rng: random.Random) -> list[str]:
    alphabet = string.ascii_letters + string.digits
    kinds = [
        lambda: "ghp_" + "".join(rng.choices(alphabet, k=36)),
        lambda: "".join(rng.choices(alphabet + "!#%&/+=", k=20)),
        lambda: "postgres://deploy:" + "".join(rng.choices(alphabet, k=16)) + "@db:5432/app",
        lambda: "".join(rng.choices(alphabet + "-_", k=40)),
        lambda: PEM,
    ]
    return [kinds[i % len(kinds)]() for i in range(count)]


def make_log(lines: int, secrets: list[str], rng: random.Random) -> list[str]:
    words = [
        "Compiling",
        "building",
        "linking",
        "test",
        "passed",
        "failed",
        "warning",
        "error",
        "deploy",
        "service",
        "container",
        "image",
        "pushed",
        "layer",
        "digest",
        "sha256",
        "request",
        "response",
        "ok",
        "done",
        "step",
    ]
    out = []
    for i in range(lines):
        kind = i % 10
        if kind == 0:
            out.append(f"2026-12-04T16:{i % 60:02d}:00Z INFO " + " ".join(rng.choices(words, k=8)))
        elif kind == 1:
            out.append(f"  /home/runner/work/app/src/module_{i}/file_{i % 97}.py:{i % 400}: ok")
        elif kind == 2:
            out.append(json.dumps({"level": "info", "msg": " ".join(rng.choices(words, k=5))}))
        elif kind == 3:
            out.append(base64.b64encode(rng.randbytes(57)).decode())
        elif kind == 4 and i % 200 == 4:
            secret = secrets[i % len(secrets)].splitlines()[0]
            out.append(f"token={secret} b64={base64.b64encode(secret.encode()).decode()}")
        else:
            out.append(" ".join(rng.choices(words, k=rng.randint(3, 14))))
    return out


def load(path: str | None) -> ModuleType:
    if path is None:
        return masking
    spec = importlib.util.spec_from_file_location("masking_against", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(module: ModuleType, secrets: list[str], log: list[str], text: str) -> dict[str, Any]:
    """One round: register, mask line by line, mask in 64 KiB chunks."""
    started = time.process_time()
    masker = module.Masker()
    for secret in secrets:
        masker.add(secret)
    masker.mask("warm up: compile the matcher")
    register = time.process_time() - started
    mask = masker.mask
    started = time.process_time()
    for line in log:
        mask(line)
    per_line = (time.process_time() - started) / len(log)
    stream = module.StreamMasker(masker)
    started = time.process_time()
    for at in range(0, len(text), 1 << 16):
        stream.feed(text[at : at + (1 << 16)])
    stream.flush()
    chunked = len(text) / (time.process_time() - started) / 1e6
    return {
        "module": module.__file__,
        "patterns": len(masker.patterns),
        "masked_lines": sum(1 for line in log if mask(line) != line),
        "register_ms": register * 1e3,
        "per_line_us": per_line * 1e6,
        "chunked_mb_per_s": chunked,
    }


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The best of the rounds (least disturbed by other load), and the median per line."""
    return {
        "module": rounds[0]["module"],
        "patterns": rounds[0]["patterns"],
        "masked_lines": rounds[0]["masked_lines"],
        "register_ms": min(r["register_ms"] for r in rounds),
        "per_line_us": min(r["per_line_us"] for r in rounds),
        "per_line_us_median": statistics.median(r["per_line_us"] for r in rounds),
        "chunked_mb_per_s": max(r["chunked_mb_per_s"] for r in rounds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--secrets", type=int, default=10)
    parser.add_argument("--against", help="another masking.py to time beside this one")
    args = parser.parse_args()
    rng = random.Random(7)
    secrets = make_secrets(args.secrets, rng)
    log = make_log(args.lines, secrets, rng)
    text = "".join(line + "\n" for line in log)
    modules = {"this": masking}
    if args.against:
        modules["against"] = load(args.against)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in modules}
    for _ in range(args.repeat):
        for name, module in modules.items():  # interleaved: a burst of load hits both
            rounds[name].append(measure(module, secrets, log, text))
    result = {
        "secrets": args.secrets,
        "lines": len(log),
        "python": sys.version.split()[0],
        **{name: summary(found) for name, found in rounds.items()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.secrets} secrets, {len(log)} lines, best of {args.repeat} rounds")
    for name in modules:
        row = result[name]
        print(
            f"{name:8} {row['patterns']:4} strings  register {row['register_ms']:6.1f} ms  "
            f"per line {row['per_line_us']:5.2f} us (median {row['per_line_us_median']:5.2f})  "
            f"chunks {row['chunked_mb_per_s']:6.1f} MB/s  "
            f"[{row['masked_lines']} lines masked]  {row['module']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
