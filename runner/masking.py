"""Secret masking for step output, modelled on GitHub's ``SecretMasker``.

GitHub's runner (``src/Sdk/DTLogging/Logging/SecretMasker.cs``) keeps a set of secret values
plus, for each, the forms a tool is likely to print it in (``ValueEncoders.cs``); it replaces
every occurrence of any of them with ``***``, merging overlapping and touching occurrences
into one. :class:`Masker` does the same, with these choices:

* **Minimum length.** GitHub masks any non-empty value. Masking ``a`` or ``10`` would
  replace every such character in the log and make it useless, while telling a reader which
  characters the secret is made of. A value (or line, or encoded form) shorter than
  ``min_length`` (default :data:`MIN_SECRET_LENGTH`, 4) is not registered; :meth:`Masker.add`
  returns ``False`` so the caller can warn that the secret cannot be masked.
* **Lines.** Like GitHub's worker (``Worker.InitializeSecretMasker``) a value is registered
  whole and trimmed, and each of its lines trimmed, since output arrives line by line: a
  multi-line secret printed by a step is masked line by line through its registered lines.
* **Encodings.** For every registered string, the encoders GitHub registers in
  ``HostContext``: base64 of the UTF-8 bytes and of the bytes shifted by one and two
  (``Base64StringEscapeShift1/2``: a secret inside a larger base64 blob starts at any byte
  offset modulo 3), URL data escape, JSON string escape, XML escape, expression string
  escape (``'`` doubled), and ``TrimDoubleQuotes``. GitHub registers only the padded base64
  of each shift, which matches a secret at the *end* of a blob (and drops the characters of
  the shifted-off bytes); we also register, for each of the three byte offsets, exactly the
  characters whose bits all come from the secret, so a secret in the middle of a blob is
  masked too, leaving at most the one character at each end that mixes in neighbouring
  bytes. We add base64url; hex (lower and upper case); URL encodings as Python's ``quote``
  (``/`` kept) and JavaScript's ``encodeURIComponent`` write them, with ``+`` or ``%20`` for a
  space and upper- or lower-case ``%xx``; JSON as Python (``\\uXXXX``), PHP (``\\/``), Go
  (``\\u003c``) and .NET (upper-case hex) write it, and JSON inside a JSON string; the forms
  inside bash single and double quotes, ``printf %q``'s, ``shlex.quote``'s, and Python's ``repr``
  (alone, and inside a text holding a ``"``, where it escapes ``'``).
* **Derived values.** GitHub's expressions cannot change a secret's case or cut it, but
  Octostache's filters can (``#{Password | ToUpper}``, ``Substring``, a field of a JSON
  secret, ``#{each}`` over one): :meth:`Masker.derive` repeats such a computation on each
  secret its input holds and registers what comes out (Octopus masks only the value itself).
* **Wrapped encodings.** ``base64`` wraps at 76 columns, PEM and ``openssl`` at 64, ``xxd -p``
  at 60, at a column that depends on what preceded the secret in the stream, so its encoding
  is cut where no registered form can anticipate. The long encoded forms are kept as
  *streams* (:func:`wrapped_streams`): a line that lies inside one, starts with the end of
  one or ends with the start of one has that part masked (:class:`_Fragments`).
* **Speed.** All registered strings compile into one regular expression (rebuilt only when
  a secret is added), so a line costs one C-level scan, plus two set look-ups for the
  wrapped pieces. Python's ``re`` has no multi-string search, so the expression is keyed on
  each string's rarest character (see :class:`_Matcher`), and matches only a few dozen
  characters around it (a kilobyte-long key file's forms are confirmed in Python).
  ``bench/masking.py`` measures it: with 10 secrets (some 150 strings), about 1 µs a line.
* **Streaming.** :class:`StreamMasker` masks text arriving in arbitrary chunks, holding back
  the unfinished last line; a line that grows past a bound is released in pieces, holding
  back enough characters that no secret can be split between two pieces.

Matching is case-sensitive and exact, as GitHub's (ordinal) is. No I/O happens here.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

from runner.characters import encodable, whole_characters

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "Masker",
    "StreamMasker",
    "encoded_forms",
    "printf_q",
    "wrapped_streams",
]

MASK = "***"
MIN_SECRET_LENGTH = 4
#: results of a filter that tests a secret (``Contains``, ``StartsWith``, a JSON ``true``)
_VERDICTS = frozenset({"true", "false"})

_XML_ESCAPES = {"<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "&": "&amp;"}
_XML_SPECIAL = re.compile("[<>\"'&]")
_BASH_DOUBLE_QUOTED = re.compile(r'([\\$`"])')
_PERCENT = re.compile("%[0-9A-F]{2}")
_UNICODE_ESCAPE = re.compile(r"\\u[0-9a-f]{4}")
_GO_HTML_ESCAPED = re.compile("[<>&\u2028\u2029]")
# bash 5's printf %q: these get a backslash; `#` and `~` only where they would be special
_PRINTF_Q_SPECIAL = re.compile(r"[ !\"$&'()*,;<>?\[\\\]^`{|}]")
_TILDE_AFTER = re.compile("([=:])~")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_CONTROL_OR_QUOTE = re.compile("[\x00-\x1f\x7f'\\\\]")
_ANSI_C = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    "\x1b": "\\E",
    "'": "\\'",
    "\\": "\\\\",
}


def encoded_forms(value: str) -> set[str]:
    """``value`` and the encoded forms of it a log might contain (see the module docstring).

    Forms that equal ``value`` or each other collapse; no length filter is applied here.
    """
    data = value.encode("utf-8")
    forms = {value, data.hex(), data.hex().upper()}
    forms.update(_base64_forms(data))
    forms.update(_url_forms(value))
    forms.update(_json_forms(value))
    forms.add(_XML_SPECIAL.sub(lambda m: _XML_ESCAPES[m.group()], value))  # XmlDataEscape
    forms.add(value.replace("'", "''"))  # ExpressionStringEscape, YAML '...'
    if len(value) > 8 and value.startswith('"') and value.endswith('"'):
        forms.add(value[1:-1])  # TrimDoubleQuotes (GitHub's length rule)
    forms.add(value.replace("'", "'\\''"))  # inside bash '...' (and `set -x` traces)
    forms.add(_BASH_DOUBLE_QUOTED.sub(r"\\\1", value))  # inside bash "..."
    forms.add(printf_q(value))
    forms.add(repr(value)[1:-1])  # Python's repr(), as print() shows a list or a dict
    # ...and repr() of a text holding the secret and a `"`: single-quoted, with `'` as `\'`
    forms.add(repr(value + '"')[1:-2])
    forms.add(value.replace("'", "'\"'\"'"))  # shlex.quote(), shlex.join(): `'` as '"'"'
    return forms


def _base64_forms(data: bytes) -> set[str]:
    forms = set()
    for shift in (0, 1, 2):
        # GitHub's Base64StringEscape and ...Shift1/2: the padded base64 of the bytes after
        # dropping `shift` of them, which matches a secret that ends a blob.
        if shift == 0 or len(data) > shift:
            forms.add(base64.b64encode(data[shift:]).decode("ascii"))
    forms.update(_base64_cores(data))
    url = base64.urlsafe_b64encode(data).decode("ascii")
    forms.update((url, url.rstrip("=")))
    return forms


def _base64_cores(data: bytes) -> list[str]:
    """For each byte offset of the secret inside a base64 blob (0, 1 or 2 modulo 3), the
    characters whose 6 bits all come from the secret, in base64 and base64url."""
    cores = []
    for offset in (0, 1, 2):
        # Encode the secret at that offset; keep from bit 8*offset rounded up to a character,
        # to the last whole character.
        encoded = base64.b64encode(bytes(offset) + data).decode("ascii")
        first = -(-8 * offset // 6)
        last = 8 * (offset + len(data)) // 6
        core = encoded[first:last]
        cores += [core, core.replace("+", "-").replace("/", "_")]
    return cores


def wrapped_streams(value: str) -> dict[str, int]:
    """The long encoded forms of ``value`` that tools cut into lines, each with the shortest
    piece of it that is masked at a line's start or end (see :class:`_Fragments`).

    ``base64`` wraps at 76 columns, ``openssl base64`` and PEM at 64, ``xxd -p`` at 60: a
    secret's encoding is then cut at a column that depends on what came before it.
    """
    data = value.encode("utf-8")
    streams = dict.fromkeys(_base64_forms(data) - {value}, 4)  # 3 bytes of the secret
    hexed = data.hex()
    streams.update({hexed: 8, hexed.upper(): 8})  # 4 bytes: hex digits are common in logs
    return streams


def _url_forms(value: str) -> set[str]:
    forms = set()
    # RFC 3986 data (Uri.EscapeDataString, jq's @uri, curl), Python's quote() default for a
    # path, and JavaScript's encodeURIComponent; each with %20 or + (a form) for a space
    for safe in ("", "/", "!'()*"):
        forms.add(quote(value, safe=safe))
        forms.add(quote_plus(value, safe=safe))
    forms.update([_PERCENT.sub(lambda m: m.group().lower(), form) for form in forms])
    return forms


def _json_forms(value: str) -> set[str]:
    plain = json.dumps(value, ensure_ascii=False)[1:-1]  # JsonStringEscape, JavaScript, jq
    forms = {
        plain,
        json.dumps(value)[1:-1],  # Python, PHP: \uXXXX for non-ASCII
        _GO_HTML_ESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", plain),  # Go: \u003c
    }
    forms.update([form.replace("/", "\\/") for form in forms])  # PHP and others: \/
    # .NET's System.Text.Json writes the hex digits in upper case: \u00E9
    forms.update([_UNICODE_ESCAPE.sub(lambda m: "\\u" + m.group()[2:].upper(), f) for f in forms])
    forms.add(json.dumps(plain, ensure_ascii=False)[1:-1])  # a JSON text inside a JSON string
    return forms


def printf_q(value: str) -> str:
    """``value`` as bash's ``printf %q`` (and ``${value@Q}``'s backslash style) quotes it."""
    if _CONTROL.search(value):
        return "$'" + _CONTROL_OR_QUOTE.sub(_ansi_c_escape, value) + "'"
    quoted = _PRINTF_Q_SPECIAL.sub(r"\\\g<0>", value)
    quoted = _TILDE_AFTER.sub(r"\g<1>\\~", quoted)
    return "\\" + quoted if quoted.startswith(("#", "~")) else quoted


def _ansi_c_escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ANSI_C.get(char) or f"\\{ord(char):03o}"


# Characters roughly from most to least frequent in build and deployment logs. Each secret
# form is found through its *rarest* character (see `_Matcher`); anything not listed
# (other punctuation, non-ASCII) counts as rarer than all of these.
_COMMONNESS = " etaoinsrhldcumfpgwybvkxjqz0123456789.:-/_=,()[]'\"\tETAOINSRHLDCUMFPGWYBVKXJQZ"
_RANK = {char: rank for rank, char in enumerate(_COMMONNESS)}

_Node = dict[str, "_Node"]
_Search = Callable[..., "re.Match[str] | None"]

# Groups nested deeper than this make `re`'s recursive parser overflow the stack.
_MAX_NESTING = 100
# How much of a string, around its anchor, the expression matches (see `_Matcher`).
_HEAD = 16
_TAIL = 48


def _anchor(word: str) -> int:
    """The index of the first occurrence of the rarest character of ``word``."""
    unranked = len(_RANK)
    rarest = max(set(word), key=lambda char: (_RANK.get(char, unranked), char))
    return word.index(rarest)


def _trie_pattern(tails: Iterable[str], terminal: Callable[[str], str]) -> str:
    """A regular expression matching where some ``tail`` followed by ``terminal(tail)`` does.

    It stops at the first tail that matches, not necessarily the longest. Shaped as a trie,
    the alternatives at each point start with distinct characters, so ``re`` rejects all but
    one with a single comparison each.
    """
    root: _Node = {}
    for tail in tails:
        node = root
        for char in tail:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a tail; "" never collides with a one-character key

    def build(node: _Node, path: str, depth: int) -> str:
        prefix = []
        # Collapse single-child chains so nesting depth follows branch points, not length.
        while len(node) == 1 and "" not in node:
            ((char, node),) = node.items()
            prefix.append(char)
        path += "".join(prefix)
        head = re.escape("".join(prefix))
        if depth >= _MAX_NESTING:
            # Only whether *something* may match here matters (callers confirm which words):
            # past this many branch points, the path so far is specific enough, and `re`
            # cannot parse groups nested much deeper.
            return head
        alternatives = [terminal(path)] if "" in node else []
        if alternatives != [""]:
            # A tail that needs no check makes its longer continuations unnecessary.
            alternatives += [
                re.escape(char) + build(child, path + char, depth + 1)
                for char, child in sorted(node.items())
                if char
            ]
        body = alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"
        return head + body

    return build(root, "", 0)


class _Matcher:
    """Finds every occurrence of a fixed set of strings, overlapping ones included.

    ``re`` has no multi-string search, and an alternation of the strings is tried at every
    position whose character can start one of them: with base64 forms that is nearly every
    letter, at some 10 MB/s. Instead each string is split at its rarest character into a
    head and a tail; the regular expression matches tails (as a trie) and checks the head
    before them with a fixed-width lookbehind. Its first characters are then rare ones, which
    ``re`` skips to with its fast character-set scan, and a match is confirmed in Python
    against the few strings anchored on that character, which also finds occurrences
    overlapping the one the expression reported.
    """

    def __init__(self, words: Iterable[str]) -> None:
        # A long string (a key file and its encodings run to kilobytes) is matched by the
        # expression only around its anchor, at most `_HEAD` characters before and `_TAIL`
        # from it; the Python check confirms the whole. Compiling whole strings took seconds.
        by_tail: dict[str, set[str]] = {}
        self._anchored: dict[str, list[tuple[int, str]]] = {}
        for word in words:
            at = _anchor(word)
            by_tail.setdefault(word[at : at + _TAIL], set()).add(word[max(at - _HEAD, 0) : at])
            self._anchored.setdefault(word[at], []).append((at, word))

        def terminal(tail: str) -> str:
            heads = sorted(by_tail[tail], key=len, reverse=True)
            if not heads[-1]:
                return ""  # a word that is all tail: matching the tail is enough
            # Look back over the tail just matched (any characters) to the head before it.
            skip = f"(?s:.){{{len(tail)}}}"
            checks = [f"(?<={re.escape(head)}{skip})" for head in heads]
            return checks[0] if len(checks) == 1 else f"(?:{'|'.join(checks)})"

        try:
            pattern = _trie_pattern(by_tail, terminal)
            self.search = re.compile(pattern).search
        except (RecursionError, re.error):
            # Should the trie still defeat `re` (nesting is capped, so this is a safety net),
            # a flat alternation finds the same anchors, more slowly.
            ordered = sorted(by_tail, key=len)  # shortest first: any match will do
            flat = "|".join(re.escape(tail) + terminal(tail) for tail in ordered)
            self.search = re.compile(flat).search

    def find(self, text: str, found: list[tuple[int, int]]) -> None:
        """Append the ``[start, end)`` range of every occurrence of a string to ``found``.

        ``search`` finds where one may be (a line without any costs that one call)."""
        search = self.search
        anchored = self._anchored
        match = search(text)
        while match is not None:
            at = match.start()
            for offset, word in anchored.get(text[at], ()):
                start = at - offset
                if start >= 0 and text.startswith(word, start):
                    found.append((start, start + len(word)))
            match = search(text, at + 1)


class _Levels:
    """Matchers of the strings registered so far, in levels of about doubling size: a string
    added is compiled into a small new level, and levels of similar size are merged, so each
    string is compiled again about log2(n) times, not at every ``add``. One matcher of every
    string, compiled again at each ``::add-mask::``, made 1,000 of them (each a line apart)
    cost 6 minutes and 870 MB; a line is now searched once per level."""

    def __init__(self, levels: list[tuple[frozenset[str], _Matcher]]) -> None:
        self.levels = levels
        self.matchers = [matcher for _, matcher in levels]
        searches = [matcher.search for matcher in self.matchers]
        if len(searches) == 1:
            self.search: _Search = searches[0]
        else:

            def search(text: str, *at: int) -> re.Match[str] | None:
                for one in searches:
                    found = one(text, *at)
                    if found is not None:
                        return found
                return None

            self.search = search

    @classmethod
    def grown(cls, previous: _Levels | None, words: set[str]) -> _Levels:
        """The levels of ``previous`` with the strings of ``words`` it does not hold added."""
        levels = list(previous.levels) if previous is not None else []
        held = set().union(*(level for level, _ in levels)) if levels else set()
        new = frozenset(words - held)
        if not new:
            return previous if previous is not None else cls([])
        while levels and len(levels[-1][0]) <= 2 * len(new):
            new = new | levels.pop()[0]
        levels.append((new, _Matcher(new)))
        return cls(levels)

    def find(self, text: str, found: list[tuple[int, int]]) -> None:
        for matcher in self.matchers:
            matcher.find(text, found)


# A line's edges that are not part of what a tool wrapped: indentation, quotes around a
# value, a trailing comma or shell line continuation, a CR.
_EDGE = " \t\r\"'`,;\\"
_GRAM = 4
# A whole line inside a stream is only masked from this length: a short line (`done`, `2026`)
# lies by chance inside some base64 or hex text far more often than it ends or starts one,
# and every tool wraps wider than this.
_INSIDE = 16


class _Fragments:
    """Finds the pieces of long encoded forms that a tool cut into lines.

    ``base64`` wraps its output at 76 columns, PEM and ``openssl base64`` at 64; a secret inside
    the encoded stream starts at any column, so where its encoding is cut cannot be known in
    advance. What can: a line of such output is the whole stream's text between two cuts, so a
    secret's encoding ``s`` shows as

    * a line (between edge characters, see ``_EDGE``) of at least ``_INSIDE`` characters that
      lies inside ``s``;
    * a line that *starts* with the end of ``s`` (its last piece), or *ends* with the start of
      ``s`` (its first piece).

    Every window of ``_GRAM`` characters of every ``s`` is kept in a set, so each line costs
    two look-ups (of its first and last characters) until one hits; a piece shorter than its
    stream's minimum is left alone, as lines shorter than the masker's minimum are.
    Occurrences of a whole ``s`` inside a line are the :class:`_Matcher`'s part.
    """

    def __init__(self, streams: dict[str, int], previous: _Fragments | None = None) -> None:
        self._streams = list(streams.items())
        # grown from ``previous`` (whose streams are among these) by the new streams' windows:
        # all of them again at each ``::add-mask::`` made 1,000 of them quadratic
        known = dict(previous._streams) if previous is not None else {}
        #: every window of every stream: a line whose edges are none of these is left alone
        self.grams: set[str] = set(previous.grams) if previous is not None else set()
        self.grams.update(
            stream[at : at + _GRAM]
            for stream in streams
            if stream not in known
            for at in range(len(stream) - _GRAM + 1)
        )

    def find(
        self,
        text: str,
        found: list[tuple[int, int]],
        *,
        starts_line: bool = True,
        ends_line: bool = True,
    ) -> None:
        """Append the ranges of pieces at the edges of each line of ``text`` to ``found``.

        ``starts_line``/``ends_line``: whether the text's first (last) character begins (ends)
        a line, which is not so for a long line released in parts (:class:`StreamMasker`).
        """
        grams = self.grams
        lines = text.split("\n")
        last = len(lines) - 1
        start = 0
        for number, line in enumerate(lines):
            body = line.strip(_EDGE)
            if len(body) >= _GRAM and (body[:_GRAM] in grams or body[-_GRAM:] in grams):
                self._line(
                    line, start, found, starts_line or number > 0, ends_line or number < last
                )
            start += len(line) + 1

    def _line(
        self,
        line: str,
        offset: int,
        found: list[tuple[int, int]],
        starts_line: bool,
        ends_line: bool,
    ) -> None:
        body = line.strip(_EDGE)
        size = len(body)
        if size < _GRAM:
            return
        grams = self.grams
        head = body[:_GRAM] if starts_line else ""
        tail = body[-_GRAM:] if ends_line else ""
        at_head, at_tail = head in grams, tail in grams
        if not (at_head or at_tail):
            return  # nearly every line: two look-ups
        first = offset + len(line) - len(line.lstrip(_EDGE))
        stop = first + size
        # A hit is rare (a wrapped secret, or chance): finding where in which stream the
        # window is costs a scan of the streams, which is cheaper than indexing positions.
        for stream, least in self._streams:
            if at_head:
                at = stream.find(head)
                while at >= 0:
                    if size >= max(least, _INSIDE) and stream.startswith(body, at):
                        found.append((first, stop))  # the whole line lies inside the stream
                    elif len(stream) - at >= least and body.startswith(stream[at:]):
                        found.append((first, first + len(stream) - at))  # its last piece
                    at = stream.find(head, at + 1)
            if at_tail:
                at = stream.find(tail)
                while at >= 0:
                    piece = at + _GRAM
                    if least <= piece <= size and body.endswith(stream[:piece]):
                        found.append((stop - piece, stop))  # its first piece
                    at = stream.find(tail, at + 1)


def _merged(found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ranges ``found``, sorted, merged where they overlap or touch."""
    if not found:
        return []
    found.sort()
    merged: list[tuple[int, int]] = []
    start, end = found[0]
    for next_start, next_end in found[1:]:
        if next_start <= end:  # GitHub merges when `Start <= End`: touching counts
            end = max(end, next_end)
        else:
            merged.append((start, end))
            start, end = next_start, next_end
    merged.append((start, end))
    return merged


#: parts read at once up to which each is registered with its encoded forms too
_FEW_PARTS = 16


class Masker:
    """The set of secrets of a run, and the masking of text with them.

    ``add`` and ``mask`` may be called from several threads (a step's stdout and stderr
    readers, and ``::add-mask::``); the compiled matcher is swapped atomically.
    """

    def __init__(self, *, min_length: int = MIN_SECRET_LENGTH) -> None:
        if min_length < 1:
            raise ValueError("min_length must be at least 1")
        self._min_length = min_length
        self._patterns: set[str] = set()
        self._streams: dict[str, int] = {}
        self._lock = threading.Lock()
        #: the matcher, the pieces finder, and their search and windows for `mask`'s fast path
        self._compiled: tuple[_Levels, _Fragments, _Search, set[str]] | None = None
        #: the matchers of the strings compiled so far, grown at each change (see _Levels)
        self._levels: _Levels | None = None
        #: the last pieces finder, which the next one grows from (its streams are kept)
        self._grown_from: _Fragments | None = None
        self._longest = 0
        self._version = 0
        #: the values registered, as given and trimmed (not their lines or encoded forms), for
        #: :meth:`derive`
        self._values: list[str] = []
        self._known: set[str] = set()
        #: text -> (how many of _values were searched in it, those found): derive's recent texts
        self._held: dict[str, tuple[int, list[str]]] = {}
        #: the pieces finder, kept while the streams stay the same (a derived value adds none)
        self._fragments: _Fragments | None = None
        #: the parts of the secrets (see :meth:`add_parts`) and how many of _values they cover;
        #: its own lock, held while they are found: a caller must not see them half found
        self._parts: set[str] = set()
        self._parted = 0
        self._parts_lock = threading.Lock()

    @property
    def min_length(self) -> int:
        """The shortest string that is registered for masking."""
        return self._min_length

    @property
    def values(self) -> tuple[str, ...]:
        """The values registered (as given, and trimmed when that differs), in order: the
        secrets and what :meth:`derive` found."""
        with self._lock:
            return tuple(self._values)

    @property
    def patterns(self) -> frozenset[str]:
        """Every string that is masked: the secrets, their lines and their encoded forms."""
        with self._lock:
            return frozenset(self._patterns)

    @property
    def streams(self) -> dict[str, int]:
        """The encoded forms whose pieces are masked at line edges, each with the shortest
        piece that is (see :func:`wrapped_streams`)."""
        with self._lock:
            return dict(self._streams)

    @property
    def longest(self) -> int:
        """The length of the longest masked string (0 when nothing is registered)."""
        return self._longest

    @property
    def version(self) -> int:
        """A counter that changes whenever the masked strings change."""
        return self._version

    def add(self, value: str, *, encodings: bool = True) -> bool:
        """Register a secret: itself, trimmed, each trimmed line, and their encoded forms
        (without ``encodings``, as :meth:`derive` registers: the forms alone cost about 15
        strings each, and the matcher is compiled from all of them).

        Returns whether the trimmed value itself is now masked; ``False`` means it is empty
        or shorter than :attr:`min_length` (its long enough lines are still registered).
        """
        value = _printable(value)
        trimmed = value.strip()
        compact = _compact_json(trimmed)
        if compact is not None:
            # as #{} rewrites a JSON value it takes apart (``#{Wrapper.primary}``)
            self.add(compact, encodings=encodings)
        items = {value, trimmed}
        items.update(line.strip() for line in re.split(r"\r\n|\r|\n", value))
        new: set[str] = set()
        streams: dict[str, int] = {}
        least = self._min_length
        for item in items:
            if len(item) < least:
                continue
            if not encodings:
                new.add(item)
                continue
            new.update(f for f in encoded_forms(item) if len(f) >= least)
            for stream, shortest in wrapped_streams(item).items():
                if len(stream) >= least:
                    streams[stream] = max(shortest, least)
        with self._lock:
            # as #{} reads it (a trailing newline, " b" of "a, b") and trimmed, as printed
            for known in (value, trimmed):
                if len(known.strip()) >= least and known not in self._known:
                    self._known.add(known)
                    self._values.append(known)
            added = {item for item in new if item not in self._patterns}
            more = [stream for stream in streams if stream not in self._streams]
            if added or more:
                self._patterns |= added
                self._streams.update({stream: streams[stream] for stream in more})
                self._compiled = None
                if more:
                    self._grown_from = self._fragments or self._grown_from
                    self._fragments = None
                self._longest = max(self._longest, *(len(p) for p in (*added, *more)))
                self._version += 1
        return len(trimmed) >= least

    def derive(self, source: str, compute: Callable[[str], Iterable[str]]) -> None:
        """``#{}`` computed something from ``source`` (``#{Password | ToUpper}``, a field of a
        JSON value, a ``Substring``); ``compute(text)`` is what it makes of ``text``. What it
        makes of each secret that ``source`` holds is registered as a secret too: the secret
        in a form no encoding anticipates. Computed from the secret alone, not from ``source``:
        a field of a non-secret document that holds a secret elsewhere is no secret, and a
        predicate's ``true`` or ``false`` tells nothing worth masking every ``true`` for."""
        with self._lock:
            held = self._secrets_in(source)
        for secret in held:
            for value in compute(secret):
                self._add_derived(value, encodings=False)

    def add_parts(self, found: Iterable[str], parts_of: Callable[[str], Iterable[str]]) -> None:
        """Register each text of ``found`` that is a part of a secret: ``parts_of(secret)``
        gives a secret's parts, the same function at every call (a JSON secret's fields and
        items as ``${{ fromJSON() }}`` reads them, :func:`runner.expressions.json_parts`). What
        an expression read out of a document is masked when it is a part of a secret, however
        the secret reached the document (wrapped, nested, in a step's output); a value that
        only equals one is masked too (the safe side). With their encoded forms when they are
        few (a password read): a whole document read at once would add thousands of them."""
        with self._parts_lock:
            parts = self._found_parts(parts_of)
            wanted = [text for text in found if text in parts]
        few = len(wanted) <= _FEW_PARTS
        for value in wanted:
            self._add_derived(value, encodings=few)

    def add_every_part(self, parts_of: Callable[[str], Iterable[str]]) -> None:
        """Register every part of every secret (see :meth:`add_parts`): what a resumed run
        cannot tell was read (a text that no longer renders) is masked on the safe side."""
        with self._parts_lock:
            every = list(self._found_parts(parts_of))
        for value in every:
            self._add_derived(value, encodings=False)

    def _add_derived(self, value: str, *, encodings: bool) -> None:
        """Register a value made from a secret, unless it is known already or a verdict: a
        ``true`` or ``false`` tells nothing worth masking every one of the log for."""
        if value not in self._known and value.strip().lower() not in _VERDICTS:
            self.add(value, encodings=encodings)

    def _found_parts(self, parts_of: Callable[[str], Iterable[str]]) -> set[str]:
        """The parts of every value registered so far (``_parts_lock`` held: a second caller
        waits for the first one's, instead of reading them half found)."""
        with self._lock:
            fresh = self._values[self._parted :]
            self._parted = len(self._values)
        least = self._min_length
        for value in fresh:
            self._parts.update(p for p in parts_of(value) if len(p.strip()) >= least)
        return self._parts

    def _secrets_in(self, text: str) -> list[str]:
        """The registered values ``text`` holds (itself, most often: a secret's field, a
        secret's item). A text seen lately is searched only for the values added since."""
        if text in self._known:
            return [text]
        searched, found = self._held.pop(text, (0, []))
        found = found + [value for value in self._values[searched:] if value in text]
        if len(self._held) >= 32:
            self._held.pop(next(iter(self._held)))
        self._held[text] = (len(self._values), found)
        return found

    def _current(self) -> tuple[_Levels, _Fragments, _Search, set[str]] | None:
        compiled = self._compiled
        if compiled is None and self._patterns:
            with self._lock:
                compiled = self._compiled
                if compiled is None:
                    fragments = self._fragments or _Fragments(self._streams, self._grown_from)
                    self._fragments = fragments
                    matcher = _Levels.grown(self._levels, self._patterns)
                    self._levels = matcher
                    compiled = (matcher, fragments, matcher.search, fragments.grams)
                    self._compiled = compiled
        return compiled

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of a secret replaced by ``***``.

        Overlapping or touching occurrences become one ``***``, as in GitHub (the union of
        the matched ranges is masked). Text without secrets is returned unchanged, as is.
        """
        compiled = self._compiled or self._current()
        if compiled is None or not text:
            return text
        search, grams = compiled[2], compiled[3]
        if search(text) is None and "\n" not in text:
            # One line, the common case: when the expression finds nothing and neither edge
            # of the line is a window of a stream, that is all (no further call: on the hot
            # path of every line, Python's calls cost more than these C-level checks). A
            # line shorter than a window has edges shorter than any window.
            body = text.strip(_EDGE) if text[0] in _EDGE or text[-1] in _EDGE else text
            if body[:_GRAM] not in grams and body[-_GRAM:] not in grams:
                return text
        return _replace(text, self._ranges(text))

    # One line is the common unit of output; the name says what the runner streams.
    mask_line = mask

    def showable(self, text: str, continued: bool = False) -> int:
        """How many characters of ``text``, a line still being read, can be masked and shown on
        their own now (``continued``: the text goes on a line shown in part already).

        All but the last ``longest - 1``: a secret that starts there may go on in what comes
        next. And never to the middle of a secret: a secret that starts before that point ends
        inside the text (it is no longer than ``longest``), and the point moves back to its
        start. Occurrences are taken one by one, not merged, so that a secret repeated back to
        back is cut between two of its occurrences; only occurrences that overlap one another
        all the way back to the start of the text leave nothing to show (0)."""
        cut = len(text) - max(self._longest - 1, 0)
        if cut <= 0:
            return 0
        found = sorted(self._occurrences(text, starts_line=not continued, ends_line=False))
        # occurrences that overlap (not merely touch) are one stretch no cut may enter
        stretch_start, stretch_end = -1, -1
        for start, end in found:
            if start >= cut:
                break
            if start < stretch_end:
                stretch_end = max(stretch_end, end)
            else:
                stretch_start, stretch_end = start, end
        if stretch_start < cut < stretch_end:
            return stretch_start
        return cut

    def _ranges(
        self, text: str, *, starts_line: bool = True, ends_line: bool = True
    ) -> list[tuple[int, int]]:
        """The merged ``[start, end)`` ranges of ``text`` that :meth:`mask` replaces."""
        return _merged(self._occurrences(text, starts_line=starts_line, ends_line=ends_line))

    def _occurrences(
        self, text: str, *, starts_line: bool, ends_line: bool
    ) -> list[tuple[int, int]]:
        """Each occurrence in ``text`` of a secret or of a piece of its wrapped encoding, as
        ``[start, end)``, unmerged and unsorted."""
        compiled = self._current()
        if compiled is None or not text:
            return []
        found: list[tuple[int, int]] = []
        compiled[0].find(text, found)
        compiled[1].find(text, found, starts_line=starts_line, ends_line=ends_line)
        return found


def _compact_json(text: str) -> str | None:
    """A JSON object or array as written without spaces, when that differs from ``text``."""
    if not text or text[0] not in "[{":
        return None
    try:
        value = json.loads(text)
        if not isinstance(value, dict | list):
            return None
        compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError):  # nested thousands deep: the text alone is masked
        return None
    return compact if compact != text else None


def _printable(text: str) -> str:
    """``text`` as a step's output, read as UTF-8, shows it: bytes of the environment that
    were not UTF-8 (``\\udcff``, as Python reads them) decoded as the output is, one U+FFFD
    for a cut-off character of several bytes (one a byte masked nothing: `hunter2-\\xe2\\x82-x`
    was printed in clear), and any other lone UTF-16 half (a JSON ``\\ud800`` decoded) as
    U+FFFD. Such a half cannot be encoded, and would fail each form."""
    if encodable(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return whole_characters(text)


def _replace(text: str, ranges: list[tuple[int, int]]) -> str:
    if not ranges:
        return text
    parts: list[str] = []
    last = 0
    for start, end in ranges:
        parts.append(text[last:start])
        parts.append(MASK)
        last = end
    parts.append(text[last:])
    return "".join(parts)


class StreamMasker:
    """Masks text that arrives in chunks, such as a step's output read from a pipe.

    :meth:`feed` returns the masked text of every line completed so far (with its ``\\n``);
    the unfinished last line waits for more text or :meth:`flush`. Masking per line is what
    GitHub does; a secret spanning lines is caught through its registered lines.

    A line longer than ``max_pending`` characters (a progress bar without newlines, a
    minified file) is not held forever: all but its last ``longest - 1`` characters are
    masked and released, so a secret cannot be cut in two by the release point (any
    occurrence starting before it ends inside the masked text). Secrets added while a line
    is pending apply to it.
    """

    def __init__(self, masker: Masker, *, max_pending: int = 64 * 1024) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._masker = masker
        self._max_pending = max_pending
        self._pending = ""
        # the pending text continues a line released in part (not at a line's start)
        self._continued = False

    @property
    def pending(self) -> str:
        """The text held back, unmasked (not yet a complete line)."""
        return self._pending

    def feed(self, chunk: str) -> str:
        """Accept more text; return the masked text that can be released now."""
        text = self._pending + chunk
        newline = chunk.rfind("\n")
        cut = len(self._pending) + newline + 1 if newline >= 0 else 0
        released = ""
        if cut:
            ranges = self._masker._ranges(text[:cut], starts_line=not self._continued)
            released = _replace(text[:cut], ranges)
            self._continued = False
        self._pending = text[cut:]
        if len(self._pending) > self._max_pending:
            released += self._release_long_line()
        return released

    def flush(self) -> str:
        """Release and mask everything held back (at the end of the stream)."""
        text, self._pending = self._pending, ""
        ranges = self._masker._ranges(text, starts_line=not self._continued)
        self._continued = False
        return _replace(text, ranges)

    def _release_long_line(self) -> str:
        text = self._pending
        cut = self._masker.showable(text, self._continued)
        if cut <= 0:
            return ""
        # no secret crosses the cut: those before it are all found in the text before it
        shown = text[:cut]
        ranges = self._masker._ranges(shown, starts_line=not self._continued, ends_line=False)
        self._pending = text[cut:]
        self._continued = True
        return _replace(shown, ranges)
