from __future__ import annotations

import math

import pytest

from runner.load.yaml import MAX_FILE_BYTES, LoadError, load_yaml


def messages(raw: bytes) -> list[str]:
    with pytest.raises(LoadError) as caught:
        load_yaml("w.yml", raw)
    return [f"{d.location}: {d.message} [{d.kind}]" for d in caught.value.diagnostics]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a: 1\n", {"a": 1}),
        (b"a: 0x1f\nb: 0o17\nc: 1_000\n", {"a": 31, "b": 15, "c": 1000}),
        (b"a: yes\nb: no\nc: on\n", {"a": "yes", "b": "no", "c": "on"}),  # YAML 1.2: strings
        (b"a: true\nb: False\n", {"a": True, "b": False}),
        (b"a: null\nb: ~\nc:\n", {"a": None, "b": None, "c": None}),
        (b"a: '1'\nb: \"true\"\n", {"a": "1", "b": "true"}),
        (b"a: 1.5\nb: -.inf\n", {"a": 1.5, "b": -math.inf}),
        (
            b"base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n",
            {"base": {"x": 1, "y": 2}, "d": {"x": 1, "y": 3}},
        ),
        ("\ufeffa: é\n".encode(), {"a": "é"}),
    ],
)
def test_scalars_and_merges(raw: bytes, expected: object) -> None:
    assert load_yaml("w.yml", raw).data == expected


def test_positions_of_keys_and_values() -> None:
    doc = load_yaml("w.yml", b"name: x\nsteps:\n  - id: a\n    run: echo hi\n")
    assert str(doc.location(("steps", 0, "run"))) == "w.yml:4:10"
    assert str(doc.location(("steps", 0, "run"), key=True)) == "w.yml:4:5"
    # an unknown path falls back to its nearest known parent
    assert str(doc.location(("steps", 0, "nope", 3))) == "w.yml:3:5"


def test_duplicate_keys_are_all_reported() -> None:
    assert messages(b"a: 1\nb:\n  c: 1\n  c: 2\na: 3\n") == [
        "w.yml:4:3: key 'c' is duplicated (first defined at line 3) [duplicate-key]",
        "w.yml:5:1: key 'a' is duplicated (first defined at line 1) [duplicate-key]",
    ]


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    found = messages("\n".join(lines).encode())
    assert len(found) == 1
    assert "document is too large once aliases expand" in found[0]
    assert "(aliases and merge keys may add 50,000 values); simplify it [syntax]" in found[0]


def test_deep_nesting_is_refused() -> None:
    raw = ("a: " + "[" * 300 + "]" * 300 + "\n").encode()
    assert "nested too deeply" in messages(raw)[0]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "w.yml:1:1: file is empty; expected a YAML mapping [syntax]"),
        (b"   \n\n", "w.yml:1:1: file is empty; expected a YAML mapping [syntax]"),
        (b"# only a comment\n", "w.yml:1:1: file is empty; expected a YAML mapping [syntax]"),
        (b"a: \x00", "w.yml:1:1: file is binary, not YAML text [syntax]"),
        (
            b"a: 1\nb: \xff\n",
            "w.yml:2:4: file is not UTF-8 text (byte 0xff); save it as UTF-8 [syntax]",
        ),
        (
            b"a: [1\n",
            "w.yml:1:4: invalid YAML: while parsing a flow sequence, did not find expected "
            "',' or ']' [syntax]",
        ),
        (
            b"a: 1\n\tb: 2\n",
            "w.yml:2:1: invalid YAML: found a tab character that violates indentation; "
            "YAML is indented with spaces, not tabs [syntax]",
        ),
        (b"{a: 1}: 2\n", "w.yml:1:1: a key must be a plain string, not a list or mapping [syntax]"),
        (
            b"run: echo a: b\n",
            "w.yml:1:12: invalid YAML: mapping values are not allowed in this context; a value "
            'holding `: ` must be quoted (`run: "echo a: b"`), or this line is indented too far '
            "[syntax]",
        ),
        (
            b'a: "open\n',
            "w.yml:1:4: invalid YAML: while scanning a quoted scalar, found unexpected end of "
            "stream; a quote or bracket opened here is never closed [syntax]",
        ),
    ],
)
def test_bad_files_get_one_clear_line(raw: bytes, expected: str) -> None:
    assert messages(raw)[0] == expected


def test_too_large_file() -> None:
    raw = b"a: " + b"x" * (MAX_FILE_BYTES + 1)
    assert messages(raw) == ["w.yml:1:1: file is too large: more than the 8 MiB limit [syntax]"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"a: &a {x: *a}\n", "an alias refers to a value that contains it; remove the cycle"),
        (b"a: &a [1, *a]\n", "an alias refers to a value that contains it; remove the cycle"),
        (
            b"a: &a {x: 1, <<: *a}\n",
            "a merge key (`<<`) merges a mapping into itself; remove the cycle",
        ),
    ],
)
def test_cycles_are_refused_at_the_anchor(raw: bytes, message: str) -> None:
    with pytest.raises(LoadError) as caught:
        load_yaml("cycle.yml", raw)
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.location.line, diagnostic.location.column) == (1, 4)
    assert diagnostic.message == message


def test_the_same_anchor_merged_twice_is_not_a_cycle() -> None:
    raw = b"b: &b {y: 2}\na: &a {x: 1, <<: [*b, *b]}\nc: {<<: *a, z: *b}\n"
    assert load_yaml("ok.yml", raw).data == {
        "b": {"y": 2},
        "a": {"x": 1, "y": 2},
        "c": {"x": 1, "y": 2, "z": {"y": 2}},
    }


def substitution_comments(raw: bytes) -> list[str]:
    with pytest.raises(LoadError) as caught:
        load_yaml("w.yml", raw, substitutions=True)
    return [f"{d.location}: {d.message} [{d.kind}]" for d in caught.value.diagnostics]


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        # the value runs `deploy --password`: YAML ends it at ` #`
        (b"run: deploy --password #{Pw}\n", "w.yml:1:24: `#{Pw}`"),
        (b"env:\n  DB: #{Db}\n", "w.yml:2:7: `#{Db}`"),
        (b'a: "quoted" #{Q}\n', "w.yml:1:13: `#{Q}`"),
        (b"a: plain\n  continued\t#{Multi | ToUpper}\n", "w.yml:2:13: `#{Multi | ToUpper}`"),
        (b"- first #{One}\n", "w.yml:1:9: `#{One}`"),
        (b"a: [x, y] #{Flow}\n", "w.yml:1:11: `#{Flow}`"),
        ("a: \u00e9 #{Wide\n".encode(), "w.yml:1:6: `#{Wide`"),
        # a long command wrapped onto the next line, where the wrapped part is a comment
        (b"run: ./migrate --user admin --password\n  #{DbPassword}\nb: 1\n", "w.yml:2:3:"),
        (b"steps:\n  - run:\n      #{Script}\n", "w.yml:3:7: `#{Script}`"),
        (b"steps:\n  - run: echo\n     #{Wrapped}\n    name: x\n", "w.yml:3:6: `#{Wrapped}`"),
        # after a block scalar's header, and on a key whose value starts below
        (b"run: | #{Pw}\n  deploy\n", "w.yml:1:8: `#{Pw}`"),
        (b"run: >- #{Pw}\n  deploy\n", "w.yml:1:9: `#{Pw}`"),
        (b"env: #{Pw}\n  A: b\n", "w.yml:1:6: `#{Pw}`"),
        (b"run: #{Migrate}\n  --target prod\n", "w.yml:1:6: `#{Migrate}`"),
        # inside a flow collection: after an item's comma, after the bracket, on the lines below
        (b"args: [--user, admin, #{Pw}\n  ]\n", "w.yml:1:23: `#{Pw}`"),
        (b"env: {A: b, #{Pw}\n  }\n", "w.yml:1:13: `#{Pw}`"),
        (b"args: [ #{Pw}\n  ]\n", "w.yml:1:9: `#{Pw}`"),
        (b"args: [--user,\n  #{Pw}\n  ]\n", "w.yml:2:3: `#{Pw}`"),
        (b"args: [\n  #{Pw}\n  ]\n", "w.yml:2:3: `#{Pw}`"),
        (b"args: ['a', \"b\",\n   #{Pw}\n  ]\n", "w.yml:2:4: `#{Pw}`"),
        (b"args: [a,\n#{Pw}\n]\n", "w.yml:2:1: `#{Pw}`"),
        # below a value with no comma: in a flow collection it would go on there
        (b"env: {A: --password\n  #{Pw}\n  }\n", "w.yml:2:3: `#{Pw}`"),
        (b"args: [--user, admin, --password\n  #{Pw}\n  ]\n", "w.yml:2:3: `#{Pw}`"),
        # after the bracket of a collection with an anchor or a tag
        (b"args: &a [\n  #{Pw}\n  ]\n", "w.yml:2:3: `#{Pw}`"),
        (b"args: !!seq [ #{Pw}\n  ]\n", "w.yml:1:15: `#{Pw}`"),
        # once, though an alias converts the collection again
        (b"x: &a [a, #{Pw}\n  ]\ny: *a\n", "w.yml:1:11: `#{Pw}`"),
        # after an anchor or a tag, the value is empty
        (b"a: &x #{Pw}\n", "w.yml:1:7: `#{Pw}`"),
        (b"a: !!str #{Pw}\n", "w.yml:1:10: `#{Pw}`"),
    ],
)
def test_a_comment_that_reads_as_a_substitution_is_refused(raw: bytes, where: str) -> None:
    [message] = substitution_comments(raw)
    assert message.startswith(where), message
    assert "is a YAML comment here, not a substitution" in message
    assert "quote the whole value, or write it as a block (`|`)" in message


@pytest.mark.parametrize(
    "raw",
    [
        b"run: |\n  deploy --password #{Pw}\n",  # a block keeps it
        b"run: >\n  deploy #{Pw}\n",
        b'run: "deploy #{Pw}"\n',
        b"run: deploy --password#{Pw}\n",  # no space before `#`: part of the value
        b"a: 1 # a comment\n# #{a comment on a line of its own}\n",
        b"a: 1 # {not a substitution}\n",
        # a comment at the key's indentation or less is about what follows, not the value
        b"a: 1\n#{about b}\nb: 2\n",
        b"steps:\n  - run: echo\n  #{about the next step}\n  - run: echo\n",
        b"env:\n  A: b\n  #{about C}\n  C: d\n",
        b"steps:\n  - run: echo\n    #{about name}\n    name: x\n",
        # in a flow collection: inside its quoted items, or a comment that is no substitution
        b'args: ["a #{Pw}", "b, #{Pw}"]\n',
        b'args: ["a\n  #{Pw} b"]\n',
        b"args: [a,\n  # the next one\n  b]\n",
        b"args: [a, b] # {not one}\n",
        b"steps:\n  - env: {A: x,\n      B: y}\n    # about #{run}\n    run: echo\n",
    ],
)
def test_other_comments_and_values_holding_a_substitution_load(raw: bytes) -> None:
    load_yaml("w.yml", raw, substitutions=True)


def test_files_without_substitutions_keep_such_comments() -> None:
    """People and policy files never substitute: a note in a comment is only a note there."""
    assert load_yaml("people.yml", b"username: alice   #{team-lead} see wiki\n").data == {
        "username": "alice"
    }
