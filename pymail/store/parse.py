"""Message parsing for the index's parse cache: ENVELOPE, BODY/BODYSTRUCTURE, header fields.

Shapes are RFC 3501 §7.4.2 ready to serialise: a parenthesised list is a Python ``list``, a
string is ``bytes`` (exactly the octets of the header, unfolded, MIME encoded-words untouched),
NIL is ``None`` and a number is ``int``.  The IMAP layer writes bytes as a quoted string or a
literal as it needs.

- ``envelope(header)``: [date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to,
  message-id]; address lists are lists of [name, adl, mailbox, host]; a group is
  [None, None, b"group", None] … [None, None, None, None] (RFC 3501 §7.4.2).  Sender and
  Reply-To default to From when absent or empty.
- ``bodystructure(raw, extended=True)``: single part → [type, subtype, params, id, description,
  encoding, size, (envelope, body, lines for message/rfc822), (lines for text/*), and with
  ``extended``: md5, disposition, language, location]; multipart → [part, part, ...,
  subtype, (params, disposition, language, location when extended)].  Sizes and line counts
  are of the body as sent on the wire (bare LF counted as CRLF).  Without a Content-Type a part
  is ``text/plain; charset=us-ascii`` (RFC 2045 §5.2), inside multipart/digest ``message/rfc822``.

The parser is a small header/MIME splitter written for this (the stdlib ``email`` package
re-folds and decodes values and does not keep exact part offsets, which BODYSTRUCTURE needs).
"""

from __future__ import annotations

import functools
import re

MAX_DEPTH = 20
_HEADER_SPLIT = re.compile(rb"\r?\n\r?\n")


# -- headers ------------------------------------------------------------------------------------

def split_message(raw: bytes) -> tuple[bytes, bytes]:
    """(header block including its final blank line, body)."""
    if raw.startswith(b"\r\n") or raw.startswith(b"\n"):
        n = 2 if raw.startswith(b"\r\n") else 1
        return raw[:n], raw[n:]
    m = _HEADER_SPLIT.search(raw)
    if m is None:
        return raw, b""
    return raw[:m.end()], raw[m.end():]


def header_fields(header: bytes) -> list[tuple[bytes, bytes]]:
    """[(name, raw field bytes including folded continuation lines and line end)]."""
    fields: list[tuple[bytes, bytes]] = []
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line)
            continue
        colon = line.find(b":")
        if colon <= 0:
            continue                      # not a header line; ignored as Dovecot does
        fields.append((line[:colon].strip(), line))
    return fields


def field_value(raw_field: bytes) -> bytes:
    """Value of one raw field, unfolded (CRLF/LF before whitespace removed), trimmed."""
    value = raw_field.split(b":", 1)[1]
    value = re.sub(rb"\r?\n(?=[ \t])", b"", value)
    return value.strip(b" \t\r\n")


def header_map(header: bytes) -> dict[bytes, bytes]:
    """lower-cased name → value of the first occurrence."""
    out: dict[bytes, bytes] = {}
    for name, raw in header_fields(header):
        out.setdefault(name.lower(), field_value(raw))
    return out


def select_fields(header: bytes, names, negate: bool = False) -> bytes:
    """BODY[HEADER.FIELDS (names)] / HEADER.FIELDS.NOT: matching fields + blank line, CRLF."""
    return field_selector(names, negate)(header)


def field_selector(names, negate: bool = False):
    """A function header → select_fields(header, names, negate), compiled once for a scan."""
    wanted = tuple(sorted({n.lower() if isinstance(n, bytes) else n.lower().encode()
                           for n in names}))
    if negate:
        def select_not(header: bytes) -> bytes:
            out = b"".join(raw for name, raw in header_fields(header)
                           if name.lower() not in wanted)
            if out.count(b"\n") != out.count(b"\r\n"):
                out = _crlf(out)
            return out + b"\r\n"
        return select_not
    findall = _field_regex(wanted).findall

    def select(header: bytes) -> bytes:
        if header[-1:] != b"\n":
            header += b"\n"
        out = b"".join(findall(header))
        if out.count(b"\n") != out.count(b"\r\n"):
            out = _crlf(out)
        return out + b"\r\n"
    return select


@functools.lru_cache(maxsize=128)
def _field_regex(names: tuple[bytes, ...]) -> re.Pattern:
    """One field whose name is in ``names``, with its continuation lines (C speed for the
    common FETCH BODY[HEADER.FIELDS (...)] over a whole mailbox)."""
    alternatives = b"|".join(re.escape(n) for n in names) or b"(?!)"
    return re.compile(rb"^(?:" + alternatives + rb")[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*",
                      re.IGNORECASE | re.MULTILINE)


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


# -- RFC 5322 address lists ---------------------------------------------------------------------

_SPECIALS = b'()<>[]:;@\\,."'


def _tokens(value: bytes):
    """Yield (kind, text): kind in 'atom', 'quoted', 'domlit', 'special'; comments dropped."""
    i, n = 0, len(value)
    while i < n:
        c = value[i:i + 1]
        if c in b" \t\r\n":
            i += 1
        elif c == b"(":
            depth = 0
            while i < n:
                ch = value[i:i + 1]
                if ch == b"\\":
                    i += 2
                    continue
                if ch == b"(":
                    depth += 1
                elif ch == b")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        elif c == b'"':
            i += 1
            out = bytearray()
            while i < n and value[i:i + 1] != b'"':
                if value[i:i + 1] == b"\\" and i + 1 < n:
                    i += 1
                out += value[i:i + 1]
                i += 1
            i += 1
            yield "quoted", bytes(out)
        elif c == b"[":
            j = value.find(b"]", i)
            j = n - 1 if j < 0 else j
            yield "domlit", value[i:j + 1]
            i = j + 1
        elif c in _SPECIALS:
            yield "special", c
            i += 1
        else:
            j = i
            while j < n and value[j:j + 1] not in _SPECIALS and value[j:j + 1] not in b" \t\r\n":
                j += 1
            yield "atom", value[i:j]
            i = j


def parse_addresses(value: bytes | None) -> list | None:
    """An address-list header value → RFC 3501 address structures (None if no address)."""
    if value is None:
        return None
    toks = list(_tokens(value))
    out: list = []
    i = 0
    n = len(toks)
    in_group = False
    while i < n:
        # collect one mailbox / group start up to "," or ";" at this level
        phrase: list[bytes] = []
        j = i
        addr = None
        group_start = False
        while j < n:
            kind, text = toks[j]
            if kind == "special" and text == b"<":
                k = j + 1
                route = []
                inner = []
                while k < n and toks[k] != ("special", b">"):
                    inner.append(toks[k])
                    k += 1
                if inner and inner[0] == ("special", b"@"):
                    # obsolete source route "@a,@b:" (RFC 5322 §4.4)
                    colon = next((x for x, t in enumerate(inner) if t == ("special", b":")), None)
                    if colon is not None:
                        route = inner[:colon]
                        inner = inner[colon + 1:]
                addr = (_join_phrase(phrase), _route(route), inner)
                j = k + 1
                while j < n and toks[j] not in (("special", b","), ("special", b";")):
                    j += 1
                break
            if kind == "special" and text == b":" and not in_group:
                group_start = True
                j += 1
                break
            if kind == "special" and text in (b",", b";"):
                break
            phrase.append(text)
            j += 1
        if group_start:
            out.append([None, None, _join_phrase(phrase) or b"", None])
            in_group = True
            i = j
            continue
        if addr is not None:
            name, route, inner = addr
            mailbox, host = _addr_spec(inner)
            out.append([name or None, route, mailbox, host])
        elif phrase:
            # bare addr-spec: local@domain (tokens were collected as the phrase)
            mailbox, host = _addr_spec(toks[i:j])
            if mailbox is not None:
                out.append([None, None, mailbox, host])
        if j < n and toks[j] == ("special", b";"):
            if in_group:
                out.append([None, None, None, None])
                in_group = False
        i = j + 1
    if in_group:
        out.append([None, None, None, None])
    return out or None


def _join_phrase(parts: list[bytes]) -> bytes:
    out = b""
    for p in parts:
        if p == b".":
            out += b"."
        elif out and not out.endswith(b"."):
            out += b" " + p
        else:
            out += p
    return out


def _route(route_toks) -> bytes | None:
    if not route_toks:
        return None
    return b"".join(t for _, t in route_toks)


def _addr_spec(toks) -> tuple[bytes | None, bytes | None]:
    at = None
    for x in range(len(toks) - 1, -1, -1):
        if toks[x] == ("special", b"@"):
            at = x
            break
    if at is None:
        local = b"".join(t for _, t in toks)
        return (local or None), None
    local = b"".join(t for _, t in toks[:at])
    domain = b"".join(t for _, t in toks[at + 1:])
    return local, (domain or None)


# -- ENVELOPE -----------------------------------------------------------------------------------

def envelope(header: bytes) -> list:
    h = header_map(header)

    def text(name: bytes):
        v = h.get(name)
        return v if v is not None else None

    def addrs(name: bytes):
        return parse_addresses(h.get(name)) if h.get(name) else None

    frm = addrs(b"from")
    sender = addrs(b"sender") or frm
    reply_to = addrs(b"reply-to") or frm
    return [text(b"date"), text(b"subject"), frm, sender, reply_to, addrs(b"to"), addrs(b"cc"),
            addrs(b"bcc"), text(b"in-reply-to"), text(b"message-id")]


# -- BODYSTRUCTURE ------------------------------------------------------------------------------

def _params(value: bytes) -> tuple[bytes, bytes, list]:
    """'type/sub; a=b; c="d"' → (type, subtype, [k, v, ...]) with k, v as bytes."""
    parts = _split_semicolons(value)
    main = parts[0].strip() if parts else b""
    typ, _, sub = main.partition(b"/")
    return typ.strip(), sub.strip(), _param_list(parts[1:])


def _param_list(parts: list[bytes]) -> list:
    plist: list = []
    for p in parts:
        k, eq, v = p.partition(b"=")
        k = k.strip()
        if not eq or not k:
            continue
        v = v.strip()
        if v.startswith(b'"'):
            v = _unquote(v)
        plist += [k, v]
    return plist


def _split_semicolons(value: bytes) -> list[bytes]:
    out, cur, quoted, esc = [], bytearray(), False, False
    for b in value:
        c = bytes([b])
        if esc:
            cur += c
            esc = False
        elif c == b"\\" and quoted:
            cur += c
            esc = True
        elif c == b'"':
            quoted = not quoted
            cur += c
        elif c == b";" and not quoted:
            out.append(bytes(cur))
            cur = bytearray()
        else:
            cur += c
    out.append(bytes(cur))
    return out


def _unquote(v: bytes) -> bytes:
    v = v[1:]
    end = v.rfind(b'"')
    if end >= 0:
        v = v[:end]
    return re.sub(rb"\\(.)", rb"\1", v)


def _wire_size(data: bytes) -> int:
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def _lines(data: bytes) -> int:
    return data.count(b"\n")


def bodystructure(raw: bytes, extended: bool = True) -> list:
    return _part(raw, extended, default_type=(b"text", b"plain"), depth=0)


def _part(raw: bytes, extended: bool, default_type, depth: int) -> list:
    header, body = split_message(raw)
    h = header_map(header)
    ctype = h.get(b"content-type")
    typ = sub = b""
    plist: list = []
    if ctype:
        typ, sub, plist = _params(ctype)
    if not typ or not sub:
        typ, sub = default_type
        plist = [b"charset", b"us-ascii"] if typ.lower() == b"text" else []
    disposition = language = location = md5 = None
    if extended:
        md5 = h.get(b"content-md5")
        if h.get(b"content-disposition"):
            dparts = _split_semicolons(h[b"content-disposition"])
            disposition = [dparts[0].strip(), _param_list(dparts[1:]) or None]
        lang = h.get(b"content-language")
        if lang:
            langs = [x.strip() for x in lang.split(b",") if x.strip()]
            language = langs[0] if len(langs) == 1 else (langs or None)
        location = h.get(b"content-location")
    if typ.lower() == b"multipart" and depth < MAX_DEPTH:
        boundary = _param(plist, b"boundary")
        parts = []
        if boundary:
            child_default = (b"message", b"rfc822") if sub.lower() == b"digest" else (b"text", b"plain")
            for chunk in _split_multipart(body, boundary):
                parts.append(_part(chunk, extended, child_default, depth + 1))
        if not parts:
            # RFC 3501 requires at least one part; an empty text/plain stands in.
            parts.append(_part(b"\r\n", extended, (b"text", b"plain"), depth + 1))
        out = parts + [sub]
        if extended:
            out += [plist or None, disposition, language, location]
        return out
    out = [typ, sub, plist or None, h.get(b"content-id"), h.get(b"content-description"),
           h.get(b"content-transfer-encoding") or b"7bit", _wire_size(body)]
    if typ.lower() == b"message" and sub.lower() == b"rfc822" and depth < MAX_DEPTH:
        inner_header, _ = split_message(body)
        out += [envelope(inner_header), _part(body, extended, (b"text", b"plain"), depth + 1),
                _lines(body)]
    elif typ.lower() == b"text":
        out.append(_lines(body))
    if extended:
        out += [md5, disposition, language, location]
    return out


def _param(plist: list, name: bytes) -> bytes | None:
    for i in range(0, len(plist) - 1, 2):
        if plist[i].lower() == name:
            return plist[i + 1]
    return None


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """Body parts between ``--boundary`` lines (RFC 2046 §5.1.1).  The line break before a
    delimiter belongs to the delimiter, not to the part."""
    delim = b"--" + boundary
    parts: list[bytes] = []
    pos = 0
    start = None
    n = len(body)
    while pos <= n:
        line_end = body.find(b"\n", pos)
        line = body[pos:] if line_end < 0 else body[pos:line_end]
        stripped = line.rstrip(b"\r").rstrip(b" \t")
        if stripped.startswith(delim):
            rest = stripped[len(delim):]
            if rest in (b"", b"--"):
                if start is not None:
                    end = pos
                    if end > start and body[end - 1:end] == b"\n":
                        end -= 1
                        if end > start and body[end - 1:end] == b"\r":
                            end -= 1
                    parts.append(body[start:end])
                if rest == b"--":
                    return parts
                start = n if line_end < 0 else line_end + 1
        if line_end < 0:
            break
        pos = line_end + 1
    if start is not None and start < n:
        parts.append(body[start:])       # missing close delimiter: take the rest
    return parts


def body_without_extensions(structure: list) -> list:
    """BODYSTRUCTURE → BODY (the non-extensible form)."""
    return bodystructure_strip(structure)


def bodystructure_strip(s: list) -> list:
    if s and isinstance(s[0], list):               # multipart: parts, then the subtype
        k = 0
        while isinstance(s[k], list):
            k += 1
        return [bodystructure_strip(p) for p in s[:k]] + [s[k]]
    base = s[:7]
    typ, sub = (s[0] or b"").lower(), (s[1] or b"").lower()
    if typ == b"message" and sub == b"rfc822":
        return base + [s[7], bodystructure_strip(s[8]), s[9]]
    if typ == b"text":
        return base + [s[7]]
    return base


# -- the cache's storage form -------------------------------------------------------------------

def to_json(value) -> object:
    """bytes → latin-1 str (no str occurs in these shapes, so the mapping is reversible)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def from_json(value) -> object:
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value
