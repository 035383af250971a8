"""The MIME structure of a raw message, by byte offsets, for FETCH (RFC 3501 §6.4.5, §7.4.2).

IMAP wants exact octets (BODY[1.2], sizes and line counts in BODYSTRUCTURE), which the stdlib
``email`` package does not keep, so this module splits a CRLF message into parts itself:
``parse_message`` → ``Part`` tree; ``envelope`` builds the ENVELOPE value (addresses also
serve SEARCH and SORT); ``section_bytes`` returns what ``BODY[section]`` names.  BODYSTRUCTURE
is the store's (``pymail.store.parse``, kept in the parse cache).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from pymail.imap.fetchspec import Section

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
        name = name.lower()
        for n, v in self.headers:
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


def _split_addresses(raw: str) -> list:
    """Top-level split of an address list into items and groups: ('addr', text) / ('group', name,
    [texts])."""
    items: list = []
    buf: list[str] = []
    group: tuple[str, list[str]] | None = None
    quoted = angle = False
    comment = 0
    i = 0
    while i < len(raw):
        c = raw[i]
        if quoted:
            buf.append(c)
            if c == "\\" and i + 1 < len(raw):
                buf.append(raw[i + 1])
                i += 1
            elif c == '"':
                quoted = False
        elif comment:
            if c == "(":
                comment += 1
            elif c == ")":
                comment -= 1
            buf.append(c)
        elif c == '"':
            quoted = True
            buf.append(c)
        elif c == "(":
            comment = 1
            buf.append(c)
        elif c == "<":
            angle = True
            buf.append(c)
        elif c == ">":
            angle = False
            buf.append(c)
        elif c == ":" and not angle and group is None:
            group = ("".join(buf).strip(), [])
            buf = []
        elif c == ";" and group is not None and not angle:
            if "".join(buf).strip():
                group[1].append("".join(buf))
            items.append(("group", group[0], group[1]))
            group, buf = None, []
        elif c == "," and not angle:
            text = "".join(buf)
            if text.strip():
                (group[1] if group is not None else items).append(text if group is not None else ("addr", text))
            buf = []
        else:
            buf.append(c)
        i += 1
    text = "".join(buf)
    if group is not None:
        if text.strip():
            group[1].append(text)
        items.append(("group", group[0], group[1]))
    elif text.strip():
        items.append(("addr", text))
    return items


def _unquote(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return re.sub(r"\\(.)", r"\1", s[1:-1])
    return s


def _strip_comments(s: str) -> str:
    out, depth = [], 0
    for c in s:
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(c)
    return "".join(out)


def _comments(s: str) -> list[str]:
    out, depth, buf = [], 0, []
    for c in s:
        if c == "(":
            if depth:
                buf.append(c)
            depth += 1
        elif c == ")" and depth:
            depth -= 1
            if depth:
                buf.append(c)
            else:
                out.append("".join(buf).strip())
                buf = []
        elif depth:
            buf.append(c)
    return out


def _address(text: str) -> list | None:
    name = None
    lt = text.find("<")
    if lt >= 0 and ">" in text[lt:]:
        name_text = " ".join(_strip_comments(text[:lt]).split())
        name = _unquote(name_text) if name_text else None
        spec = text[lt + 1:text.index(">", lt)]
    else:
        spec = text
        # "user@domain (Real Name)": the comment serves as the display name, as Dovecot does
        comments = [c for c in _comments(text) if c]
        name = comments[-1] if comments else None
    spec = re.sub(r"\s*([@.])\s*", r"\1", _strip_comments(spec)).strip()
    route = None
    if spec.startswith("@") and ":" in spec:
        route, spec = spec.split(":", 1)
    local, at, domain = spec.rpartition("@")
    if not at:
        local, domain = spec, ""
    local = _unquote(local)
    if not local and not domain:
        return None
    return [_enc(name), _enc(route), _enc(local), _enc(domain) if domain else b""]


def _enc(s: str | None) -> bytes | None:
    return None if s is None else s.encode("utf-8", "surrogateescape")


_SIMPLE_ADDR = re.compile(rb'\s*(?:([^"<>(),:;@\\\s][^"<>(),:;@\\]*?)\s*<([^<>@\s"(),:;\\]+)@([^<>@\s"(),:;\\]+)>'
                          rb'|([^<>@\s"(),:;\\]+)@([^<>@\s"(),:;\\]+))\s*\Z')


def address_list(value: bytes | None) -> list | None:
    """An address header as RFC 3501 address structures (the result is shared: do not modify)."""
    if value is None:
        return None
    return _address_list(value)


@functools.lru_cache(maxsize=4096)
def _address_list(value: bytes) -> list | None:
    m = _SIMPLE_ADDR.match(value)  # fast path: "Name <a@b>" or "a@b"
    if m:
        if m.group(2) is not None:
            return [[m.group(1) or None, None, m.group(2), m.group(3)]]
        return [[None, None, m.group(4), m.group(5)]]
    out: list = []
    for item in _split_addresses(_text(value)):
        if item[0] == "addr":
            a = _address(item[1])
            if a is not None:
                out.append(a)
        else:
            # RFC 3501 §7.4.2: a group is a start marker (NIL NIL name NIL), members, end marker.
            out.append([None, None, _enc(_unquote(item[1])), None])
            for member in item[2]:
                a = _address(member)
                if a is not None:
                    out.append(a)
            out.append([None, None, None, None])
    return out or None


def parse_header(header: bytes) -> Part:
    """A message made of ``header`` alone (what ENVELOPE needs)."""
    data = to_crlf(header)
    return parse_part(data, 0, len(data))


def envelope_from_header(header: bytes) -> list:
    return envelope(parse_header(header))


def envelope(msg: Part) -> list:
    h = msg.header
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
