"""Sans-IO response serialisation (RFC 3501 §4, §7): values to bytes with proper quoting.

- ``None`` → ``NIL``; ``int`` → number; ``Atom`` → as is; ``list``/``tuple`` → parenthesised.
- ``str``/``bytes`` → a quoted string when it is short 7-bit text without CR, LF or NUL,
  otherwise a literal ``{n}\\r\\n...`` (RFC 3501 §4.3) — so any byte value round-trips.
- ``Literal(bytes)`` forces a literal (message bodies); ``Literal8`` a ``~{n}`` (RFC 3516);
  ``Raw(bytes)`` is already serialised.
"""

from __future__ import annotations

import re

from pymail.imap.parser import Atom

MAX_QUOTED = 1024


class Literal(bytes):
    """Bytes always sent as a literal."""


class Literal8(bytes):
    """Bytes sent as a binary literal ``~{n}`` (RFC 3516 §4.3)."""


class Raw(bytes):
    """Bytes already in IMAP syntax (a value serialised before), sent as they are."""


_NOT_QUOTABLE = re.compile(rb"[\x00\r\n\x80-\xff]")
_NOT_QUOTABLE_UTF8 = re.compile(rb"[\x00\r\n]")


def string(data: bytes | str, utf8: bool = False) -> bytes:
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) <= MAX_QUOTED and not (_NOT_QUOTABLE_UTF8 if utf8 else _NOT_QUOTABLE).search(data):
        if b"\\" in data or b'"' in data:
            data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + data + b'"'
    return b"{%d}\r\n" % len(data) + data


def nstring(data: bytes | str | None) -> bytes:
    return b"NIL" if data is None else string(data)


def value(v, utf8: bool = False) -> bytes:
    if v is None:
        return b"NIL"
    t = type(v)
    if t is bytes:  # the common case first: header strings
        return string(v, utf8)
    if t is Raw:
        return v
    if t is list or t is tuple:
        return b"(" + b" ".join([value(x, utf8) for x in v]) + b")"
    if t is int:
        return b"%d" % v
    if isinstance(v, Atom):
        return v.encode("utf-8")
    if isinstance(v, Literal8):
        return b"~{%d}\r\n" % len(v) + v
    if isinstance(v, Literal):
        return b"{%d}\r\n" % len(v) + v if v else b'""'
    if isinstance(v, bool):
        raise TypeError("bool is not an IMAP value")
    if isinstance(v, int):
        return str(v).encode()
    if isinstance(v, (bytes, str)):
        return string(v, utf8)
    if isinstance(v, (list, tuple)):
        return b"(" + b" ".join(value(x, utf8) for x in v) + b")"
    raise TypeError(f"cannot serialise {type(v).__name__}")


def untagged(*parts, utf8: bool = False) -> bytes:
    """``* part part ...\\r\\n``; str parts are raw text (already IMAP syntax), others values."""
    return b"* " + _join(parts, utf8) + b"\r\n"


def tagged(tag: str, status: str, text: str) -> bytes:
    return f"{tag} {status} {text}".encode("utf-8") + b"\r\n"


def continuation(text: str = "Ready") -> bytes:
    return b"+ " + text.encode("utf-8") + b"\r\n"


def _join(parts, utf8: bool) -> bytes:
    out = []
    for p in parts:
        if isinstance(p, str) and not isinstance(p, Atom):
            out.append(p.encode("utf-8"))
        else:
            out.append(value(p, utf8))
    return b" ".join(out)


def flags_list(flags) -> bytes:
    return b"(" + " ".join(sorted(flags)).encode("utf-8") + b")"
