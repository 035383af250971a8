"""Sans-IO IMAP command parsing: framing bytes into commands, and commands into values.

Two layers, both pure (no sockets, no store):

- ``CommandFramer`` cuts the client's byte stream into whole commands. A command is one line,
  or several lines joined by literals (RFC 3501 §4.3 ``{n}``, RFC 7888 ``{n+}`` / ``{n-}``,
  RFC 3516 ``~{n}``). It says when the server must send a continuation request (synchronising
  literal) and refuses a literal announcement that is over the limit before buffering any of it.
- ``parse_command`` turns one framed command into a ``Command``: tag, upper-cased name and a
  generic argument tree of ``Atom`` (str), ``bytes`` (quoted string or literal) and ``list``.
  Command modules give the tree its meaning (sequence sets, fetch items, search keys).

Every syntax error raises ``ParseError`` (mapped to a tagged or untagged ``BAD``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_NESTING = 32  # parenthesised lists deeper than this are refused (resource limit)

LITERAL_AT_END = re.compile(rb"(~?)\{(\d{1,20})([+-]?)\}\r\n$")


class ParseError(Exception):
    """Bad syntax. ``tag`` is the command tag when it could be read (for a tagged BAD)."""

    def __init__(self, message: str, tag: str | None = None):
        super().__init__(message)
        self.tag = tag


class Atom(str):
    """An IMAP atom (unquoted token), kept apart from strings: ``\\Seen``, ``1:*``, ``BODY[]``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


class LiteralBytes(bytes):
    """A string that arrived as a literal (APPEND tells a message from a quoted date by it)."""


class Literal8Bytes(LiteralBytes):
    """A ``~{n}`` binary literal (RFC 3516 §4.3)."""


@dataclass
class Command:
    tag: str
    name: str  # upper case; for UID commands the sub-command ("FETCH") with ``uid=True``
    args: list = field(default_factory=list)
    uid: bool = False


# --- framing -----------------------------------------------------------------------------

@dataclass
class Frame:
    """One whole command as received (lines and literals, CRLFs included)."""

    data: bytes


@dataclass
class Continue:
    """The client announced a synchronising literal: send ``+ ...`` now (RFC 3501 §7.5)."""


@dataclass
class Refused:
    """A synchronising literal over the limit: answer ``tag NO [TOOBIG]``; nothing buffered."""

    tag: str
    size: int


@dataclass
class Fatal:
    """The stream cannot be resynchronised (line too long, huge non-synchronising literal)."""

    message: str


def _line_tag(line: bytes) -> str:
    head = line.split(b" ", 1)[0].strip()
    try:
        return head.decode("ascii") if head and head.isascii() else "*"
    except UnicodeDecodeError:  # pragma: no cover - isascii() guards
        return "*"


class CommandFramer:
    """Accumulates bytes; ``feed`` returns the events that became complete."""

    def __init__(self, max_line: int = 65536, max_literal: int = 64 * 1024 * 1024):
        self.max_line = max_line
        self.max_literal = max_literal
        self._buf = bytearray()
        self._parts: list[bytes] = []  # lines and literals of the command being read
        self._literal_left = 0
        self.dead = False

    def take_rest(self) -> bytes:
        """Remove and return everything buffered but not yet framed (STARTTLS discards it)."""
        rest = bytes(self._buf)
        self._buf.clear()
        self._parts.clear()
        self._literal_left = 0
        return rest

    def feed(self, data: bytes) -> list:
        if self.dead:
            return []
        self._buf += data
        events: list = []
        while self._buf and not self.dead:
            if self._literal_left:
                chunk = bytes(self._buf[: self._literal_left])
                del self._buf[: len(chunk)]
                self._literal_left -= len(chunk)
                self._parts.append(chunk)
                continue
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.max_line:
                    self.dead = True
                    events.append(Fatal("[TOOBIG] Command line too long"))
                break
            if nl + 1 > self.max_line:
                self.dead = True
                events.append(Fatal("[TOOBIG] Command line too long"))
                break
            line = bytes(self._buf[: nl + 1])
            del self._buf[: nl + 1]
            if not line.endswith(b"\r\n"):
                line = line[:-1] + b"\r\n"  # tolerate bare LF line ends
            m = LITERAL_AT_END.search(line)
            if m is None:
                self._parts.append(line)
                events.append(Frame(b"".join(self._parts)))
                self._parts = []
                continue
            size = int(m.group(2))
            sync = m.group(3) == b""
            first = self._parts[0] if self._parts else line
            if size > self.max_literal:
                if sync:
                    # RFC 7888 §4 / RFC 7889: refuse before the client sends a byte of it.
                    events.append(Refused(_line_tag(first), size))
                    self._parts = []
                    continue
                self.dead = True
                events.append(Fatal("[TOOBIG] Literal too big"))
                break
            self._parts.append(line)
            self._literal_left = size
            if sync:
                events.append(Continue())
            if size == 0:
                continue
        return events


# --- tokens and values ---------------------------------------------------------------------

_ATOM_STOP = frozenset(b' ()"\r\n{') | frozenset(range(0, 32)) | {0x7F}
_QUOTED_SAFE_ESCAPES = {ord("\\"), ord('"')}
# Atoms where "[" opens a fetch section that may hold spaces (RFC 3501 §6.4.5, RFC 3516)
_SECTION_PREFIXES = {b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE"}


_LITERAL = re.compile(rb"(~?)\{(\d{1,20})[+-]?\}\r\n")


class Reader:
    """Reads IMAP values from one framed command."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    # primitives
    def at_end(self) -> bool:
        return self.data.startswith(b"\r\n", self.pos) or self.pos >= len(self.data)

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def space(self) -> None:
        if self.peek() != 0x20:
            raise ParseError("Expected a space")
        while self.peek() == 0x20:
            self.pos += 1

    def skip_spaces(self) -> bool:
        start = self.pos
        while self.peek() == 0x20:
            self.pos += 1
        return self.pos > start

    def atom(self) -> Atom:
        """An atom; after BODY/BINARY a ``[...]`` section (may hold spaces and lists) is kept."""
        data, start, i, depth = self.data, self.pos, self.pos, 0
        while i < len(data):
            c = data[i]
            if depth:
                if c in (0x0D, 0x0A):
                    raise ParseError("Unterminated [ in atom")
                if c == ord("["):
                    depth += 1
                elif c == ord("]"):
                    depth -= 1
                i += 1
                continue
            if c == ord("[") and data[start:i].upper() in _SECTION_PREFIXES:
                depth = 1
                i += 1
                continue
            if c in _ATOM_STOP:
                break
            i += 1
        if depth:
            raise ParseError("Unterminated [ in atom")
        if i == start:
            raise ParseError("Expected an atom")
        self.pos = i
        try:
            return Atom(data[start:i].decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError("Atom is not UTF-8") from None

    def quoted(self) -> bytes:
        data, i = self.data, self.pos + 1
        out = bytearray()
        while i < len(data):
            c = data[i]
            if c == ord('"'):
                self.pos = i + 1
                return bytes(out)
            if c == ord("\\"):
                if i + 1 < len(data) and data[i + 1] in _QUOTED_SAFE_ESCAPES:
                    out.append(data[i + 1])
                    i += 2
                    continue
                raise ParseError("Bad escape in quoted string")
            if c in (0x0D, 0x0A, 0):
                raise ParseError("Unterminated quoted string")
            out.append(c)
            i += 1
        raise ParseError("Unterminated quoted string")

    def literal(self) -> bytes:
        m = _LITERAL.match(self.data, self.pos)
        if m is None:
            raise ParseError("Bad literal")
        size = int(m.group(2))
        start = m.end()
        if start + size > len(self.data):
            raise ParseError("Literal shorter than announced")
        self.pos = start + size
        kind = Literal8Bytes if m.group(1) else LiteralBytes
        return kind(self.data[start:start + size])

    def value(self, depth: int = 0):
        c = self.peek()
        if c is None or self.at_end():
            raise ParseError("Missing argument")
        if c == ord('"'):
            return self.quoted()
        if c == ord("{") or (c == ord("~") and self.data.startswith(b"{", self.pos + 1)):
            return self.literal()
        if c == ord("("):
            return self.parenthesised(depth + 1)
        if c == ord(")"):
            raise ParseError("Unexpected )")
        return self.atom()

    def parenthesised(self, depth: int) -> list:
        if depth > MAX_NESTING:
            raise ParseError("[LIMIT] Too deeply nested")
        self.pos += 1
        items: list = []
        while True:
            self.skip_spaces()
            c = self.peek()
            if c == ord(")"):
                self.pos += 1
                return items
            if c is None or self.at_end():
                raise ParseError("Missing )")
            items.append(self.value(depth))

    def rest(self) -> list:
        """All remaining space-separated values up to the final CRLF."""
        values: list = []
        while not self.at_end():
            if values or self.peek() == 0x20:
                self.space()
                if self.at_end():
                    break
            values.append(self.value())
        return values


_TAG_STOP = frozenset(b' ()"\r\n{%*+') | frozenset(range(0, 32)) | {0x7F}


def parse_command(data: bytes) -> Command:
    """Parse one framed command: ``tag SP name [SP args] CRLF``."""
    i = 0
    while i < len(data) and data[i] not in _TAG_STOP:
        i += 1
    if i == 0:
        raise ParseError("Missing tag")
    tag = data[:i].decode("ascii", "replace")
    r = Reader(data, i)
    try:
        if r.peek() != 0x20:
            raise ParseError("Missing command")
        r.space()
        name = r.atom().upper()
        uid = False
        if name == "UID":
            r.space()
            name = r.atom().upper()
            uid = True
        args = r.rest()
        if not data.endswith(b"\r\n") or r.pos != len(data) - 2:
            raise ParseError("Junk after command")
    except ParseError as e:
        e.tag = tag
        raise
    return Command(tag, name, args, uid)


def astring(value, what: str = "argument") -> bytes:
    """An astring argument (atom or string) as bytes."""
    if isinstance(value, Atom):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise ParseError(f"Expected a string for {what}")


def text(value, what: str = "argument") -> str:
    try:
        return astring(value, what).decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(f"{what} is not UTF-8") from None


def atom(value, what: str = "argument") -> str:
    if not isinstance(value, Atom):
        raise ParseError(f"Expected an atom for {what}")
    return str(value)


def number(value, what: str = "number") -> int:
    if not isinstance(value, Atom) or not value.isdigit() or len(value) > 20:
        raise ParseError(f"Expected a number for {what}")
    return int(value)
