"""Table-driven tests of every built-in filter (expected values as Octostache computes them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from runner.variables import substitute

CASES: list[tuple[str, str | None, str]] = [
    # a missing value, or options a filter does not take: the token stays as written
    ("PropertiesKeyEscape", None, "#{V | PropertiesKeyEscape}"),
    ("PropertiesValueEscape", None, "#{V | PropertiesValueEscape}"),
    ("UriEscape", None, "#{V | UriEscape}"),
    ("UriDataEscape", None, "#{V | UriDataEscape}"),
    ("Format", None, "#{V | Format}"),
    ("Format", "3", "#{V | Format}"),
    ("AddMonths x", "2030-01-31", '#{V | AddMonths "x"}'),
    ("ToBase64", None, "#{V | ToBase64}"),
    ("FromBase64", None, "#{V | FromBase64}"),
    ("Trim", None, "#{V | Trim}"),
    ("Indent", None, "#{V | Indent}"),
    ("Replace a", None, '#{V | Replace "a"}'),
    ("VersionMajor", None, "#{V | VersionMajor}"),
    ("VersionMajor", "  ", "#{V | VersionMajor}"),
    # case
    ("ToUpper", "abc", "ABC"),
    ("ToLower", "ABC", "abc"),
    ("toupper", "straße", "STRAßE"),
    ("ToUpper x", "abc", '#{V | ToUpper "x"}'),
    # base64
    ("ToBase64", "Foo Bar", "Rm9vIEJhcg=="),
    ("ToBase64 unicode", "Baz", "QgBhAHoA"),
    ("ToBase64 ebcdic", "Baz", '#{V | ToBase64 "ebcdic"}'),
    ("FromBase64", "Rm9vIEJhcg==", "Foo Bar"),
    ("FromBase64 unicode", "QgBhAHoA", "Baz"),
    ("FromBase64", "not base64!", "#{V | FromBase64}"),
    # trimming, truncating, substrings
    ("Trim", "  a b  ", "a b"),
    ("Trim start", "  a  ", "a  "),
    ("Trim End", "  a  ", "  a"),
    ("Trim both", "  a  ", '#{V | Trim "both"}'),
    ("Truncate 3", "abcdef", "abc..."),
    ('Truncate 3 ""', "abcdef", "abc"),
    ('Truncate 3 "~"', "abcdef", "abc~"),
    ("Truncate 10", "abcdef", "abcdef"),
    ("Truncate -1", "abcdef", '#{V | Truncate "-1"}'),
    ("Truncate", "abcdef", "#{V | Truncate}"),
    ("Substring 3", "abcdef", "abc"),
    ("Substring 2 3", "abcdef", "cde"),
    ("Substring 20", "abcdef", "abcdef"),
    ("Substring 6 1", "abcdef", ""),
    ("Substring 7 1", "abcdef", '#{V | Substring "7" "1"}'),
    ("Substring a", "abcdef", '#{V | Substring "a"}'),
    # replace and comparisons (regular expressions, .NET replacement syntax)
    ("Replace b x", "abcb", "axcx"),
    ("Replace b", "abcb", "ac"),
    ('Replace "(a)(b)" "$2$1"', "ab", "ba"),
    ('Replace "(?<first>a)" "[${first}]"', "ab", "[a]b"),
    ('Replace "a" "$$"', "ab", "$b"),
    ('Replace "[" x', "ab", '#{V | Replace "[" "x"}'),
    ('Match "^a"', "abc", "true"),
    ("Match ^a", "abc", "#{V | Match ^a}"),  # "^" is not an option character: verbatim
    ('Match "^b"', "abc", "false"),
    ("StartsWith ab", "abc", "true"),
    ("EndsWith bc", "abc", "true"),
    ("Contains B", "abc", "false"),
    # append, prepend, indent, null
    ('Append x " " y', "v", "vx y"),
    ("Prepend x", "v", "xv"),
    ("Append", "v", "#{V | Append}"),
    ("Indent", "a\nb", "    a\n    b"),
    ("Indent 2/1", "a\nb", "  a\n b"),
    ("Indent /2", "a\nb", "a\n  b"),
    ('Indent "> " ". "', "a\nb", "> a\n. b"),
    ("Indent", "", ""),
    # escapes
    ("HtmlEscape", "<a href='x'>&</a>", "&lt;a href=&apos;x&apos;&gt;&amp;&lt;&#x2F;a&gt;"),
    ("XmlEscape", "<a>&'\"", "&lt;a&gt;&amp;&apos;&quot;"),
    ("JsonEscape", 'a"b\\c\n\t', 'a\\"b\\\\c\\n\\t'),
    ("YamlSingleQuoteEscape", "it's\nx", "it''s\n\nx"),
    ("YamlDoubleQuoteEscape", 'é"\n', '\\u00e9\\"\\n'),
    ("YamlDoubleQuoteEscape", "😀", "\\ud83d\\ude00"),
    ("PropertiesKeyEscape", "a b:c=d", "a\\ b\\:c\\=d"),
    ("PropertiesValueEscape", " a b", "\\ a b"),
    ("UriEscape", "a b/c?d=é", "a%20b/c?d=%C3%A9"),
    ("UriDataEscape", "a b/c?d", "a%20b%2Fc%3Fd"),
    # hashes
    ("Md5", "", "d41d8cd98f00b204e9800998ecf8427e"),
    ("Sha1 4", "", "da39a3ee"),
    ("Sha256 unicode 2", "", "e3b0"),
    ("Sha384 2 utf-8", "", "38b0"),
    (
        "Sha512 base64",
        "",
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
    ),
    ("Md5 0", "x", '#{V | Md5 "0"}'),
    ("Md5 utf8 4 extra", "x", '#{V | Md5 "utf8" "4" "extra"}'),
    # numbers and dates
    ("Format N", "1234.5", "1,234.50"),
    ("Format C", "23.4", "¤23.40"),
    ("Format F1", "2.25", "2.3"),
    ('Format "0.000"', "3.14159", "3.142"),
    ("Format P0", "0.256", "26 %"),
    ("Format Int32 D6", "42", "000042"),
    ("Format Int X", "255", "FF"),
    ("Format Double E2", "1234.5", "1.23E+003"),
    ("Format Decimal G", "23.40", "23.40"),
    ("Format yyyy-MM-dd", "2030/05/22 09:05:00", "2030-05-22"),
    ('Format Date "dddd d MMMM, h:mm tt"', "2030-05-22 21:05:00", "Wednesday 22 May, 9:05 PM"),
    ("Format DateTime s", "2030-05-22 09:05:00", "2030-05-22T09:05:00"),
    ("Format DateTimeOffset zzz", "2030-05-22T09:05:00+02:00", "+02:00"),
    ("Format yyyy", "hello", '#{V | Format "yyyy"}'),
    ("AddHours 2", "2030-05-22 09:05:00", "2030-05-22T11:05:00.0000000"),
    ('AddDays "0.5"', "2030-05-22T09:05:00Z", "2030-05-22T21:05:00.0000000Z"),
    ("AddMinutes -5", "2030-05-22T09:05:00+02:00", "2030-05-22T09:00:00.0000000+02:00"),
    ("AddSeconds 30", "2030-05-22 09:05:00", "2030-05-22T09:05:30.0000000"),
    ("AddWeeks 1", "2030-05-22", "2030-05-29T00:00:00.0000000"),
    ("AddMonths 1", "2030-01-31 10:00", "2030-02-28T10:00:00.0000000"),
    ("AddTimeSpan 48:00:00", "2030-05-22 09:05:00", "2030-07-09T09:05:00.0000000"),
    ('AddTimeSpan "1.02:03:04"', "2030-05-22 09:05:00", "2030-05-23T11:08:04.0000000"),
    ("AddHours x", "2030-05-22 09:05:00", '#{V | AddHours "x"}'),
    ("AddHours 1", "tomorrow", '#{V | AddHours "1"}'),
    # URIs and versions
    ("UriPart Host", "https://Octopus.com:8443/a%20b?q=1#f", "octopus.com"),
    ("UriPart Port", "https://octopus.com:8443/a", "8443"),
    ("UriPart Authority", "https://octopus.com:8443/a", "octopus.com:8443"),
    ("UriPart Path", "https://octopus.com/a%20b", "/a b"),
    ("UriPart IsAbsoluteUri", "/relative", "false"),
    ("VersionMajor", "2.3.4-beta.5+sha", "2"),
    ("VersionMinor", "2.3.4-beta.5+sha", "3"),
    ("VersionPatch", "2.3.4-beta.5+sha", "4"),
    ("VersionRevision", "2.3.4.7", "7"),
    ("VersionPrerelease", "2.3.4-beta.5+sha", "beta.5"),
    ("VersionMetadata", "2.3.4-beta.5+sha", "sha"),
    # unknown and unimplemented
    ("NoSuchFilter", "v", "#{V | NoSuchFilter}"),
    ("Markdown", "_x_", "#{V | Markdown}"),
]


@pytest.mark.parametrize(("filters", "value", "expected"), CASES)
def test_filter(filters: str, value: str | None, expected: str) -> None:
    variables = {} if value is None else {"V": value}
    assert substitute(f"#{{V | {filters}}}", variables) == expected


def _clock() -> datetime:
    return datetime(2030, 5, 22, 9, 5, 7, 123456, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("#{ | NowDate}", "2030-05-22T09:05:07.1234560"),
        ("#{ | NowDateUtc}", "2030-05-22T07:05:07.1234560Z"),
        ("#{ | NowDate yyyy-MM-dd}", "2030-05-22"),
        ("#{ | NowDate zzz}", "+02:00"),
        ("#{ | NowDateUtc HH:mm}", "07:05"),
        ("#{ | NowDateUtc | Format DateTimeOffset zz}", "+00"),
        ("#{ | NowDate | Format Date MMM}", "May"),
        ("#{V | NowDate}", "#{V | NowDate}"),
    ],
)
def test_clock_filters(template: str, expected: str) -> None:
    assert substitute(template, {"V": "x"}, now=_clock) == expected


def test_naive_clock_is_local_wall_time() -> None:
    assert substitute("#{ | NowDate HH:mm}", {}, now=lambda: datetime(2030, 1, 1, 8, 30)) == "08:30"


def test_default_clock_is_now() -> None:
    year = substitute("#{ | NowDateUtc yyyy}", {})
    assert int(year) == datetime.now(UTC).year


def test_filter_chains_apply_in_order_and_pass_none_on() -> None:
    assert substitute("#{V|ToUpper|ToLower}", {"V": "Ab"}) == "ab"
    # An unknown filter yields no value; the next filter then sees a missing value.
    assert substitute("#{V | Nope | Append x}", {"V": "v"}) == "x"


def test_options_can_be_substitutions() -> None:
    variables = {"V": "abc", "P": "b", "R": "x"}
    assert substitute("#{V | Replace #{P}#{R}}", variables) == "axc"
    assert substitute('#{V | Prepend " " #{R} " "}', variables) == " x abc"


def test_hash_in_option_needs_escaped_quotes() -> None:
    assert substitute('#{V | Indent \\"# \\"}', {"V": "a"}) == "# a"
    # A plain quoted option cannot hold "#": the template does not parse and comes back as is.
    assert substitute('#{V | Indent "# "}', {"V": "a"}) == '#{V | Indent "# "}'
