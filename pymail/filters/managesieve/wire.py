"""ManageSieve (RFC 5804) wire format, sans-IO: bytes in → commands; responses → bytes.

A command line is an atom (the command name) followed by strings and numbers, ending in CRLF.
Strings are quoted (``"..."`` with ``\\"`` and ``\\\\`` escapes, no CR/LF, §4) or literals
``{N+}CRLF<N octets>`` (non-synchronizing; ``{N}`` is accepted too, without a continuation,
as Dovecot does). After a literal the line goes on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 8192  # bytes of one line outside literals
_LITERAL = re.compile(rb"\{([0-9]{1,10})(\+?)\}\r\n")
_ATOM = re.compile(rb"[A-Za-z0-9_.:\-]+")


class WireError(Exception):
    """A malformed line; ``fatal`` when the stream cannot be resynchronised (answer BYE)."""

    def __init__(self, message: str, fatal: bool = False):
        super().__init__(message)
        self.fatal = fatal


@dataclass(frozen=True)
class Atom:
    value: str  # upper-cased


Token = Atom | bytes


class Reader:
    """Feed bytes; ``next()`` returns the tokens of one complete line, or None for "need more"."""

    def __init__(self, max_literal: int):
        self.buffer = bytearray()
        self.max_literal = max_literal

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def discard(self) -> None:
        """Drop everything buffered (after STARTTLS, RFC 5804 §2.2 / docs/seams.md)."""
        self.buffer.clear()

    def next(self) -> list[Token] | None:
        tokens, pos = self._parse()
        if tokens is None:
            return None
        del self.buffer[:pos]
        return tokens

    def _skip_line(self) -> None:
        end = self.buffer.find(b"\r\n")
        if end >= 0:
            del self.buffer[:end + 2]
        else:
            self.buffer.clear()

    def _fail(self, message: str) -> None:
        self._skip_line()
        raise WireError(message)

    def _parse(self) -> tuple[list[Token] | None, int]:
        buf = self.buffer
        pos, tokens, line_start = 0, [], 0
        while True:
            while pos < len(buf) and buf[pos] == 0x20:
                pos += 1
            if pos - line_start > MAX_LINE:
                raise WireError("line too long", fatal=True)
            if pos >= len(buf):
                if len(buf) - line_start > MAX_LINE:
                    raise WireError("line too long", fatal=True)
                return None, 0
            if buf.startswith(b"\r\n", pos):
                return tokens, pos + 2
            c = buf[pos]
            if c == 0x22:  # quoted string
                out, i = bytearray(), pos + 1
                while i < len(buf):
                    ch = buf[i]
                    if ch == 0x5C and i + 1 < len(buf):
                        out.append(buf[i + 1])
                        i += 2
                        continue
                    if ch == 0x5C:
                        break  # need the escaped byte
                    if ch == 0x22:
                        break
                    if ch in (0x0D, 0x0A):
                        self._fail("quoted strings cannot hold CR or LF")
                    out.append(ch)
                    i += 1
                if i >= len(buf) or buf[i] != 0x22:
                    if b"\r\n" in buf[pos:]:
                        self._fail("unterminated quoted string")
                    return None, 0
                tokens.append(bytes(out))
                pos = i + 1
            elif c == 0x7B:  # literal
                m = _LITERAL.match(buf, pos)
                if not m:
                    if b"\r\n" in buf[pos:]:
                        self._fail("bad literal")
                    return None, 0
                size = int(m.group(1))
                if size > self.max_literal:
                    raise WireError(f"literal of {size} bytes is too large", fatal=True)
                end = m.end() + size
                if len(buf) < end:
                    return None, 0
                tokens.append(bytes(buf[m.end():end]))
                pos = line_start = end
            else:
                m = _ATOM.match(buf, pos)
                if not m:
                    self._fail(f"unexpected character {chr(c)!r}")
                tokens.append(Atom(m.group().decode("ascii").upper()))
                pos = m.end()


def quote(value: str | bytes) -> bytes:
    """A string as the server sends it: quoted when short and plain, else a literal (§4)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= 1024 and b"\r" not in data and b"\n" not in data and b"\0" not in data:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def response(kind: str, text: str = "", code: str = "") -> bytes:
    """``OK``/``NO``/``BYE`` [``(CODE)``] [text] CRLF (RFC 5804 §1.3)."""
    out = kind.encode("ascii")
    if code:
        out += b" (" + code.encode("ascii") + b")"
    if text:
        out += b" " + quote(text)
    return out + b"\r\n"
