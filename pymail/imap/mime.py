"""The MIME structure of a raw message, by byte offsets, for FETCH (RFC 3501 §6.4.5, §7.4.2).

IMAP wants exact octets (BODY[1.2], sizes and line counts in BODYSTRUCTURE), which the stdlib
``email`` package does not keep, so this module splits a CRLF message into parts itself:
``parse_message`` → ``Part`` tree; ``envelope`` builds the ENVELOPE value (addresses also
serve SEARCH and SORT); ``section_bytes`` returns what ``BODY[section]`` names.  BODYSTRUCTURE
is the store's (``pymail.store.parse``, kept in the parse cache).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pymail.imap.fetchspec import Section
from pymail.store.parse import parse_addresses

_LINE_END = re.compile(rb"\r?\n")
_HEADER_END = re.compile(rb"\r\n\r\n")
MAX_DEPTH = 50  # nested multiparts / message/rfc822 deeper than this are treated as opaque


def to_crlf(raw: bytes) -> bytes:
    """IMAP messages are CRLF (RFC 3501 §2.3.1); a maildir file may use LF."""
    if b"\n" not in raw or (b"\r\n" in raw and raw.count(b"\n") == raw.count(b"\r\n")):
        return raw
    return _LINE_END.sub(b"\r\n", raw)


@dataclass
class Part:
    data: bytes
    start: int  # header start
    body_start: int  # first byte of the body (after the blank line)
    end: int
    headers: list[tuple[str, bytes]]  # (lower-cased name, unfolded raw value)
    ctype: str = "text"
    subtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    children: list["Part"] = field(default_factory=list)
    message: "Part | None" = None  # the encapsulated message of message/rfc822

    @property
    def header_bytes(self) -> bytes:
        return self.data[self.start:self.body_start]

    @property
    def body_bytes(self) -> bytes:
        return self.data[self.body_start:self.end]

    def header(self, name: str) -> bytes | None:
        """The field's value; a repeated field's last occurrence wins, as in Dovecot and the
        store's BODYSTRUCTURE, so BODY[section] numbers parts as BODYSTRUCTURE shows them."""
        name = name.lower()
        for n, v in reversed(self.headers):
            if n == name:
                return v
        return None


def _parse_headers(block: bytes) -> list[tuple[str, bytes]]:
    headers: list[tuple[str, bytes]] = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        headers.append((name.strip().decode("ascii", "replace").lower(), value.strip()))
    return headers


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def parse_params(value: str) -> tuple[str, list[tuple[str, str]]]:
    """``text/plain; charset="x"`` → ("text/plain", [("charset", "x")])."""
    head, _, rest = value.partition(";")
    params: list[tuple[str, str]] = []
    for m in re.finditer(r'\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)\s*(?:;|$)', rest):
        v = m.group(2).strip()
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        params.append((m.group(1), v))
    return head.strip(), params


def parse_part(data: bytes, start: int, end: int, default=("text", "plain"), depth: int = 0) -> Part:
    if data.startswith(b"\r\n", start):
        body_start = start + 2
        headers: list[tuple[str, bytes]] = []
    else:
        m = _HEADER_END.search(data, start, end)
        body_start = m.end() if m else end
        headers = _parse_headers(data[start:body_start])
    part = Part(data, start, body_start, end, headers, *default)
    if default == ("text", "plain"):
        part.params = [("charset", "us-ascii")]
    ct = part.header("content-type")
    if ct is not None:
        full, params = parse_params(_text(ct))
        main, _, sub = full.partition("/")
        if main and sub and re.fullmatch(r"[!-~]+", main + sub):
            part.ctype, part.subtype, part.params = main.lower(), sub.lower(), params
    if depth >= MAX_DEPTH:
        return part
    if part.ctype == "multipart":
        boundary = dict((k.lower(), v) for k, v in part.params).get("boundary")
        if boundary:
            child_default = ("message", "rfc822") if part.subtype == "digest" else ("text", "plain")
            for s, e in _split_multipart(data, body_start, end, boundary.encode("utf-8", "replace")):
                part.children.append(parse_part(data, s, e, child_default, depth + 1))
    elif part.ctype == "message" and part.subtype in ("rfc822", "global"):
        part.message = parse_part(data, body_start, end, ("text", "plain"), depth + 1)
    return part


def _split_multipart(data: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Body parts between ``--boundary`` lines (RFC 2046 §5.1.1); the CRLF before a delimiter
    belongs to the delimiter."""
    delim = re.compile(rb"(?:^|\r\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|$)", re.M)
    parts: list[tuple[int, int]] = []
    pos = start
    opened = None
    while True:
        m = delim.search(data, pos, end)
        if m is None:
            break
        if opened is not None:
            parts.append((opened, m.start()))
        if m.group(1):
            opened = None
            break
        opened = m.end()
        pos = m.end() - 2 if m.group(0).endswith(b"\r\n") else m.end()
        if pos < opened:
            pos = opened
    if opened is not None:
        parts.append((opened, end))
    return parts


def parse_message(raw: bytes) -> Part:
    data = to_crlf(raw)
    return parse_part(data, 0, len(data))


# --- ENVELOPE (RFC 3501 §7.4.2) -------------------------------------------------------------

def _nstring(value: bytes | None) -> bytes | None:
    return None if value is None else value


# An address header as RFC 3501 address structures: the store's parser (checked against
# Dovecot's answers), so FETCH ENVELOPE, the ENVELOPE inside a BODYSTRUCTURE, SEARCH and SORT
# read addresses alike.  The result is shared: do not modify it.
address_list = parse_addresses


def parse_header(header: bytes) -> Part:
    """A message made of ``header`` alone (what ENVELOPE needs)."""
    data = to_crlf(header)
    return parse_part(data, 0, len(data))


def envelope_from_header(header: bytes) -> list:
    return envelope(parse_header(header))


def envelope_headers(msg: Part):
    """``msg.header`` for the ten lookups of one ENVELOPE, from one dict (the last occurrence
    of a repeated field wins there too)."""
    return dict(msg.headers).get


def envelope(msg: Part) -> list:
    h = envelope_headers(msg)
    frm = address_list(h("from"))
    sender = address_list(h("sender")) or frm
    reply_to = address_list(h("reply-to")) or frm
    return [_nstring(h("date")), _nstring(h("subject")), frm, sender, reply_to,
            address_list(h("to")), address_list(h("cc")), address_list(h("bcc")),
            _nstring(h("in-reply-to")), _nstring(h("message-id"))]


# --- BODY[section] (RFC 3501 §6.4.5) --------------------------------------------------------

def find_part(msg: Part, path: tuple[int, ...]) -> Part | None:
    """The part a section number names (RFC 3501 §6.4.5): a non-multipart's part 1 is its body,
    and numbers after a message/rfc822 part go into the encapsulated message."""
    part = msg
    for i, n in enumerate(path):
        if part.children:
            if n > len(part.children):
                return None
            part = part.children[n - 1]
        elif n != 1:
            return None
        if i < len(path) - 1 and part.message is not None:
            part = part.message
    return part


def _header_lines(block: bytes) -> list[tuple[str, bytes]]:
    """Header fields with their raw lines (folding kept)."""
    lines: list[tuple[str, bytes]] = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] = (lines[-1][0], lines[-1][1] + line + b"\r\n")
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").upper()
        lines.append((name, line + b"\r\n"))
    return lines


def filter_header(block: bytes, fields: tuple[str, ...], exclude: bool) -> bytes:
    wanted = set(fields)
    kept = [raw for name, raw in _header_lines(block) if (name in wanted) != exclude]
    return b"".join(kept) + b"\r\n"


def section_bytes(msg: Part, section: Section) -> bytes:
    if not section.part and not section.spec:
        return msg.data[msg.start:msg.end]
    part = find_part(msg, section.part) if section.part else msg
    if part is None:
        return b""
    if section.spec == "MIME":
        return part.header_bytes if part is not msg or section.part else b""
    if section.spec == "":
        if part is msg and section.part == (1,) and not msg.children:
            return msg.body_bytes
        return part.body_bytes
    # HEADER, HEADER.FIELDS(.NOT), TEXT address a message: the top one or a message/rfc822 part
    target = part if not section.part else part.message
    if target is None:
        return b""
    if section.spec == "TEXT":
        return target.body_bytes
    header = target.header_bytes
    if section.spec == "HEADER":
        return header
    return filter_header(header, section.fields, section.spec == "HEADER.FIELDS.NOT")
