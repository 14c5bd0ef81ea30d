"""Hash filters (``HashFunction.cs``): ``Md5``, ``Sha1``, ``Sha256``, ``Sha384``, ``Sha512``.

Options, in either order: an encoding of the input (``utf8``/``utf-8`` default, ``unicode`` for
UTF-16LE, ``base64`` to hash decoded bytes) and a digest size in bytes (a positive integer,
capped at the digest length). More than two options, or an invalid one, leave the token as is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable

Encoder = Callable[[str], bytes]


def _base64(text: str) -> bytes:
    return base64.b64decode("".join(text.split()), validate=True)


_ENCODINGS: dict[str, Encoder] = {
    "utf8": lambda s: s.encode("utf-8", "surrogatepass"),
    "utf-8": lambda s: s.encode("utf-8", "surrogatepass"),
    "unicode": lambda s: s.encode("utf-16-le", "surrogatepass"),
    "base64": _base64,
}


def _size(text: str) -> int | None:
    # int.TryParse: optional whitespace and sign; a size must be positive.
    if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
        return None
    value = int(text)
    return value if 0 < value < 2**31 else None


def _options(options: list[str]) -> tuple[Encoder, int | None] | None:
    encoder = _ENCODINGS["utf8"]
    if not options:
        return encoder, None
    if len(options) > 2:
        return None
    size = _size(options[0])
    if size is not None:
        if len(options) > 1:
            chosen = _ENCODINGS.get(options[1].lower())
            if chosen is None:
                return None
            encoder = chosen
        return encoder, size
    if options[0].strip().lstrip("+-").isdigit():
        return None  # a number but not a valid size ("0", "-1")
    chosen = _ENCODINGS.get(options[0].lower())
    if chosen is None:
        return None
    if len(options) > 1:
        size = _size(options[1])
        if size is None:
            return None
    return chosen, size


def _hash(name: str) -> Callable[[str | None, list[str]], str | None]:
    def digest(argument: str | None, options: list[str]) -> str | None:
        if argument is None:
            return None
        parsed = _options(options)
        if parsed is None:
            return None
        encoder, size = parsed
        try:
            data = encoder(argument)
        except (binascii.Error, ValueError, UnicodeError):
            return None  # "Likely invalid input": e.g. text that is not base64
        raw = hashlib.new(name, data).digest()
        return raw[: size or len(raw)].hex()

    digest.__doc__ = f"``{name}`` hex digest of the value."
    return digest


md5 = _hash("md5")
sha1 = _hash("sha1")
sha256 = _hash("sha256")
sha384 = _hash("sha384")
sha512 = _hash("sha512")
