"""Table-driven tests of the ``#{}`` language constructs (behaviour as in Octostache)."""

from __future__ import annotations

import pytest

from runner.variables import substitute

Case = tuple[str, dict[str, str], str]

SUBSTITUTION: list[Case] = [
    ("#{Foo}", {"Foo": "Bar"}, "Bar"),
    ("#{FOO}", {"foo": "Bar"}, "Bar"),
    ("#{ Foo }", {"Foo": "Bar"}, "Bar"),
    ("#{Foo Bar Jazz}", {"Foo Bar Jazz": "x"}, "x"),
    ("#{a/b}#{a~b}#{(c)}#{@d}", {"a/b": "1", "a~b": "2", "(c)": "3", "@d": "4"}, "1234"),
    ("#{Octopus.Action[Package A].Name}", {"Octopus.Action[Package A].Name": "P"}, "P"),
    ("#{A[#{K}].B}", {"K": "x", "A[x].B": "found"}, "found"),
    ("#{A[ x].B}", {"A[x].B": "found"}, "found"),
    ("#{A[b[0].c].D}", {"A[b[0].c].D": "nested"}, "nested"),
    (
        "#{Octopus.Action[*].Name}",
        {"Octopus.Action[A].Name": "a", "Octopus.Action[B].Name": "b"},
        "a",
    ),
    (
        "#{Url}",
        {"Url": "http://#{Host | ToLower}:#{Port}", "Host": "WEB", "Port": "80"},
        "http://web:80",
    ),
    ("#{A}", {"A": "#{B}", "B": "#{C}", "C": "deep"}, "deep"),
    ("#{Foo}#{Jazz}", {"Foo": "#{Bar}", "Bar": "Baz"}, "Baz#{Jazz}"),
    ("#{Missing}", {}, "#{Missing}"),
    ("#{ missing  |  ToUpper }", {}, "#{missing | ToUpper}"),
    ("#{A[#{Nope}].B}", {"A[x].B": "1"}, "#{A[#{Nope}].B}"),
    ("#{Octopus.Action}", {"Octopus.Action[a].Name": "x"}, "#{Octopus.Action}"),
    ("#{Empty}", {"Empty": ""}, ""),
]

ESCAPES_AND_ERRORS: list[Case] = [
    ("##{Foo}", {"Foo": "x"}, "#{Foo}"),
    ("###{Foo}", {"Foo": "x"}, "#x"),
    ("# ## ###", {}, "# ## ###"),
    ("####### world", {}, "####### world"),
    ("#{Foo", {"Foo": "x"}, "#{Foo"),
    ("#{}", {}, "#{}"),
    ("#{ }", {}, "#{ }"),
    ("#{/if}", {}, "#{/if}"),
    ("a #{Fo[o} #{Foo}", {"Foo": "x"}, "a #{Fo[o} #{Foo}"),
    ("#{if A}never closed", {"A": "1"}, "#{if A}never closed"),
    ("#{each a in L}", {"L": "1"}, "#{each a in L}"),
    ("#{IF A}x#{/if}", {"A": "1"}, "x"),
    ("#{else}", {}, "#{else}"),
]

CONDITIONALS: list[Case] = [
    ("#{if A}yes#{/if}", {"A": "True"}, "yes"),
    ("#{if A}yes#{else}no#{/if}", {"A": " FALSE "}, "no"),
    ("#{if A}yes#{else}no#{/if}", {"A": "0"}, "no"),
    ("#{if A}yes#{else}no#{/if}", {"A": " 0"}, "yes"),
    ("#{if A}yes#{else}no#{/if}", {}, "no"),
    ("#{unless A}yes#{else}no#{/unless}", {"A": "No"}, "yes"),
    ('#{if A == "x"}eq#{/if}', {"A": "x"}, "eq"),
    ('#{if A == "X"}eq#{else}case#{/if}', {"A": "x"}, "case"),
    ('#{if A != "x"}ne#{else}eq#{/if}', {"A": "x"}, "eq"),
    ('#{if "x" == A}eq#{/if}', {"A": "x"}, "eq"),
    ("#{if A == B}eq#{/if}", {"A": "v", "B": "v"}, "eq"),
    ("#{if Missing == Other}both-empty#{/if}", {}, "both-empty"),
    ('#{if A | ToLower == "abc"}ok#{/if}', {"A": "ABC"}, "ok"),
    ('#{if A | Contains "b"}ok#{/if}', {"A": "abc"}, "ok"),
    ("#{if A | NoSuchFilter}x#{/if}", {"A": "1"}, "#{if A | NoSuchFilter}x#{/if}"),
    ("#{unless A | Nope}x#{/unless}", {"A": "1"}, "#{if A | Nope}#{else}x#{/if}"),
    ("#{if A}#{if B}ab#{else}a#{/if}#{/if}", {"A": "1", "B": "0"}, "a"),
    ("#{if A}a#{elseif B}b#{elseif C}c#{else}z#{/if}", {"C": "1"}, "c"),
    ("#{if A}a#{elseif B}b#{/if}", {}, ""),
    ('#{if E == "dev"}d#{elseif E == "test"}t#{else}o#{/if}', {"E": "test"}, "t"),
    ("#{if A}#{Result}#{else}#{ | null }#{/if}", {"A": "no", "Result": "r"}, ""),
]

ITERATION: list[Case] = [
    ("#{each x in L}[#{x}]#{/each}", {"L": "a,b, c"}, "[a][b][ c]"),
    (
        "#{each a in Act}#{a}=#{a.Name};#{/each}",
        {"Act[B].Name": "2", "Act[A].Name": "1"},
        "B=2;A=1;",
    ),
    (
        "#{each x in L}#{Octopus.Template.Each.Index}#{if Octopus.Template.Each.First}F#{/if}"
        "#{if Octopus.Template.Each.Last}L#{/if} #{/each}",
        {"L": "a,b,c"},
        "0F 1 2L ",
    ),
    ("Ok#{each x in Nothing}#{x}#{/each}", {}, "Ok"),
    (
        "#{each a in A}#{each r in a.Roles}#{a.Name}#{r}#{/each}#{/each}",
        {"A[1].Name": "x", "A[1].Roles": "p,q", "A[2].Name": "y", "A[2].Roles": "r"},
        "xpxqyr",
    ),
    ("#{each a in A}#{a.Size}#{/each}", {"A[x].Name": "1", "A[y].Name": "2"}, "#{a.Size}#{a.Size}"),
    ("#{each a in A}#{a.Name}#{/each}", {"A[x].Name": "#{X}", "X": "via"}, "via"),
    ("#{each a in A}#{Outer}#{/each}", {"A[x].Name": "1", "Outer": "o"}, "o"),
]

JSON: list[Case] = [
    ("#{Cfg.Db.Host}", {"Cfg": '{"Db": {"Host": "h"}}'}, "h"),
    ("#{Cfg.Db}", {"Cfg": '{"Db": {"Host": "h", "Port": 5}}'}, '{"Host":"h","Port":5}'),
    ("#{Cfg.Missing}", {"Cfg": '{"Db": 1}'}, ""),
    ("#{Cfg[1]}", {"Cfg": '["a", "b"]'}, "b"),
    ("#{Cfg.Flag}", {"Cfg": "{Flag: true}"}, "True"),
    ("#{Cfg.@type}", {"Cfg": '{"@type": "W"}'}, "W"),
    ("#{each i in L}#{i.Key}=#{i.Value} #{/each}", {"L": '{"a": 1, "b": "x"}'}, "a=1 b=x "),
    ("#{each i in L}#{i},#{/each}", {"L": "[1, 2]"}, "1,2,"),
    ("#{Plain.X}", {"Plain": "not json"}, "#{Plain.X}"),
]

RECURSION: list[Case] = [
    ("#{A}", {"A": "#{A}"}, "#{A}"),
    ("x#{A}y", {"A": "a#{A}b"}, "xa#{A}by"),
    ("#{A}", {"A": "#{B}", "B": "#{A}"}, "#{A}"),
    ("#{Test}", {"Test": "#{Test.Something}"}, "#{Test.Something}"),
]


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    SUBSTITUTION + ESCAPES_AND_ERRORS + CONDITIONALS + ITERATION + JSON + RECURSION,
)
def test_construct(template: str, variables: dict[str, str], expected: str) -> None:
    assert substitute(template, variables) == expected


def test_iteration_order_is_mapping_order() -> None:
    variables = {f"Step[{name}].Order": name for name in ("zeta", "alpha", "mid")}
    assert substitute("#{each s in Step}#{s} #{/each}", variables) == "zeta alpha mid "


def test_later_duplicate_name_wins_case_insensitively() -> None:
    assert substitute("#{foo}", {"Foo": "first", "FOO": "second"}) == "second"


def test_substitute_is_pure() -> None:
    variables = {"A": "#{B}", "B": "b"}
    snapshot = dict(variables)
    assert substitute("#{A}", variables) == substitute("#{A}", variables) == "b"
    assert variables == snapshot


@pytest.mark.parametrize(
    ("template", "variables", "told"),
    [
        # a filter chain, whole: what it makes of its input, and of another text
        ("#{A | ToUpper | Substring 3}", {"A": "secret"}, [("secret", ["SEC"], ["OTH"])]),
        # a field of a JSON value, step by step
        (
            "#{J.db.pw}",
            {"J": '{"db": {"pw": "x1"}}'},
            [('{"db": {"pw": "x1"}}', ['{"pw":"x1"}'], []), ('{"pw":"x1"}', ["x1"], [])],
        ),
        # #{each} over a JSON array, a JSON object and a list: each item as it is read (an
        # entry's value, not its key, which is a name)
        (
            "#{each i in L}#{i}#{/each}",
            {"L": '["a1", "b2"]'},
            [('["a1", "b2"]', ["a1"], ["other"]), ('["a1", "b2"]', ["b2"], ["other"])],
        ),
        (
            "#{each e in O}#{e.Key}=#{e.Value}#{/each}",
            {"O": '{"k": "v1"}'},
            [('{"k": "v1"}', ["v1"], ["other"])],
        ),
        ("#{each e in O}#{e.Key}#{/each}", {"O": '{"k": "v1"}'}, []),
        (
            "#{each i in C}#{i}#{/each}",
            {"C": "p,q"},
            # (of another text: all its items, since which one sits where is not known)
            [("p,q", ["p"], ["other"]), ("p,q", ["q"], ["other"])],
        ),
        # a calculation: of each whole value it read
        ("#{calc A * B}", {"A": "6", "B": "7"}, [("6", ["42"], []), ("7", ["42"], [])]),
        # a plain reference, and a value that holds another, are not computed: they are the text
        ("#{A} #{B}", {"A": "x", "B": "y-#{A}"}, []),
    ],
)
def test_derived_is_told_of_each_computation_and_how_to_repeat_it(
    template: str, variables: dict[str, str], told: list[tuple[str, list[str], list[str]]]
) -> None:
    """Each call: the source, what the computation made of it, and of the text ``other``."""
    seen: list[tuple[str, list[str], list[str]]] = []
    substitute(
        template,
        variables,
        derived=lambda source, compute: seen.append(
            (source, list(compute(source)), list(compute("other")))
        ),
    )
    assert seen == told


def test_a_json_surrogate_pair_is_one_character_and_a_lone_half_is_replaced() -> None:
    """Decoded one escape at a time, they were two halves that no file takes: writing a step's
    script with them was an internal error."""
    creds = '{"e": "x\\ud83d\\ude00y", "f": "a\\ud83db"}'
    assert substitute("#{C.e}|#{C.f}", {"C": creds}) == "x\U0001f600y|a\ufffdb"
