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
  bytes.
  We add base64url (unpadded), form encoding (``+`` for space), JSON with ``\\uXXXX`` for
  non-ASCII, and the forms inside bash single and double quotes.
* **Speed.** All registered strings compile into one regular expression shaped as a trie
  (rebuilt only when a secret is added), so a line costs one C-level scan; the scan for
  overlaps only runs around actual matches. Python's ``re`` has no Aho-Corasick; the trie
  keeps the work per position small (see the module's tests and the report for figures).
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
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_LENGTH", "Masker", "StreamMasker", "encoded_forms"]

MASK = "***"
MIN_SECRET_LENGTH = 4

_XML_ESCAPES = {"<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "&": "&amp;"}
_XML_SPECIAL = re.compile("[<>\"'&]")
_BASH_DOUBLE_QUOTED = re.compile(r'([\\$`"])')


def encoded_forms(value: str) -> set[str]:
    """``value`` and the encoded forms of it a log might contain (see the module docstring).

    Forms that equal ``value`` or each other collapse; no length filter is applied here.
    """
    forms = {value}
    data = value.encode("utf-8")
    for shift in (0, 1, 2):
        # GitHub's Base64StringEscape and ...Shift1/2: the padded base64 of the bytes after
        # dropping `shift` of them, which matches a secret that ends a blob.
        if shift == 0 or len(data) > shift:
            forms.add(base64.b64encode(data[shift:]).decode("ascii"))
    for offset in (0, 1, 2):
        # Inside a blob the secret starts at byte `offset` of a 3-byte group. Encode it at
        # that offset and keep only the characters whose 6 bits all come from the secret:
        # from bit 8*offset rounded up to a character, to the last whole character.
        encoded = base64.b64encode(bytes(offset) + data).decode("ascii")
        first = -(-8 * offset // 6)
        last = 8 * (offset + len(data)) // 6
        forms.add(encoded[first:last])
        forms.add(encoded[first:last].replace("+", "-").replace("/", "_"))  # base64url
    forms.add(base64.urlsafe_b64encode(data).decode("ascii").rstrip("="))
    forms.add(quote(value, safe=""))  # Uri.EscapeDataString: RFC 3986 unreserved kept
    forms.add(quote_plus(value, safe=""))  # application/x-www-form-urlencoded
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])  # JsonStringEscape
    forms.add(json.dumps(value)[1:-1])  # JSON as Python and many tools write it: \uXXXX
    forms.add(_XML_SPECIAL.sub(lambda m: _XML_ESCAPES[m.group()], value))  # XmlDataEscape
    forms.add(value.replace("'", "''"))  # ExpressionStringEscape
    if len(value) > 8 and value.startswith('"') and value.endswith('"'):
        forms.add(value[1:-1])  # TrimDoubleQuotes (GitHub's length rule)
    forms.add(value.replace("'", "'\\''"))  # inside bash '...'
    forms.add(_BASH_DOUBLE_QUOTED.sub(r"\\\1", value))  # inside bash "..."
    return forms


_Node = dict[str, "_Node"]


def _trie_pattern(words: Iterable[str]) -> str:
    """A regular expression matching exactly ``words``, longest match first at a position.

    Alternatives of a trie start with distinct characters, so ``re`` rejects all but one
    with a single comparison each; a word that is a prefix of another is an optional tail
    (greedy, so the longer word wins).
    """
    root: _Node = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a word; "" never collides with a one-character key

    def build(node: _Node) -> str:
        prefix = []
        # Collapse single-child chains so nesting depth follows branch points, not length.
        while len(node) == 1 and "" not in node:
            ((char, node),) = node.items()
            prefix.append(re.escape(char))
        alternatives = [
            re.escape(char) + build(child) for char, child in sorted(node.items()) if char
        ]
        head = "".join(prefix)
        if not alternatives:
            return head
        body = alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"
        if "" in node:
            body = f"(?:{body})?" if len(alternatives) == 1 else f"{body}?"
        return head + body

    return build(root)


def _compile(words: set[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The matcher and its overlap-finding twin (a lookahead, so every start is seen)."""
    try:
        pattern = _trie_pattern(words)
        return re.compile(pattern), re.compile(f"(?=({pattern}))")
    except (RecursionError, re.error):
        # Thousands of secrets that are prefixes of each other nest too deep for the trie
        # (or for `re`'s parser); a flat alternation, longest first, matches the same.
        flat = "|".join(re.escape(word) for word in sorted(words, key=lambda w: (-len(w), w)))
        return re.compile(flat), re.compile(f"(?=({flat}))")


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
        self._lock = threading.Lock()
        self._compiled: tuple[re.Pattern[str], re.Pattern[str]] | None = None
        self._longest = 0
        self._version = 0

    @property
    def min_length(self) -> int:
        """The shortest string that is registered for masking."""
        return self._min_length

    @property
    def patterns(self) -> frozenset[str]:
        """Every string that is masked: the secrets, their lines and their encoded forms."""
        with self._lock:
            return frozenset(self._patterns)

    @property
    def longest(self) -> int:
        """The length of the longest masked string (0 when nothing is registered)."""
        return self._longest

    @property
    def version(self) -> int:
        """A counter that changes whenever the masked strings change."""
        return self._version

    def add(self, value: str) -> bool:
        """Register a secret: itself, trimmed, each trimmed line, and their encoded forms.

        Returns whether the trimmed value itself is now masked; ``False`` means it is empty
        or shorter than :attr:`min_length` (its long enough lines are still registered).
        """
        trimmed = value.strip()
        items = {value, trimmed}
        items.update(line.strip() for line in re.split(r"\r\n|\r|\n", value))
        new: set[str] = set()
        for item in items:
            if len(item) >= self._min_length:
                new.update(f for f in encoded_forms(item) if len(f) >= self._min_length)
        with self._lock:
            added = new - self._patterns
            if added:
                self._patterns |= added
                self._compiled = None
                self._longest = max(self._longest, *(len(p) for p in added))
                self._version += 1
        return len(trimmed) >= self._min_length

    def _matchers(self) -> tuple[re.Pattern[str], re.Pattern[str]] | None:
        compiled = self._compiled
        if compiled is None and self._patterns:
            with self._lock:
                compiled = self._compiled
                if compiled is None:
                    compiled = self._compiled = _compile(self._patterns)
        return compiled

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of a secret replaced by ``***``.

        Overlapping or touching occurrences become one ``***``, as in GitHub (the union of
        the matched ranges is masked). Text without secrets is returned unchanged, as is.
        """
        return self._mask(text)[0]

    # One line is the common unit of output; the name says what the runner streams.
    mask_line = mask

    def _mask(self, text: str) -> tuple[str, list[tuple[int, int]]]:
        """The masked text and the merged ``[start, end)`` ranges that were replaced."""
        matchers = self._matchers()
        if matchers is None or not text:
            return text, []
        regex, overlap = matchers
        found = regex.search(text)
        if found is None:
            return text, []
        search = regex.search
        longest = self._longest
        length = len(text)
        ranges: list[tuple[int, int]] = []
        start, end = found.span()
        probe = start + 1
        while True:
            # Occurrences starting inside [start, end) may reach past it: grow the range.
            # Each probe scans at most `longest` characters, so this stays linear.
            while probe < end:
                inner = overlap.search(text, probe, min(length, end + longest))
                if inner is None or inner.start() >= end:
                    break
                end = max(end, inner.start() + len(inner.group(1)))
                probe = inner.start() + 1
            following = search(text, end)
            if following is not None and following.start() == end:
                # Touching occurrences merge (GitHub: `Start <= End` is an overlap).
                probe = end + 1
                end = following.end()
                continue
            ranges.append((start, end))
            if following is None:
                break
            start, end = following.span()
            probe = start + 1
        parts: list[str] = []
        last = 0
        for start, end in ranges:
            parts.append(text[last:start])
            parts.append(MASK)
            last = end
        parts.append(text[last:])
        return "".join(parts), ranges


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

    @property
    def pending(self) -> str:
        """The text held back, unmasked (not yet a complete line)."""
        return self._pending

    def feed(self, chunk: str) -> str:
        """Accept more text; return the masked text that can be released now."""
        text = self._pending + chunk
        newline = chunk.rfind("\n")
        cut = len(self._pending) + newline + 1 if newline >= 0 else 0
        released = self._masker.mask(text[:cut]) if cut else ""
        self._pending = text[cut:]
        if len(self._pending) > self._max_pending:
            released += self._release_long_line()
        return released

    def flush(self) -> str:
        """Release and mask everything held back (at the end of the stream)."""
        text, self._pending = self._pending, ""
        return self._masker.mask(text)

    def _release_long_line(self) -> str:
        text = self._pending
        hold = max(self._masker.longest - 1, 0)
        cut = len(text) - hold
        masked_ranges = self._masker._mask(text)[1]
        for start, end in masked_ranges:
            if start < cut < end:
                # A masked range straddles the cut: keep all of it for the next round.
                cut = start
                break
        if cut <= 0:
            return ""
        head = text[:cut]
        self._pending = text[cut:]
        return self._masker.mask(head)
