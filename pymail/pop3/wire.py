"""POP3 on the wire, without I/O: command lines in, reply bytes out (RFC 1939 §3, RFC 2449).

- ``parse_command`` splits one command line into an upper-cased keyword and its arguments.
- ``ok``/``multiline`` build replies; multi-line replies are dot-stuffed and end with ``.CRLF``.
- ``MessageEncoder`` turns a stored message (LF or CRLF line ends, read in chunks) into the body
  of a RETR/TOP reply: CRLF line ends, dot-stuffing, the terminating ``.CRLF``. Its
  ``content_size`` is the message size POP3 announces: CRLF line ends counted, stuffed dots not
  counted (RFC 1939 §11: "lines in the message which start with the termination octet need not
  (and must not) be counted twice, since the POP3 client will remove all byte-stuffed termination
  characters"), so LIST/STAT equal the octets a client holds after RETR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterable

CRLF = b"\r\n"
CHUNK_SIZE = 64 * 1024


class CommandSyntaxError(ValueError):
    """The line is not a POP3 command (empty, or not printable ASCII)."""


@dataclass(frozen=True)
class Command:
    keyword: str  # upper-cased, e.g. "RETR"
    args: list[str]  # split on single spaces (RFC 1939 §3)
    rest: str  # everything after "KEYWORD ", for PASS (RFC 1939 §7: spaces are part of it)


def parse_command(line: bytes) -> Command:
    """One command line (without CRLF) → Command. Raises CommandSyntaxError."""
    if not line.strip():
        raise CommandSyntaxError("Empty command")
    keyword_raw, _, rest_raw = line.partition(b" ")
    try:
        keyword = keyword_raw.decode("ascii")
    except UnicodeDecodeError:
        raise CommandSyntaxError("Command is not ASCII") from None
    if not keyword.isalpha() or not keyword.isprintable():
        raise CommandSyntaxError("Invalid command")
    # Arguments are printable ASCII per RFC 1939 §3, but passwords and SASL data in the wild are
    # UTF-8; keep undecodable bytes intact for the password check.
    rest = rest_raw.decode("utf-8", "surrogateescape")
    args = [a for a in rest.split(" ") if a] if rest else []
    return Command(keyword.upper(), args, rest)


def ok(text: str = "") -> bytes:
    return (f"+OK {text}" if text else "+OK").encode("utf-8", "replace") + CRLF


def multiline(first: str, lines: Iterable[str]) -> bytes:
    """``+OK first``, the lines (dot-stuffed), then ``.`` (RFC 1939 §3)."""
    out = [ok(first)]
    for line in lines:
        data = line.encode("utf-8", "replace")
        out.append((b"." + data if data.startswith(b".") else data) + CRLF)
    out.append(b"." + CRLF)
    return b"".join(out)


class MessageEncoder:
    """Stored message bytes → the octets of a RETR/TOP response body, chunk by chunk.

    LF and CRLF both end a line and go out as CRLF; a bare CR is kept as it is. Lines starting
    with "." get one more "." (RFC 1939 §3 byte-stuffing). ``body_lines`` (TOP, RFC 1939 §7)
    stops after the header, the blank line and that many body lines; ``done`` then turns True and
    the caller stops reading. ``finish()`` ends the last line if the message did not, and adds
    the terminating ``.CRLF``.
    """

    def __init__(self, body_lines: int | None = None, stuff: bool = True) -> None:
        self.body_lines = body_lines
        self.stuff = stuff
        self.content_size = 0  # CRLF-normalised octets, stuffing not counted (RFC 1939 §11)
        self.done = False
        self._pending_cr = False
        self._at_line_start = True
        self._in_header = True
        self._body_count = 0

    def feed(self, chunk: bytes) -> bytes:
        if self.done or not chunk:
            return b""
        data = b"\r" + chunk if self._pending_cr else chunk
        self._pending_cr = data.endswith(b"\r")
        if self._pending_cr:  # it may be the first half of a CRLF split across chunks
            data = data[:-1]
        if self.body_lines is not None:
            data = self._cut_for_top(data.replace(CRLF, b"\n").replace(b"\n", CRLF))
        else:
            data = data.replace(CRLF, b"\n").replace(b"\n", CRLF)
        return self._emit(data)

    def finish(self) -> bytes:
        tail = b""
        if self._pending_cr and not self.done:
            tail = self._emit(b"\r")
            self._pending_cr = False
        if not self._at_line_start:
            tail += self._emit(CRLF)
        return tail + b"." + CRLF

    def _emit(self, data: bytes) -> bytes:
        if not data:
            return b""
        self.content_size += len(data)
        if self.stuff:
            if self._at_line_start and data.startswith(b"."):
                data = b"." + data
            data = data.replace(b"\r\n.", b"\r\n..")
        self._at_line_start = data.endswith(b"\n")
        return data

    def _cut_for_top(self, data: bytes) -> bytes:
        """Keep the header, the blank line and ``body_lines`` body lines; set ``done`` after."""
        kept = []
        pos = 0
        at_line_start = self._at_line_start
        while pos < len(data):
            nl = data.find(b"\n", pos)
            end = len(data) if nl < 0 else nl + 1
            segment = data[pos:end]
            if self._in_header:
                if at_line_start and segment == CRLF:
                    self._in_header = False
            elif nl >= 0:
                self._body_count += 1
            if self._in_header or self._body_count <= self.body_lines:
                kept.append(segment)
            if not self._in_header and self._body_count >= self.body_lines and (
                nl >= 0 or segment == CRLF
            ):
                self.done = True
                break
            at_line_start = nl >= 0
            pos = end
        return b"".join(kept)


def encode_message(fileobj: BinaryIO, body_lines: int | None = None) -> Iterable[bytes]:
    """Yield the response body of ``fileobj`` in chunks, ``.CRLF`` last (for tests and tools)."""
    encoder = MessageEncoder(body_lines)
    while not encoder.done:
        chunk = fileobj.read(CHUNK_SIZE)
        if not chunk:
            break
        out = encoder.feed(chunk)
        if out:
            yield out
    yield encoder.finish()


def wire_size(fileobj: BinaryIO) -> int:
    """The POP3 size of a stored message: CRLF line ends, stuffed dots not counted (§11)."""
    encoder = MessageEncoder(stuff=False)
    while True:
        chunk = fileobj.read(CHUNK_SIZE)
        if not chunk:
            break
        encoder.feed(chunk)
    encoder.finish()
    return encoder.content_size
