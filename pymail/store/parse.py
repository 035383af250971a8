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

Where RFC 3501 leaves room, the answers are Dovecot's (checked field by field against a live
Dovecot 2.3 in tests/store/test_store_dovecot_live.py): a repeated header's last occurrence
wins; broken addresses become ``MISSING_MAILBOX`` / ``MISSING_DOMAIN``; a bare ``a@b (Name)``
takes its comment as name; a phrase without address is a name with both placeholders;
Content-Language is always a list; RFC 2231 continuations are joined (after the plain
parameters; encoded ones as ``name*`` = ``charset'lang'%XX...``); a text part without charset
gets ``charset us-ascii`` last; a message/rfc822 part whose content ends with a multipart close
delimiter keeps the line break before the next boundary in its size and line count.

Serialising (the IMAP layer's job): RFC 3501 §9 writes the addresses of one address list and
the parts of a multipart without SP between them (``(("a" NIL "b" "c")("d" NIL "e" "f"))``,
``(("text" ...)("text" ...) "alternative")``), everything else with SP.

The parser is a small header/MIME splitter written for this (the stdlib ``email`` package
re-folds and decodes values and does not keep exact part offsets, which BODYSTRUCTURE needs).
"""

from __future__ import annotations

import functools
import re

MAX_DEPTH = 20
HEADER_SPLIT = re.compile(rb"\r?\n\r?\n")


# -- headers ------------------------------------------------------------------------------------

def split_message(raw: bytes) -> tuple[bytes, bytes]:
    """(header block including its final blank line, body)."""
    if raw.startswith(b"\r\n") or raw.startswith(b"\n"):
        n = 2 if raw.startswith(b"\r\n") else 1
        return raw[:n], raw[n:]
    m = HEADER_SPLIT.search(raw)
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
    """lower-cased name → value; a repeated field's last occurrence wins (as in Dovecot's
    ENVELOPE and BODYSTRUCTURE)."""
    out: dict[bytes, bytes] = {}
    for name, raw in header_fields(header):
        out[name.lower()] = field_value(raw)
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
    """Yield (kind, text, space_before): kind in 'atom', 'quoted', 'domlit', 'special',
    'comment' (its text without the parentheses)."""
    i, n = 0, len(value)
    space = False
    while i < n:
        c = value[i:i + 1]
        if c in b" \t\r\n":
            i += 1
            space = True
            continue
        if c == b"(":
            depth = 0
            start = i + 1
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
                        break
                i += 1
            yield "comment", re.sub(rb"\\(.)", rb"\1", value[start:i]).strip(), space
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
            yield "quoted", bytes(out), space
        elif c == b"[":
            j = value.find(b"]", i)
            j = n - 1 if j < 0 else j
            yield "domlit", value[i:j + 1], space
            i = j + 1
        elif c in _SPECIALS:
            yield "special", c, space
            i += 1
        else:
            j = i
            while j < n and value[j:j + 1] not in _SPECIALS and value[j:j + 1] not in b" \t\r\n":
                j += 1
            yield "atom", value[i:j], space
            i = j
        space = False


MISSING_MAILBOX = b"MISSING_MAILBOX"   # Dovecot's placeholders for broken addresses
MISSING_DOMAIN = b"MISSING_DOMAIN"


# The usual address forms — "Name Words <local@domain>", "\"Quoted, Name\" <local@domain>",
# "<local@domain>", "local@domain" — alone or as a comma-separated list, with nothing the
# tokenizer would treat specially (comments, groups, escapes, runs of spaces in a name): what
# most headers hold.  ``_parse_addresses`` answers these without the tokenizer.
_WORD = rb'[^()<>\[\]:;@\\,."\s]+'
_DOTTED = rb'[^()<>\[\]:;@\\,"\s]+'
_SIMPLE_ADDRESS = re.compile(
    rb'(?:(' + _WORD + rb'(?: ' + _WORD + rb')*)|"([^"\\\r\n]*)")?[ \t]*'
    rb'<(' + _DOTTED + rb')@(' + _DOTTED + rb')>'
    rb'|(' + _DOTTED + rb')@(' + _DOTTED + rb')')


def _simple_addresses(value: bytes) -> list | None:
    """``parse_addresses_slowly(value)`` when every address has a usual form, else None."""
    # a comma inside a quoted name would split it: lists only without quotes
    pieces = value.split(b",") if b'"' not in value else [value]
    out = []
    for piece in pieces:
        m = _SIMPLE_ADDRESS.fullmatch(piece.strip(b" \t\r\n"))
        if m is None:
            return None
        if m[3] is not None:
            out.append([m[1] or m[2] or None, None, m[3], m[4]])
        else:
            out.append([None, None, m[5], m[6]])
    return out


def parse_addresses(value: bytes | None) -> list | None:
    """An address-list header value → RFC 3501 address structures (None if no address).

    Broken addresses are filled in the way Dovecot does, so a client sees the same ENVELOPE
    from both servers: a missing local part → ``MISSING_MAILBOX``, a missing domain →
    ``MISSING_DOMAIN``; an address without a display name takes its (last) comment as name.
    The result of a value seen before is shared (cached): do not modify it.
    """
    if value is None:
        return None
    return _parse_addresses(value)


@functools.lru_cache(maxsize=4096)
def _parse_addresses(value: bytes) -> list | None:
    # the tokenizer would give the same (test_store_parse.py)
    simple = _simple_addresses(value)
    return simple if simple is not None else parse_addresses_slowly(value)


def parse_addresses_slowly(value: bytes) -> list | None:
    """``parse_addresses`` without the shortcut for the usual forms (the tokenizer)."""
    toks = list(_tokens(value))
    out: list = []
    element: list = []
    in_group = False
    after_group_end = False

    def flush(last: bool) -> None:
        nonlocal after_group_end
        if _has_words(element):     # comments alone are no address ("g: (foo) ;" is empty)
            out.append(_address(element))
        elif not last and not after_group_end:
            out.append([None, None, MISSING_MAILBOX, MISSING_DOMAIN])
        element.clear()
        after_group_end = False

    depth = 0
    for tok in toks:
        kind, text, _ = tok
        if kind == "special" and text == b"<":
            depth += 1
        elif kind == "special" and text == b">":
            depth = max(0, depth - 1)
        if depth == 0 and kind == "special" and text == b":" and not in_group \
                and not any(t[0] == "special" and t[1] == b"@" for t in element):
            phrase = _join_words([t for t in element if t[0] != "comment"])
            out.append([None, None, phrase or b"", None])
            element.clear()
            in_group = True
            continue
        if depth == 0 and kind == "special" and text == b";" and in_group:
            if _has_words(element):
                out.append(_address(element))
            element.clear()
            out.append([None, None, None, None])
            in_group = False
            after_group_end = True
            continue
        if depth == 0 and kind == "special" and text == b",":
            flush(last=False)
            continue
        element.append(tok)
    flush(last=True)
    if in_group:
        out.append([None, None, None, None])
    return out or None


def _has_words(toks) -> bool:
    return any(t[0] != "comment" for t in toks)


def _join_words(toks) -> bytes:
    """Phrase / dot-atom text: tokens joined with one space where the header had space."""
    out = bytearray()
    for kind, text, space in toks:
        if out and space:
            out += b" "
        out += text
    return bytes(out)


def _address(toks) -> list:
    comments = [t[1] for t in toks if t[0] == "comment"]
    toks = [t for t in toks if t[0] != "comment"]
    lt = next((i for i, t in enumerate(toks) if t[0] == "special" and t[1] == b"<"), None)
    route = None
    if lt is not None:
        name = _join_words(toks[:lt]) or None
        gt = next((i for i in range(lt + 1, len(toks))
                   if toks[i][0] == "special" and toks[i][1] == b">"), len(toks))
        inner = toks[lt + 1:gt]
        if inner and inner[0][0] == "special" and inner[0][1] == b"@":
            # obsolete source route "@a,@b:" (RFC 5322 §4.4)
            colon = next((i for i, t in enumerate(inner)
                          if t[0] == "special" and t[1] == b":"), None)
            if colon is not None:
                route = b"".join(t[1] for t in inner[:colon])
                inner = inner[colon + 1:]
    else:
        inner = toks
        name = None
        words = 0
        prev = None
        for t in toks:
            if t[0] in ("atom", "quoted") and not (prev and prev[0] == "special"
                                                   and prev[1] in (b".", b"@")):
                words += 1
            prev = t
        if words > 1 and not any(t[0] == "special" and t[1] == b"@" for t in toks):
            return [_join_words(toks), None, MISSING_MAILBOX, MISSING_DOMAIN]
        if comments:
            name = comments[-1] or None       # "a@b.c (Name)": the comment names a bare address
    mailbox, host = _addr_spec(inner)
    return [name, route, mailbox, host]


def _addr_spec(toks) -> tuple[bytes, bytes]:
    at = None
    for x in range(len(toks) - 1, -1, -1):
        if toks[x][0] == "special" and toks[x][1] == b"@":
            at = x
            break
    local_toks = toks if at is None else toks[:at]
    local = b"".join(t[1] for t in local_toks)
    domain = b"" if at is None else b"".join(t[1] for t in toks[at + 1:])
    return (local or MISSING_MAILBOX), (domain or MISSING_DOMAIN)


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
    main = _COMMENT.sub(b"", parts[0]).strip() if parts else b""     # CFWS may hold comments
    typ, _, sub = main.partition(b"/")
    return typ.strip(), sub.strip(), _param_list(parts[1:])


def _param_list(parts: list[bytes]) -> list:
    """Parameters as [k, v, ...].  RFC 2231 continuations (``a*0``, ``a*1*`` ...) are joined
    into one ``a`` (or ``a*`` when encoded, value kept as ``charset'lang'%XX``) and put after
    the plain parameters, as Dovecot's rfc2231 parser does."""
    plain: list = []
    continued: dict[bytes, list] = {}
    order: list[bytes] = []
    for p in parts:
        k, eq, v = p.partition(b"=")
        k = k.strip()
        if not eq or not k:
            continue
        v = v.strip()
        if v.startswith(b'"'):
            v = _unquote(v)
        m = _CONTINUATION.match(k)
        if m is None:
            plain += [k, v]
            continue
        base = m.group(1)
        if base.lower() not in continued:
            continued[base.lower()] = []
            order.append(base)
        continued[base.lower()].append((int(m.group(2)), bool(m.group(3)), v))
    for base in order:
        segments = sorted(continued[base.lower()], key=lambda seg: seg[0])
        encoded = segments[0][1]
        plain += [base + b"*" if encoded else base, b"".join(seg[2] for seg in segments)]
    return plain


_COMMENT = re.compile(rb"\((?:[^()\\]|\\.)*\)")
_CONTINUATION = re.compile(rb"^(.+?)\*(\d+)(\*?)$")


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


def _part(raw: bytes, extended: bool, default_type, depth: int, eol: int = 0) -> list:
    """``raw`` ends with the ``eol`` bytes of the line break before the next boundary; they
    belong to the part only when it is a message/rfc822 whose own last line is a multipart
    close delimiter (Dovecot's sizes)."""
    if eol:
        trimmed = raw[:-eol]
        if not _ends_with_close_delimiter(trimmed, default_type, depth):
            raw = trimmed
    header, body = split_message(raw)
    h = header_map(header)
    ctype = h.get(b"content-type")
    typ = sub = b""
    plist: list = []
    if ctype:
        typ, sub, plist = _params(ctype)
    if not typ or not sub:
        typ, sub = default_type
        plist = []
    if typ.lower() == b"text" and _param(plist, b"charset") is None:
        plist = plist + [b"charset", b"us-ascii"]       # RFC 2045 §5.2 default, as Dovecot
    disposition = language = location = md5 = None
    if extended:
        md5 = h.get(b"content-md5")
        if h.get(b"content-disposition"):
            dparts = _split_semicolons(h[b"content-disposition"])
            disposition = [dparts[0].strip(), _param_list(dparts[1:]) or None]
        lang = h.get(b"content-language")
        if lang:
            language = [x.strip() for x in lang.split(b",") if x.strip()] or None
        location = h.get(b"content-location")
    if typ.lower() == b"multipart" and depth < MAX_DEPTH:
        boundary = _param(plist, b"boundary")
        parts = []
        if boundary:
            child_default = (b"message", b"rfc822") if sub.lower() == b"digest" else (b"text", b"plain")
            for chunk, eol in _split_multipart(body, boundary):
                parts.append(_part(chunk, extended, child_default, depth + 1, eol))
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


def _ends_with_close_delimiter(raw: bytes, default_type, depth: int) -> bool:
    """Is ``raw`` a message/rfc822 part whose content ends with a multipart close delimiter?"""
    if depth >= MAX_DEPTH:
        return False
    header, body = split_message(raw)
    ctype = header_map(header).get(b"content-type")
    typ, sub, plist = _params(ctype) if ctype else (b"", b"", [])
    if not typ or not sub:
        typ, sub = default_type
    if not (typ.lower() == b"message" and sub.lower() == b"rfc822"):
        return False
    inner_header, inner_body = split_message(body)
    inner_type = header_map(inner_header).get(b"content-type")
    if not inner_type:
        return False
    ityp, _, iplist = _params(inner_type)
    boundary = _param(iplist, b"boundary")
    if ityp.lower() != b"multipart" or not boundary:
        return False
    last = inner_body.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].rstrip(b"\r \t")
    return last == b"--" + boundary + b"--"


def _split_multipart(body: bytes, boundary: bytes) -> list[tuple[bytes, int]]:
    """Body parts between ``--boundary`` lines (RFC 2046 §5.1.1), each as (bytes including the
    line break before the next delimiter, length of that line break).  Delimiter lines are
    found with one compiled regex, so a large attachment is not walked line by line."""
    delimiter = re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$", re.MULTILINE)
    parts: list[tuple[bytes, int]] = []
    start = None
    n = len(body)
    for m in delimiter.finditer(body):
        pos = m.start()
        if start is not None:
            eol = 0
            if pos > start and body[pos - 1:pos] == b"\n":
                eol = 1
                if pos - 1 > start and body[pos - 2:pos - 1] == b"\r":
                    eol = 2
            parts.append((body[start:pos], eol))
        if m.group(1):
            return parts
        nl = body.find(b"\n", m.end())
        start = n if nl < 0 else nl + 1
    if start is not None and start < n:
        parts.append((body[start:], 0))   # missing close delimiter: take the rest
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
