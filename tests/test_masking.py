from __future__ import annotations

import base64
import itertools
import json
import os
import random
import re
import string
import subprocess
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.masking import (
    MASK,
    MIN_SECRET_LENGTH,
    Masker,
    StreamMasker,
    encoded_forms,
    printf_q,
)


def masker(*secrets: str, min_length: int = MIN_SECRET_LENGTH) -> Masker:
    result = Masker(min_length=min_length)
    for secret in secrets:
        result.add(secret)
    return result


def reference_mask(
    text: str, patterns: frozenset[str], streams: dict[str, int] | None = None
) -> str:
    """GitHub's algorithm, naively: every occurrence of every pattern, ranges merged; and, with
    ``streams``, the pieces of wrapped encodings at line edges, naively too."""
    ranges = sorted(
        [
            (match.start(), match.start() + len(pattern))
            for pattern in patterns
            for match in re.finditer(f"(?={re.escape(pattern)})", text)
        ]
        + reference_pieces(text, streams or {})
    )
    merged: list[list[int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out += [text[last:start], MASK]
        last = end
    return "".join(out) + text[last:]


EDGE = " \t\r\"'`,;\\"


def reference_pieces(text: str, streams: dict[str, int]) -> list[tuple[int, int]]:
    """Each line (between edge characters): inside a stream, starting with the end of one, or
    ending with the start of one, for pieces of at least the stream's minimum."""
    found = []
    start = 0
    for line in text.split("\n"):
        first = start + len(line) - len(line.lstrip(EDGE))
        body = line.strip(EDGE)
        stop = first + len(body)
        for stream, least in streams.items():
            if len(body) >= max(least, 16) and body in stream:
                found.append((first, stop))
            for k in range(max(least, 4), min(len(body), len(stream)) + 1):
                if body[:k] == stream[-k:]:
                    found.append((first, first + k))
                if body[-k:] == stream[:k]:
                    found.append((stop - k, stop))
        start += len(line) + 1
    return found


MASKED = [
    ("plain", ["hunter22"], "pw=hunter22!", "pw=***!"),
    ("every occurrence", ["hunter22"], "hunter22 and hunter22", "*** and ***"),
    ("repeated back to back merge", ["hunter22"], "hunter22hunter22", "***"),
    ("overlapping secrets", ["abcdef", "defghi"], "xabcdefghiy", "x***y"),
    ("touching secrets merge", ["abcd", "efgh"], "1abcdefgh2", "1***2"),
    ("contained secret", ["abcdefgh", "cdef"], "abcdefgh cdef", "*** ***"),
    ("longest wins", ["pass", "password"], "password", "***"),
    ("regex characters are literal", ["a.b*c+(d)[e]$"], "x a.b*c+(d)[e]$ aXbbc", "x *** aXbbc"),
    ("case sensitive", ["hunter22"], "HUNTER22 Hunter22", "HUNTER22 Hunter22"),
    ("unicode", ["pässwörd✓"], "[pässwörd✓]", "[***]"),
    ("trimmed", ["  spaced secret \n"], "'spaced secret'", "'***'"),
    ("newline inside text", ["hunter22"], "a\nhunter22\nb", "a\n***\nb"),
    ("whole multi-line value", ["line-one\nline-two"], "<line-one\nline-two>", "<***>"),
    ("each line of a multi-line value", ["line-one\nline-two"], "x line-two y", "x *** y"),
    ("CRLF lines", ["line-one\r\nline-two\r\n"], "line-one|line-two", "***|***"),
    ("short lines are not secrets", ["long-line\nab\n"], "ab long-line", "ab ***"),
    ("base64", ["hunter22"], base64.b64encode(b"hunter22").decode(), "***"),
    ("base64url", ["s3cr3t??>>"], base64.urlsafe_b64encode(b"s3cr3t??>>").decode(), "***"),
    (
        "base64 of user:password",
        ["hunter22"],
        base64.b64encode(b"user:hunter22").decode(),
        "dXNlcjp***",
    ),
    ("url encoded", ["p@ss word/1"], "https://u:p%40ss%20word%2F1@host", "https://u:***@host"),
    ("form encoded", ["p@ss word/1"], "pw=p%40ss+word%2F1&x=1", "pw=***&x=1"),
    ("json escaped", ['a"b\\c\nd'], json.dumps({"pw": 'a"b\\c\nd'}), '{"pw": "***"}'),
    ("json ascii escaped", ["pässwörd"], json.dumps({"pw": "pässwörd"}), '{"pw": "***"}'),
    ("xml escaped", ["<a&'b\">"], "<pw>&lt;a&amp;&apos;b&quot;&gt;</pw>", "<pw>***</pw>"),
    ("expression escaped", ["it's-secret"], "'it''s-secret'", "'***'"),
    ("bash single quoted", ["it's-secret"], "echo 'it'\\''s-secret'", "echo '***'"),
    # shlex.quote(), shlex.join(): `'` as `'"'"'` (attack pass)
    ("shlex quoted", ["it's-secret"], "echo 'it'\"'\"'s-secret'", "echo '***'"),
    ("bash double quoted", ['$a"b`c'], 'echo "\\$a\\"b\\`c"', 'echo "***"'),
    ("trim double quotes", ['"quoted-secret"'], "quoted-secret", "***"),
    ("hex", ["hunter22"], "key=68756e7465723232 KEY=68756E7465723232", "key=*** KEY=***"),
    ("printf %q", ["correct horse!"], "echo correct\\ horse\\!", "echo ***"),
    ("printf %q control", ["tab\there"], "x=$'tab\\there'", "x=***"),
    ("json slash escaped", ["a/b-secret"], '{"v":"a\\/b-secret"}', '{"v":"***"}'),
    ("json go html escaped", ["<tag>&secret"], '"\\u003ctag\\u003e\\u0026secret"', '"***"'),
    ("json upper-case hex", ["pässwörd"], '"p\\u00E4ssw\\u00F6rd"', '"***"'),
    (
        "json inside json",
        ['a"quoted"secret'],
        '"{\\"v\\": \\"a\\\\\\"quoted\\\\\\"secret\\"}"',
        None,
    ),
    ("url path keeps /", ["p@ss word/1"], "/p%40ss%20word/1", "/***"),
    ("url lower-case hex", ["p@ss word/1"], "p%40ss%20word%2f1", "***"),
    ("url encodeURIComponent", ["it's (secret)!"], "it's%20(secret)!", "***"),
    ("python repr", ["it's\\secret"], "['it\\'s\\\\secret']", "['***']"),
    # repr() of a text holding the secret and a `"` (a folder name): `'` as `\'` (attack pass)
    (
        "python repr beside a quote",
        ["it's-my-pw!"],
        repr('mnt/"share"/it\'s-my-pw!'),
        "'mnt/\"share\"/***'",
    ),
    (
        "long secrets sharing a long prefix",
        ["k" * 90 + "-one", "k" * 90 + "-two"],
        "k" * 90 + "-two " + "k" * 90 + "-six",
        "*** " + "k" * 90 + "-six",
    ),
]


@pytest.mark.parametrize(
    ("secrets", "text", "expected"), [m[1:] for m in MASKED], ids=[m[0] for m in MASKED]
)
def test_mask(secrets: list[str], text: str, expected: str | None) -> None:
    m = masker(*secrets)
    if expected is None:
        assert "secret" not in m.mask(text)
    else:
        assert m.mask(text) == expected
    assert m.mask_line(text) == m.mask(text)
    assert m.mask(text) == reference_mask(text, m.patterns, m.streams)


def test_text_without_secrets_is_returned_as_is() -> None:
    m = masker("hunter22")
    text = "nothing to see here " * 100
    assert m.mask(text) is text
    assert Masker().mask(text) is text
    assert m.mask("") == ""


@pytest.mark.parametrize("offset", [0, 1, 2])
@pytest.mark.parametrize("suffix", [b"", b"x", b"xy", b"xyz", b"-and more after it"])
@pytest.mark.parametrize("secret", ["hunter22", "correct horse battery staple", "ünï✓"])
def test_secret_embedded_in_a_base64_blob(offset: int, suffix: bytes, secret: str) -> None:
    """At any byte offset, every base64 character made only of the secret's bits is masked."""
    m = masker(secret)
    data = secret.encode()
    prefix = b'{"user":"me","password":"'[: 24 + offset]  # 24 + offset bytes: offset mod 3
    blob = base64.b64encode(prefix + data + suffix).decode()
    masked = m.mask(blob)
    first = -(-8 * len(prefix) // 6)  # first character with only secret bits
    last = 8 * (len(prefix) + len(data)) // 6
    assert masked.startswith(blob[: first - 1]) or first == 0
    assert blob[first:last] not in masked
    assert (
        masked
        == blob[: masked.index(MASK)]
        + MASK
        + blob[len(blob) - (len(masked) - masked.index(MASK) - 3) :]
    )
    # At most one character on each side mixes secret and neighbouring bits and stays.
    assert len(blob) - len(masked) + 3 >= last - first


def test_github_padded_shift_forms_are_registered() -> None:
    forms = encoded_forms("hunter22")
    for shift in (0, 1, 2):
        assert base64.b64encode(b"hunter22"[shift:]).decode() in forms
    assert quote("hunter22", safe="") in forms
    assert quote_plus("a b", safe="") in encoded_forms("a b")


def test_minimum_length() -> None:
    m = Masker()
    assert m.min_length == 4
    assert m.add("abc") is False
    assert m.add("   ") is False
    assert m.add("") is False
    assert m.patterns == frozenset()
    assert m.mask("abc") == "abc"
    assert m.add("abcd") is True
    assert m.mask("abcd abc") == "*** abc"
    assert all(len(p) >= 4 for p in m.patterns)


def test_a_smaller_minimum_can_be_chosen() -> None:
    m = masker("ab", "x", min_length=1)
    assert m.mask("xab-yx") == "***-y***"
    with pytest.raises(ValueError, match="min_length must be at least 1"):
        Masker(min_length=0)


def test_multi_line_value_reports_whether_the_whole_value_is_masked() -> None:
    m = Masker()
    assert m.add("ab\ncd") is True  # "ab\ncd" itself is 5 characters
    assert m.mask("ab\ncd") == "***"
    assert m.mask("ab") == "ab"


def test_adding_again_changes_nothing_and_new_secrets_apply() -> None:
    m = masker("hunter22")
    version = m.version
    m.add("hunter22")
    assert m.version == version
    assert m.mask("hunter22 tiger99") == "*** tiger99"
    m.add("tiger99")
    assert m.version > version
    assert m.mask("hunter22 tiger99") == "*** ***"
    assert m.longest >= len(base64.b64encode(b"hunter22"))


@pytest.mark.parametrize("depth", [50, 150])
def test_secrets_that_are_prefixes_of_each_other(depth: int) -> None:
    """A trie deeper than `re` can nest is cut short; matches are still exact."""
    m = masker(*("x" * n for n in range(4, depth)))
    assert m.mask("y" + "x" * (depth + 50) + "y") == "y***y"
    assert m.mask("yxxxy") == "yxxxy"
    m = masker(*("aQ" + "b" * n for n in range(2, depth)))
    text = "aQ" + "b" * (depth - 1) + " Q" + "b" * 20 + " aQbb"
    assert m.mask(text) == "*** Q" + "b" * 20 + " ***"
    assert m.mask(text) == reference_mask(text, m.patterns)


alphabet = st.sampled_from("abc =/+\n")


@settings(max_examples=200, deadline=None)
@given(
    secrets=st.lists(st.text("abcd", min_size=4, max_size=10), min_size=1, max_size=4),
    text=st.text("abcd x", max_size=80),
)
def test_mask_equals_the_naive_union_of_ranges(secrets: list[str], text: str) -> None:
    m = masker(*secrets)
    assert m.mask(text) == reference_mask(text, m.patterns, m.streams)


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(min_size=4, max_size=30).filter(
        lambda s: s.strip() == s and "\n" not in s and "\r" not in s
    ),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
)
def test_masked_output_never_contains_the_secret(secret: str, before: str, after: str) -> None:
    m = masker(secret)
    masked = m.mask(before + secret + after)
    assert secret not in masked
    assert MASK in masked


@settings(max_examples=100, deadline=None)
@given(
    secret=st.binary(min_size=4, max_size=24),
    before=st.binary(max_size=12),
    after=st.binary(max_size=12),
)
def test_base64_of_any_embedding_never_shows_the_secret_characters(
    secret: bytes, before: bytes, after: bytes
) -> None:
    text = secret.decode("latin-1")
    m = masker(text)
    data = text.encode()  # the masker works on the UTF-8 bytes of the secret
    blob = base64.b64encode(before + data + after).decode()
    first = -(-8 * len(before) // 6)
    last = 8 * (len(before) + len(data)) // 6
    if last - first >= MIN_SECRET_LENGTH:
        assert blob[first:last] not in m.mask(blob)


# --- streaming ---------------------------------------------------------------------------


def feed_all(stream: StreamMasker, chunks: list[str]) -> str:
    return "".join(stream.feed(chunk) for chunk in chunks) + stream.flush()


def test_stream_holds_the_unfinished_line() -> None:
    m = masker("hunter22")
    stream = StreamMasker(m)
    assert stream.feed("pw=hun") == ""
    assert stream.pending == "pw=hun"
    assert stream.feed("ter22\nnext hunt") == "pw=***\n"
    assert stream.feed("er22") == ""
    assert stream.flush() == "next ***"
    assert stream.flush() == ""


def test_stream_applies_secrets_added_while_a_line_is_pending() -> None:
    m = Masker()
    stream = StreamMasker(m)
    assert stream.feed("token: abc123") == ""
    m.add("abc123")
    assert stream.feed("\n") == "token: ***\n"


def test_stream_releases_a_long_line_without_splitting_a_secret() -> None:
    m = masker("hunter22")
    stream = StreamMasker(m, max_pending=10)
    out = feed_all(stream, ["0123456789" * 3, "hunte", "r22", "abc" * 5, "\nend"])
    assert out == "0123456789" * 3 + "***" + "abc" * 5 + "\nend"
    with pytest.raises(ValueError, match="max_pending must be at least 1"):
        StreamMasker(m, max_pending=0)


@settings(max_examples=200, deadline=None)
@given(
    secrets=st.lists(st.text("abc", min_size=4, max_size=8), min_size=1, max_size=3),
    text=st.text("abc d\n", max_size=120),
    cuts=st.lists(st.integers(0, 120), max_size=10),
    max_pending=st.integers(1, 40),
)
def test_stream_masks_like_the_whole_text(
    secrets: list[str], text: str, cuts: list[int], max_pending: int
) -> None:
    m = masker(*secrets)
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    chunks = [text[a:b] for a, b in itertools.pairwise(points)]
    out = feed_all(StreamMasker(m, max_pending=max_pending), chunks)
    # Releasing a long line in pieces may show touching ranges as two masks.
    collapse = re.compile(r"(?:\*\*\*)+")
    assert collapse.sub(MASK, out) == collapse.sub(MASK, m.mask(text))
    for secret in secrets:
        assert secret not in out


# --- encodings as the tools write them --------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "foo bar",
        "a!b\"c#d$e%f&g'h(i)j*k",
        "l+m,n-o.p/q:r;s<t=u>v?w@x[y\\z]",
        "^_`{|}~",
        "#start",
        "~tilde",
        "a~b x=~y a:~b",
        "tab\tand\x01 control\x1b'q\\",
        "élan vital ü",
    ],
)
def test_printf_q_is_what_bash_prints(value: str) -> None:
    done = subprocess.run(
        ["bash", "-c", 'printf %q "$1"', "bash", value],
        capture_output=True,
        text=True,
        check=True,
        env={"LC_ALL": "C.UTF-8", "PATH": os.environ["PATH"]},
    )
    assert printf_q(value) == done.stdout
    assert masker(value).mask(f"[{done.stdout}]") == "[***]"


def wrap(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)]


@settings(max_examples=150, deadline=None)
@given(
    secret=st.binary(min_size=4, max_size=120),
    before=st.binary(max_size=90),
    after=st.binary(max_size=20),
    width=st.sampled_from([60, 64, 76]),
    hexed=st.booleans(),
)
def test_wrapped_encodings_show_no_piece_of_the_secret(
    secret: bytes, before: bytes, after: bytes, width: int, hexed: bool
) -> None:
    """``base64`` (76 columns), PEM and ``openssl`` (64), ``xxd -p`` (60): every line of the
    secret's encoding is masked, but for a piece shorter than the minimum at a cut (3 base64
    characters, 7 hex digits) and the character mixing the secret's bits with its neighbours'."""
    text = secret.decode("latin-1")
    m = masker(text)
    data = text.encode()
    if hexed:
        stream = (before + data + after).hex()
        first, last, allowed = 2 * len(before), 2 * (len(before) + len(data)), 7
    else:
        stream = base64.b64encode(before + data + after).decode()
        first = -(-8 * len(before) // 6)
        last = 8 * (len(before) + len(data)) // 6
        allowed = 3
    if text.strip() != text:
        return  # the masker registers the trimmed value and its lines, not this one
    for number, line in enumerate(wrap(stream, width)):
        start = number * width
        secret_only = max(0, min(last, start + width) - max(first, start))
        masked = m.mask(line)
        assert masked == reference_mask(line, m.patterns, m.streams)
        # what is left in clear: the line's characters that are not the secret's, and at
        # most a short piece of it at the line's edge
        assert len(masked.replace(MASK, "")) <= len(line) - secret_only + allowed


def test_wrapped_pieces_leave_other_base64_and_text_alone() -> None:
    """Chance matches at line edges are rare: 2,000 lines of unrelated base64 and of text stay
    as they are with 20 secrets registered."""
    rng = random.Random(18)
    m = masker(
        *("".join(rng.choices(string.ascii_letters + string.digits, k=32)) for _ in range(20))
    )
    lines = [base64.b64encode(rng.randbytes(57)).decode() for _ in range(1000)]
    lines += [base64.b64encode(rng.randbytes(48)).hex()[:60] for _ in range(500)]
    lines += [f"step {i}: deployed build {i * 7919} to host-{i % 13}" for i in range(500)]
    assert [m.mask(line) for line in lines] == lines


def test_a_multi_line_text_is_masked_as_its_lines() -> None:
    secret = "Zk9-long-secret-" + "x" * 90
    m = masker(secret)
    wrapped = "\n".join(wrap(base64.b64encode(b"prefix:" + secret.encode()).decode(), 76))
    assert m.mask(wrapped) == "\n".join(m.mask(line) for line in wrapped.split("\n"))
    assert MASK in m.mask(wrapped)


def test_what_a_computation_makes_of_a_secret_is_masked_too() -> None:
    m = masker("hunter2-Secret")
    m.derive("hunter2-Secret", lambda text: [text.upper()])
    # a derived value is one too, for what is computed from it in turn
    m.derive("HUNTER2-SECRET", lambda text: [text.lower()])
    # from a text that holds the secret: computed from the secret alone
    m.derive("user=app password=hunter2-Secret", lambda text: [text[:7]])
    assert m.mask("HUNTER2-SECRET hunter2-secret hunter2") == "*** *** ***"
    assert m.values == ("hunter2-Secret", "HUNTER2-SECRET", "hunter2-secret", "hunter2")


def test_what_is_computed_without_a_secret_or_says_nothing_of_it_is_left_alone() -> None:
    m = masker("hunter2-Secret")
    m.derive("public-value", lambda text: [text.upper()])
    # a field of a document that holds a secret in another field
    m.derive('{"region": "production", "pw": "hunter2-Secret"}', lambda text: [])
    # a test of the secret (Contains, StartsWith, a JSON true) is not masked everywhere
    m.derive("hunter2-Secret", lambda text: ["true", "False"])
    # the secret itself is registered already; a result shorter than the minimum never is
    m.derive("hunter2-Secret", lambda text: [text, text[:3]])
    assert (
        m.mask("PUBLIC-VALUE production true False hun") == "PUBLIC-VALUE production true False hun"
    )
    assert m.values == ("hunter2-Secret",)


def test_a_json_secret_is_masked_as_written_without_its_spaces() -> None:
    """#{} rewrites a JSON value it takes apart (``#{Wrapper.primary}``) that way."""
    m = masker('{"user": "admin", "password": "pa-ss-93c"}')
    assert m.mask('primary={"user":"admin","password":"pa-ss-93c"}') == "primary=***"


def test_a_derived_value_is_masked_as_printed_not_in_every_encoding() -> None:
    """Thousands of them (every item of a big JSON secret) would otherwise each add about 15
    strings to the one expression the masker compiles."""
    m = masker("hunter2-Secret")
    before = len(m.patterns)
    m.derive("hunter2-Secret", lambda text: [text.upper()])
    assert m.patterns - masker("hunter2-Secret").patterns == {"HUNTER2-SECRET"}
    assert len(m.patterns) == before + 1


def test_parts_found_by_one_thread_are_waited_for_by_another() -> None:
    """Two steps side by side read two fields of one big JSON secret: the second caller took
    the parts as the first was still finding them (none yet), and printed its field in clear."""
    import threading
    import time

    from runner.expressions import json_parts

    masker = Masker()
    masker.add(json.dumps({"password": "hunter2-xyz", "token": "tok-abcdef"}))

    def slow_parts(text: str) -> list[str]:
        time.sleep(0.2)
        return json_parts(text)

    threads = [
        threading.Thread(target=masker.add_parts, args=([field], slow_parts))
        for field in ("hunter2-xyz", "tok-abcdef")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert masker.mask("hunter2-xyz tok-abcdef") == "*** ***"


def test_a_few_parts_are_masked_encoded_too_and_every_part_on_demand() -> None:
    from runner.expressions import json_parts

    masker = Masker()
    masker.add(json.dumps({"password": "hunter2-xyz", "region": "eu-west-1", "port": 5432}))
    masker.add_parts(["hunter2-xyz"], json_parts)
    encoded = base64.b64encode(b"hunter2-xyz").decode()
    assert masker.mask(f"{encoded} eu-west-1") == "*** eu-west-1"
    masker.add_every_part(json_parts)
    assert masker.mask("eu-west-1:5432") == "***:***"


@pytest.mark.parametrize(
    "secret",
    [
        "[" * 3000 + "]" * 3000,  # too deep for json: an internal error at the run's start
        '{"pw": "ab\\ud800cd-xyz"}',  # a half of a character, decoded: no encoding takes it
    ],
)
def test_a_secret_json_cannot_take_apart_is_still_registered(secret: str) -> None:
    masker = Masker()
    assert masker.add(secret)
    assert masker.mask(f"x {secret} y") == "x *** y"
