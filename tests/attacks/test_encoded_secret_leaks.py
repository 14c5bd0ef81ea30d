"""Secrets printed the way real scripts print them stay masked (issue #18).

Each step of one workflow, run by real bash through ``runner run --format json``, prints secrets
through a tool that transforms them reversibly: ``base64`` (which wraps at 76 columns, 64 with
``-w 64`` as ``openssl base64`` and PEM do), ``xxd -p`` (60), ``printf %q``, JSON with ``\\/``,
URL encodings. Before the fix the masker knew only the whole encoded forms, so every line of a
wrapped encoding, the shell-quoted and several JSON and URL forms appeared in clear, in the log,
the JSON events, the run record and the step's outputs.

What counts as a leak (:func:`windows`): any 8 characters in a row of the secret, of one of its
lines, of its hex encodings, or of its base64 at any of the three byte offsets (the characters
made only of the secret's bits). Masking leaves at most the few characters of a wrapped piece
shorter than the masking minimum, and the one character at each end of a base64 secret that
mixes in its neighbours' bits: never 8.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.run_helpers import Outcome, Workspace

# 100 characters: its base64 (136) wraps over two lines at 76 columns, three at 64
LONG = (
    "Zk9-long-secret-" + "".join(chr(ord("a") + (i * 7) % 26) for i in range(68)) + "-Q7xW/e+Rt4Ny2"
)
SPACED = "correct-horse battery/staple+sentence=42 <ok>"
GENERATED = "generated-at-run-time-" + "k" * 40

WORKFLOW = """
name: encoded secret leaks
variables:
  Long:
    from-env: TEST_LONG
    secret: true
  Spaced:
    from-env: TEST_SPACED
    secret: true
  Key:
    from-env: TEST_KEY
    secret: true
steps:
  - id: base64-wrapped
    name: base64 wrapped
    env:
      LONG: "#{Long}"
    run: |
      printf %s "$LONG" | base64
      printf %s "$LONG" | base64 -w 64
      # inside a longer stream, at byte offsets 0, 1 and 2 modulo 3, and 7
      for prefix in abc x xy 'seven::'; do
        printf '%s%s%s' "$prefix" "$LONG" ' and what follows it' | base64
        printf '%s%s' "$prefix" "$LONG" | base64 -w 64
      done
      echo "token: $(printf %s "$LONG" | base64 -w0)"
  - id: pem
    name: PEM key
    env:
      KEY: "#{Key}"
    run: |
      printf %s "$KEY" | base64
      printf '%s\\n' "$KEY" | base64 -w 64
      if ! command -v xxd > /dev/null; then
        # what `xxd -p` prints (vim's xxd is not on every machine)
        xxd() {
          python3 -c 'import sys; h = sys.stdin.buffer.read().hex()
      h = h.upper() if "-u" in sys.argv else h
      print("\\n".join(h[i : i + 60] for i in range(0, len(h), 60)))' "$@"
        }
      fi
      printf %s "$KEY" | xxd -p
      printf '%s' "$KEY" | xxd -p -u
  - id: quoted
    name: quoted
    env:
      SPACED: "#{Spaced}"
    run: |
      printf '%q\\n' "$SPACED"
      echo "retry with ${SPACED@Q}"
      python3 - <<'EOF'
      import json, os, urllib.parse
      value = os.environ["SPACED"]
      print(json.dumps({"v": value}).replace("/", "\\\\/"))
      print(json.dumps({"v": value}).replace("<", "\\\\u003c").replace(">", "\\\\u003e"))
      print(json.dumps({"payload": json.dumps({"v": value})}))
      print("path:", urllib.parse.quote(value))
      print("form:", urllib.parse.urlencode({"v": value}))
      print("lower:", urllib.parse.quote(value, safe="").lower())
      print("js:", urllib.parse.quote(value, safe="!'()*"))
      print("repr:", [value])
      EOF
  - id: add-mask
    name: add-mask
    run: |
      generated="generated-at-run-time-$(printf 'k%.0s' $(seq 40))"
      echo "::add-mask::$generated"
      printf %s "$generated" | base64 -w 20
      printf '%q\\n' "$generated"
  - id: split
    name: split across writes
    env:
      LONG: "#{Long}"
    run: |
      printf '%s' "${LONG:0:30}"; sleep 0.05; printf '%s\\n' "${LONG:30}"
      printf %s "$LONG" | base64 | tr -d '\\n' | fold -w 50; echo
  - id: annotations
    name: annotations
    env:
      LONG: "#{Long}"
    run: |
      echo "::error title=failed with $LONG,file=$LONG.txt::message $LONG"
      echo "::warning title=$(printf %s "$LONG" | base64 -w0)::see the title"
  - id: outputs
    name: outputs
    env:
      LONG: "#{Long}"
      SPACED: "#{Spaced}"
    run: |
      echo "plain=$LONG" >> "$RUNNER_OUTPUT"
      echo "quoted=$(printf %q "$SPACED")" >> "$RUNNER_OUTPUT"
      { echo "wrapped<<EOF"; printf %s "$LONG" | base64; echo EOF; } >> "$RUNNER_OUTPUT"
      echo "public=nothing secret" >> "$RUNNER_OUTPUT"
      echo "TOKEN=$LONG" >> "$RUNNER_ENV"
  - id: use
    name: use the outputs
    env:
      PLAIN: ${{ steps.outputs.outputs.plain }}
      WRAPPED: ${{ steps.outputs.outputs.wrapped }}
    run: |
      test "$PLAIN" = "$TEST_LONG"
      test "$(printf %s "$WRAPPED" | base64 -d)" = "$TEST_LONG"
      test "$TOKEN" = "$TEST_LONG"
      echo "the next step got them whole"
"""

WINDOW = 8


def b64_cores(data: bytes) -> list[str]:
    """The base64 characters made only of ``data``'s bits, at byte offsets 0, 1 and 2."""
    cores = []
    for offset in (0, 1, 2):
        encoded = base64.b64encode(bytes(offset) + data).decode()
        cores.append(encoded[-(-8 * offset // 6) : 8 * (offset + len(data)) // 6])
    return cores


def windows(secret: str) -> set[str]:
    """Every ``WINDOW`` characters in a row that would give part of ``secret`` away."""
    texts = [secret, *secret.splitlines()]
    for text in list(texts):
        data = text.encode()
        texts += [data.hex(), data.hex().upper(), *b64_cores(data)]
    return {text[i : i + WINDOW] for text in texts for i in range(len(text) - WINDOW + 1)}


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return sorted(
        f"{name}: {window!r}"
        for name, secret in secrets.items()
        for window in windows(secret)
        if window in text
    )


@pytest.fixture(scope="module")
def private_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh ed25519 private key from ssh-keygen (7 lines of armour and base64)."""
    folder = tmp_path_factory.mktemp("key")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(folder / "id")],
        check=True,
    )
    return (folder / "id").read_text().strip()


@pytest.fixture(scope="module")
def secrets(private_key: str) -> dict[str, str]:
    return {"long": LONG, "spaced": SPACED, "key": private_key, "generated": GENERATED}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory, secrets: dict[str, str]) -> Outcome:
    workspace = Workspace(tmp_path_factory.mktemp("encoded"))
    return workspace.cli(
        WORKFLOW,
        "--format",
        "json",
        env={"TEST_LONG": LONG, "TEST_SPACED": SPACED, "TEST_KEY": secrets["key"]},
    )


def step_text(outcome: Outcome, step: str) -> str:
    """What the log shows of one step: its output lines and annotations, as JSON events."""
    return "\n".join(
        json.dumps(event) + "\n" + str(event.get("text", ""))
        for event in outcome.events()
        if event.get("step") == step
    )


def test_the_run_succeeds(outcome: Outcome) -> None:
    assert outcome.code == 0, outcome.out + outcome.err
    assert outcome.statuses() == dict.fromkeys(
        ["base64-wrapped", "pem", "quoted", "add-mask", "split", "annotations", "outputs", "use"],
        "success",
    )


def test_wrapped_base64_at_every_offset_is_masked(
    outcome: Outcome, secrets: dict[str, str]
) -> None:
    """``base64`` of a 100-character secret: 57 of its characters were in clear on the second
    line at 76 columns; inside a longer stream, at any offset, every line gave it away."""
    text = step_text(outcome, "base64-wrapped")
    assert text.count("***") >= 10
    assert leaks(text, secrets) == []


def test_a_private_key_piped_to_base64_or_xxd_is_masked(
    outcome: Outcome, secrets: dict[str, str]
) -> None:
    """A PEM private key piped to ``base64`` left all but its first line in clear."""
    text = step_text(outcome, "pem")
    assert leaks(text, secrets) == []
    lines = [e["text"] for e in outcome.events() if e.get("step") == "pem" and "text" in e]
    # each line is masked whole, but for a piece shorter than the minimum at a line's edge
    assert all(len(line.replace("***", "")) <= 6 for line in lines), lines


def test_shell_quoted_json_and_url_forms_are_masked(
    outcome: Outcome, secrets: dict[str, str]
) -> None:
    """``printf %q`` (``correct-horse\\ battery/...``), JSON with ``\\/`` or Go's ``\\u003c``,
    JSON inside JSON, and URL encodings (a path, ``+`` for space, lower-case hex,
    ``encodeURIComponent``) were in clear."""
    text = step_text(outcome, "quoted")
    assert leaks(text, secrets) == []
    lines = [e["text"] for e in outcome.events() if e.get("step") == "quoted" and "text" in e]
    assert lines == [
        "***",
        "retry with '***'",
        '{"v": "***"}',
        '{"v": "***"}',
        '{"payload": "{\\"v\\": \\"***\\"}"}',
        "path: ***",
        "form: v=***",
        "lower: ***",
        "js: ***",
        "repr: ['***']",
    ]


def test_a_value_hidden_with_add_mask_is_masked_in_its_encodings(
    outcome: Outcome, secrets: dict[str, str]
) -> None:
    text = step_text(outcome, "add-mask")
    assert "::add-mask::" not in text
    assert leaks(text, secrets) == []


def test_a_secret_split_across_writes_or_refolded_is_masked(
    outcome: Outcome, secrets: dict[str, str]
) -> None:
    text = step_text(outcome, "split")
    assert leaks(text, secrets) == []


def test_annotation_titles_and_files_are_masked(outcome: Outcome, secrets: dict[str, str]) -> None:
    """``::error title=...,file=...::`` properties were logged as the script wrote them."""
    text = step_text(outcome, "annotations")
    assert leaks(text, secrets) == []
    annotations = [e for e in outcome.events() if e.get("step") == "annotations"]
    titles = [e.get("properties", {}).get("title") for e in annotations if "properties" in e]
    assert titles == ["failed with ***", "***"]


def test_outputs_holding_a_secret_are_stored_and_logged_masked(
    outcome: Outcome, secrets: dict[str, str]
) -> None:
    """A secret written to ``$RUNNER_OUTPUT`` (or an encoding of one) was in the run record and
    the JSON log in clear; one written to ``$RUNNER_ENV`` was in the record's ``env``."""
    record = outcome.step("outputs")
    assert record.outputs == {
        "plain": "***",
        "quoted": "***",
        "wrapped": "***\n***",
        "public": "nothing secret",
    }
    assert sorted(record.secret_outputs) == ["plain", "quoted", "wrapped"]
    assert outcome.record.env == {"TOKEN": "***"}
    assert outcome.record.secret_env == ["TOKEN"]
    [finished] = [
        e for e in outcome.events() if e["event"] == "step-finished" and e["step"] == "outputs"
    ]
    assert finished["outputs"] == record.outputs
    assert leaks(outcome.record_text, secrets) == []
    assert leaks(step_text(outcome, "outputs"), secrets) == []


def test_later_steps_still_get_the_outputs_whole(outcome: Outcome) -> None:
    """Masked in the record, not for the steps of the run that read them (they got ``***``)."""
    lines = [e["text"] for e in outcome.events() if e.get("step") == "use" and "text" in e]
    assert lines == ["the next step got them whole"]


def test_nothing_in_the_state_folder_or_the_whole_log_leaks(
    outcome: Outcome, secrets: dict[str, str]
) -> None:
    files = [p for p in outcome.state_dir.rglob("*") if p.is_file()]
    found: dict[str, Any] = {
        str(path): leaks(path.read_text(errors="replace"), secrets) for path in files
    }
    found["stdout"] = leaks(outcome.out, secrets)
    found["stderr"] = leaks(outcome.err, secrets)
    assert {where: what for where, what in found.items() if what} == {}


def test_the_text_log_masks_the_same(tmp_path: Path, secrets: dict[str, str]) -> None:
    done = Workspace(tmp_path).cli(
        WORKFLOW, env={"TEST_LONG": LONG, "TEST_SPACED": SPACED, "TEST_KEY": secrets["key"]}
    )
    assert done.code == 0, done.out + done.err
    assert leaks(done.out + done.err, secrets) == []
