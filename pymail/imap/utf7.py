"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3) and the wire ↔ store name mapping.

The store names mailboxes in UTF-8 with ``/`` as separator; the wire uses modified UTF-7 (unless
the client enabled UTF8=ACCEPT, RFC 6855 §3). INBOX is case-insensitive (RFC 3501 §5.1).
"""

from __future__ import annotations

import base64
import re

SEPARATOR = "/"


class NameError_(ValueError):
    """A mailbox name that is not valid modified UTF-7."""


def encode(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


_SHIFT = re.compile(r"&([A-Za-z0-9+,]*)-")


def decode(wire: str) -> str:
    if any(ord(c) > 0x7E or ord(c) < 0x20 for c in wire):
        raise NameError_("mailbox name has 8-bit or control characters")
    out, pos = [], 0
    for m in _SHIFT.finditer(wire):
        if "&" in wire[pos:m.start()]:
            raise NameError_("bad & in mailbox name")
        out.append(wire[pos:m.start()])
        b64 = m.group(1)
        if b64 == "":
            out.append("&")
        else:
            raw = b64.replace(",", "/")
            raw += "=" * (-len(raw) % 4)
            try:
                chunk = base64.b64decode(raw, validate=True).decode("utf-16-be")
            except (ValueError, UnicodeDecodeError):
                raise NameError_("bad modified UTF-7 in mailbox name") from None
            if encode(chunk) != m.group(0):
                raise NameError_("non-canonical modified UTF-7 in mailbox name")
            out.append(chunk)
        pos = m.end()
    if "&" in wire[pos:]:
        raise NameError_("bad & in mailbox name")
    out.append(wire[pos:])
    return "".join(out)


def from_wire(raw: bytes, utf8: bool = False) -> str:
    """A client's mailbox argument → the store's name."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NameError_("mailbox name is not UTF-8") from None
    # RFC 6855 §3: once UTF8=ACCEPT is enabled, names are plain UTF-8 (no modified UTF-7)
    name = text if utf8 else decode(text)
    if name.upper() == "INBOX" or name.upper().startswith("INBOX" + SEPARATOR) and name[:5] != "INBOX":
        name = "INBOX" + name[5:]
    return name


def to_wire(name: str, utf8: bool = False) -> str:
    return name if utf8 else encode(name)
